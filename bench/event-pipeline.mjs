#!/usr/bin/env node
// The event pipeline against its yardstick, in one run on the real PostgreSQL, Redis and Kafka of this machine.
//
// For each backlog size N (BENCH_PIPELINE_SIZES, default 1000,10000,100000), on a fresh database, Redis prefix,
// topic prefix (3 partitions) and group:
//   1. N matches whose admin hooks already reported OK are inserted in bulk; N `server.reserved` events are produced
//      to Kafka (batches of 500, acks=all) BEFORE anything consumes them: a backlog.
//   2. Yardstick, the bare batched loop (bare-batched-loop below): the same client (@platformatic/kafka), its own
//      group, `mode: COMMITTED`; it takes whatever is buffered (≤ 500 messages), runs ONE PostgreSQL transaction
//      (per message: the processed_events claim + one effect row), commits, then commits each partition's last
//      offset. Rate = N / (last commit − first message taken).
//   3. The service (one instance, in process; the panel is a stand-in that reports every server installed, so the
//      real panel's 240/min budget does not cap it — bench/provision-fleet.mjs measures that): the full path
//      server.reserved → validation → Redis idempotency → one transaction per partition batch (provisions,
//      checklist, processed_events) → poller → READY + server.ready in the outbox → relay → Kafka (acks=all,
//      idempotent). Rate = N / (last server.ready published − first reservation handled), from the database's own
//      timestamps. A drain that runs past BENCH_PIPELINE_CAP_MS (default 150 s) is cut there and reported as
//      "partial" with the events it finished.
//   Ratio = full path ÷ bare batched loop, per N. Beside it the service's consume → DB rate alone (N / (the poll,
//   every 250 ms, that first saw N provisions − first reserved_at)): the yardstick's work, without poller and relay.
// Then the latency at a steady rate: BENCH_PIPELINE_RATE events/s (default 1000) for BENCH_PIPELINE_STEADY_S
// seconds (default 20) produced to a running service (50 every 50 ms); per event the time from its produce call to
//   effect     its effect committed AND published: the server.ready row its reservation led to, marked published
//              by the relay once Kafka acknowledged it (outbox.published_at, read after the run; the service's
//              clock is this process's clock),
//   read back  that server.ready received by a separate consumer group,
// with p50 and p99 of each (and, in the details only, produce → the reservation's transaction began: reserved_at,
// which is stamped before the commit and so only a lower bound). The yardstick loop is not run there.
//
//   node_modules/.bin/node bench/event-pipeline.mjs
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
  sleep,
  startBenchService,
  waitFor,
} from './lib/common.mjs';

const NAME = 'event-pipeline';
const SIZES = (process.env.BENCH_PIPELINE_SIZES ?? '1000,10000,100000')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const CAP_MS = Number(process.env.BENCH_PIPELINE_CAP_MS ?? 150_000);
const RATE = Number(process.env.BENCH_PIPELINE_RATE ?? 1000);
const STEADY_S = Number(process.env.BENCH_PIPELINE_STEADY_S ?? 20);
const BARE_BATCH = 500;
const PANEL_BUDGET = Number(process.env.BENCH_PIPELINE_PANEL_BUDGET ?? 12_000);

let modules;
async function load() {
  modules ??= {
    ...(await dist('src/infra/bus/kafka-bus.js')),
    ...(await dist('src/events/topics.js')),
    ...(await dist('src/infra/db/database.js')),
    ...(await dist('src/infra/db/migrations.js')),
    ...(await dist('src/observability/logger.js')),
    kafka: await import('@platformatic/kafka'),
  };
  return modules;
}

