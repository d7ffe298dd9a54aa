// Shared helpers for the benches in bench/: real services on loopback, percentiles, result files.
// Plain ESM; every bench imports the BUILT code from ../dist (run `npx tsc -p tsconfig.build.json` first).
import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DIST = join(ROOT, 'dist');
export const RESULTS_DIR = join(ROOT, 'bench', 'results');

const ADMIN_DB_URL = process.env.BENCH_DATABASE_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Fails early, with the fix, when the build is missing. */
/**
 * The production image's runtime memory settings, read from the Dockerfile (`ENV NODE_OPTIONS=…` and
 * `MALLOC_ARENA_MAX`): the V8 flags and the environment a bench that measures the service's memory runs under.
 */
export function productionRuntime() {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const nodeOptions = /NODE_OPTIONS="([^"]*)"/.exec(dockerfile)?.[1];
  const arenas = /MALLOC_ARENA_MAX=(\d+)/.exec(dockerfile)?.[1];
  if (nodeOptions === undefined || arenas === undefined)
    throw new Error('Dockerfile: ENV NODE_OPTIONS="…" or MALLOC_ARENA_MAX not found (the bench runs the service under them)');
  return { v8Flags: nodeOptions.split(/\s+/).filter(Boolean), env: { MALLOC_ARENA_MAX: arenas } };
}

export function requireBuild() {
  for (const file of ['src/app.module.js', 'src/demo/simulated/pterodactyl-panel.js']) {
    if (!existsSync(join(DIST, file))) throw new Error(`dist/${file} missing: build first (npx tsc -p tsconfig.build.json)`);
  }
}

/** Imports a module of the built code, e.g. `dist('src/app.module.js')`. */
export function dist(path) {
  return import(join(DIST, path));
}

export function randomName(prefix) {
  return `${prefix}${randomBytes(5).toString('hex')}`;
}

/** Only loopback targets: a bench never talks to anything off this machine. */
export function assertLoopback(url) {
  const host = new URL(url.includes('://') ? url : `tcp://${url}`).hostname.replace(/^\[|\]$/g, '');
  if (!['127.0.0.1', 'localhost', '::1'].includes(host)) throw new Error(`bench targets loopback only, refused ${url}`);
}

