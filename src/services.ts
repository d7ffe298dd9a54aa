import type { Kysely } from 'kysely';
import type { Config } from './config/config.js';
import type { Clock } from './infra/clock.js';
import type { MessageSink, MessageSource } from './infra/bus/bus.js';
import type { ConsumerRuntime } from './infra/bus/consumer-runtime.js';
import type { EmbeddedBus } from './infra/bus/embedded-bus.js';
import type { OutboxRelay } from './infra/bus/outbox-relay.js';
import type { DatabaseHandle } from './infra/db/database.js';
import type { Database } from './infra/db/schema.js';
import type { KeyValueStore } from './infra/kv/kv-store.js';
import type { Logger } from './observability/logger.js';
import type { Metrics } from './observability/metrics.js';
import type { ServerProvisionWorker } from './provisioning/server-provision.worker.js';
import type { ScheduledTasksService } from './scheduling/scheduled-tasks.service.js';
import type { HookSignalsService } from './hooks/hook-signals.service.js';
import type { DeadLettersService } from './matches/dead-letters.service.js';
import type { MatchesService } from './matches/matches.service.js';
import type { HookVerifier } from './security/hook-verifier.js';
import type { KeyService } from './security/keys.js';

/**
 * Everything the composition root built, for startService, the demo and tests. Controllers never receive it:
 * each feature's wiring hands them the named services they use.
 */
export interface Services {
  readonly config: Config;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly database: DatabaseHandle;
  readonly db: Kysely<Database>;
  readonly kv: KeyValueStore;
  readonly sink: MessageSink;
  readonly source: MessageSource;
  /** Present in the embedded default only: lets the demo and tests observe relayed events. */
  readonly embeddedBus: EmbeddedBus | undefined;
  readonly relay: OutboxRelay;
  readonly consumer: ConsumerRuntime;
  readonly provisioning: ServerProvisionWorker;
  readonly streamHealth: import('./stream-health/stream-health.worker.js').StreamHealthWorker;
  readonly scheduler: ScheduledTasksService;
  readonly keys: KeyService;
  readonly hookVerifier: HookVerifier;
  readonly overlayKeys: import('./security/overlay-keys.service.js').OverlayKeysService;
  readonly hookSignals: HookSignalsService;
  readonly matches: MatchesService;
  /** Ends the LISTEN connection that wakes the relay on rows from other instances. */
  stopOutboxListener(): Promise<void>;
  /** Set on SIGTERM: readiness then reports `lifecycle: draining` (503) while work goes on. */
  readonly lifecycle: { draining: boolean };
  /** Twitch EventSub's webhook receiver; null when TWITCH_EVENTSUB_SECRET is unset. */
  readonly eventSub: import('./integrations/twitch/eventsub.js').EventSubReceiver | null;
  readonly deadLetters: DeadLettersService;
  readiness(): Promise<Record<string, string>>;
}