/** A fresh database (migrated), Redis prefix and topic prefix, with `n` matches ready to be provisioned. */
async function prepare(n, label) {
  const { openDatabase, migrateToLatest } = await load();
  const prefix = `${randomName(`bp${label}`)}.`;
  const redisPrefix = `${randomName('fwbench')}:`;
  const [db, redisUrl, brokers] = await Promise.all([freshPostgresDatabase(), requireRedis(), requireKafka(prefix)]);
  onCleanup(() => db.drop());
  onCleanup(() => deleteTopics(brokers, prefix));
  onCleanup(() => deleteRedisPrefix(redisUrl, redisPrefix));
  const handle = await openDatabase({ url: db.url, dataDir: '.data/unused' });
  await migrateToLatest(handle.db);
  await handle.close();
  const run = randomName('');
  const matchIds = Array.from({ length: n }, (_, i) => `ep-${run}-${i}`);
  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  onCleanup(() => client.end());
  await insertReadyMatches(client, matchIds);
  return { db, client, prefix, redisPrefix, redisUrl, brokers, matchIds };
}

function reservedEvents(matchIds, first = 0) {
  const { Topics } = modules;
  return matchIds.map((matchId, i) => {
    const eventId = randomUUID();
    return {
      topic: Topics.serverReserved,
      key: matchId,
      value: JSON.stringify({ v: 'v1', eventId, matchId, panelServerId: first + i + 1 }),
      headers: { 'event-id': eventId, 'event-type': Topics.serverReserved },
    };
  });
}

function producer(setup) {
  const { KafkaMessageSink, createLogger } = modules;
  const sink = new KafkaMessageSink({
    brokers: setup.brokers,
    clientId: 'bench-platform',
    topicPrefix: setup.prefix,
    logger: createLogger('silent'),
  });
  onCleanup(() => sink.close());
  return sink;
}

async function startService(setup) {
  const service = await startBenchService(
    {
      DATABASE_URL: setup.db.url,
      REDIS_URL: setup.redisUrl,
      REDIS_KEY_PREFIX: setup.redisPrefix,
      KAFKA_BROKERS: setup.brokers.join(','),
      KAFKA_TOPIC_PREFIX: setup.prefix,
      KAFKA_GROUP_ID: randomName('g'),
      PTERO_APP_URL: 'http://127.0.0.1:9',
      PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
      // The stand-in panel answers at once and has no request budget; the budget the service is told only sizes its
      // poll claims (provisioning.wiring.ts pollPlan: 12,000/min gives 4 passes of 200 side by side). With a stock
      // panel's 240/min (BENCH_PIPELINE_PANEL_BUDGET=240: 40 per pass) the panel budget, not the pipeline, is measured.
      PTERO_RATE_LIMIT_PER_MIN: String(PANEL_BUDGET),
    },
    { panel: INSTALLED_PANEL },
  );
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    await service.close();
  };
  onCleanup(close);
  return { service, close };
}

/** A consumer of the bench's own (random group, no commits unless the caller commits) on one prefixed topic. */
async function plainConsumer(setup, clientId, topic, mode) {
  const { kafka } = await load();
  const consumer = new kafka.Consumer({
    clientId,
    groupId: randomName(clientId),
    bootstrapBrokers: setup.brokers,
    autocommit: false,
    maxWaitTime: 50,
    deserializers: { key: kafka.stringDeserializer, headerKey: kafka.stringDeserializer, headerValue: kafka.stringDeserializer },
  });
  const stream = await consumer.consume({
    topics: [setup.prefix + topic],
    mode,
    fallbackMode: kafka.MessagesStreamFallbackModes.EARLIEST,
    autocommit: false,
  });
  stream.on('error', () => undefined);
  return { consumer, stream };
}

/**
 * The yardstick: consume → one transaction per buffered batch (≤ 500) → commit each partition's last offset,
 * with the same client and the same dedupe claim as the service, and nothing else.
 */
