#!/usr/bin/env node
// Chaos run (issue 11 item 5): three service instances in one consumer group on real Kafka, PostgreSQL and Redis,
// N reservations (a mix that becomes ready, times out, fails install and is released) while instances are
// SIGKILLed and restarted, the run's Redis keys are flushed, the database connections are cut (through a TCP proxy
// of this script) and the broker is restarted. A share of the matches planned ready (--streams) are played with
// streams on the demo's simulated Twitch Helix and SRS: put IN_PROGRESS when their server is ready, then one side
// goes offline with the overlay reporting gameplay (→ FORFEIT), drops to low FPS without gameplay (→ DISPUTE), or
// dips for about one check and recovers (→ no verdict), judged by the `chaos` enforcement policy (STREAM_POLICIES,
// grace --grace-ms) swept every --check-every-ms. At the end it reads Kafka and the database and checks that every
// reservation has exactly one terminal outcome, every refund happened once per (match, player), every outbox row
// reached Kafka, and every stream episode has the verdicts it called for: exactly one per side that stayed bad
// (in `enforcements` and as one eventId on match.forfeit / match.dispute), none per side that recovered. Prints
// `chaos:` summary lines and one `CHAOS_SUMMARY {json}` line; exits 1 on any loss, double or wrong verdict (or when
// the run did not converge within its bound, or most stream matches never started).
//
//   npm run chaos                        N=1000, own Kafka broker (restarted once), kills every 5 s, ≤ ~10 min
//   node_modules/.bin/node scripts/chaos.mjs --n 200 --broker shared --kill-every-ms 6000 --max-ms 300000
//
// Options: --n, --kill-every-ms, --kills (max kills; default unbounded), --spread-ms (reservations spread over),
// --deadline-ms (READY_DEADLINE_MS), --broker own|shared (own: a second broker of this run, started through
// scripts/services.mjs on a free port and data dir .cache/kafka-chaos, restarted once, stopped at the end; shared:
// KAFKA_BROKERS or 127.0.0.1:19092, never restarted), --max-ms (bound of the run; past it + 180 s the run fails hard), --keep (keep the database),
// --streams (stream matches, default 15% of N, at most the matches planned ready), --check-every-ms
// (STREAM_CHECK_EVERY_MS, default 2500), --grace-ms (the chaos policy's grace, default 10000).
// Needs `npm run build` first (imports dist/), PostgreSQL on TEST_DATABASE_ADMIN_URL (default
// postgres://postgres@127.0.0.1:5432/test) and Redis on REDIS_URL (default redis://127.0.0.1:6379).
import { spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Redis } from 'ioredis';
import { ROOT } from './services.mjs';
import { tcpProxy } from './tcp-proxy.mjs';

// The Kafka client needs Node ≥ 22 (Promise.withResolvers); the machine's system Node may be older. npm scripts run
// on the project's pinned Node 24.
if (Number(process.versions.node.split('.')[0]) < 22) {
  console.error(
    `chaos: needs Node >= 22, this is ${process.version}; run \`npm run chaos -- …\` or node_modules/.bin/node scripts/chaos.mjs`,
  );
  process.exit(2);
}

const DIST = join(ROOT, 'dist', 'src');
const { values: opts } = parseArgs({
  options: {
    n: { type: 'string', default: process.env.CHAOS_N ?? '1000' },
    'kill-every-ms': { type: 'string', default: '5000' },
    kills: { type: 'string', default: '1000000' },
    'spread-ms': { type: 'string', default: '60000' },
    'deadline-ms': { type: 'string', default: '90000' },
    broker: { type: 'string', default: 'own' },
    'max-ms': { type: 'string', default: '600000' },
    streams: { type: 'string' },
    'check-every-ms': { type: 'string', default: '2500' },
    'grace-ms': { type: 'string', default: '10000' },
    keep: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opts.help) {
  // The header comment of this file is the usage text.
  const header = readFileSync(new URL(import.meta.url), 'utf8')
    .split('\n')
    .slice(1);
  console.log(
    header
      .slice(
        0,
        header.findIndex((l) => !l.startsWith('//')),
      )
      .map((l) => l.replace(/^\/\/ ?/, ''))
      .join('\n'),
  );
  process.exit(0);
}
if (!existsSync(join(DIST, 'main.js'))) {
  console.error('chaos: dist/ is missing; run `npm run build` first (npm run chaos does)');
  process.exit(2);
}
const N = Number(opts.n);
const KILL_EVERY_MS = Number(opts['kill-every-ms']);
const MAX_KILLS = Number(opts.kills);
const SPREAD_MS = Number(opts['spread-ms']);
const DEADLINE_MS = Number(opts['deadline-ms']);
const MAX_MS = Number(opts['max-ms']);
const OWN_BROKER = opts.broker === 'own';
const CHECK_MS = Number(opts['check-every-ms']);
const GRACE_MS = Number(opts['grace-ms']);
const T0 = Date.now();
const runId = randomBytes(4).toString('hex');
const RUN_DIR = join(ROOT, '.cache', 'chaos', runId);
mkdirSync(RUN_DIR, { recursive: true });

const secs = (ms) => `${(ms / 1000).toFixed(1)}s`;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (msg) => console.log(`[chaos +${secs(Date.now() - T0)}] ${msg}`);
const elapsed = () => Date.now() - T0;

/** A port the kernel just handed out as free. */
async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function eventually(probe, timeoutMs, what) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await probe()) return true;
    } catch {
      /* retried */
    }
    if (Date.now() > until) throw new Error(`timed out after ${secs(timeoutMs)} waiting for ${what}`);
    await sleep(250);
  }
}

async function retry(what, fn, attempts = 60) {
  for (let i = 1; ; i++) {
    try {
      return await fn();
    } catch (error) {
      if (i >= attempts) throw new Error(`${what}: ${error.message}`);
      await sleep(Math.min(2000, 100 * i));
    }
  }
}

// ---- the broker ------------------------------------------------------------------------------------------------

