/**
 * ConsumerRuntime.handleBatch on a REAL PostgreSQL: one transaction per batch, dedupe through processed_events,
 * a failing effect set aside (with the later messages of its key) without losing or redoing the rest.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { InboundMessage } from '../../src/infra/bus/bus.js';
import { ConsumerRuntime, type TopicHandler } from '../../src/infra/bus/consumer-runtime.js';
import { SystemClock } from '../../src/infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../../src/infra/db/database.js';
import { migrateToLatest } from '../../src/infra/db/migrations.js';
import { MemoryKeyValueStore } from '../../src/infra/kv/memory-kv.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { freshPostgresDatabase } from '../support/infra.js';

const TOPIC = 'test.batch';
const schema = z.object({ v: z.literal('v1'), eventId: z.string(), matchId: z.string(), n: z.number() });
type TestEvent = z.infer<typeof schema>;

let database: DatabaseHandle;
let drop: () => Promise<void>;
const clock = new SystemClock();
/** eventId → how many more attempts at its effect throw. */
const failures = new Map<string, number>();
let effectAttempts = 0;

const handler: TopicHandler<TestEvent> = {
  topic: TOPIC,
  schema,
  idempotencyKey: (eventId) => `test:idemp:${eventId}`,
  async handle(event, { trx, now }) {
    effectAttempts += 1;
    // The effect: one row, keyed by the event (a second application would violate the primary key).
    await trx
      .insertInto('outbox')
      .values({
        id: event.eventId,
        topic: 'test.effect',
        key: event.matchId,
        payload: JSON.stringify({ n: event.n }),
        headers: JSON.stringify({}),
        dedupe_key: null,
        created_at: new Date(now),
        published_at: new Date(now),
      })
      .execute();
    const left = failures.get(event.eventId) ?? 0;
    if (left > 0) {
      failures.set(event.eventId, left - 1);
      throw new Error(`effect of ${event.eventId} failed (${left} left)`);
    }
  },
};

/** The same effect with a bulk form: one multi-row insert for the fresh events of a batch. */
const BULK_TOPIC = 'test.bulk';
let bulkCalls = 0;
const bulkHandler: TopicHandler<TestEvent> = {
  ...handler,
  topic: BULK_TOPIC,
  async handleMany(items, { trx, now }) {
    bulkCalls += 1;
    effectAttempts += items.length;
    await trx
      .insertInto('outbox')
      .values(
        items.map(({ event }) => ({
          id: event.eventId,
          topic: 'test.effect',
          key: event.matchId,
          payload: JSON.stringify({ n: event.n }),
          headers: JSON.stringify({}),
          dedupe_key: null,
          created_at: new Date(now),
          published_at: new Date(now),
        })),
      )
      .execute();
    const failing = items.find(({ event }) => (failures.get(event.eventId) ?? 0) > 0);
    if (failing) throw new Error(`bulk effect failed on ${failing.event.eventId}`);
  },
};

type RuntimeOptions = ConstructorParameters<typeof ConsumerRuntime>[0];

function runtimeOptions(overrides: Partial<RuntimeOptions> = {}): RuntimeOptions {
  return {
    consumer: `batch-${randomUUID()}`,
    db: database.db,
    kv: new MemoryKeyValueStore(clock),
    clock,
    logger: createLogger('silent'),
    metrics: new Metrics(),
    maxAttempts: 2,
    ...overrides,
  };
}

function runtime(options: RuntimeOptions = runtimeOptions()): ConsumerRuntime {
  const r = new ConsumerRuntime(options);
  r.register(handler);
  return r;
}

let offset = 0;
function message(matchId: string, n: number, eventId = randomUUID(), value?: string, topic = TOPIC): InboundMessage {
  return {
    topic,
    partition: 0,
    offset: String(offset++),
    key: matchId,
    value: Buffer.from(value ?? JSON.stringify({ v: 'v1', eventId, matchId, n })),
    headers: { 'event-id': eventId, 'event-type': topic },
  };
}

/** Effects as applied, per key, in commit order (outbox seq). */
async function effects(ids: string[]): Promise<Map<string, number[]>> {
  const rows = await database.db.selectFrom('outbox').select(['key', 'payload']).where('id', 'in', ids).orderBy('seq').execute();
  const out = new Map<string, number[]>();
  for (const r of rows) out.set(r.key, [...(out.get(r.key) ?? []), (r.payload as { n: number }).n]);
  return out;
}

beforeAll(async () => {
  const fresh = await freshPostgresDatabase();
  drop = fresh.drop;
  database = await openDatabase({ url: fresh.url, dataDir: '.data/unused' });
  await migrateToLatest(database.db);
});

afterAll(async () => {
  await database?.close();
  await drop?.();
});

