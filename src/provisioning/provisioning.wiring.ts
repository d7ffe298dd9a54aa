import type { Config } from '../config/config.js';
import type { Clock } from '../infra/clock.js';
import type { FeatureWiring } from '../infra/feature-wiring.js';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import { PterodactylPanel } from '../integrations/pterodactyl/panel.adapter.js';
import { PterodactylClient } from '../integrations/pterodactyl/pterodactyl-client.js';
import { PanelRateLimiter } from '../integrations/pterodactyl/rate-limiter.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { PanelPort } from './panel.port.js';
import { DEFAULT_PROVISION_SETTINGS, ServerProvisionWorker } from './server-provision.worker.js';

export interface ProvisioningWiring extends FeatureWiring {
  /** A panel double (tests, demo); otherwise the Pterodactyl panel from config. */
  panel?: PanelPort;
  /** Runs on each monitor tick before the deadline sweep (the composition root hands in overlay expiry). */
  beforeDeadlineSweep?: () => Promise<unknown>;
}

/** The Pterodactyl panel behind provisioning's PanelPort, with its fleet-wide rate limit in the key-value store. */
export function panelFromConfig(config: Config, deps: { kv: KeyValueStore; clock: Clock; logger: Logger; metrics: Metrics }): PanelPort {
  const { kv, clock, logger, metrics } = deps;
  return new PterodactylPanel(
    new PterodactylClient({
      baseUrl: config.PTERO_APP_URL ?? 'http://127.0.0.1:1',
      apiKey: config.PTERO_APP_API_KEY ?? '',
      timeoutMs: config.PTERO_TIMEOUT_MS,
      mutationTimeoutMs: config.PTERO_MUTATION_TIMEOUT_MS,
      limiter: new PanelRateLimiter({
        store: kv,
        clock,
        budget: config.PTERO_RATE_LIMIT_PER_MIN,
        windowMs: config.PTERO_RATE_LIMIT_WINDOW_MS,
        instanceId: config.instanceId,
        metrics,
      }),
      metrics,
      logger: logger.child({ component: 'pterodactyl' }),
    }),
  );
}

/**
 * Builds the ServerProvisionWorker, subscribes it to `server.reserved` and `server.released`, and schedules the
 * `provisioning-monitor` (deadline sweep) every PROVISION_MONITOR_EVERY_MS, once per tick across the fleet.
 * The worker is also provisioning's ReadinessSignals port for hook handling.
 */
export function wireProvisioning(w: ProvisioningWiring): ServerProvisionWorker {
  const { config, clock, logger, metrics } = w;
  const worker = new ServerProvisionWorker({
    db: w.db,
    panel: w.panel ?? panelFromConfig(config, { kv: w.kv, clock, logger, metrics }),
    clock,
    logger: logger.child({ worker: 'ServerProvisionWorker' }),
    metrics,
    instanceId: config.instanceId,
    settings: { ...DEFAULT_PROVISION_SETTINGS, readyDeadlineMs: config.READY_DEADLINE_MS, pollEveryMs: config.POLL_EVERY_MS },
    onOutboxWrite: w.onOutboxWrite,
  });
  w.consumer.register(worker.reservedHandler());
  w.consumer.register(worker.releasedHandler());
  w.scheduler.register({
    name: 'provisioning-monitor',
    everyMs: config.PROVISION_MONITOR_EVERY_MS,
    run: async () => {
      await w.beforeDeadlineSweep?.();
      await worker.sweepDeadlines();
    },
  });
  return worker;
}