let services;
let brokers;
if (OWN_BROKER) {
  // Module constants of services.mjs read these at import: a second broker on its own port and data dir.
  process.env.KAFKA_TEST_PORT = String(await freePort());
  process.env.KAFKA_TEST_CONTROLLER_PORT = String(await freePort());
  process.env.KAFKA_TEST_STATE_DIR = join(ROOT, '.cache', 'kafka-chaos');
  process.env.KAFKA_HEAP ??= '512m';
  services = await import(`./services.mjs?own=${runId}`);
  log(`starting this run's own broker on 127.0.0.1:${process.env.KAFKA_TEST_PORT} (data ${process.env.KAFKA_TEST_STATE_DIR})`);
  brokers = [await services.upKafka()];
} else {
  services = await import('./services.mjs');
  brokers = services.readBrokers();
  log(`shared broker ${brokers.join(',')}: the broker restart step is skipped (this run did not start it)`);
}

const { Topics, ALL_TOPICS, INPUT_TOPICS } = await import(join(DIST, 'events', 'topics.js'));
const { KafkaMessageSink, KafkaMessageSource, ensureTopics } = await import(join(DIST, 'infra', 'bus', 'kafka-bus.js'));
const { oneByOne } = await import(join(DIST, 'infra', 'bus', 'bus.js'));
const { createLogger } = await import(join(DIST, 'observability', 'logger.js'));
const { startFakePanel } = await import(join(DIST, 'demo', 'simulated', 'pterodactyl-panel.js'));
const { sign } = await import(join(DIST, 'security', 'signer.js'));
const { DemoPeers } = await import(join(DIST, 'demo', 'peers.js'));

const topicPrefix = `chaos${runId}.`;
await ensureTopics(brokers, ALL_TOPICS, { prefix: topicPrefix, partitions: 6 });

// ---- PostgreSQL (own database, behind a proxy this script can cut) ----------------------------------------------

