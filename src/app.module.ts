import { type DynamicModule, Module } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import type { Config } from './config/config.js';
import type { MessageSink, MessageSource } from './infra/bus/bus.js';
import { ConsumerRuntime } from './infra/bus/consumer-runtime.js';
import { EmbeddedBus } from './infra/bus/embedded-bus.js';
import { KafkaMessageSink, KafkaMessageSource, pingKafka } from './infra/bus/kafka-bus.js';
import { OutboxRelay, type RelayLeadership } from './infra/bus/outbox-relay.js';
import { ALL_TOPICS, INPUT_TOPICS } from './events/topics.js';
import { checkTopics, TopicWatch, wantedTopics } from './infra/bus/topic-check.js';
import { type Clock, SystemClock } from './infra/clock.js';
import { openDatabase } from './infra/db/database.js';
import { migrateToLatest } from './infra/db/migrations.js';
import { untilDatabaseAnswers } from './infra/db/startup-wait.js';
import type { KeyValueStore } from './infra/kv/kv-store.js';
import { MemoryKeyValueStore } from './infra/kv/memory-kv.js';
import { RedisKeyValueStore } from './infra/kv/redis-kv.js';
import { createHttpApp, HTTP_CONTROLLERS, httpProviders } from './http/http.wiring.js';
import { zeroAlertSeries } from './alert-series.js';
import { createLogger, type Logger } from './observability/logger.js';
import { Metrics } from './observability/metrics.js';
import type { PanelPort } from './provisioning/panel.port.js';
import { wireProvisioning } from './provisioning/provisioning.wiring.js';
import { Leases } from './scheduling/lease.js';
import { retentionWindowsFromConfig, runRetention } from './scheduling/retention.js';
import { ScheduledTasksService } from './scheduling/scheduled-tasks.service.js';
import type { Services } from './services.js';
import { hooksProviders, wireHooks } from './hooks/hooks.wiring.js';
import { panelFromConfig } from './integrations/pterodactyl/panel-from-config.js';
import { telemetryPlatformsFromConfig, telemetryProvidersFromConfig } from './integrations/telemetry-providers.js';
import { matchesProviders, wireMatches } from './matches/matches.wiring.js';
import { securityProviders, wireSecurity } from './security/security.wiring.js';
import { wireStreamHealth } from './stream-health/stream-health.wiring.js';
import { wireEventSub } from './integrations/twitch/eventsub.wiring.js';
import { EVENTSUB_LOGGER, EVENTSUB_RECEIVER } from './http/twitch-eventsub.controller.js';

/** Replaceable parts, for tests and the demo (a manual clock, a logger that records, a panel double). */
export interface ServiceOverrides {
  clock?: Clock;
  logger?: Logger;
  metrics?: Metrics;
  panel?: PanelPort;
}

/**
 * The composition root: picks the real or the embedded adapter for each outside system, once, from config.
 * Nothing else in the code knows which one it got.
 */
