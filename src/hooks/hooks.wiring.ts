import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../feature-wiring.js';
import type { ReadinessSignals } from '../provisioning/readiness.port.js';
import { HookSignalsService } from './hook-signals.service.js';
import { PresenceBuffer } from './presence-buffer.js';

export interface HooksWiring extends Pick<FeatureWiring, 'config' | 'db' | 'kv' | 'clock' | 'logger' | 'onOutboxWrite'> {
  /** Provisioning's port: admin hook and overlay presence are readiness signals. */
  readiness: ReadinessSignals;
}

/** What authenticated hook calls mean for a match: readiness signals, overlay presence, gameplay evidence. */
export function wireHooks(w: HooksWiring): HookSignalsService {
  const logger = w.logger.child({ component: 'hooks' });
  return new HookSignalsService({
    db: w.db,
    kv: w.kv,
    clock: w.clock,
    logger,
    readiness: w.readiness,
    onOutboxWrite: w.onOutboxWrite,
    presence: new PresenceBuffer({
      db: w.db,
      clock: w.clock,
      logger,
      flushEveryMs: w.config.OVERLAY_PRESENCE_FLUSH_MS,
      maxRows: w.config.OVERLAY_PRESENCE_BUFFER_MAX,
    }),
    // Well inside the heartbeat timeout, so the stale-overlay sweep never expires an overlay whose heartbeats are
    // still being coalesced: a silence longer than this sends the next heartbeat down the direct path.
    presenceTtlMs: Math.max(1, Math.floor(w.config.OVERLAY_HEARTBEAT_TIMEOUT_MS / 2)),
  });
}

/** The Nest providers of the hooks feature, by class. */
export function hooksProviders(hookSignals: HookSignalsService): Provider[] {
  return [{ provide: HookSignalsService, useValue: hookSignals }];
}
