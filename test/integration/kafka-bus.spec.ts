/**
 * KafkaMessageSink / KafkaMessageSource against a REAL Apache Kafka broker.
 * Start it first: `node scripts/services.mjs up` (address in .cache/kafka/brokers, or env KAFKA_BROKERS).
 * Every run uses its own topic prefix and group ids, so runs never see each other's data.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Admin } from '@platformatic/kafka';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../../src/observability/logger.js';
import { oneByOne, type InboundMessage, type MessageHandler, type OutboundMessage } from '../../src/infra/bus/bus.js';
import { KafkaMessageSink, KafkaMessageSource, ensureTopics, pingKafka, type PartitionLag } from '../../src/infra/bus/kafka-bus.js';
import { ALL_TOPICS, Topics } from '../../src/events/topics.js';

function brokersFromEnvironment(): string[] {
  const env = process.env.KAFKA_BROKERS?.trim();
  if (env)
    return env
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
  try {
    const text = readFileSync(join(process.cwd(), '.cache', 'kafka', 'brokers'), 'utf8').trim();
    if (text) return text.split(',');
  } catch {
    /* fall through to the default */
  }
  return [`127.0.0.1:${process.env.KAFKA_TEST_PORT ?? '19092'}`];
}

const brokers = brokersFromEnvironment();
const prefix = `t${randomBytes(4).toString('hex')}.`;
const logger = createLogger(process.env.LOG_LEVEL ?? 'warn', { test: 'kafka-bus' });
const sources: KafkaMessageSource[] = [];
let sink: KafkaMessageSink;

function newSource(groupSuffix: string, extra: Partial<ConstructorParameters<typeof KafkaMessageSource>[0]> = {}): KafkaMessageSource {
  const source = new KafkaMessageSource({
    brokers,
    clientId: `it-${groupSuffix}`,
    groupId: `${prefix}${groupSuffix}`,
    topicPrefix: prefix,
    logger,
    sessionTimeoutMs: 10_000,
    heartbeatIntervalMs: 1000,
    maxWaitTimeMs: 500,
    ...extra,
  });
  sources.push(source);
  return source;
}

function event(topic: string, key: string, body: Record<string, unknown> = {}): OutboundMessage {
  const eventId = randomUUID();
  return {
    topic,
    key,
    value: JSON.stringify({ v: 'v1', eventId, type: topic, occurredAt: new Date().toISOString(), matchId: key, ...body }),
    headers: { 'event-id': eventId, 'event-type': topic },
  };
}

