import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../feature-wiring.js';
import type { ReadinessSignals } from '../provisioning/readiness.port.js';
import { HookSignalsService } from './hook-signals.service.js';

export interface HooksWiring extends Pick<FeatureWiring, 'db' | 'clock' | 'logger' | 'onOutboxWrite'> {
  /** Provisioning's port: admin hook and overlay presence are readiness signals. */
  readiness: ReadinessSignals;
}

/** What authenticated hook calls mean for a match: readiness signals, overlay presence, gameplay evidence. */
export function wireHooks(w: HooksWiring): HookSignalsService {
  return new HookSignalsService({
    db: w.db,
    clock: w.clock,
    logger: w.logger.child({ component: 'hooks' }),
    readiness: w.readiness,
    onOutboxWrite: w.onOutboxWrite,
  });
}

/** The Nest providers of the hooks feature, by class. */
export function hooksProviders(hookSignals: HookSignalsService): Provider[] {
  return [{ provide: HookSignalsService, useValue: hookSignals }];
}