function canConnect(host, port, timeoutMs = 1500) {
  return new Promise((done) => {
    const socket = net.connect({ host, port });
    const finish = (ok) => {
      socket.destroy();
      done(ok);
    };
    socket.setTimeout(timeoutMs, () => finish(false));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}

/** A fresh, empty database on the machine's PostgreSQL (as test/support/infra.ts does); `drop()` removes it. */
export async function freshPostgresDatabase() {
  assertLoopback(ADMIN_DB_URL);
  const admin = new pg.Client({ connectionString: ADMIN_DB_URL, connectionTimeoutMillis: 3000 });
  try {
    await admin.connect();
  } catch (error) {
    throw new Error(`PostgreSQL not reachable at ${ADMIN_DB_URL} (${error.message}): run \`npm run services:up\``);
  }
  const name = randomName('fwbench_');
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = ADMIN_DB_URL.replace(/\/[^/]*$/, `/${name}`);
  let dropped = false;
  return {
    url,
    name,
    async drop() {
      if (dropped) return;
      dropped = true;
      const c = new pg.Client({ connectionString: ADMIN_DB_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}

export async function requireRedis() {
  assertLoopback(REDIS_URL);
  const u = new URL(REDIS_URL);
  if (!(await canConnect(u.hostname, Number(u.port || 6379))))
    throw new Error(`Redis not reachable at ${REDIS_URL}: run \`npm run services:up\``);
  return REDIS_URL;
}

/** Deletes every Redis key under `prefix` (a bench's own random prefix; never a broad pattern). */
export async function deleteRedisPrefix(url, prefix) {
  if (!prefix || prefix.length < 8) throw new Error('refusing to delete Redis keys under a short prefix');
  const { Redis } = await import('ioredis');
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 2 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

export function kafkaBrokers() {
  const file = join(ROOT, '.cache', 'kafka', 'brokers');
  const list = process.env.KAFKA_BROKERS
    ? process.env.KAFKA_BROKERS.split(',')
    : [existsSync(file) ? readFileSync(file, 'utf8').trim() : '127.0.0.1:19092'];
  for (const b of list) assertLoopback(b);
  return list;
}

/** Kafka brokers, with every topic created under `prefix` (3 partitions, as the tests do). */
export async function requireKafka(prefix, partitions = 3) {
  const { ensureTopics, pingKafka } = await dist('src/infra/bus/kafka-bus.js');
  const { ALL_TOPICS } = await dist('src/events/topics.js');
  const brokers = kafkaBrokers();
  if (!(await pingKafka(brokers, 5000)))
    throw new Error(`Kafka not reachable at ${brokers.join(',')}: run \`node scripts/services.mjs up\``);
  await ensureTopics(brokers, ALL_TOPICS, { prefix, partitions });
  return brokers;
}

/** Deletes every topic under `prefix` (best effort). */
export async function deleteTopics(brokers, prefix) {
  const { Admin } = await import('@platformatic/kafka');
  const admin = new Admin({ clientId: 'flocknode-bench-admin', bootstrapBrokers: brokers });
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length) await admin.deleteTopics({ topics });
  } catch {
    // leftover topics under a random prefix are harmless
  } finally {
    await admin.close().catch(() => undefined);
  }
}

/** Matches whose admin hooks already reported OK (bulk, 20,000 a statement): provisioned at the panel's first look. */
export async function insertReadyMatches(client, matchIds) {
  for (let i = 0; i < matchIds.length; i += 20_000) {
    const ids = matchIds.slice(i, i + 20_000);
    await client.query(
      `INSERT INTO matches (id, mode, status, entry_fee_cents, currency, overlay_required, created_at, updated_at)
       SELECT id, 'VERIFIED_STREAM', 'SCHEDULED', 500, 'USD', false, now(), now() FROM unnest($1::text[]) AS id`,
      [ids],
    );
    await client.query(
      `INSERT INTO checklists (match_id, admin_hooks_ok, updated_at) SELECT id, true, now() FROM unnest($1::text[]) AS id`,
      [ids],
    );
  }
}

/** A panel stand-in (ServiceOverrides.panel) that reports every server installed at once and deletes for free. */
export const INSTALLED_PANEL = {
  observe: async () => ({ kind: 'install', state: 'installed', status: null }),
  remove: async () => ({ kind: 'deleted' }),
};

export const SECRETS = {
  OVERLAY_MASTER_SECRET: 'bench-overlay-master-secret-0123456789abcdef',
  ADMIN_HOOK_SECRET: 'bench-admin-hook-secret-0123456789abcdef-xyz',
  INTERNAL_API_TOKEN: 'bench-internal-api-token-0123456789abcdefgh',
};

/** Starts one real service instance in this process (as test/support/service.ts does), logs silenced. */
export async function startBenchService(env, overrides = {}) {
  const { loadConfig } = await dist('src/config/config.js');
  const { startService } = await dist('src/app.module.js');
  const { createLogger } = await dist('src/observability/logger.js');
  const { Metrics } = await dist('src/observability/metrics.js');
  const full = {
    ...SECRETS,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent',
    INSTANCE_ID: env.INSTANCE_ID ?? randomName('bench-'),
    ...env,
  };
  for (const name of ['DATABASE_URL', 'REDIS_URL', 'PTERO_APP_URL']) if (full[name]) assertLoopback(full[name]);
  const config = loadConfig(full, { service: true });
  return startService(config, {
    logger: createLogger(config.LOG_LEVEL, { instanceId: config.instanceId }),
    metrics: new Metrics(),
    ...overrides,
  });
}

// ---- numbers ---------------------------------------------------------------------------------------------------

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

export function mean(values) {
  return values.length ? values.reduce((a, b) => a + b, 0) / values.length : NaN;
}

export function round(value, digits = 1) {
  if (!Number.isFinite(value)) return value;
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export async function waitFor(probe, timeoutMs, what, everyMs = 100) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

// ---- output ----------------------------------------------------------------------------------------------------

export function machine() {
  return {
    node: process.version,
    cpus: os.cpus().length,
    cpuModel: os.cpus()[0]?.model ?? 'unknown',
    loadavg: os.loadavg().map((x) => round(x, 2)),
    memGiB: round(os.totalmem() / 2 ** 30, 1),
  };
}

/** Prints a small aligned table: rows of [figure, value, unit, note]. */
export function printTable(title, rows) {
  const cells = rows.map((r) => [
    String(r[0]),
    typeof r[1] === 'number' ? r[1].toLocaleString('en-US') : String(r[1]),
    r[2] ?? '',
    r[3] ?? '',
  ]);
  const widths = [0, 1, 2].map((i) => Math.max(...cells.map((c) => c[i].length), 4));
  console.log(`\n${title}`);
  console.log('-'.repeat(Math.min(120, widths[0] + widths[1] + widths[2] + 8)));
  for (const c of cells)
    console.log(`${c[0].padEnd(widths[0])}  ${c[1].padStart(widths[1])}  ${c[2].padEnd(widths[2])}  ${c[3]}`.trimEnd());
}

/**
 * Records one bench's figures: bench/results/<name>.json, and merged into bench/results/latest.json.
 * `figures` is a list of { name, value, unit, note? }; `details` is anything else worth keeping.
 */
export function recordResult(name, { measured, figures, details = {} }) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const result = { bench: name, at: new Date().toISOString(), machine: machine(), measured, figures, details };
  writeFileSync(join(RESULTS_DIR, `${name}.json`), JSON.stringify(result, null, 2) + '\n');
  const latestFile = join(RESULTS_DIR, 'latest.json');
  let latest = {};
  try {
    latest = JSON.parse(readFileSync(latestFile, 'utf8'));
  } catch {
    latest = {};
  }
  latest.updatedAt = result.at;
  latest.benches = { ...(latest.benches ?? {}), [name]: result };
  writeFileSync(latestFile, JSON.stringify(latest, null, 2) + '\n');
  printTable(
    `${name} — ${measured}`,
    figures.map((f) => [f.name, f.value, f.unit, f.note]),
  );
  return result;
}

const cleanups = [];

/** Registers cleanup work (close a service, drop a database); runs last-in first-out when the bench ends. */
export function onCleanup(fn) {
  cleanups.push(fn);
}

async function runCleanups() {
  while (cleanups.length) {
    const fn = cleanups.pop();
    try {
      await Promise.race([fn(), sleep(20_000)]);
    } catch (error) {
      console.error('cleanup step failed:', error?.message ?? error);
    }
  }
}

/**
 * Runs `main`, then the cleanups, then exits (open handles of clients must not keep a finished bench alive).
 * A hard cap bounds the whole run; hitting it still runs the cleanups (bounded) before exiting with 2.
 */
export function runBench(name, main, { hardLimitMs = 200_000 } = {}) {
  const cap = setTimeout(() => {
    console.error(`${name}: exceeded its hard limit of ${hardLimitMs} ms; aborting`);
    void runCleanups().finally(() => process.exit(2));
  }, hardLimitMs);
  cap.unref();
  // Stopped from outside (Ctrl-C, the runner's timeout): still drop databases, close services.
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      console.error(`${name}: ${signal}; cleaning up`);
      void runCleanups().finally(() => process.exit(130));
    });
  }
  main().then(
    async () => {
      await runCleanups();
      process.exit(0);
    },
    async (error) => {
      console.error(`${name} failed:`, error);
      await runCleanups();
      process.exit(1);
    },
  );
}
