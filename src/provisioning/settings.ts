import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import type { Metrics } from '../observability/metrics.js';
import type { AdminKeySettings } from './admin-key.policy.js';
import type { MatchKeys } from './match-keys.port.js';
import type { PanelPort } from './panel.port.js';

export interface ProvisionSettings {
  readyDeadlineMs: number;
  pollEveryMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** How long a claimed provision stays with this instance without being renewed. */
  leaseMs: number;
  /** Provisions polled concurrently by one instance (each still waits for a fleet-wide panel slot). */
  concurrency: number;
  /**
   * Provisions one poll pass claims (default and minimum `concurrency`); they are polled `concurrency` at a time and
   * each group's outcomes written in one transaction. Every claimed provision must get its panel request within the
   * lease, so the wiring ties this to the panel budget (docs/panel.md).
   */
  claimLimit?: number;
  /** Poll passes one instance runs side by side (default 1), each claiming up to `claimLimit` of its own. */
  pollPasses?: number;
  cleanupMaxAttempts: number;
}

export const DEFAULT_PROVISION_SETTINGS: Omit<ProvisionSettings, 'readyDeadlineMs' | 'pollEveryMs'> = {
  backoffBaseMs: 500,
  backoffCapMs: 30_000,
  leaseMs: 20_000,
  concurrency: 8,
  cleanupMaxAttempts: 12,
};

/** Coalesced polling: one fleet-wide panel listing per tick answers for every installing server (docs/panel.md). */
export interface ListingSettings {
  /** Fleet-wide quiet period after each listing lives here, so the fleet lists once per period. */
  kv: KeyValueStore;
  /** The scheduler tick of the listing task. */
  everyMs: number;
  /** Per-server polling resumes this long after the last listing that saw a server (the fallback). */
  fallbackMs: number;
  /** Panel budget (requests per window); listings may use at most `budgetShare` of it. */
  budget: number;
  windowMs: number;
  budgetShare: number;
  /** Installing provisions one listing pass answers for. */
  maxWatched: number;
  /** After an unusable listing (403, no route, no sort), per-server polling only for this long. */
  unusableCooldownMs: number;
}

export interface ServerProvisionWorkerDeps {
  db: Kysely<Database>;
  panel: PanelPort;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  instanceId: string;
  settings: ProvisionSettings;
  /** Called after a transaction that wrote outbox rows commits (wakes the relay). */
  onOutboxWrite?: () => void;
  random?: () => number;
  /** Absent: every server is polled on its own. */
  listing?: ListingSettings;
  /** The match keys (admin key delivered through the panel, overlay keys at ready). Absent: no keys are issued. */
  keys?: MatchKeys;
  /** Required with `keys`. */
  adminKey?: AdminKeySettings;
}

/** What every part of provisioning shares: the worker's deps with the randomness settled. */
export type ProvisioningDeps = ServerProvisionWorkerDeps & { random: () => number };
