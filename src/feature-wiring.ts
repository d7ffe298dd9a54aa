import type { Kysely } from 'kysely';
import type { Config } from './config/config.js';
import type { Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import type { ScheduledTasksService } from './scheduling/scheduled-tasks.service.js';
import type { ConsumerRuntime } from './infra/bus/consumer-runtime.js';
import type { Clock } from './infra/clock.js';
import type { Database } from './infra/db/schema.js';
import type { KeyValueStore } from './infra/kv/kv-store.js';

/** What the composition root hands every feature's wiring (`*.wiring.ts`). */
export interface FeatureWiring {
  config: Config;
  db: Kysely<Database>;
  kv: KeyValueStore;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  consumer: ConsumerRuntime;
  scheduler: ScheduledTasksService;
  /** Called after a transaction that wrote outbox rows commits (wakes the relay). */
  onOutboxWrite: () => void;
}
