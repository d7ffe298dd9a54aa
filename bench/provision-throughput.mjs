#!/usr/bin/env node
// Events per second through server.reserved → database → outbox → Kafka, on this machine, with one service
// instance on the real PostgreSQL, Redis and Kafka (fresh database, Redis prefix, topic prefix and group).
//
// What is measured, exactly:
//   N `server.reserved` events are produced to Kafka BEFORE the service starts (a backlog), for N matches whose
//   checklist already says adminHooksOk (inserted in bulk beforehand). The panel is an in-process stand-in
//   (ServiceOverrides.panel) that reports every server installed at the first look and costs nothing — the real
//   panel's 240/min budget would otherwise cap this at 4 events/s; bench/provision-fleet.mjs measures that side.
//   So every event takes the whole event path once:
//     Kafka consume (one message at a time, offset committed after the transaction) → zod validation → Redis
//     idempotency key → one transaction (provisions row, checklist, processed_events) → poller claims it → the
//     panel stand-in says installed → transaction: READY + `server.ready` in the outbox → relay → Kafka (acks=all,
//     idempotent producer) → read back by a separate consumer group.
//   Rates are over the drain of the backlog, from the first reservation handled (provisions.reserved_at):
//     consume → DB    N / (last reserved_at − first reserved_at)
//     → Kafka (acked) N / (last outbox.published_at − first reserved_at)
//     → read back     N / (last server.ready received by the bench's consumer − first reserved_at)
//   Breakdown: afterwards 1000 more events go straight into ConsumerRuntime.handle (what the Kafka source calls),
//   one at a time, without Kafka fetch/commit: the difference is the Kafka consumer's share of the time.
//
//   node_modules/.bin/node bench/provision-throughput.mjs        (BENCH_PROVISION_EVENTS=5000)
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import {
  deleteRedisPrefix,
  deleteTopics,
  dist,
  freshPostgresDatabase,
  INSTALLED_PANEL,
  insertReadyMatches,
  onCleanup,
  percentile,
  randomName,
  recordResult,
  requireBuild,
  requireKafka,
  requireRedis,
  round,
  runBench,
  startBenchService,
  waitFor,
} from './lib/common.mjs';

const NAME = 'provision-throughput';
const N = Number(process.env.BENCH_PROVISION_EVENTS ?? 5000);
const DRAIN_TIMEOUT_MS = Number(process.env.BENCH_PROVISION_TIMEOUT_MS ?? 150_000);