async function waitUntil(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Committed offsets of `group` on the prefixed `topic`, as partition → offset. */
async function committedOffsets(group: string, topic: string): Promise<Map<number, bigint>> {
  const admin = new Admin({ clientId: 'it-admin', bootstrapBrokers: brokers });
  try {
    const [res] = await admin.listConsumerGroupOffsets({ groups: [`${prefix}${group}`] });
    const out = new Map<number, bigint>();
    for (const t of res?.topics ?? []) {
      if (t.name !== prefix + topic) continue;
      for (const p of t.partitions) if (p.committedOffset >= 0n) out.set(p.partitionIndex, p.committedOffset);
    }
    return out;
  } finally {
    await admin.close();
  }
}

beforeAll(async () => {
  if (!(await pingKafka(brokers, 5000))) {
    throw new Error(
      `Kafka is not reachable at ${brokers.join(',')}. Start the local services first: \`node scripts/services.mjs up\` ` +
        '(or set KAFKA_BROKERS to a running broker).',
    );
  }
  await ensureTopics(brokers, ALL_TOPICS, { partitions: 3, prefix });
  sink = new KafkaMessageSink({ brokers, clientId: 'it-sink', topicPrefix: prefix, logger });
});

afterAll(async () => {
  await Promise.allSettled(sources.map((s) => s.stop()));
  await sink?.close();
});

describe('Kafka bus (real broker)', () => {
  it('round-trips a message with its key and event-id header; the prefix is stripped on the way in', async () => {
    const received: InboundMessage[] = [];
    const source = newSource('roundtrip');
    await source.start(
      [Topics.serverReserved],
      oneByOne(async (m) => {
        received.push(m);
      }),
    );
    expect(source.isHealthy()).toBe(true);

    const out = event(Topics.serverReserved, 'match-rt-1', { panelServerId: 42 });
    await sink.send([out]);
    await waitUntil(() => received.length >= 1, 'the round-trip message');

    const [msg] = received;
    expect(msg).toBeDefined();
    expect(msg!.topic).toBe(Topics.serverReserved);
    expect(msg!.key).toBe('match-rt-1');
    expect(msg!.headers['event-id']).toBe(out.headers['event-id']);
    expect(msg!.headers['event-type']).toBe(Topics.serverReserved);
    expect(Buffer.isBuffer(msg!.value)).toBe(true);
    expect(JSON.parse(msg!.value.toString('utf8'))).toMatchObject({ eventId: out.headers['event-id'], panelServerId: 42 });
    expect(Number(msg!.offset)).toBeGreaterThanOrEqual(0);
    expect(msg!.partition).toBeGreaterThanOrEqual(0);

    await source.stop();
    expect(source.isHealthy()).toBe(false);
    const committed = await committedOffsets('roundtrip', Topics.serverReserved);
    expect(committed.get(msg!.partition)).toBe(BigInt(msg!.offset) + 1n);
  });

  it('redelivers a message whose handler rejects, commits it once after success, and never again', async () => {
    const out = event(Topics.serverReleased, 'match-retry-1');
    const eventId = out.headers['event-id']!;
    const attempts: number[] = [];
    const source = newSource('retry');
    await source.start(
      [Topics.serverReleased],
      oneByOne(async (m) => {
        if (m.headers['event-id'] !== eventId) return;
        attempts.push(Date.now());
        if (attempts.length <= 2) throw new Error(`transient failure #${attempts.length}`);
      }),
    );
    await sink.send([out]);
    await waitUntil(() => attempts.length >= 3 && source.stats.commits >= 1, 'three deliveries and a commit');
    expect(attempts).toHaveLength(3);
    expect(source.stats).toMatchObject({ handlerFailures: 2, commits: 1 });
    // capped exponential backoff: ~200 ms then ~400 ms between attempts
    expect(attempts[1]! - attempts[0]!).toBeGreaterThanOrEqual(150);
    expect(attempts[2]! - attempts[1]!).toBeGreaterThanOrEqual(300);
    await source.stop();

    const committed = await committedOffsets('retry', Topics.serverReleased);
    expect([...committed.values()].reduce((a, b) => a + b, 0n)).toBe(1n);

    // A new member of the same group resumes after the committed offset: it sees only the new marker.
    const seen: string[] = [];
    const next = newSource('retry');
    await next.start(
      [Topics.serverReleased],
      oneByOne(async (m) => {
        seen.push(m.headers['event-id'] ?? '?');
      }),
    );
    const marker = event(Topics.serverReleased, 'match-retry-1');
    await sink.send([marker]);
    await waitUntil(() => seen.includes(marker.headers['event-id']!), 'the marker message');
    expect(seen).not.toContain(eventId);
    expect(attempts).toHaveLength(3);
    await next.stop();
  });

  it('redelivers to another member a message whose handler never finished (stop() gives up, no commit)', async () => {
    const out = event(Topics.streamHealthCheck, 'match-stuck-1');
    const eventId = out.headers['event-id']!;
    let firstSaw = 0;
    const stuck = newSource('stuck', { stopTimeoutMs: 3000 });
    await stuck.start(
      [Topics.streamHealthCheck],
      oneByOne(async (m) => {
        if (m.headers['event-id'] === eventId) firstSaw += 1;
        await new Promise<void>(() => undefined); // never resolves: a hung effect
      }),
    );
    await sink.send([out]);
    await waitUntil(() => firstSaw === 1, 'the first member to receive the message');
    const t0 = Date.now();
    await stuck.stop();
    expect(Date.now() - t0).toBeLessThan(8000);
    expect(stuck.stats.commits).toBe(0);
    expect((await committedOffsets('stuck', Topics.streamHealthCheck)).size).toBe(0);

    const redelivered: InboundMessage[] = [];
    const second = newSource('stuck');
    await second.start(
      [Topics.streamHealthCheck],
      oneByOne(async (m) => {
        redelivered.push(m);
      }),
    );
    await waitUntil(() => redelivered.some((m) => m.headers['event-id'] === eventId), 'redelivery to the second member');
    await waitUntil(() => second.stats.commits >= 1, 'the second member to commit');
    await second.stop();
    expect(firstSaw).toBe(1);
  });

  it('stop() waits for a slow in-flight handler and its commit, so the next member does not see it again', async () => {
    const out = event(Topics.matchDispute, 'match-slow-1');
    const eventId = out.headers['event-id']!;
    let started = false;
    let finished = false;
    const slow = newSource('slow', { stopTimeoutMs: 10_000 });
    await slow.start(
      [Topics.matchDispute],
      oneByOne(async (m) => {
        if (m.headers['event-id'] !== eventId) return;
        started = true;
        await new Promise((r) => setTimeout(r, 1500));
        finished = true;
      }),
    );
    await sink.send([out]);
    await waitUntil(() => started, 'the slow handler to start');
    await slow.stop();
    expect(finished).toBe(true);
    expect(slow.stats.commits).toBe(1);

    const seen: string[] = [];
    const next = newSource('slow');
    await next.start(
      [Topics.matchDispute],
      oneByOne(async (m) => {
        seen.push(m.headers['event-id'] ?? '?');
      }),
    );
    const marker = event(Topics.matchDispute, 'match-slow-1');
    await sink.send([marker]);
    await waitUntil(() => seen.includes(marker.headers['event-id']!), 'the marker message');
    expect(seen).not.toContain(eventId);
    await next.stop();
  });

  it('survives a rebalance: a second member joins mid-stream, every message is handled and committed', async () => {
    const topic = Topics.overlayViolation;
    const total = 60;
    const handledBy = new Map<string, Set<string>>();
    const slowHandler =
      (member: string): MessageHandler =>
      async (m) => {
        await new Promise((r) => setTimeout(r, 15));
        const id = m.headers['event-id'] ?? '?';
        if (!handledBy.has(id)) handledBy.set(id, new Set());
        handledBy.get(id)!.add(member);
      };
    const a = newSource('rebalance');
    await a.start([topic], oneByOne(slowHandler('a')));
    const batch = Array.from({ length: total }, (_, i) => event(topic, `match-rb-${i % 12}`, { i }));
    await sink.send(batch);
    await waitUntil(() => handledBy.size >= 10, 'member a to start handling');
    const b = newSource('rebalance');
    await b.start([topic], oneByOne(slowHandler('b')));
    await waitUntil(() => batch.every((e) => handledBy.has(e.headers['event-id']!)), 'every message handled', 60_000);
    await Promise.all([a.stop(), b.stop()]);
    expect(a.stats.deliveries + b.stats.deliveries).toBeGreaterThanOrEqual(total);

    // At-least-once across the rebalance: a later member may get a few duplicates (records buffered before the
    // rebalance), never a message nobody handled; once it has drained, every offset is committed.
    const late: string[] = [];
    const c = newSource('rebalance');
    await c.start(
      [topic],
      oneByOne(async (m) => {
        late.push(m.headers['event-id'] ?? '?');
      }),
    );
    const sumCommitted = async () => [...(await committedOffsets('rebalance', topic)).values()].reduce((x, y) => x + y, 0n);
    const deadline = Date.now() + 20_000;
    while ((await sumCommitted()) < BigInt(total) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
    await c.stop();
    expect(await sumCommitted()).toBe(BigInt(total));
    for (const id of late) expect(handledBy.has(id)).toBe(true);
    expect(late.length).toBeLessThan(total);
  });

  it('preserves order within a key, handling one batch at a time per partition', async () => {
    const keys = ['match-order-a', 'match-order-b', 'match-order-c'];
    const perKey = 40;
    const seen = new Map<string, number[]>(keys.map((k) => [k, []]));
    const concurrentPerPartition = new Map<number, number>();
    let maxPerPartition = 0;
    const handler: MessageHandler = async (m) => {
      const body = JSON.parse(m.value.toString('utf8')) as { seq: number };
      if (Math.random() < 0.2) await new Promise((r) => setTimeout(r, 2));
      seen.get(m.key!)!.push(body.seq);
    };
    const source = newSource('order');
    await source.start([Topics.matchForfeit], async (batch) => {
      const partition = batch[0]!.partition;
      expect(batch.every((m) => m.partition === partition)).toBe(true);
      const now = (concurrentPerPartition.get(partition) ?? 0) + 1;
      concurrentPerPartition.set(partition, now);
      maxPerPartition = Math.max(maxPerPartition, now);
      try {
        await oneByOne(handler)(batch);
      } finally {
        concurrentPerPartition.set(partition, now - 1);
      }
    });
    // Interleaved keys, several sends (batches of 10) so the records span many produce requests.
    const all: OutboundMessage[] = [];
    for (let seq = 0; seq < perKey; seq++) for (const k of keys) all.push(event(Topics.matchForfeit, k, { seq }));
    for (let i = 0; i < all.length; i += 10) await sink.send(all.slice(i, i + 10));

    await waitUntil(() => keys.every((k) => seen.get(k)!.length >= perKey), 'all ordered messages', 60_000);
    for (const k of keys) expect(seen.get(k)).toEqual([...Array(perKey).keys()]);
    expect(maxPerPartition).toBe(1);
    await source.stop();
  });

  it('hands a backlog over in batches, partitions concurrently, and commits each batch only after it resolved', async () => {
    const topic = Topics.hmacVerificationFailed;
    const total = 600;
    const backlog = Array.from({ length: total }, (_, i) => event(topic, `match-batch-${i % 30}`, { i }));
    for (let i = 0; i < total; i += 100) await sink.send(backlog.slice(i, i + 100));
    const sizes: number[] = [];
    const handled = new Set<string>();
    let concurrent = 0;
    let maxConcurrent = 0;
    const committedWhileHandling: bigint[] = [];
    const source = newSource('batches', { maxBatchSize: 100 });
    await source.start([topic], async (batch) => {
      concurrent += 1;
      maxConcurrent = Math.max(maxConcurrent, concurrent);
      sizes.push(batch.length);
      // While a batch is being handled, its partition's committed offset is still before the batch.
      if (Math.random() < 0.1) {
        const committed = (await committedOffsets('batches', topic)).get(batch[0]!.partition) ?? 0n;
        committedWhileHandling.push(committed - BigInt(batch[0]!.offset));
      }
      await new Promise((r) => setTimeout(r, 30));
      for (const m of batch) handled.add(m.headers['event-id']!);
      concurrent -= 1;
    });
    await waitUntil(() => handled.size >= total, 'the whole backlog', 60_000);
    await source.stop();
    expect(Math.max(...sizes)).toBeGreaterThan(1);
    expect(Math.max(...sizes)).toBeLessThanOrEqual(100);
    expect(maxConcurrent).toBeGreaterThan(1);
    for (const gap of committedWhileHandling) expect(gap).toBeLessThanOrEqual(0n);
    const committed = await committedOffsets('batches', topic);
    expect([...committed.values()].reduce((a, b) => a + b, 0n)).toBe(BigInt(total));
    expect(source.stats.commits).toBeLessThan(total / 2);
  });

  it('reports the lag of each assigned partition: the backlog while it waits, zero once handled', async () => {
    const topic = Topics.replayAttackDetected;
    const total = 90;
    const backlog = Array.from({ length: total }, (_, i) => event(topic, `match-lag-${i % 9}`, { i }));
    await sink.send(backlog);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let handled = 0;
    const samples: PartitionLag[][] = [];
    const source = newSource('lag', { lagSampleMs: 200, onLag: (lags) => samples.push(lags) });
    await source.start([topic], async (batch) => {
      await gate;
      handled += batch.length;
    });
    const total0 = (lags: PartitionLag[]) => lags.reduce((n, l) => n + l.lag, 0);
    await waitUntil(() => samples.some((lags) => total0(lags) === total), 'a lag sample showing the whole backlog');
    expect(samples.find((lags) => total0(lags) === total)!.every((l) => l.topic === topic)).toBe(true);
    release();
    await waitUntil(() => handled === total, 'the backlog handled');
    await waitUntil(() => (samples.at(-1)?.length ?? 0) > 0 && total0(samples.at(-1)!) === 0, 'a lag sample of zero');
    await source.stop();
  });
});