export async function buildServices(config: Config, overrides: ServiceOverrides = {}): Promise<Services> {
  const clock = overrides.clock ?? new SystemClock();
  const logger = overrides.logger ?? createLogger(config.LOG_LEVEL, { instanceId: config.instanceId });
  const metrics = overrides.metrics ?? new Metrics({ defaultMetrics: true });
  zeroAlertSeries(metrics);

  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS });
  const migration = await untilDatabaseAnswers(() => migrateToLatest(database.db), { waitMs: config.DB_STARTUP_WAIT_MS, logger }).catch(
    async (error: unknown) => {
      await database.close().catch(() => undefined);
      throw error;
    },
  );
  logger.info({ database: database.kind, applied: migration.applied }, 'database ready');

  let kv: KeyValueStore;
  if (config.REDIS_URL) {
    const redis = new RedisKeyValueStore({ url: config.REDIS_URL, keyPrefix: config.REDIS_KEY_PREFIX, logger });
    await redis.connect();
    kv = redis;
  } else {
    kv = new MemoryKeyValueStore(clock);
  }

  let sink: MessageSink;
  let source: MessageSource;
  let embeddedBus: EmbeddedBus | undefined;
  if (config.KAFKA_BROKERS) {
    const common = {
      brokers: config.KAFKA_BROKERS,
      clientId: `${config.KAFKA_CLIENT_ID}-${config.instanceId}`,
      topicPrefix: config.KAFKA_TOPIC_PREFIX,
      logger,
    };
    sink = new KafkaMessageSink(common);
    source = new KafkaMessageSource({
      ...common,
      groupId: config.KAFKA_GROUP_ID,
      sessionTimeoutMs: config.KAFKA_SESSION_TIMEOUT_MS,
      onLag: (lags) => {
        // Reset first: partitions that moved to another instance must not keep their last value here.
        metrics.consumerLag.reset();
        for (const { topic, partition, lag } of lags) metrics.consumerLag.set({ topic, partition: String(partition) }, lag);
      },
      // Only an explicitly set INSTANCE_ID is stable across restarts; the generated one changes every start.
      ...(config.INSTANCE_ID ? { groupInstanceId: config.INSTANCE_ID } : {}),
    });
  } else {
    embeddedBus = new EmbeddedBus(INPUT_TOPICS);
    sink = embeddedBus;
    source = embeddedBus;
  }

  const leases = new Leases(kv);
  const lifecycle = { draining: false };
  const relayLeadership: RelayLeadership = {
    async holds() {
      try {
        return (
          (await leases.renew('outbox-relay', config.instanceId, 15_000)) ||
          (await leases.tryAcquire('outbox-relay', config.instanceId, 15_000))
        );
      } catch (error) {
        // Without Redis we cannot elect a relay; relaying anyway keeps events flowing (consumers dedupe on event-id).
        logger.warn({ err: error, reason: 'KV_UNAVAILABLE' }, 'relay leadership unknown; relaying anyway');
        return true;
      }
    },
    async release() {
      await leases.release('outbox-relay', config.instanceId);
    },
  };
  const relay = new OutboxRelay({
    db: database.db,
    sink,
    clock,
    logger: logger.child({ component: 'outbox-relay' }),
    metrics,
    leadership: relayLeadership,
    // Embedded: the outbox is the consumer's queue, so its unpublished input rows are the consumer's lag.
    ...(embeddedBus ? { consumerInputTopics: INPUT_TOPICS } : {}),
  });
  // Rows committed by other instances wake this one's relay too (the leader may run anywhere).
  const stopOutboxListener = database.listen?.('outbox_rows', () => relay.nudge());

  // With Kafka, /readyz names the topics the cluster lacks (they are created at deploy: `flock-workers kafka topics`).
  const brokers = config.KAFKA_BROKERS;
  const topicWatch = brokers
    ? new TopicWatch(
        () => checkTopics(brokers, wantedTopics(ALL_TOPICS, { prefix: config.KAFKA_TOPIC_PREFIX, partitions: 1, replicas: 1 })),
        // Wall time, not the service clock: this only paces metadata calls.
        () => Date.now(),
      )
    : undefined;

  const consumer = new ConsumerRuntime({
    consumer: config.KAFKA_GROUP_ID,
    db: database.db,
    kv,
    clock,
    logger: logger.child({ component: 'consumer' }),
    metrics,
    onCommitted: () => relay.nudge(),
  });

  const security = wireSecurity({ config, db: database.db, kv, clock, logger, metrics, onOutboxWrite: () => relay.nudge() });

  const scheduler = new ScheduledTasksService({
    kv,
    clock,
    logger: logger.child({ component: 'scheduler' }),
    metrics,
    instanceId: config.instanceId,
  });
  // --- provisioning wiring (ServerProvisionWorker, its panel and the deadline monitor; hookSignals is called at tick time) ---
  // What every feature's wiring gets (FeatureWiring), built once.
  const feature = { config, db: database.db, kv, clock, logger, metrics, consumer, scheduler, onOutboxWrite: () => relay.nudge() };
  const provisioning = wireProvisioning({
    ...feature,
    panel: overrides.panel ?? panelFromConfig(config, { kv, clock, logger, metrics }),
    beforeDeadlineSweep: () => hookSignals.expireStaleOverlays(config.OVERLAY_HEARTBEAT_TIMEOUT_MS),
    keys: security.matchKeys,
  });
  // --- end provisioning wiring ---
  const { matches, deadLetters } = wireMatches({
    db: database.db,
    clock,
    onOutboxWrite: () => relay.nudge(),
    telemetryPlatforms: telemetryPlatformsFromConfig(config),
    enforcementModes: new Set(config.enforcementPolicies.keys()),
    graceMsByMode: new Map([...config.enforcementPolicies].map(([name, policy]) => [name, policy.graceMs])),
  });
  const hookSignals = wireHooks({ ...feature, readiness: provisioning });
  scheduler.register({ name: 'hmac-key-prune', everyMs: 60 * 60 * 1000, run: async () => void (await security.keys.pruneExpired()) });

  scheduler.register({
    name: 'retention',
    everyMs: config.RETENTION_EVERY_MS,
    run: async ({ signal }) => {
      const windows = retentionWindowsFromConfig(config);
      await runRetention({
        db: database.db,
        now: clock.now(),
        windows,
        batchSize: config.RETENTION_BATCH_SIZE,
        maxBatches: config.RETENTION_MAX_BATCHES,
        signal,
        metrics,
        logger: logger.child({ component: 'retention' }),
      });
    },
  });

  // --- stream health wiring (StreamHealthWorker, its providers and scheduled sweeps) ---
  const eventSub = wireEventSub(
    config,
    { kv, clock, db: database.db, logger, metrics, scheduler },
    telemetryProvidersFromConfig(config, { clock, logger, metrics }),
  );
  const providers = eventSub.providers;
  const streamHealth = wireStreamHealth({ ...feature, providers });
  // --- end stream health wiring ---

  return {
    config,
    clock,
    logger,
    metrics,
    database,
    db: database.db,
    kv,
    sink,
    source,
    embeddedBus,
    relay,
    consumer,
    provisioning,
    streamHealth,
    scheduler,
    ...security,
    matches,
    deadLetters,
    hookSignals,
    stopOutboxListener: async () => stopOutboxListener?.(),
    lifecycle,
    eventSub: eventSub.receiver,
    async readiness() {
      const checks: Record<string, string> = {};
      if (lifecycle.draining) checks.lifecycle = 'draining';
      await Promise.all([
        database.ping().then(
          () => (checks.database = 'ok'),
          () => (checks.database = 'unreachable'),
        ),
        kv.ping().then(
          () => (checks.redis = 'ok'),
          () => (checks.redis = 'unreachable'),
        ),
        (async () => {
          const state = source.state();
          if (state !== 'ok' || !config.KAFKA_BROKERS) checks.bus = state;
          else checks.bus = (await pingKafka(config.KAFKA_BROKERS, 2_000)) ? 'ok' : 'unavailable';
        })(),
        ...(topicWatch
          ? [
              topicWatch.state().then((state) => {
                checks.topics = state;
              }),
            ]
          : []),
      ]);
      return checks;
    },
  };
}

