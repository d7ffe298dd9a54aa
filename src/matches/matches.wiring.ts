import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../feature-wiring.js';
import { DeadLettersService } from './dead-letters.service.js';
import { MatchesService } from './matches.service.js';

export type MatchesWiring = Pick<FeatureWiring, 'db' | 'clock' | 'onOutboxWrite'>;

/** The matches feature: the internal API's match service (upsert, view, list, input-event replay) and dead letters. */
export function wireMatches(w: MatchesWiring): { matches: MatchesService; deadLetters: DeadLettersService } {
  const deps = { db: w.db, clock: w.clock, onOutboxWrite: w.onOutboxWrite };
  return { matches: new MatchesService(deps), deadLetters: new DeadLettersService(deps) };
}

/** The Nest providers of the matches feature, by class. */
export function matchesProviders(services: { matches: MatchesService; deadLetters: DeadLettersService }): Provider[] {
  return [
    { provide: MatchesService, useValue: services.matches },
    { provide: DeadLettersService, useValue: services.deadLetters },
  ];
}