const ADMIN_DB_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const dbName = `fw_chaos_${runId}`;
{
  const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${dbName}`);
  await admin.end();
}
const directDbUrl = ADMIN_DB_URL.replace(/\/[^/]*$/, `/${dbName}`);
const pgTarget = new URL(ADMIN_DB_URL);

// A TCP proxy between the services and PostgreSQL (the one of the tests): `cut(ms)` drops every connection and
// refuses new ones for ms.
const dbProxy = await tcpProxy(pgTarget.hostname, Number(pgTarget.port || 5432));
const proxiedDbUrl = `postgres://${pgTarget.username ? `${pgTarget.username}${pgTarget.password ? `:${pgTarget.password}` : ''}@` : ''}127.0.0.1:${dbProxy.port}/${dbName}`;

// ---- Redis, panel, instances -------------------------------------------------------------------------------------

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const redisPrefix = `chaos${runId}:`;
const panelKey = `ptla_${randomBytes(22).toString('hex').slice(0, 43)}`;
const panel = await startFakePanel({ apiKeys: { [panelKey]: 'worker-admin' }, rateLimitPerMin: 1_000_000 });
// The telemetry providers (protocol-faithful Twitch Helix and SRS, the demo's), whose streams follow the scripted
// timelines of the stream episodes below.
const peers = await DemoPeers.start();

const SECRETS = {
  OVERLAY_MASTER_SECRET: `chaos-overlay-${randomBytes(16).toString('hex')}`,
  ADMIN_HOOK_SECRET: `chaos-admin-hook-${randomBytes(16).toString('hex')}`,
  INTERNAL_API_TOKEN: `chaos-internal-${randomBytes(16).toString('hex')}`,
};
const baseEnv = {
  PATH: process.env.PATH ?? '',
  ...SECRETS,
  DATABASE_URL: proxiedDbUrl,
  REDIS_URL,
  REDIS_KEY_PREFIX: redisPrefix,
  KAFKA_BROKERS: brokers.join(','),
  KAFKA_TOPIC_PREFIX: topicPrefix,
  KAFKA_GROUP_ID: `chaos-${runId}`,
  KAFKA_SESSION_TIMEOUT_MS: '10000',
  PTERO_APP_URL: panel.url,
  PTERO_APP_API_KEY: panelKey,
  PTERO_RATE_LIMIT_PER_MIN: '1000000',
  READY_DEADLINE_MS: String(DEADLINE_MS),
  POLL_EVERY_MS: '500',
  PROVISION_MONITOR_EVERY_MS: '1000',
  // Stream health, on the fakes, with the timings shortened so that episodes end in verdicts within the run: the
  // stream matches name the `chaos` enforcement policy (grace --grace-ms), swept every --check-every-ms.
  ...peers.env({}),
  STREAM_CHECK_EVERY_MS: String(CHECK_MS),
  STREAM_BACKUP_EVERY_MS: String(2 * CHECK_MS),
  STREAM_POLICIES: JSON.stringify({ chaos: { graceMs: GRACE_MS, verdictRule: 'forfeit' } }),
  LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? 'warn',
  HOST: '127.0.0.1',
};
const NODE = existsSync(join(ROOT, 'node_modules', 'node', 'bin', 'node'))
  ? join(ROOT, 'node_modules', 'node', 'bin', 'node')
  : process.execPath;

const faults = {
  kills: 0,
  restarts: 0,
  startFailures: 0,
  hooksUndelivered: 0,
  crashes: [],
  redisFlush: null,
  dbCut: null,
  brokerRestart: null,
};
const restarting = new Set();
/** How long a start may take to answer /healthz (a loaded 2-core machine starting three Node processes at once). */
const START_BOUND_MS = 120_000;

/** One of the three instances; a stable INSTANCE_ID across restarts (static group membership). */
class Instance {
  child = null;
  url = '';
  starts = 0;
  constructor(name) {
    this.name = name;
    this.logFile = createWriteStream(join(RUN_DIR, `${name}.log`), { flags: 'a' });
  }

  async start() {
    const port = await freePort();
    this.starts++;
    const child = spawn(NODE, [join(DIST, 'main.js'), 'start'], {
      env: { ...baseEnv, INSTANCE_ID: `chaos-${runId}-${this.name}`, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.pipe(this.logFile, { end: false });
    child.stderr.pipe(this.logFile, { end: false });
    this.child = child;
    this.url = `http://127.0.0.1:${port}`;
    this.expectExit = false;
    try {
      await eventually(
        async () => child.exitCode !== null || (await fetch(`${this.url}/healthz`)).status === 200,
        START_BOUND_MS,
        `${this.name} /healthz`,
      );
    } catch (error) {
      // A start that timed out must not leave its process behind: a second live process with the same
      // INSTANCE_ID (static group membership) would fence the next one and double the work.
      this.expectExit = true;
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }
      throw error;
    }
    if (child.exitCode !== null) throw new Error(`${this.name} exited with ${child.exitCode} at start (log ${RUN_DIR}/${this.name}.log)`);
    // An exit nobody asked for is a crash: recorded (a finding of the run) and restarted, as a supervisor would.
    child.once('exit', (code, signal) => {
      if (this.expectExit || this.child !== child) return;
      faults.crashes.push(`${this.name}: ${signal ?? `exit ${code}`} at +${secs(elapsed())}`);
      log(`${this.name} CRASHED (${signal ?? `exit ${code}`}; log ${RUN_DIR}/${this.name}.log); restarting`);
      void this.restart().catch((error) => log(`${this.name} could not be restarted: ${error.message}`));
    });
  }

  /** Starts again until it answers /healthz (a failed start, e.g. during the database cut, is retried). */
  async restart() {
    restarting.add(this);
    try {
      for (let attempt = 1; ; attempt++) {
        try {
          await this.start();
          faults.restarts++;
          return;
        } catch (error) {
          faults.startFailures++;
          log(`start of ${this.name} failed (attempt ${attempt}): ${error.message}`);
          if (attempt >= 10) throw error;
          await sleep(1000);
        }
      }
    } finally {
      restarting.delete(this);
    }
  }

  get alive() {
    return this.child !== null && this.child.exitCode === null && this.child.signalCode === null;
  }

  stop(signal) {
    this.expectExit = true;
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill(signal);
    });
  }
}
const instances = ['a', 'b', 'c'].map((n) => new Instance(n));
// Whatever ends this script (a failed step, SIGINT/SIGTERM included) ends what it started: its instances and its
// own broker.
let brokerDown = false;
for (const signal of ['SIGINT', 'SIGTERM']) process.once(signal, () => process.exit(130));
// The hard bound: a step that hangs (a broker that came back without its topics, a stuck audit read) must not keep
// the run alive. Past --max-ms plus a grace for the audit, the run fails with what it has (the exit handler below
// ends the instances and the own broker; the run's database is kept for a post-mortem).
const HARD_BOUND_MS = MAX_MS + 180_000;
setTimeout(() => {
  log(`hard bound reached (${secs(HARD_BOUND_MS)} = --max-ms + 180 s): a step hung; failing the run`);
  console.log(`chaos: RESULT FAIL (hard bound ${secs(HARD_BOUND_MS)} reached; instance logs in ${RUN_DIR})`);
  console.log(`CHAOS_SUMMARY ${JSON.stringify({ result: 'FAIL', reason: 'HARD_BOUND', elapsedMs: elapsed(), runDir: RUN_DIR })}`);
  process.exit(1);
}, HARD_BOUND_MS).unref();
process.on('exit', () => {
  for (const i of instances) if (i.alive) i.child.kill('SIGKILL');
  if (OWN_BROKER && !brokerDown) {
    try {
      process.kill(Number(readFileSync(join(process.env.KAFKA_TEST_STATE_DIR, 'broker.pid'), 'utf8').trim()), 'SIGTERM');
    } catch {
      /* already gone */
    }
  }
});
// Started like a restart (a start that times out on a loaded machine is retried), but not counted as one.
await Promise.all(instances.map((i) => i.restart()));
faults.restarts = 0;
await eventually(
  async () => (await Promise.all(instances.map((i) => fetch(`${i.url}/readyz`).then((r) => r.status)))).every((s) => s === 200),
  90_000,
  'three instances consuming',
);
log(
  `3 instances consuming (group ${baseEnv.KAFKA_GROUP_ID}, topics ${topicPrefix}*, database ${dbName}, redis ${redisPrefix}*, logs ${RUN_DIR})`,
);

/** A live instance's base URL (requests are retried across kills). */
function someInstance() {
  const live = instances.filter((i) => i.alive);
  return (live[Math.floor(Math.random() * live.length)] ?? instances[0]).url;
}

async function internal(method, path, body) {
  const response = await fetch(`${someInstance()}${path}`, {
    method,
    headers: { authorization: `Bearer ${SECRETS.INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (response.status >= 500) throw new Error(`${method} ${path}: ${response.status} ${text.slice(0, 200)}`);
  return { status: response.status, json: text ? JSON.parse(text) : null };
}

async function inBatches(items, concurrency, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

// ---- the plan ----------------------------------------------------------------------------------------------------

const PLAN = ['ready', 'timeout', 'install_failed', 'released'];
const NEVER = 24 * 3600_000;
const matches = Array.from({ length: N }, (_, i) => {
  const plan = PLAN[i % PLAN.length];
  const matchId = `c${runId}-${i}`;
  const installAfterMs = plan === 'ready' || plan === 'install_failed' ? 500 + Math.floor(Math.random() * 4000) : NEVER;
  const panelServerId = panel.addServer({ installAfterMs, outcome: plan === 'install_failed' ? 'install_failed' : 'installed' });
  return { i, matchId, plan, panelServerId, reservedEventId: randomUUID(), stream: null };
});

// Stream episodes: a share of the matches planned ready are played as VERIFIED_STREAM with real channels (one
// twitch + one srs per side, no waiver). When their server is ready the platform puts them IN_PROGRESS; then one
// side's stream goes bad. `forfeit`: offline while the overlay reports gameplay → FORFEIT; `dispute`: low FPS and
// no gameplay → DISPUTE; `recover`: offline for a dip shorter than the grace, then healthy → no verdict.
const EPISODE_KINDS = ['forfeit', 'dispute', 'recover'];
const readyPlanned = matches.filter((m) => m.plan === 'ready');
const STREAMS = Math.min(readyPlanned.length, Number(opts.streams ?? Math.round(N * 0.15)));
for (const [k, m] of readyPlanned.slice(0, STREAMS).entries()) {
  const kind = EPISODE_KINDS[k % EPISODE_KINDS.length];
  m.stream = {
    kind,
    badSide: k % 2 === 0 ? 'p1' : 'p2',
    // Twitch logins are [a-z0-9_]{1,25}; SRS names follow them.
    p1: { login: `a${runId}_${m.i}`, ingest: `alice_${runId}_${m.i}`, matchId: m.matchId },
    p2: { login: `b${runId}_${m.i}`, ingest: `bob_${runId}_${m.i}`, matchId: m.matchId },
    // When the side goes bad, after the match is put IN_PROGRESS: spread over eight checks, so that only a few sides
    // turn bad in one sweep (a third of one provider's sides at once is a provider fault to the systemic-anomaly
    // guard, which then rightly sets those readings aside).
    onsetMs: 2 * CHECK_MS + Math.floor(Math.random() * 8 * CHECK_MS),
    // A dip of about one check: seen by a sweep, and healthy again long before a violating sample could outlive
    // the grace (the grace counts from the last healthy sample before the dip).
    dipMs: Math.min(Math.round(1.2 * CHECK_MS), Math.round(GRACE_MS / 3)),
    startedAt: null,
    start: null,
    overlayKey: null,
    overlaySeq: 0,
    overlayAccepted: 0,
    ended: false,
  };
}
const streamMatches = matches.filter((m) => m.stream);

/** The whole match as the platform PUTs it (a PUT is the whole match). */
function matchBody(m, status) {
  const s = m.stream;
  const channels = (side, fallback) => (s ? [`twitch:${s[side].login}`, `srs:live/${s[side].ingest}`] : [fallback]);
  return {
    mode: 'VERIFIED_STREAM',
    ...(status ? { status } : {}),
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired: s !== null,
    ...(s ? { enforcementMode: 'chaos' } : {}),
    players: [
      { side: 'p1', playerId: `alice-${m.matchId}`, streamChannels: channels('p1', `twitch:alice_${m.i}`) },
      { side: 'p2', playerId: `bob-${m.matchId}`, streamChannels: channels('p2', `twitch:bob_${m.i}`) },
    ],
    // The other matches are never played: their channels are placeholders no provider observes, waived.
    ...(s ? {} : { streamWaiver: { reason: 'chaos run: provisioning and exactly-once are under test', grantedBy: 'chaos' } }),
  };
}

await inBatches(matches, 8, (m) =>
  retry(`create ${m.matchId}`, async () => {
    const r = await internal('PUT', `/v1/internal/matches/${m.matchId}`, matchBody(m));
    if (r.status !== 201 && r.status !== 200) throw new Error(`status ${r.status} ${JSON.stringify(r.json)}`);
  }),
);
log(
  `${N} matches created (plan: ${PLAN.map((p) => `${p}=${matches.filter((m) => m.plan === p).length}`).join(' ')}; stream episodes ${STREAMS}: ${EPISODE_KINDS.map((k) => `${k}=${streamMatches.filter((m) => m.stream.kind === k).length}`).join(' ')}, checks every ${secs(CHECK_MS)}, grace ${secs(GRACE_MS)})`,
);
const db = new pg.Pool({ connectionString: directDbUrl, max: 3 });
const q = async (sql, params) => (await db.query(sql, params)).rows;

const producer = new KafkaMessageSink({ brokers, clientId: 'chaos-platform', topicPrefix, logger: createLogger('silent') });
const lifecycle = (topic, m, eventId) => ({
  topic,
  key: m.matchId,
  value: JSON.stringify({ v: 'v1', eventId, matchId: m.matchId, panelServerId: m.panelServerId }),
  headers: { 'event-id': eventId, 'event-type': topic },
});
const produce = (what, messages) => retry(what, () => producer.send(messages), 120);

/** A signed overlay call, exactly as an overlay agent sends it, with the match's overlay key (issued once). */
async function overlayCall(m, fields, timeoutMs = 10_000) {
  const s = m.stream;
  if (!s.overlayKey) {
    const r = await internal('POST', '/v1/internal/keys', { matchId: m.matchId, kind: 'overlay' });
    if (r.status !== 201) throw new Error(`overlay key: ${r.status}`);
    s.overlayKey = r.json;
  }
  const body = JSON.stringify({ ...fields, matchId: m.matchId });
  const signed = sign({ keyId: s.overlayKey.keyId, secret: s.overlayKey.secret, body, ts: Date.now() });
  const r = await fetch(`${someInstance()}/v1/overlay/events`, {
    method: 'POST',
    headers: { ...signed.headers, 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(timeoutMs),
  });
  if (r.status !== 202) throw new Error(`overlay ${fields.type}: ${r.status}`);
}

/** The admin hook of a match that should become ready: a key from the internal API, then a signed call. */
async function adminHook(m) {
  // A stream match requires its overlay (overlayRequired): the overlay agent connects (a readiness signal, sent
  // beside the admin hook), then heartbeats (an overlay silent for OVERLAY_HEARTBEAT_TIMEOUT_MS is no longer connected).
  const overlay = m.stream
    ? retry(`overlay connect ${m.matchId}`, () => overlayCall(m, { type: 'overlay.connected' })).then(
        () => void overlayHeartbeats(m),
        (error) => {
          faults.hooksUndelivered++;
          log(error.message);
        },
      )
    : null;
  // A hook that never lands (every instance down for minutes) turns a planned ready into a timeout, not a loss.
  const admin = retry(`admin hook ${m.matchId}`, async () => {
    const key = await internal('POST', '/v1/internal/keys', { matchId: m.matchId, kind: 'admin' });
    if (key.status !== 201) throw new Error(`key: ${key.status}`);
    const body = JSON.stringify({ type: 'admin.hooks.ok', matchId: m.matchId });
    const signed = sign({ keyId: key.json.keyId, secret: key.json.secret, body, ts: Date.now() });
    const r = await fetch(`${someInstance()}/v1/hooks/admin`, {
      method: 'POST',
      headers: { ...signed.headers, 'content-type': 'application/json' },
      body,
      signal: AbortSignal.timeout(10_000),
    });
    if (r.status !== 202) throw new Error(`hook: ${r.status}`);
  }).catch((error) => {
    faults.hooksUndelivered++;
    log(error.message);
  });
  await Promise.all([overlay, admin]);
}

// ---- stream episodes ---------------------------------------------------------------------------------------------

const streamById = new Map(streamMatches.map((m) => [m.matchId, m]));
let streamsOn = true;

/** The overlay agent's heartbeats, until its match ends (or never got its server). */
async function overlayHeartbeats(m) {
  const s = m.stream;
  for (;;) {
    await sleep(10_000);
    if (!streamsOn || s.ended || s.start === 'not ready' || s.start === 'refused') return;
    await overlayCall(m, { type: 'overlay.heartbeat' }).catch(() => undefined);
  }
}

/** The overlay reports that play goes on (gameplay.progress) for as long as the match is in progress. */
async function overlayLoop(m) {
  const s = m.stream;
  while (streamsOn && !s.ended) {
    try {
      s.overlaySeq++;
      // A short timeout: a report stuck on a dying instance must not leave the episode window without one.
      await overlayCall(m, { type: 'gameplay.progress', seq: s.overlaySeq, round: s.overlaySeq }, 3000);
      s.overlayAccepted++;
    } catch {
      /* the instance was killed under the call: the next one goes elsewhere */
    }
    await sleep(Math.max(1000, CHECK_MS / 2));
  }
}

/** The platform starts the match (its server is ready): streams healthy, IN_PROGRESS, then the bad side's timeline. */
async function startEpisode(m) {
  const s = m.stream;
  peers.script(s.p1, [{ atMs: 0, state: 'healthy' }]);
  peers.script(s.p2, [{ atMs: 0, state: 'healthy' }]);
  try {
    await retry(`start ${m.matchId}`, async () => {
      const r = await internal('PUT', `/v1/internal/matches/${m.matchId}`, matchBody(m, 'IN_PROGRESS'));
      if (r.status !== 200 && r.status !== 201) throw new Error(`status ${r.status} ${JSON.stringify(r.json)}`);
    });
  } catch (error) {
    s.start = 'refused';
    log(error.message);
    return;
  }
  s.startedAt = Date.now();
  s.start = 'started';
  const bad = s[s.badSide];
  if (s.kind === 'forfeit') peers.script(bad, [{ atMs: s.onsetMs, state: 'offline' }]);
  else if (s.kind === 'dispute') peers.script(bad, [{ atMs: s.onsetMs, state: 'low-fps' }]);
  else
    peers.script(bad, [
      { atMs: s.onsetMs, state: 'offline' },
      { atMs: s.onsetMs + s.dipMs, state: 'healthy' },
    ]);
  if (s.kind === 'forfeit') void overlayLoop(m);
}

/** Starts each stream match when its server is ready, and notices when a verdict ended one. */
async function streamLoop() {
  const starting = [];
  while (streamsOn) {
    try {
      const waiting = streamMatches.filter((m) => m.stream.start === null).map((m) => m.matchId);
      if (waiting.length > 0)
        for (const r of await q(`select match_id, state from provisions where match_id = any($1)`, [waiting])) {
          const m = streamById.get(r.match_id);
          if (r.state === 'READY') {
            m.stream.start = 'starting';
            starting.push(startEpisode(m));
          } else if (r.state === 'FAILED' || r.state === 'RELEASED') m.stream.start = 'not ready';
        }
      const live = streamMatches.filter((m) => m.stream.startedAt && !m.stream.ended).map((m) => m.matchId);
      if (live.length > 0)
        for (const r of await q(`select id, status from matches where id = any($1)`, [live]))
          if (r.status !== 'IN_PROGRESS') streamById.get(r.id).stream.ended = true;
    } catch (error) {
      log(`stream loop: ${error.message}`);
    }
    await sleep(1000);
  }
  await Promise.all(starting);
}

/** Every stream episode played out: verdicts due have been reached, recovering sides had time to (wrongly) get one. */
function streamsSettled() {
  const now = Date.now();
  return streamMatches.every((m) => {
    const s = m.stream;
    if (s.start === null || s.start === 'starting') return false;
    if (s.start !== 'started') return true;
    if (s.kind !== 'recover') return s.ended;
    return now > s.startedAt + s.onsetMs + s.dipMs + GRACE_MS + 4 * CHECK_MS;
  });
}

// ---- chaos -------------------------------------------------------------------------------------------------------

let chaosOn = true;

async function killLoop() {
  while (chaosOn && faults.kills < MAX_KILLS) {
    await sleep(KILL_EVERY_MS * (0.6 + Math.random() * 0.8));
    if (!chaosOn) break;
    const candidates = instances.filter((i) => i.alive && !restarting.has(i));
    if (candidates.length < 2) continue; // keep one instance serving the HTTP side of the plan
    const victim = candidates[Math.floor(Math.random() * candidates.length)];
    restarting.add(victim);
    await victim.stop('SIGKILL');
    faults.kills++;
    log(`SIGKILL ${victim.name} (kill #${faults.kills})`);
    victim.restart().catch((error) => log(`${victim.name} could not be restarted: ${error.message}`));
  }
}

async function flushRunKeys() {
  const redis = new Redis(REDIS_URL, { lazyConnect: false, maxRetriesPerRequest: 3 });
  let deleted = 0;
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${redisPrefix}*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length > 0) deleted += await redis.del(...keys);
  } while (cursor !== '0');
  await redis.quit();
  faults.redisFlush = { keysDeleted: deleted };
  log(`Redis: deleted every key of this run (${redisPrefix}*: ${deleted} keys; the server is shared, so no FLUSHDB)`);
}

function cutDb() {
  const connections = dbProxy.cut(3000);
  faults.dbCut = { connections, refusedMs: 3000 };
  log(`PostgreSQL: cut ${connections} connections at the proxy, refusing new ones for 3 s`);
}

async function restartBroker() {
  if (!OWN_BROKER) return;
  log("Kafka: restarting this run's broker");
  const downtimeMs = await services.restartKafka();
  faults.brokerRestart = { downtimeMs };
  log(`Kafka: broker back after ${secs(downtimeMs)}`);
}

const chaosStart = Date.now();
const kills = killLoop();
const streams = streamLoop();
const faultSchedule = [
  [0.25, flushRunKeys],
  [0.5, cutDb],
  [0.75, restartBroker],
].map(([at, fn]) =>
  sleep(SPREAD_MS * at)
    .then(fn)
    .catch((error) => log(`fault failed: ${error.message}`)),
);

// Reservations in waves across SPREAD_MS; 5% delivered twice; releases 2 s after their reservation.
const WAVES = 20;
const pending = [];
for (let w = 0; w < WAVES; w++) {
  const wave = matches.filter((m) => m.i % WAVES === w);
  const dupes = wave.filter(() => Math.random() < 0.05);
  await produce(
    `reserve wave ${w}`,
    [...wave, ...dupes].map((m) => lifecycle(Topics.serverReserved, m, m.reservedEventId)),
  );
  const toRelease = wave.filter((m) => m.plan === 'released');
  pending.push(
    sleep(2000).then(() =>
      produce(
        `release wave ${w}`,
        toRelease.map((m) => lifecycle(Topics.serverReleased, m, randomUUID())),
      ),
    ),
  );
  pending.push(
    inBatches(
      wave.filter((m) => m.plan === 'ready'),
      4,
      adminHook,
    ),
  );
  await sleep(Math.max(0, chaosStart + ((w + 1) * SPREAD_MS) / WAVES - Date.now()));
}
await Promise.all([...pending, ...faultSchedule]);
log(`all ${N} reservations produced, releases and admin hooks delivered`);

// Kills go on until the deadline has passed for the last reservations (timeouts are decided during chaos too).
const chaosUntil = Date.now() + DEADLINE_MS + 5000;
while (Date.now() < chaosUntil && elapsed() < MAX_MS * 0.7) await sleep(1000);
chaosOn = false;
await kills;
await eventually(() => restarting.size === 0, 90_000, 'restarts to finish');
log(`chaos over: ${faults.kills} kills, ${faults.restarts} restarts; converging`);

let converged = true;
try {
  await eventually(
    async () => {
      const [open] = await q(`select count(*)::int n from provisions where state in ('RESERVED','INSTALLING','WAITING_SIGNALS')`);
      const [unpublished] = await q(`select count(*)::int n from outbox where published_at is null`);
      const [seen] = await q(`select count(*)::int n from provisions`);
      return streamsSettled() && open.n === 0 && unpublished.n === 0 && seen.n === N;
    },
    Math.max(30_000, MAX_MS - elapsed() - 60_000),
    'every provision terminal, every stream episode played out and every outbox row published',
  );
} catch (error) {
  converged = false;
  log(error.message);
}
streamsOn = false;
await streams;
// The platform ends the matches still in progress (the recovered ones; a verdict due but missing is a loss, below),
// which stops their enforcement before the audit reads the verdicts.
await inBatches(
  streamMatches.filter((m) => m.stream.start === 'started' && !m.stream.ended),
  4,
  (m) =>
    retry(`complete ${m.matchId}`, () => internal('PUT', `/v1/internal/matches/${m.matchId}`, matchBody(m, 'COMPLETED')), 10).catch(
      (error) => log(error.message),
    ),
);

// ---- the audit ---------------------------------------------------------------------------------------------------

const OUTPUT = ALL_TOPICS.filter((t) => !INPUT_TOPICS.includes(t));
// The reservations themselves too: a reservation on Kafka but never applied is a consumer loss, not a producer one.
const AUDITED = [...OUTPUT, Topics.serverReserved];
const tapped = [];
const tap = new KafkaMessageSource({
  brokers,
  clientId: 'chaos-audit',
  groupId: `chaos-audit-${runId}`,
  topicPrefix,
  logger: createLogger('silent'),
  maxWaitTimeMs: 200,
});
await tap.start(
  AUDITED,
  oneByOne(async (m) => {
    const value = JSON.parse(m.value.toString('utf8'));
    tapped.push({ topic: m.topic, key: m.key, eventId: m.headers['event-id'] ?? String(value.eventId), value });
  }),
);
const outboxRows = await q(`select id, topic, key from outbox`);
const outboxIds = new Set(outboxRows.map((r) => r.id));
const seenIds = () => new Set(tapped.map((e) => e.eventId));
try {
  await eventually(() => [...outboxIds].every((id) => seenIds().has(id)), 60_000, 'every outbox row on Kafka');
} catch (error) {
  log(error.message);
}
let last = -1;
while (last !== tapped.length) {
  last = tapped.length;
  await sleep(2000);
}
await tap.stop();

const provisions = new Map((await q(`select match_id, state, failure_reason from provisions`)).map((r) => [r.match_id, r]));
const refundRows = await q(`select match_id, player_id, count(*)::int n from ledger_entries where kind = 'REFUND' group by 1, 2`);
const refunds = new Map();
for (const r of refundRows) refunds.set(r.match_id, [...(refunds.get(r.match_id) ?? []), r.n]);
// Every reservation was consumed and applied (its claim in processed_events committed with its effect).
const [applied] = await q(`select count(distinct event_id)::int n from processed_events where event_id = any($1)`, [
  matches.map((m) => m.reservedEventId),
]);
const deadLetters = await q(`select count(*)::int n from dead_letters`).catch(() => [{ n: -1 }]);
const streamIds = streamMatches.map((m) => m.matchId);
const enforcementRows = await q(`select match_id, side, verdict, reason, episode_id, created_at from enforcements`);
const episodeRows = await q(`select id, match_id, side, state, opened_at from grace_episodes where match_id = any($1)`, [streamIds]);
// The overlay's accepted gameplay reports as stored (violating calls are stored as `violation:…`), to judge each
// verdict's kind from the raw data: FORFEIT when one landed between the episode's first violating sample and the verdict.
const gameplayRows = await q(`select match_id, received_at from overlay_events where type = 'gameplay.progress' and match_id = any($1)`, [
  streamIds,
]);
const statusOf = new Map((await q(`select id, status from matches where id = any($1)`, [streamIds])).map((r) => [r.id, r.status]));

const distinctOf = (topic, matchId) => new Set(tapped.filter((e) => e.topic === topic && e.key === matchId).map((e) => e.eventId));
const outcome = { ready: 0, TIMEOUT: 0, INSTALL_FAILED: 0, released: 0, other: 0 };
const byPlan = {};
const problems = [];
let exactlyOne = 0;
let lost = 0;
let doubled = 0;
let refundPairs = 0;
let maxRefunds = 0;
for (const m of matches) {
  const p = provisions.get(m.matchId);
  const ready = distinctOf(Topics.serverReady, m.matchId).size;
  const failed = distinctOf(Topics.serverFailed, m.matchId).size;
  const cancelled = distinctOf(Topics.matchCancelled, m.matchId).size;
  const terminalEvents = ready + failed;
  const released = p?.state === 'RELEASED';
  const refundCounts = refunds.get(m.matchId) ?? [];
  refundPairs += refundCounts.length;
  maxRefunds = Math.max(maxRefunds, ...refundCounts, 0);
  // Terminal: one server.ready or server.failed, or (for a release before any outcome) the RELEASED state.
  const terminals = terminalEvents + (released && terminalEvents === 0 ? 1 : 0);
  const got = ready ? 'ready' : failed ? (p?.failure_reason ?? 'failed') : released ? 'released' : 'none';
  outcome[got in outcome ? got : 'other']++;
  byPlan[m.plan] ??= {};
  byPlan[m.plan][got] = (byPlan[m.plan][got] ?? 0) + 1;
  const isLost =
    terminals === 0 ||
    (p?.state === 'READY' && ready === 0) ||
    (p?.state === 'FAILED' && (failed === 0 || cancelled === 0 || refundCounts.length !== 2));
  const isDoubled = terminalEvents > 1 || cancelled > 1 || refundCounts.some((n) => n > 1) || (failed === 0 && refundCounts.length > 0);
  if (terminals === 1 && !isLost && !isDoubled) exactlyOne++;
  if (isLost) lost++;
  if (isDoubled) doubled++;
  if ((isLost || isDoubled) && problems.length < 10)
    problems.push(
      `${m.matchId} plan=${m.plan} state=${p?.state ?? 'none'} ready=${ready} failed=${failed} cancelled=${cancelled} refunds=${JSON.stringify(refundCounts)}`,
    );
}
const raw = tapped.filter((e) => e.topic !== Topics.deadLetter && e.topic !== Topics.serverReserved);
const reservedOnKafka = new Set(tapped.filter((e) => e.topic === Topics.serverReserved).map((e) => e.eventId));
const reservationsOnKafka = matches.filter((m) => reservedOnKafka.has(m.reservedEventId)).length;
const distinctIds = new Set(raw.map((e) => e.eventId));
const missing = outboxRows.filter((r) => !distinctIds.has(r.id));
const notOnKafka = missing.length;
for (const r of missing.slice(0, 5)) problems.push(`outbox row ${r.id} (${r.topic}, ${r.key}) not on Kafka`);
lost += notOnKafka; // an unapplied reservation is already counted above (no terminal outcome)

// Verdicts per episode: each side that stayed bad past its grace has exactly one verdict, in the database
// (enforcements) and on Kafka (one eventId on match.forfeit / match.dispute), the one its overlay evidence calls for;
// a side that recovered within its grace has none.
const VERDICT_TOPICS = [Topics.matchForfeit, Topics.matchDispute];
const verdictEvents = tapped.filter((e) => VERDICT_TOPICS.includes(e.topic));
const verdictIds = new Set(verdictEvents.map((e) => e.eventId));
/** Gameplay reports stored for the match within the verdict's episode window. */
function gameplayInWindow(row) {
  const episode = episodeRows.find((e) => e.id === row.episode_id);
  if (!episode) return null;
  const from = new Date(episode.opened_at).getTime();
  const to = new Date(row.created_at).getTime();
  return gameplayRows.filter((g) => g.match_id === row.match_id && +new Date(g.received_at) >= from && +new Date(g.received_at) <= to)
    .length;
}
const verdicts = {
  streamMatches: STREAMS,
  started: 0,
  notStarted: 0,
  due: 0,
  exactlyOne: 0,
  lost: 0,
  doubled: 0,
  wrong: 0,
  byKind: {},
  // `forfeit` episodes whose overlay reports all missed the episode window (calls lost to kills or load): a DISPUTE
  // is then the right verdict, and counted here.
  forfeitWithoutGameplayInWindow: 0,
  recovered: { sides: 0, episodesClosed: 0, withoutEpisode: 0, withVerdict: 0 },
  events: {
    messages: verdictEvents.length,
    distinctEventIds: verdictIds.size,
    redeliveredCopies: verdictEvents.length - verdictIds.size,
    inDb: enforcementRows.length,
  },
  overlayGameplayAccepted: streamMatches.reduce((sum, m) => sum + m.stream.overlayAccepted, 0),
  checkEveryMs: CHECK_MS,
  graceMs: GRACE_MS,
};
const verdictProblems = [];
for (const m of matches) {
  const s = m.stream;
  const rows = enforcementRows.filter((r) => r.match_id === m.matchId);
  const events = new Map();
  for (const e of verdictEvents) if ((e.value.matchId ?? e.key) === m.matchId) events.set(e.eventId, e.value);
  if (!s) {
    // No stream episode was played: any verdict is one too many.
    if (rows.length + events.size > 0) {
      verdicts.doubled++;
      verdictProblems.push(`${m.matchId} (no stream episode) has ${rows.length} verdicts in the database, ${events.size} on Kafka`);
    }
    continue;
  }
  if (s.start !== 'started') {
    verdicts.notStarted++;
    continue;
  }
  verdicts.started++;
  const got = rows.length === 0 ? 'none' : rows.map((r) => `${r.verdict}:${r.side}`).join('+');
  verdicts.byKind[s.kind] ??= {};
  verdicts.byKind[s.kind][got] = (verdicts.byKind[s.kind][got] ?? 0) + 1;
  const [row] = rows;
  const gameplay = row ? gameplayInWindow(row) : null;
  const describe = () =>
    `${m.matchId} ${s.kind} ${s.badSide} (onset +${secs(s.onsetMs)}): status ${statusOf.get(m.matchId)}, database ${got}, Kafka ${[...events.values()].map((v) => `${v.verdict}:${v.side}`).join('+') || 'none'}, overlay gameplay accepted ${s.overlayAccepted} (${gameplay ?? 'no episode'} in the episode window)`;
  if (s.kind === 'recover') {
    const eps = episodeRows.filter((r) => r.match_id === m.matchId && r.side === s.badSide);
    verdicts.recovered.sides++;
    if (eps.length === 0) verdicts.recovered.withoutEpisode++;
    verdicts.recovered.episodesClosed += eps.filter((r) => r.state === 'closed').length;
    if (rows.length + events.size > 0) {
      verdicts.recovered.withVerdict++;
      verdicts.wrong++;
      verdictProblems.push(`a verdict where none was due: ${describe()}`);
    }
    continue;
  }
  verdicts.due++;
  const [event] = events.values();
  const expected = s.kind === 'dispute' || gameplay === 0 ? 'DISPUTE' : 'FORFEIT';
  if (s.kind === 'forfeit' && gameplay === 0) verdicts.forfeitWithoutGameplayInWindow++;
  const isLost = rows.length === 0 || events.size === 0;
  const isDoubled = rows.length > 1 || events.size > 1;
  const isWrong =
    !isLost &&
    !isDoubled &&
    (row.side !== s.badSide ||
      gameplay === null ||
      (s.kind === 'dispute' && gameplay > 0) ||
      row.verdict !== expected ||
      event.episodeId !== row.episode_id ||
      event.verdict !== row.verdict ||
      statusOf.get(m.matchId) !== (row.verdict === 'FORFEIT' ? 'FORFEITED' : 'DISPUTED'));
  if (isLost) verdicts.lost++;
  if (isDoubled) verdicts.doubled++;
  if (isWrong) verdicts.wrong++;
  if (!isLost && !isDoubled && !isWrong) verdicts.exactlyOne++;
  else verdictProblems.push(describe());
}
for (const p of verdictProblems.slice(0, 10)) problems.push(`verdict: ${p}`);

const summary = {
  runId,
  n: N,
  durationMs: elapsed(),
  converged,
  broker: OWN_BROKER ? 'own' : 'shared',
  faults,
  outcomes: outcome,
  byPlan,
  exactlyOneTerminal: exactlyOne,
  reservationsApplied: applied.n,
  reservationsOnKafka,
  lost,
  doubled,
  refunds: { pairs: refundPairs, maxPerPlayerPerMatch: maxRefunds },
  output: {
    messages: raw.length,
    distinctEventIds: distinctIds.size,
    redeliveredCopies: raw.length - distinctIds.size,
    outboxRows: outboxIds.size,
    outboxRowsNotOnKafka: notOnKafka,
  },
  deadLetters: { onTopic: tapped.filter((e) => e.topic === Topics.deadLetter).length, inDb: deadLetters[0]?.n },
  verdicts,
};
// A run in which most stream matches never started did not exercise the verdicts: not a pass.
verdicts.exercised = STREAMS === 0 || verdicts.started * 2 >= STREAMS;
if (!verdicts.exercised) problems.push(`only ${verdicts.started} of ${STREAMS} stream matches started: verdicts not exercised`);
const verdictsPass =
  verdicts.exercised && verdicts.lost === 0 && verdicts.doubled === 0 && verdicts.wrong === 0 && verdicts.exactlyOne === verdicts.due;
const pass = converged && lost === 0 && doubled === 0 && exactlyOne === N && verdictsPass;

console.log(`chaos: run ${runId} N=${N} in ${secs(summary.durationMs)}, 3 instances, broker ${summary.broker}`);
console.log(
  `chaos: faults: ${faults.kills} SIGKILLs (${faults.restarts} restarts), redis flush ${faults.redisFlush ? `${faults.redisFlush.keysDeleted} keys` : 'no'}, db cut ${faults.dbCut ? `${faults.dbCut.connections} connections` : 'no'}, broker restart ${faults.brokerRestart ? secs(faults.brokerRestart.downtimeMs) : 'skipped'}`,
);
console.log(
  `chaos: instance crashes (not asked for): ${faults.crashes.length}${faults.crashes.length ? ` (${faults.crashes.join('; ')})` : ''}; failed starts retried: ${faults.startFailures}`,
);
console.log(
  `chaos: outcomes: ${Object.entries(outcome)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')}; by plan ${JSON.stringify(byPlan)}`,
);
console.log(`chaos: reservations with exactly one terminal outcome: ${exactlyOne}/${N}; lost=${lost} doubled=${doubled}`);
console.log(`chaos: reservations on Kafka ${reservationsOnKafka}/${N}, applied (processed_events) ${applied.n}/${N}`);
console.log(`chaos: refunds: ${refundPairs} (match, player) pairs, max ${maxRefunds} per player per match`);
console.log(
  `chaos: output topics: ${raw.length} messages, ${distinctIds.size} distinct eventIds, ${summary.output.redeliveredCopies} redelivered copies of one eventId, ${notOnKafka} of ${outboxIds.size} outbox rows missing on Kafka; dead letters ${summary.deadLetters.onTopic}`,
);
console.log(
  `chaos: stream episodes: ${verdicts.started}/${STREAMS} started IN_PROGRESS (${verdicts.notStarted} never ready), checks every ${secs(CHECK_MS)}, grace ${secs(GRACE_MS)}; by kind ${JSON.stringify(verdicts.byKind)}`,
);
console.log(
  `chaos: verdicts per episode: ${verdicts.exactlyOne}/${verdicts.due} due with exactly one (database and Kafka agree); lost=${verdicts.lost} doubled=${verdicts.doubled} wrong=${verdicts.wrong}; recovered sides ${verdicts.recovered.sides} (${verdicts.recovered.episodesClosed} episodes closed, ${verdicts.recovered.withoutEpisode} without one), ${verdicts.recovered.withVerdict} with a verdict`,
);
console.log(
  `chaos: verdict events: ${verdicts.events.messages} messages, ${verdicts.events.distinctEventIds} distinct eventIds (${verdicts.events.redeliveredCopies} redelivered copies), ${verdicts.events.inDb} enforcements in the database; overlay gameplay calls accepted ${verdicts.overlayGameplayAccepted}; forfeit episodes whose gameplay reports all missed the episode window (so DISPUTE) ${verdicts.forfeitWithoutGameplayInWindow}`,
);
for (const p of problems) console.log(`chaos: problem: ${p}`);
console.log(
  `chaos: RESULT ${pass ? 'PASS' : 'FAIL'} (lost=${lost} doubled=${doubled}; verdicts lost=${verdicts.lost} doubled=${verdicts.doubled} wrong=${verdicts.wrong}${converged ? '' : '; did not converge'})`,
);
console.log(`CHAOS_SUMMARY ${JSON.stringify(summary)}`);

// ---- teardown ----------------------------------------------------------------------------------------------------

await Promise.all(instances.map((i) => i.stop('SIGTERM')));
await producer.close().catch(() => {});
await db.end();
await dbProxy.close();
await panel.close();
await peers.close();
if (!opts.keep) {
  const admin = new pg.Client({ connectionString: ADMIN_DB_URL });
  await admin.connect();
  await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
  await admin.end();
}
if (OWN_BROKER) await services.downKafka();
brokerDown = true;
process.exit(pass ? 0 : 1);
