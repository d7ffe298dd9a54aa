import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../feature-wiring.js';
import { MatchesService } from './matches.service.js';

export interface MatchesWiring extends Pick<FeatureWiring, 'db' | 'clock' | 'onOutboxWrite'> {
  /** The platforms the configured telemetry providers observe: a VERIFIED_STREAM match needs them. */
  telemetryPlatforms: ReadonlySet<string>;
  enforcementModes: ReadonlySet<string>;
}

export interface MatchesWiring extends Pick<FeatureWiring, 'db' | 'clock' | 'onOutboxWrite'> {
  /** The platforms the configured telemetry providers observe: a VERIFIED_STREAM match needs them. */
  telemetryPlatforms: ReadonlySet<string>;
  /** The configured enforcement policies' names: a match's enforcementMode must be one. */
  enforcementModes: ReadonlySet<string>;
}

/** The matches feature: the internal API's match service (upsert, view, input-event replay). */
export function wireMatches(w: MatchesWiring): MatchesService {
  const { db, clock, onOutboxWrite, telemetryPlatforms, enforcementModes } = w;
  return new MatchesService({ db, clock, onOutboxWrite, telemetryPlatforms, enforcementModes });
}

/** The Nest providers of the matches feature, by class. */
export function matchesProviders(matches: MatchesService): Provider[] {
  return [{ provide: MatchesService, useValue: matches }];
}
