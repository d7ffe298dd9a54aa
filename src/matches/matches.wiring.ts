import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../feature-wiring.js';
import { DeadLettersService } from './dead-letters.service.js';
import { MatchesService } from './matches.service.js';

export interface MatchesWiring extends Pick<FeatureWiring, 'db' | 'clock' | 'onOutboxWrite'> {
  /** The platforms the configured telemetry providers observe: a VERIFIED_STREAM match needs them. */
  telemetryPlatforms: ReadonlySet<string>;
  /** The configured enforcement policies' names: a match's enforcementMode must be one. */
  enforcementModes: ReadonlySet<string>;
}

/** The matches feature: the internal API's match service (upsert, view, list, input-event replay) and dead letters. */
export function wireMatches(w: MatchesWiring): { matches: MatchesService; deadLetters: DeadLettersService } {
  const { db, clock, onOutboxWrite, telemetryPlatforms, enforcementModes } = w;
  return {
    matches: new MatchesService({ db, clock, onOutboxWrite, telemetryPlatforms, enforcementModes }),
    deadLetters: new DeadLettersService({ db, clock, onOutboxWrite }),
  };
}

/** The Nest providers of the matches feature, by class. */
export function matchesProviders(services: { matches: MatchesService; deadLetters: DeadLettersService }): Provider[] {
  return [
    { provide: MatchesService, useValue: services.matches },
    { provide: DeadLettersService, useValue: services.deadLetters },
  ];
}
