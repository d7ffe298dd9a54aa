import type { FeatureWiring } from '../feature-wiring.js';
import type { MatchKeys } from './match-keys.port.js';
import type { PanelPort } from './panel.port.js';
import { DEFAULT_PROVISION_SETTINGS, ServerProvisionWorker } from './server-provision.worker.js';

export interface ProvisioningWiring extends FeatureWiring {
  /** The panel behind provisioning's port: Pterodactyl from config, or a double (tests, demo). */
  panel: PanelPort;
  /** Runs on each monitor tick before the deadline sweep (the composition root hands in overlay expiry). */
  beforeDeadlineSweep?: () => Promise<unknown>;
  /** The match keys (security's KeyService): the admin key delivered through the panel, overlay keys at ready. */
  keys?: MatchKeys;
}

/**
 * Builds the ServerProvisionWorker, subscribes it to `server.reserved` and `server.released`, and schedules the
 * `provisioning-monitor` (deadline sweep) every PROVISION_MONITOR_EVERY_MS, once per tick across the fleet.
 * The worker is also provisioning's ReadinessSignals port for hook handling.
 */
export function wireProvisioning(w: ProvisioningWiring): ServerProvisionWorker {
  const { config, clock, logger, metrics } = w;
  const listing =
    config.PANEL_LIST_EVERY_MS > 0 && w.panel.observeMany
      ? {
          kv: w.kv,
          everyMs: config.PANEL_LIST_EVERY_MS,
          fallbackMs: Math.max(10_000, 5 * config.PANEL_LIST_EVERY_MS),
          budget: config.PTERO_RATE_LIMIT_PER_MIN,
          windowMs: config.PTERO_RATE_LIMIT_WINDOW_MS,
          budgetShare: 0.5,
          maxWatched: 2_000,
          unusableCooldownMs: 300_000,
        }
      : undefined;
  const worker = new ServerProvisionWorker({
    db: w.db,
    panel: w.panel,
    clock,
    logger: logger.child({ worker: 'ServerProvisionWorker' }),
    metrics,
    instanceId: config.instanceId,
    settings: {
      ...DEFAULT_PROVISION_SETTINGS,
      readyDeadlineMs: config.READY_DEADLINE_MS,
      pollEveryMs: config.POLL_EVERY_MS,
      ...pollPlan(config.PTERO_RATE_LIMIT_PER_MIN, config.PTERO_RATE_LIMIT_WINDOW_MS),
    },
    onOutboxWrite: w.onOutboxWrite,
    ...(listing ? { listing } : {}),
    ...(w.keys
      ? {
          keys: w.keys,
          adminKey: {
            idVariable: config.ADMIN_KEY_ID_VARIABLE,
            secretVariable: config.ADMIN_KEY_SECRET_VARIABLE,
            maxAttempts: config.ADMIN_KEY_DELIVERY_MAX_ATTEMPTS,
          },
        }
      : {}),
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
  if (listing) {
    w.scheduler.register({
      name: 'provisioning-panel-listing',
      everyMs: listing.everyMs,
      run: async () => void (await worker.pollListed()),
    });
  }
  return worker;
}

/**
 * How much one instance polls at once. Every claimed provision needs one panel request within its lease, and the
 * panel grants `budget` requests per window to the whole fleet, so one instance has at most half of what fits in a
 * lease in flight (240/min, 20 s lease: 40): a pass claims that much (never fewer than the polling concurrency,
 * never more than 200), and when more fits than one pass of 200 (a panel with a larger budget), up to 4 passes run
 * side by side. Each pass's claim parks what it takes, so passes never claim the same provision.
 */
export function pollPlan(
  budget: number,
  windowMs: number,
  leaseMs = DEFAULT_PROVISION_SETTINGS.leaseMs,
): { claimLimit: number; pollPasses: number } {
  const fits = Math.floor((budget * leaseMs) / windowMs / 2);
  return {
    claimLimit: Math.min(200, Math.max(DEFAULT_PROVISION_SETTINGS.concurrency, fits)),
    pollPasses: Math.min(4, Math.max(1, Math.floor(fits / 200))),
  };
}