describe('ConsumerRuntime.handleBatch (real PostgreSQL)', () => {
  it('applies a batch once, skips an in-batch duplicate, dead-letters bad input; a redelivered batch changes nothing', async () => {
    const metrics = new Metrics();
    const options = runtimeOptions({ metrics });
    const r = runtime(options);
    const batch = [message('m-a', 1), message('m-b', 1), message('m-a', 2)];
    const duplicate = { ...batch[1]!, offset: String(offset++) };
    const bad = message('m-c', 1, randomUUID(), '{not json');
    const all = [...batch, duplicate, bad];
    const ids = batch.map((m) => m.headers['event-id']!);
    await r.handleBatch(all);
    expect(Object.fromEntries(await effects(ids))).toEqual({ 'm-a': [1, 2], 'm-b': [1] });
    const dead = await database.db.selectFrom('dead_letters').select(['reason', 'offset']).where('offset', '=', bad.offset).execute();
    expect(dead).toEqual([{ reason: 'INVALID_JSON', offset: bad.offset }]);
    expect((await metrics.consumerBatchSize.get()).values.find((v) => v.metricName === 'flock_consumer_batch_size_count')?.value).toBe(1);

    // Redelivery after a lost commit: Redis keys flushed, so only processed_events stands between it and a double.
    const before = effectAttempts;
    await runtime({ ...options, kv: new MemoryKeyValueStore(clock) }).handleBatch(all);
    expect(effectAttempts).toBe(before);
    expect(Object.fromEntries(await effects(ids))).toEqual({ 'm-a': [1, 2], 'm-b': [1] });
    expect(await database.db.selectFrom('dead_letters').select('id').where('offset', '=', bad.offset).execute()).toHaveLength(1);
  });

  it('a failing effect is retried on its own; the rest of the batch commits once and its key keeps its order', async () => {
    const r = runtime();
    const flaky = message('m-x', 1);
    const batch = [message('m-y', 1), flaky, message('m-y', 2), message('m-x', 2), message('m-z', 1)];
    failures.set(flaky.headers['event-id']!, 2); // fails in the batch and in its first retry, then succeeds
    await r.handleBatch(batch);
    const applied = await effects(batch.map((m) => m.headers['event-id']!));
    expect(Object.fromEntries(applied)).toEqual({ 'm-y': [1, 2], 'm-x': [1, 2], 'm-z': [1] });
  });

  it('a message that always fails is dead-lettered as HANDLER_FAILED; later messages of its key still apply, after it', async () => {
    const r = runtime();
    const poison = message('m-p', 1);
    const batch = [poison, message('m-p', 2), message('m-q', 1)];
    failures.set(poison.headers['event-id']!, 100);
    await r.handleBatch(batch);
    const applied = await effects(batch.map((m) => m.headers['event-id']!));
    expect(Object.fromEntries(applied)).toEqual({ 'm-p': [2], 'm-q': [1] });
    const dead = await database.db
      .selectFrom('dead_letters')
      .select(['reason', 'event_id'])
      .where('event_id', '=', poison.headers['event-id']!)
      .execute();
    expect(dead).toEqual([{ reason: 'HANDLER_FAILED', event_id: poison.headers['event-id'] }]);
  });

  it('a bulk handler gets the fresh events of a batch in one call, in order; a redelivery does not call it again', async () => {
    const options = runtimeOptions();
    const r = runtime(options);
    r.register(bulkHandler);
    const bulk = (matchId: string, n: number) => message(matchId, n, randomUUID(), undefined, BULK_TOPIC);
    const batch = [bulk('b-a', 1), bulk('b-b', 1), bulk('b-a', 2), bulk('b-a', 3)];
    const calls = bulkCalls;
    await r.handleBatch(batch);
    expect(bulkCalls).toBe(calls + 1);
    const ids = batch.map((m) => m.headers['event-id']!);
    expect(Object.fromEntries(await effects(ids))).toEqual({ 'b-a': [1, 2, 3], 'b-b': [1] });
    // Redelivery after a lost commit, Redis keys gone: processed_events alone keeps the handler from running again.
    const redelivered = runtime({ ...options, kv: new MemoryKeyValueStore(clock) });
    redelivered.register(bulkHandler);
    await redelivered.handleBatch(batch);
    expect(bulkCalls).toBe(calls + 1);
    expect(Object.fromEntries(await effects(ids))).toEqual({ 'b-a': [1, 2, 3], 'b-b': [1] });
  });

  it('when the bulk handler fails, the batch is redone message by message: the poison is dead-lettered alone', async () => {
    const r = runtime();
    r.register(bulkHandler);
    const bulk = (matchId: string, n: number) => message(matchId, n, randomUUID(), undefined, BULK_TOPIC);
    const poison = bulk('b-p', 1);
    const batch = [bulk('b-q', 1), poison, bulk('b-p', 2), bulk('b-q', 2)];
    failures.set(poison.headers['event-id']!, 100);
    await r.handleBatch(batch);
    const applied = await effects(batch.map((m) => m.headers['event-id']!));
    expect(Object.fromEntries(applied)).toEqual({ 'b-q': [1, 2], 'b-p': [2] });
    const dead = await database.db
      .selectFrom('dead_letters')
      .select(['reason', 'event_id'])
      .where('event_id', '=', poison.headers['event-id']!)
      .execute();
    expect(dead).toEqual([{ reason: 'HANDLER_FAILED', event_id: poison.headers['event-id'] }]);
  });

  it('rejects (so the source redelivers the whole batch) when the database is unreachable, and applies it once later', async () => {
    const options = runtimeOptions();
    const batch = [message('m-t', 1), message('m-t', 2)];
    const broken = await openDatabase({ url: 'postgres://nobody@127.0.0.1:1/none', dataDir: '.data/unused' });
    const offline = runtime({ ...options, db: broken.db });
    await expect(offline.handleBatch(batch)).rejects.toThrow();
    await broken.close();
    await runtime(options).handleBatch(batch);
    expect(Object.fromEntries(await effects(batch.map((m) => m.headers['event-id']!)))).toEqual({ 'm-t': [1, 2] });
  });
});