async function bareBatchedLoop(setup, n) {
  const { kafka, Topics } = await load();
  await setup.client.query(
    `CREATE TABLE IF NOT EXISTS bench_effects (event_id text PRIMARY KEY, match_id text NOT NULL, at timestamptz NOT NULL)`,
  );
  const pool = new pg.Pool({ connectionString: setup.db.url, max: 2 });
  const { consumer, stream } = await plainConsumer(setup, 'bench-bare', Topics.serverReserved, kafka.MessagesStreamModes.COMMITTED);
  const buffer = [];
  let wake;
  stream.on('data', (m) => {
    buffer.push(m);
    wake?.();
  });
  let done = 0;
  let first = 0;
  const deadline = Date.now() + CAP_MS;
  try {
    while (done < n && Date.now() < deadline) {
      if (buffer.length === 0) {
        await new Promise((resolve) => {
          wake = resolve;
          setTimeout(resolve, 200);
        });
        wake = undefined;
        continue;
      }
      first ||= Date.now();
      const batch = buffer.splice(0, BARE_BATCH);
      const db = await pool.connect();
      try {
        await db.query('BEGIN');
        for (const m of batch) {
          const value = JSON.parse(m.value.toString('utf8'));
          const claimed = await db.query(
            `INSERT INTO processed_events (consumer, event_id, topic, processed_at) VALUES ('bare', $1, $2, now()) ON CONFLICT DO NOTHING RETURNING event_id`,
            [value.eventId, Topics.serverReserved],
          );
          if (claimed.rowCount)
            await db.query(`INSERT INTO bench_effects (event_id, match_id, at) VALUES ($1, $2, now())`, [value.eventId, value.matchId]);
        }
        await db.query('COMMIT');
      } finally {
        db.release();
      }
      const last = new Map();
      for (const m of batch) last.set(`${m.topic}:${m.partition}`, m);
      await Promise.all([...last.values()].map((m) => m.commit()));
      done += batch.length;
    }
  } finally {
    await stream.close().catch(() => undefined);
    await consumer.close(true).catch(() => undefined);
    await pool.end();
  }
  const seconds = (Date.now() - first) / 1000;
  return { done, seconds, rate: done / seconds, partial: done < n };
}

async function fullPath(setup, n) {
  const t0 = Date.now();
  const { close } = await startService(setup);
  const count = async (sql) => Number((await setup.client.query(sql)).rows[0].n);
  let lastLog = 0;
  let published = 0;
  /** When every reservation was found committed (polled every 250 ms): the end of consume → DB. */
  let consumedAt = 0;
  try {
    await waitFor(
      async () => {
        published = await count(`SELECT count(*)::int AS n FROM outbox WHERE topic = 'server.ready' AND published_at IS NOT NULL`);
        if (!consumedAt && (await count('SELECT count(*)::int AS n FROM provisions')) >= n) consumedAt = Date.now();
        if (Date.now() - lastLog > 10_000) {
          lastLog = Date.now();
          console.log(`  ${((Date.now() - t0) / 1000).toFixed(0)} s: server.ready published ${published}/${n}`);
        }
        return published >= n;
      },
      CAP_MS,
      `${n} events through the whole path`,
      250,
    );
  } catch {
    console.log(`  cut at ${CAP_MS / 1000} s with ${published}/${n} published`);
  }
  await close();
  const q = (
    await setup.client.query(`
    SELECT extract(epoch FROM min(p.reserved_at)) * 1000 AS first_reserved,
           extract(epoch FROM max(p.reserved_at)) * 1000 AS last_reserved,
           extract(epoch FROM max(o.published_at)) * 1000 AS last_published,
           count(o.id)::int AS published,
           (SELECT count(*)::int FROM provisions) AS provisions,
           (SELECT count(*)::int FROM processed_events WHERE topic = 'server.reserved' AND consumer <> 'bare') AS processed,
           (SELECT count(*)::int FROM outbox WHERE topic = 'server.ready') AS ready_rows,
           (SELECT count(DISTINCT key)::int FROM outbox WHERE topic = 'server.ready') AS ready_keys
    FROM provisions p LEFT JOIN outbox o ON o.key = p.match_id AND o.topic = 'server.ready' AND o.published_at IS NOT NULL`)
  ).rows[0];
  if (q.ready_rows !== q.ready_keys || q.processed !== q.provisions) {
    throw new Error(
      `exactly-once check failed: ${q.ready_rows} server.ready rows for ${q.ready_keys} matches, ${q.processed} processed for ${q.provisions} provisions`,
    );
  }
  const seconds = (Number(q.last_published) - Number(q.first_reserved)) / 1000;
  // reserved_at is the start of a batch's transaction; the last batch's end is the poll that saw it committed.
  const consumeSeconds = ((consumedAt || Number(q.last_reserved)) - Number(q.first_reserved)) / 1000;
  return {
    done: q.published,
    seconds,
    rate: q.published / seconds,
    partial: q.published < n,
    consumed: q.provisions,
    consumeSeconds,
    consumeRate: q.provisions / consumeSeconds,
    startToFirstMs: Number(q.first_reserved) - t0,
  };
}

