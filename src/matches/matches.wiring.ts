import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../infra/feature-wiring.js';
import type { ReadinessSignals } from '../provisioning/readiness.port.js';
import { HookSignalsService } from './hook-signals.service.js';
import { MatchesService } from './matches.service.js';

export interface MatchesWiring extends Pick<FeatureWiring, 'db' | 'clock' | 'logger' | 'onOutboxWrite'> {
  /** Provisioning's port: admin hook and overlay presence are readiness signals. */
  readiness: ReadinessSignals;
}

export interface Matches {
  readonly matches: MatchesService;
  readonly hookSignals: HookSignalsService;
}

/** The matches feature: the internal API's match service and what authenticated hook calls mean for a match. */
export function wireMatches(w: MatchesWiring): Matches {
  const { db, clock, onOutboxWrite } = w;
  return {
    matches: new MatchesService({ db, clock, onOutboxWrite }),
    hookSignals: new HookSignalsService({
      db,
      clock,
      logger: w.logger.child({ component: 'hooks' }),
      readiness: w.readiness,
      onOutboxWrite,
    }),
  };
}

/** The Nest providers of the matches feature, by class. */
export function matchesProviders(m: Matches): Provider[] {
  return [
    { provide: MatchesService, useValue: m.matches },
    { provide: HookSignalsService, useValue: m.hookSignals },
  ];
}
