import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import type { Metrics } from '../observability/metrics.js';
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
  cleanupMaxAttempts: number;
}

export const DEFAULT_PROVISION_SETTINGS: Omit<ProvisionSettings, 'readyDeadlineMs' | 'pollEveryMs'> = {
  backoffBaseMs: 500,
  backoffCapMs: 30_000,
  leaseMs: 20_000,
  concurrency: 8,
  cleanupMaxAttempts: 12,
};

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
}

/** What every part of provisioning shares: the worker's deps with the randomness settled. */
export type ProvisioningDeps = ServerProvisionWorkerDeps & { random: () => number };