async function steady() {
  const n = RATE * STEADY_S;
  const setup = await prepare(n, 's');
  const { kafka, Topics } = modules;
  const { service, close } = await startService(setup);
  const received = new Map();
  const { consumer: reader, stream } = await plainConsumer(setup, 'bench-reader', Topics.serverReady, kafka.MessagesStreamModes.EARLIEST);
  stream.on('data', (m) => {
    if (!received.has(m.key)) received.set(m.key, Date.now());
  });
  onCleanup(async () => {
    await stream.close().catch(() => undefined);
    await reader.close(true).catch(() => undefined);
  });
  await waitFor(
    () => reader.isActive() && (reader.assignments?.length ?? 0) > 0 && service.services.source.isHealthy(),
    60_000,
    'reader and service joined',
  );
  const sink = producer(setup);
  const producedAt = new Map();
  const events = reservedEvents(setup.matchIds);
  const tick = 50;
  const perTick = Math.max(1, Math.round((RATE * tick) / 1000));
  const t0 = Date.now();
  let behind = 0;
  const inFlight = new Set();
  for (let i = 0; i < events.length; i += perTick) {
    const due = t0 + (i / perTick) * tick;
    const wait = due - Date.now();
    if (wait > 0) await sleep(wait);
    else behind = Math.max(behind, -wait);
    const slice = events.slice(i, i + perTick);
    const at = Date.now();
    for (const e of slice) producedAt.set(e.key, at);
    // Sends overlap (up to 5 in flight), so a slow acks=all round trip does not lower the offered rate.
    const sent = sink.send(slice).finally(() => inFlight.delete(sent));
    inFlight.add(sent);
    if (inFlight.size >= 5) await Promise.race(inFlight);
  }
  await Promise.all(inFlight);
  const produceSeconds = (Date.now() - t0) / 1000;
  try {
    await waitFor(() => received.size >= n, 120_000, 'every server.ready read back', 200);
  } catch {
    console.log(`  read back ${received.size}/${n} within 120 s`);
  }
  await close();
  // An event with no effect (or not read back) by the end counts as infinitely late: percentiles never flatter.
  const since = (rows) => {
    const ms = rows.map((r) => Number(r.at) - producedAt.get(r.match_id)).filter((x) => Number.isFinite(x));
    return { count: ms.length, sorted: [...ms, ...Array(Math.max(0, n - ms.length)).fill(Infinity)].sort((a, b) => a - b) };
  };
  const reserved = since((await setup.client.query(`SELECT match_id, extract(epoch FROM reserved_at) * 1000 AS at FROM provisions`)).rows);
  const effect = since(
    (
      await setup.client.query(
        `SELECT key AS match_id, extract(epoch FROM published_at) * 1000 AS at FROM outbox WHERE topic = 'server.ready' AND published_at IS NOT NULL`,
      )
    ).rows,
  );
  const readBack = since([...received].map(([matchId, at]) => ({ match_id: matchId, at })));
  return {
    n,
    produceSeconds,
    behindMs: behind,
    reserved: reserved.sorted,
    effect: effect.sorted,
    readBack: readBack.sorted,
    effectCount: effect.count,
    readBackCount: readBack.count,
  };
}