async function main() {
  requireBuild();
  const { KafkaMessageSink } = await dist('src/infra/bus/kafka-bus.js');
  const { Topics } = await dist('src/events/topics.js');
  const { openDatabase } = await dist('src/infra/db/database.js');
  const { migrateToLatest } = await dist('src/infra/db/migrations.js');
  const { createLogger } = await dist('src/observability/logger.js');

  const prefix = randomName('bench') + '.';
  const redisPrefix = randomName('fwbench') + ':';
  const [db, redisUrl, brokers] = await Promise.all([freshPostgresDatabase(), requireRedis(), requireKafka(prefix)]);
  onCleanup(() => db.drop());
  onCleanup(() => deleteTopics(brokers, prefix));
  onCleanup(() => deleteRedisPrefix(redisUrl, redisPrefix));
  const silent = createLogger('silent');

  // 1. Schema, then N matches whose admin hooks already reported OK (bulk, outside any measurement).
  const handle = await openDatabase({ url: db.url, dataDir: '.data/unused' });
  await migrateToLatest(handle.db);
  await handle.close();
  const run = randomName('');
  const matchIds = Array.from({ length: N }, (_, i) => `tp-${run}-${i}`);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  await insertReadyMatches(client, matchIds);

  // 2. The backlog: N server.reserved events on Kafka, produced before the service starts.
  const producer = new KafkaMessageSink({ brokers, clientId: 'bench-platform', topicPrefix: prefix, logger: silent });
  onCleanup(() => producer.close());
  const tp0 = performance.now();
  for (let i = 0; i < N; i += 500) {
    await producer.send(
      matchIds.slice(i, i + 500).map((matchId, j) => {
        const eventId = randomUUID();
        return {
          topic: Topics.serverReserved,
          key: matchId,
          value: JSON.stringify({ v: 'v1', eventId, matchId, panelServerId: i + j + 1 }),
          headers: { 'event-id': eventId, 'event-type': Topics.serverReserved },
        };
      }),
    );
  }
  const produceMs = performance.now() - tp0;
  await producer.close();

  // 3. The bench's reader of server.ready: its own group, from the earliest offset, joined before the service
  //    starts. A plain consumer that never commits (KafkaMessageSource commits every message, which would make the
  //    reader as slow as the service's own consumer and the read-back figure the reader's, not the service's).
  const received = new Map(); // eventId → receive time (epoch ms)
  const readyMatches = new Set();
  const { Consumer, MessagesStreamModes, stringDeserializer } = await import('@platformatic/kafka');
  const reader = new Consumer({
    clientId: 'bench-reader',
    groupId: randomName('reader'),
    bootstrapBrokers: brokers,
    autocommit: false,
    maxWaitTime: 100,
    deserializers: { key: stringDeserializer, headerKey: stringDeserializer, headerValue: stringDeserializer },
  });
  const stream = await reader.consume({ topics: [prefix + Topics.serverReady], mode: MessagesStreamModes.EARLIEST, autocommit: false });
  stream.on('data', (m) => {
    let eventId;
    for (const [k, v] of m.headerEntries ?? m.headers ?? []) if (String(k) === 'event-id') eventId = String(v);
    eventId ??= `${m.partition}:${m.offset}`;
    if (!received.has(eventId)) received.set(eventId, Date.now());
    readyMatches.add(m.key);
  });
  stream.on('error', () => undefined);
  onCleanup(async () => {
    await stream.close().catch(() => undefined);
    await reader.close(true).catch(() => undefined);
  });
  await waitFor(() => reader.isActive() && (reader.assignments?.length ?? 0) > 0, 30_000, 'the bench reader to join its group');

  // 4. The service, with a panel stand-in that answers "installed" at once.
  const panel = INSTALLED_PANEL;
  const started = Date.now();
  const service = await startBenchService(
    {
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: redisPrefix,
      KAFKA_BROKERS: brokers.join(','),
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_GROUP_ID: randomName('g'),
      PTERO_APP_URL: 'http://127.0.0.1:9',
      PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    },
    { panel },
  );
  onCleanup(() => service.close());
  const count = async (sql) => Number((await client.query(sql)).rows[0].n);
  let lastLog = 0;
  await waitFor(
    async () => {
      const [provisions, published] = await Promise.all([
        count('SELECT count(*)::int AS n FROM provisions'),
        count(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'server.ready' AND published_at IS NOT NULL`),
      ]);
      if (Date.now() - lastLog > 5000) {
        lastLog = Date.now();
        console.log(
          `  ${((Date.now() - started) / 1000).toFixed(0)} s: provisions ${provisions}/${N}, server.ready published ${published}/${N}, read back ${received.size}/${N}`,
        );
      }
      return provisions >= N && published >= N && received.size >= N;
    },
    DRAIN_TIMEOUT_MS,
    `${N} events through the whole path`,
    100,
  );

  // 5. Figures from the database's own timestamps and the bench's receive times.
  const q = (
    await client.query(`
    SELECT extract(epoch FROM min(reserved_at)) * 1000 AS first_reserved, extract(epoch FROM max(reserved_at)) * 1000 AS last_reserved,
           extract(epoch FROM max(ready_at)) * 1000 AS last_ready,
           count(*) FILTER (WHERE state = 'READY')::int AS ready
    FROM provisions`)
  ).rows[0];
  const o = (
    await client.query(`
    SELECT extract(epoch FROM max(published_at)) * 1000 AS last_published, count(*)::int AS n, count(DISTINCT key)::int AS keys
    FROM outbox WHERE topic = 'server.ready'`)
  ).rows[0];
  const lat = (
    await client.query(`
    SELECT extract(epoch FROM (o.published_at - p.reserved_at)) * 1000 AS ms
    FROM provisions p JOIN outbox o ON o.key = p.match_id AND o.topic = 'server.ready' ORDER BY 1`)
  ).rows.map((r) => Number(r.ms));
  const publishedAt = new Map(
    (await client.query(`SELECT id, extract(epoch FROM published_at) * 1000 AS at FROM outbox WHERE topic = 'server.ready'`)).rows.map(
      (r) => [r.id, Number(r.at)],
    ),
  );
  const readLag = [...received]
    .filter(([id]) => publishedAt.has(id))
    .map(([id, at]) => at - publishedAt.get(id))
    .sort((a, b) => a - b);
  const processed = await count(`SELECT count(*)::int AS n FROM processed_events WHERE topic = 'server.reserved'`);
  const deadLetters = await count('SELECT count(*)::int AS n FROM dead_letters');
  const readBack = readyMatches.size;
  const lastReceived = Math.max(...received.values()); // before phase 6 adds its own events

  if (q.ready !== N || o.n !== N || o.keys !== N || processed !== N || readBack !== N) {
    throw new Error(
      `exactly-once check failed: ready ${q.ready}, outbox ${o.n} (${o.keys} keys), processed ${processed}, read back ${readBack} matches, expected ${N}`,
    );
  }

  // 6. For the breakdown: the same handler the Kafka source calls (validation, Redis idempotency, the transaction),
  //    fed M messages directly and one at a time — no Kafka fetch, no per-message offset commit. Poller and relay
  //    keep running as before. The gap to the consume → DB rate is the Kafka consumer's share.
  const M = Math.min(N, 1000);
  const directIds = Array.from({ length: M }, (_, i) => `tpd-${run}-${i}`);
  await insertReadyMatches(client, directIds);
  const messages = directIds.map((matchId, i) => {
    const eventId = randomUUID();
    return {
      topic: Topics.serverReserved,
      partition: 0,
      offset: String(i),
      key: matchId,
      value: Buffer.from(JSON.stringify({ v: 'v1', eventId, matchId, panelServerId: N + i + 1 })),
      headers: { 'event-id': eventId, 'event-type': Topics.serverReserved },
    };
  });
  const td = performance.now();
  for (const m of messages) await service.services.consumer.handle(m);
  const directRate = M / ((performance.now() - td) / 1000);
  const directDone = await count(`SELECT count(*)::int AS n FROM provisions WHERE match_id LIKE 'tpd-%'`);
  if (directDone !== M) throw new Error(`direct handler phase: ${directDone} of ${M} provisions written`);
  await client.end();
  const first = Number(q.first_reserved);
  const lastReserved = Number(q.last_reserved);
  const lastPublished = Number(o.last_published);
  const rate = (untilMs) => round(N / ((untilMs - first) / 1000), 0);
  const figures = [
    {
      name: 'consume → DB (server.reserved handled)',
      value: rate(lastReserved),
      unit: 'events/s',
      note: `${N} events in ${round((lastReserved - first) / 1000, 1)} s`,
    },
    {
      name: 'full path → Kafka (server.ready acked)',
      value: rate(lastPublished),
      unit: 'events/s',
      note: `last published ${round((lastPublished - lastReserved) / 1000, 2)} s after last consume`,
    },
    {
      name: 'full path → read back from Kafka',
      value: rate(lastReceived),
      unit: 'events/s',
      note: 'by a separate consumer group (no commits)',
    },
    {
      name: 'breakdown: consumer handler alone (no Kafka)',
      value: round(directRate, 0),
      unit: 'events/s',
      note: `${M} events fed to ConsumerRuntime.handle one at a time`,
    },
    {
      name: 'backlog produce rate (input side, for scale)',
      value: round(N / (produceMs / 1000), 0),
      unit: 'events/s',
      note: 'batches of 500, acks=all',
    },
    {
      name: 'service start → first event handled',
      value: round((first - started) / 1000, 1),
      unit: 's',
      note: 'DB migrate + Kafka group join; not in rates',
    },
  ];
  recordResult(NAME, {
    measured:
      'drain of a pre-produced backlog of server.reserved through one instance: Kafka → validation → Redis idempotency → PostgreSQL → poller (in-process panel stand-in: installed at once, hooks already OK) → outbox → relay → Kafka; rates from the first reservation handled',
    figures,
    details: {
      events: N,
      partitions: 3,
      exactlyOnce: { ready: q.ready, outboxRows: o.n, processedEvents: processed, readBackMatches: readBack, deadLetters },
      reservedToPublishedMs: {
        p50: round(percentile(lat, 50), 0),
        p99: round(percentile(lat, 99), 0),
        note: 'queueing inside a backlog drain, not a latency figure',
      },
      publishedToReadBackMs: {
        p50: round(percentile(readLag, 50), 0),
        p99: round(percentile(readLag, 99), 0),
        max: round(readLag.at(-1), 0),
      },
      lastReadyAfterLastReservedMs: round(Number(q.last_ready) - lastReserved, 0),
      produceMs: round(produceMs, 0),
    },
  });
}

runBench(NAME, main, { hardLimitMs: 200_000 });
