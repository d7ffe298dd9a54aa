import { randomBytes } from 'node:crypto';
import { loadConfig } from '../../src/config/config.js';
import { startService, type RunningService, type ServiceOverrides } from '../../src/app.module.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { KafkaMessageSink } from '../../src/infra/bus/kafka-bus.js';
import { startFakePanel, type FakePanel, type FakePanelOptions } from '../fakes/pterodactyl-panel.js';
import { freshPostgresDatabase, randomName, requireKafka, requireRedis, TEST_SECRETS } from './infra.js';

export interface TestStack {
  DATABASE_URL: string;
  REDIS_URL: string;
  REDIS_KEY_PREFIX: string;
  KAFKA_BROKERS: string;
  KAFKA_TOPIC_PREFIX: string;
  KAFKA_GROUP_ID: string;
  PTERO_APP_URL: string;
  PTERO_APP_API_KEY: string;
}

/** Environment of one service instance on the real stack (each test file gets its own database, prefixes, group). */
export function serviceEnv(stack: TestStack, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...TEST_SECRETS,
    ...stack,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    READY_DEADLINE_MS: '8000',
    POLL_EVERY_MS: '300',
    PROVISION_MONITOR_EVERY_MS: '1000',
    ...extra,
  };
}

export async function startTestService(env: Record<string, string>, overrides: ServiceOverrides = {}): Promise<RunningService> {
  const config = loadConfig({ ...env, INSTANCE_ID: env.INSTANCE_ID ?? `test-${randomBytes(3).toString('hex')}` }, { service: true });
  return startService(config, {
    logger: createLogger(config.LOG_LEVEL, { instanceId: config.instanceId }),
    metrics: new Metrics(),
    ...overrides,
  });
}

/** The internal API of a running service. */
export function internalApi(service: RunningService) {
  // biome-ignore lint/suspicious/noExplicitAny: tests read the API's answers loosely
  return async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const response = await fetch(`${service.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, json: text ? JSON.parse(text) : null };
  };
}

export function matchBody(matchId: string, options: { overlayRequired?: boolean; amountCents?: number } = {}) {
  return {
    mode: 'VERIFIED_STREAM',
    entryFee: { amountCents: options.amountCents ?? 500, currency: 'USD' },
    overlayRequired: options.overlayRequired ?? false,
    // Test services configure no telemetry provider: without the waiver a VERIFIED_STREAM match is refused.
    streamWaiver: { reason: 'test fixture: stream health is not under test here', grantedBy: 'test-suite' },
    players: [
      { side: 'p1', playerId: `alice-${matchId}`, streamChannels: [`twitch:alice_${matchId}`.slice(0, 60), `srs:live/alice`] },
      { side: 'p2', playerId: `bob-${matchId}`, streamChannels: [`twitch:bob_${matchId}`.slice(0, 60), `srs:live/bob`] },
    ],
  };
}

export interface RealStack {
  stack: TestStack;
  brokers: string[];
  /** The Kafka topic prefix of this test file. */
  prefix: string;
  panel: FakePanel;
  panelKey: string;
  /** Closes the fake panel and drops the database. */
  close(): Promise<void>;
}

/**
 * One test file's share of the real infrastructure: a fresh PostgreSQL database, a Redis key prefix, a Kafka topic
 * prefix with every topic created, its own consumer group, and a fake Pterodactyl panel over real HTTP.
 */
export async function realStack(panelOptions: Partial<FakePanelOptions> = {}): Promise<RealStack> {
  const prefix = randomName('t') + '.';
  const [db, redisUrl, brokers] = await Promise.all([freshPostgresDatabase(), requireRedis(), requireKafka(prefix)]);
  const panelKey = `ptla_${randomBytes(22).toString('hex').slice(0, 43)}`;
  const panel = await startFakePanel({ ...panelOptions, apiKeys: { [panelKey]: 'worker-admin' } });
  return {
    stack: {
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: randomName('fw') + ':',
      KAFKA_BROKERS: brokers.join(','),
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_GROUP_ID: randomName('g'),
      PTERO_APP_URL: panel.url,
      PTERO_APP_API_KEY: panelKey,
    },
    brokers,
    prefix,
    panel,
    panelKey,
    async close() {
      await panel.close();
      await db.drop();
    },
  };
}

/** Produces input events to Kafka exactly as the platform would (key = matchId, header event-id). */
export function platformProducer(real: RealStack): KafkaMessageSink {
  return new KafkaMessageSink({
    brokers: real.brokers,
    clientId: 'test-platform',
    topicPrefix: real.prefix,
    logger: createLogger('silent'),
  });
}