async function main() {
  requireBuild();
  await load();
  const figures = [];
  const details = { sizes: {}, capMs: CAP_MS };
  for (const n of SIZES) {
    console.log(`\n--- backlog of ${n.toLocaleString('en-US')} server.reserved events`);
    const setup = await prepare(n, String(n));
    const sink = producer(setup);
    const tp = Date.now();
    const events = reservedEvents(setup.matchIds);
    for (let i = 0; i < n; i += 500) await sink.send(events.slice(i, i + 500));
    const produceMs = Date.now() - tp;
    await sink.close();
    console.log(`  produced in ${(produceMs / 1000).toFixed(1)} s; bare batched loop…`);
    const bare = await bareBatchedLoop(setup, n);
    console.log(`  bare batched loop: ${Math.round(bare.rate)} events/s${bare.partial ? ` (partial: ${bare.done}/${n})` : ''}; service…`);
    const full = await fullPath(setup, n);
    console.log(`  full path: ${Math.round(full.rate)} events/s${full.partial ? ` (partial: ${full.done}/${n})` : ''}`);
    const ratio = full.rate / bare.rate;
    const cut = (r) =>
      r.partial ? `, partial: ${r.done.toLocaleString('en-US')} of ${n.toLocaleString('en-US')} in the ${CAP_MS / 1000} s cap` : '';
    figures.push(
      {
        name: `${n.toLocaleString('en-US')} backlog: full path → Kafka`,
        value: round(full.rate, 0),
        unit: 'events/s',
        note: `${round(full.seconds, 1)} s${cut(full)}`,
      },
      {
        name: `${n.toLocaleString('en-US')} backlog: bare batched loop`,
        value: round(bare.rate, 0),
        unit: 'events/s',
        note: `${round(bare.seconds, 1)} s${cut(bare)}`,
      },
      { name: `${n.toLocaleString('en-US')} backlog: ratio full ÷ bare`, value: round(ratio, 2), unit: '×', note: 'target ≥ 0.5' },
      {
        name: `${n.toLocaleString('en-US')} backlog: service consume → DB only`,
        value: round(full.consumeRate, 0),
        unit: 'events/s',
        note: `${full.consumed.toLocaleString('en-US')} reservations in ${round(full.consumeSeconds, 1)} s; ÷ bare = ${round(full.consumeRate / bare.rate, 2)}`,
      },
    );
    details.sizes[n] = { produceMs, bare, full: { ...full }, ratio: round(ratio, 3), consumeRatio: round(full.consumeRate / bare.rate, 3) };
  }
  if (STEADY_S > 0) {
    console.log(`\n--- steady ${RATE} events/s for ${STEADY_S} s`);
    const s = await steady();
    const p = (arr, q) => round(percentile(arr, q), 0);
    figures.push(
      {
        name: `steady ${RATE}/s: produce → effect committed + published p50`,
        value: p(s.effect, 50),
        unit: 'ms',
        note: `${s.effectCount} of ${s.n} events; produced at ${round(s.n / s.produceSeconds, 0)}/s (behind by ≤ ${round(s.behindMs, 0)} ms)`,
      },
      {
        name: `steady ${RATE}/s: produce → effect committed + published p99`,
        value: p(s.effect, 99),
        unit: 'ms',
        note: 'server.ready outbox.published_at (Kafka acked)',
      },
      {
        name: `steady ${RATE}/s: produce → server.ready read back p50`,
        value: p(s.readBack, 50),
        unit: 'ms',
        note: `${s.readBackCount} of ${s.n} events`,
      },
      {
        name: `steady ${RATE}/s: produce → server.ready read back p99`,
        value: p(s.readBack, 99),
        unit: 'ms',
        note: 'full path, other consumer group',
      },
    );
    details.steady = {
      rate: RATE,
      seconds: STEADY_S,
      produceSeconds: round(s.produceSeconds, 1),
      producerFellBehindMs: round(s.behindMs, 0),
      effectMs: { p50: p(s.effect, 50), p99: p(s.effect, 99), max: p(s.effect, 100) },
      reservationTransactionBeganMs: { p50: p(s.reserved, 50), p99: p(s.reserved, 99), max: p(s.reserved, 100) },
      readBackMs: { p50: p(s.readBack, 50), p99: p(s.readBack, 99), max: p(s.readBack, 100) },
    };
  }
  recordResult(NAME, {
    measured:
      'server.reserved backlogs drained by one service instance (full path to server.ready on Kafka) beside a bare batched consume → one transaction → commit loop with the same client; then latency at a steady rate',
    figures,
    details,
  });
}

runBench(NAME, main, { hardLimitMs: Number(process.env.BENCH_PIPELINE_LIMIT_MS ?? 1_500_000) });
