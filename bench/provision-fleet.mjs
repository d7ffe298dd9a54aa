#!/usr/bin/env node
// Concurrent provisions under the panel's REAL budget: 240 requests per 60 s window (no scaled window), with
// the service's defaults (POLL_EVERY_MS 4000, PTERO_RATE_LIMIT_PER_MIN 240, 60 s limiter window, 5 min deadline).
// Three scenarios in one run, each on a fresh database, panel and instances:
//   per-server  200 servers, PANEL_LIST_EVERY_MS 0 (every server polled on its own: the yardstick);
//   coalesced   200 servers, PANEL_LIST_EVERY_MS 2000 (one fleet-wide listing per tick, docs/panel.md);
//   coalesced  1000 servers, same.
// Targets for coalesced at 200: 0 × 429, mean detection ≤ 5 s, p95 ≤ 10 s, panel requests ≤ half the budget.
// Real stack: PostgreSQL, Redis (the fleet-wide limiter's slots live there), Kafka (server.reserved produced as the
// platform would); BENCH_FLEET_INSTANCES service instances (default 2) in one consumer group sharing one panel key.
// The panel is the protocol-faithful fake (src/demo/simulated) over real HTTP, enforcing the 240/60 s fixed window itself.
// Each server finishes installing a uniformly random 5–60 s after it was created.
//
// Reported:
//   panel requests per minute: the most budget-consuming requests in ANY sliding 60 s window (the fake's log), the
//     mean rate over the busy period, and the 429 count (must be 0: the bench fails otherwise);
//   readiness-detection delay per server = (provision reaches WAITING_SIGNALS: provisions.updated_at, written by
//     the worker in the transaction that records the install) − (the fake's install completion = creation time +
//     installAfterMs): mean / p50 / p95 / max.
//   the admin key delivery per server (#10: one PATCH /startup each, on the same budget): delivered_at − the server's
//     creation, and how many keys were on the panel before their server finished installing;
//   the busiest 60 s of reads (listings and GETs) and of deliveries (PATCHes) apart, besides all requests together.
// The run is bounded: it stops waiting DETECT_BUDGET_MS after the servers were created (undetected are reported).
//
//   node_modules/.bin/node bench/provision-fleet.mjs   (BENCH_FLEET_SCENARIOS=per-server:200,coalesced:200 to pick)
import { randomUUID } from 'node:crypto';
import {
  deleteRedisPrefix,
  deleteTopics,
  dist,
  freshPostgresDatabase,
  mean,
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

const NAME = 'provision-fleet';
const SCENARIOS = (process.env.BENCH_FLEET_SCENARIOS ?? 'per-server:200,coalesced:200,coalesced:1000').split(',').map((x) => {
  const [mode, n] = x.split(':');
  return { mode, servers: Number(n) };
});
const INSTANCES = Number(process.env.BENCH_FLEET_INSTANCES ?? 2);
const INSTALL_MIN_MS = 5_000;
const INSTALL_MAX_MS = 60_000;
const DETECT_BUDGET_MS = Number(process.env.BENCH_FLEET_BUDGET_MS ?? 150_000);
const BUDGET = 240;
const WINDOW_MS = 60_000;
const PANEL_KEY = 'ptla_bench_fleet_0123456789abcdefghijklmnopqrs';

async function main() {
  requireBuild();
  const results = [];
  for (const scenario of SCENARIOS) {
    console.log(`scenario ${scenario.mode} × ${scenario.servers}`);
    results.push(await runScenario(scenario));
  }
  const figures = results.flatMap((r) => r.figures.map((f) => ({ ...f, name: `${r.label}: ${f.name}` })));
  const yard = results.find((r) => r.mode === 'per-server' && r.servers === 200);
  const coal = results.find((r) => r.mode === 'coalesced' && r.servers === 200);
  if (yard && coal) {
    figures.push(
      { name: 'coalesced/per-server at 200: mean detection', value: round(coal.meanMs / yard.meanMs, 3), unit: '×' },
      { name: 'coalesced/per-server at 200: panel requests', value: round(coal.requests / yard.requests, 3), unit: '×' },
    );
  }
  const result = recordResult(NAME, {
    measured: `concurrent provisions, ${INSTANCES} instances, real 240/60 s panel budget, POLL_EVERY_MS 4000, installs uniform ${INSTALL_MIN_MS / 1000}–${INSTALL_MAX_MS / 1000} s; delay = WAITING_SIGNALS written − install completed; per-server yardstick and coalesced listing in the same run`,
    figures,
    details: Object.fromEntries(results.map((r) => [r.label, r.details])),
  });
  const bad = results.filter((r) => r.throttled > 0 || r.maxWindow > BUDGET);
  if (bad.length) throw new Error(`over the panel budget or 429s in: ${bad.map((r) => r.label).join(', ')}`);
  return result;
}

async function runScenario({ mode, servers: SERVERS }) {
  const label = `${mode} ${SERVERS}`;
  const scenarioCleanups = [];
  try {
    return await scenario(mode, SERVERS, label, scenarioCleanups);
  } finally {
    for (const c of scenarioCleanups.reverse()) await c().catch((e) => console.error(`cleanup: ${e}`));
  }
}

async function scenario(mode, SERVERS, label, scenarioCleanups) {
  const { startFakePanel, maxInSlidingWindow } = await dist('src/demo/simulated/pterodactyl-panel.js');
  const { KafkaMessageSink } = await dist('src/infra/bus/kafka-bus.js');
  const { Topics } = await dist('src/events/topics.js');
  const { upsertMatch } = await dist('src/matches/match.repository.js');
  const { createLogger } = await dist('src/observability/logger.js');

  const prefix = randomName('bench') + '.';
  const redisPrefix = randomName('fwbench') + ':';
  const [db, redisUrl, brokers] = await Promise.all([freshPostgresDatabase(), requireRedis(), requireKafka(prefix)]);
  onCleanup(() => db.drop());
  onCleanup(() => deleteTopics(brokers, prefix));
  onCleanup(() => deleteRedisPrefix(redisUrl, redisPrefix));

  const panel = await startFakePanel({
    host: '127.0.0.1',
    apiKeys: { [PANEL_KEY]: 'worker-admin' },
    rateLimitPerMin: BUDGET,
    rateLimitWindowMs: WINDOW_MS,
  });
  scenarioCleanups.push(() => panel.close());
  const env = {
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: redisPrefix,
    KAFKA_BROKERS: brokers.join(','),
    KAFKA_TOPIC_PREFIX: prefix,
    KAFKA_GROUP_ID: randomName('g'),
    PTERO_APP_URL: panel.url,
    PTERO_APP_API_KEY: PANEL_KEY,
    // Defaults spelled out, so the figures say what they were taken under.
    PTERO_RATE_LIMIT_PER_MIN: String(BUDGET),
    PTERO_RATE_LIMIT_WINDOW_MS: String(WINDOW_MS),
    POLL_EVERY_MS: '4000',
    READY_DEADLINE_MS: '300000',
    PANEL_LIST_EVERY_MS: mode === 'coalesced' ? '2000' : '0',
  };
  const instances = [];
  for (let i = 0; i < INSTANCES; i++) {
    const s = await startBenchService({ ...env, INSTANCE_ID: `fleet-${i}` });
    instances.push(s);
    scenarioCleanups.push(() => s.close());
  }
  const dbx = instances[0].services.db;
  // Both group members joined and stable before anything is timed.
  await waitFor(() => instances.every((s) => s.services.source.isHealthy()), 60_000, 'all instances to join the consumer group');
  await sleep(2000);
  await waitFor(() => instances.every((s) => s.services.source.isHealthy()), 60_000, 'the consumer group to settle');

  const matchIds = Array.from({ length: SERVERS }, (_, i) => `fleet-${i}-${randomName('')}`);
  const body = (id) => ({
    mode: 'VERIFIED_STREAM',
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired: false,
    players: [
      { side: 'p1', playerId: `a-${id}`, streamChannels: [`srs:live/a-${id}`] },
      { side: 'p2', playerId: `b-${id}`, streamChannels: [`srs:live/b-${id}`] },
    ],
  });
  for (const id of matchIds) await dbx.transaction().execute((trx) => upsertMatch(trx, id, body(id), Date.now()));
  // A panel in use: older, installed servers below the new ones (the listing pages past none of them).
  for (let i = 0; i < 300; i++) panel.addServer();

  // Servers are created, then reserved at once (as the platform does): the install clocks start here.
  panel.resetStats();
  const servers = matchIds.map((matchId) => {
    const installAfterMs = Math.round(INSTALL_MIN_MS + Math.random() * (INSTALL_MAX_MS - INSTALL_MIN_MS));
    const createdAt = Date.now();
    const id = panel.addServer({ installAfterMs });
    return { matchId, id, installAfterMs, completesAt: createdAt + installAfterMs };
  });
  const t0 = Date.now();
  const producer = new KafkaMessageSink({ brokers, clientId: 'bench-platform', topicPrefix: prefix, logger: createLogger('silent') });
  scenarioCleanups.push(() => producer.close());
  await producer.send(
    servers.map((s) => {
      const eventId = randomUUID();
      return {
        topic: Topics.serverReserved,
        key: s.matchId,
        value: JSON.stringify({ v: 'v1', eventId, matchId: s.matchId, panelServerId: s.id }),
        headers: { 'event-id': eventId, 'event-type': Topics.serverReserved },
      };
    }),
  );

  // Watch the database until every install is detected and every admin key delivered (or the budget runs out).
  const detectedAt = new Map();
  const deliveredAt = new Map();
  let allReservedAt = null;
  let lastLog = 0;
  for (;;) {
    const rows = await dbx.selectFrom('provisions').select(['match_id', 'state', 'updated_at']).where('match_id', 'in', matchIds).execute();
    if (allReservedAt === null && rows.length === SERVERS) allReservedAt = Date.now();
    for (const r of rows) {
      if (r.state === 'FAILED') throw new Error(`provision ${r.match_id} FAILED during the bench`);
      if (r.state === 'WAITING_SIGNALS' && !detectedAt.has(r.match_id)) detectedAt.set(r.match_id, new Date(r.updated_at).getTime());
    }
    const keys = await dbx
      .selectFrom('admin_key_deliveries')
      .select(['match_id', 'state', 'delivered_at', 'failure_reason'])
      .where('match_id', 'in', matchIds)
      .execute();
    for (const k of keys) {
      if (k.state === 'FAILED') throw new Error(`admin key delivery ${k.match_id} FAILED during the bench: ${k.failure_reason}`);
      if (k.delivered_at !== null && !deliveredAt.has(k.match_id)) deliveredAt.set(k.match_id, new Date(k.delivered_at).getTime());
    }
    const elapsed = Date.now() - t0;
    if (Date.now() - lastLog > 10_000) {
      lastLog = Date.now();
      const installed = servers.filter((s) => s.completesAt <= Date.now()).length;
      console.log(
        `  ${label} ${(elapsed / 1000).toFixed(0)} s: installed on the panel ${installed}/${SERVERS}, detected ${detectedAt.size}/${SERVERS}, keys delivered ${deliveredAt.size}/${SERVERS}, panel requests ${panel.stats.requestsTotal}, 429s ${panel.stats.throttled}`,
      );
    }
    if ((detectedAt.size === SERVERS && deliveredAt.size === SERVERS) || elapsed > DETECT_BUDGET_MS) break;
    await sleep(250);
  }
  const endedAt = Date.now();

  // Panel side.
  const log = panel.stats.log;
  const counted = log.filter((e) => e.counted);
  const gets = log.filter((e) => e.method === 'GET');
  const maxWindow = panel.maxInSlidingWindow({ windowMs: WINDOW_MS });
  // Split by purpose: reads (listings and single GETs: detection, plus the few GETs a key delivery still needs) and
  // the key deliveries' PATCHes (one per server since #10, whatever the polling).
  const busiest = (entries) =>
    maxInSlidingWindow(
      entries.map((e) => e.at),
      WINDOW_MS,
    );
  const maxReadWindow = busiest(counted.filter((e) => e.method === 'GET'));
  const maxDeliveryWindow = busiest(counted.filter((e) => e.method === 'PATCH'));
  const firstAt = counted.length ? counted[0].at : t0;
  const lastAt = counted.length ? counted[counted.length - 1].at : t0;
  const busyMinutes = Math.max(1e-9, (lastAt - firstAt) / 60_000);
  const throttled = panel.stats.throttled;
  const perServerGets = new Map();
  for (const e of gets) {
    const m = /\/servers\/(\d+)/.exec(e.path);
    if (m) perServerGets.set(Number(m[1]), (perServerGets.get(Number(m[1])) ?? 0) + 1);
  }
  // Per server: detection delay (DB).
  const delays = [];
  for (const s of servers) {
    const at = detectedAt.get(s.matchId);
    if (at !== undefined) delays.push(at - s.completesAt);
  }
  delays.sort((a, b) => a - b);
  // Per server: when its admin key was on the panel, from the server's creation; and whether that was before the
  // install finished (the game server reads its environment at its first start, docs/panel.md).
  const keyDelays = [];
  let keyBeforeInstalled = 0;
  for (const srv of servers) {
    const at = deliveredAt.get(srv.matchId);
    if (at === undefined) continue;
    keyDelays.push(at - (srv.completesAt - srv.installAfterMs));
    if (at <= srv.completesAt) keyBeforeInstalled++;
  }
  keyDelays.sort((a, b) => a - b);
  const undetected = SERVERS - detectedAt.size;
  const s = (ms) => round(ms / 1000, 1);

  const listingRequests = gets.filter((e) => e.path === '/api/application/servers').length;
  const figures = [
    {
      name: 'panel requests, max in any sliding 60 s window',
      value: maxWindow,
      unit: 'req/min',
      note: `budget ${BUDGET}; target ≤ ${BUDGET / 2}`,
    },
    {
      name: 'panel reads (listings and GETs), max in any sliding 60 s window',
      value: maxReadWindow,
      unit: 'req/min',
      note: 'detection, and the GETs of deliveries whose server object was stale',
    },
    {
      name: 'admin key deliveries (PATCH /startup), max in any sliding 60 s window',
      value: maxDeliveryWindow,
      unit: 'req/min',
      note: `${counted.filter((e) => e.method === 'PATCH').length} in all`,
    },
    {
      name: 'panel requests, mean over the busy period',
      value: round(counted.length / busyMinutes, 1),
      unit: 'req/min',
      note: `${counted.length} requests (${listingRequests} listings) in ${s(lastAt - firstAt)} s`,
    },
    { name: '429 responses from the panel', value: throttled, unit: 'count', note: 'must be 0' },
    { name: 'readiness-detection delay, mean', value: s(mean(delays)), unit: 's', note: `over ${delays.length} servers` },
    { name: 'readiness-detection delay, p50', value: s(percentile(delays, 50)), unit: 's' },
    { name: 'readiness-detection delay, p95', value: s(percentile(delays, 95)), unit: 's' },
    { name: 'readiness-detection delay, max', value: s(delays[delays.length - 1]), unit: 's' },
    {
      name: 'servers detected',
      value: `${detectedAt.size}/${SERVERS}`,
      unit: '',
      note: undetected
        ? `${undetected} not detected within ${s(DETECT_BUDGET_MS)} s`
        : `the last ${s(Math.max(...detectedAt.values()) - t0)} s after the servers were created`,
    },
    { name: 'panel requests per server, mean', value: round(counted.length / SERVERS, 2), unit: 'req' },
    {
      name: 'admin keys delivered',
      value: `${deliveredAt.size}/${SERVERS}`,
      unit: '',
      note: `${keyBeforeInstalled} before their server finished installing`,
    },
    {
      name: 'admin key on the panel after server creation, mean / p95 / max',
      value: `${s(mean(keyDelays))} / ${s(percentile(keyDelays, 95))} / ${s(keyDelays[keyDelays.length - 1] ?? Number.NaN)}`,
      unit: 's',
    },
  ];
  for (const f of figures) console.log(`  ${label}: ${f.name} = ${f.value} ${f.unit}${f.note ? ` (${f.note})` : ''}`);
  return {
    label,
    mode,
    servers: SERVERS,
    figures,
    meanMs: mean(delays),
    requests: counted.length,
    throttled,
    maxWindow,
    details: {
      maxReadWindow,
      maxDeliveryWindow,
      servers: SERVERS,
      instances: INSTANCES,
      window: { budget: BUDGET, windowMs: WINDOW_MS },
      reservationsConsumedAfterMs: allReservedAt ? allReservedAt - t0 : null,
      delaysMs: {
        mean: round(mean(delays), 0),
        p50: percentile(delays, 50),
        p95: percentile(delays, 95),
        max: delays[delays.length - 1],
        min: delays[0],
      },
      listingRequests,
      perServerGets: round(mean([...perServerGets.values()]), 2),
      panelByStatus: panel.stats.byStatus,
      requestsTotal: panel.stats.requestsTotal,
      lastServerInstalledAfterMs: Math.max(...servers.map((x) => x.completesAt)) - t0,
      runMs: endedAt - t0,
      undetected,
      keysDelivered: deliveredAt.size,
      keysBeforeInstalled: keyBeforeInstalled,
      keyDelaysMs: { mean: round(mean(keyDelays), 0), p95: percentile(keyDelays, 95), max: keyDelays[keyDelays.length - 1] },
    },
  };
}

runBench(NAME, main, { hardLimitMs: 900_000 });
