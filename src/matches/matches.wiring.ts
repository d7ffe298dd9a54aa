import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../feature-wiring.js';
import { DeadLettersService } from './dead-letters.service.js';
import { MatchesService } from './matches.service.js';

export interface MatchesWiring extends Pick<FeatureWiring, 'db' | 'clock' | 'onOutboxWrite'> {
  /** The platforms the configured telemetry providers observe: a VERIFIED_STREAM match needs them. */
  telemetryPlatforms: ReadonlySet<string>;
  /** The configured enforcement policies' names: a match's enforcementMode must be one. */
  enforcementModes: ReadonlySet<string>;
  /** The grace (ms) of each configured enforcement policy, by name. */
  graceMsByMode?: ReadonlyMap<string, number>;
}

/** The matches feature: the internal API's match service (upsert, view, list, input-event replay) and dead letters. */
export function wireMatches(w: MatchesWiring): { matches: MatchesService; deadLetters: DeadLettersService } {
  const { db, clock, onOutboxWrite, telemetryPlatforms, enforcementModes, graceMsByMode } = w;
  const graceOf = (mode: string) => graceMsByMode?.get(mode);
  return {
    matches: new MatchesService({ db, clock, onOutboxWrite, telemetryPlatforms, enforcementModes, graceOf }),
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