@Module({})
export class AppModule {
  static forRoot(services: Services): DynamicModule {
    return {
      module: AppModule,
      controllers: HTTP_CONTROLLERS,
      providers: [
        ...httpProviders({ config: services.config, metrics: services.metrics, readiness: () => services.readiness() }),
        ...securityProviders(services),
        ...matchesProviders(services),
        ...hooksProviders(services.hookSignals),
        { provide: EVENTSUB_RECEIVER, useValue: services.eventSub },
        { provide: EVENTSUB_LOGGER, useValue: services.logger.child({ component: 'twitch-eventsub' }) },
      ],
    };
  }
}

export interface RunningService {
  readonly services: Services;
  readonly app: NestFastifyApplication;
  /** Base URL of the HTTP server, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  /** Turns /readyz to 503 (`draining`) and waits `ms` while work goes on, for load balancers to move away. */
  drain(ms: number): Promise<void>;
  close(): Promise<void>;
}

/** Builds everything, starts the workers in a safe order, and listens. `close()` drains in the reverse order. */
export async function startService(config: Config, overrides: ServiceOverrides = {}): Promise<RunningService> {
  const services = await buildServices(config, overrides);
  const { logger } = services;
  const app = await createHttpApp(AppModule.forRoot(services), config, logger, services.metrics);

  // Consumer first, so the embedded relay has somebody to hand input events to; then the workers. The Kafka
  // group join can wait out a dead member's session timeout: the HTTP server listens meanwhile (/readyz: joining).
  const joining = services.source.start(services.consumer.topics.length ? [...INPUT_TOPICS] : [], services.consumer.handleBatch);
  joining.catch(() => undefined); // awaited below; this only keeps an early failure from being unhandled
  services.relay.start();
  services.provisioning.start();
  services.scheduler.start();

  await app.listen({ port: config.PORT, host: config.HOST });
  const address = app.getHttpServer().address();
  const port = typeof address === 'object' && address ? address.port : config.PORT;
  const host = config.HOST === '0.0.0.0' || config.HOST === '::' ? '127.0.0.1' : config.HOST;
  const url = `http://${host}:${port}`;
  logger.info({ url, embedded: config.embedded }, 'flocknode-workers listening');
  try {
    await joining;
  } catch (error) {
    await Promise.allSettled([
      app.close(),
      services.scheduler.stop(),
      services.provisioning.stop(),
      services.relay.stop(),
      services.stopOutboxListener(),
    ]);
    throw error;
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      logger.info('shutting down: draining in-flight work');
      const steps: [string, () => Promise<unknown>][] = [
        ['http', () => app.close()],
        // Coalesced overlay presence still in memory (no request can add to it any more).
        ['hook-presence', () => services.hookSignals.stopPresence()],
        ['consumer', () => services.source.stop()],
        ['scheduler', () => services.scheduler.stop()],
        ['stream-health', () => services.streamHealth.stop()],
        ['provisioning', () => services.provisioning.stop()],
        ['hmac-replay-summaries', () => services.hookVerifier.flushReplaySummaries()],
        ['relay', () => services.relay.stop()],
        ['outbox-listener', () => services.stopOutboxListener()],
        // Publish what the drained work wrote. Embedded: input rows wait in the outbox for the next start.
        ['relay-drain', async () => (config.KAFKA_BROKERS ? services.relay.drain() : 0)],
        ['sink', () => services.sink.close()],
        ['kv', () => services.kv.close()],
        ['database', () => services.database.close()],
      ];
      for (const [name, step] of steps) {
        try {
          await step();
        } catch (error) {
          logger.warn({ err: error, step: name }, 'shutdown step failed');
        }
      }
      logger.info('shut down');
    })());
  const drain = async (ms: number) => {
    services.lifecycle.draining = true;
    logger.info({ drainMs: ms }, 'draining: /readyz answers 503 before the service stops');
    await new Promise((resolve) => setTimeout(resolve, ms));
  };
  return { services, app, url, drain, close };
}
