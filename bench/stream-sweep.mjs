#!/usr/bin/env node
// StreamHealthWorker sweep cost at 1k, 10k and 50k active VERIFIED_STREAM matches, on the real PostgreSQL and
// Redis, against the Twitch Helix and SRS fakes over real HTTP (in a child process, so the CPU figures are the
// service's own). One real service instance in this process (scheduler stopped; the bench calls
// `services.streamHealth.sweep()`), its clock and the fakes' clock advanced together by STREAM_CHECK_EVERY_MS.
// Per size: a fresh database, N matches with two players each (one Twitch + one SRS channel per player),
// three sweeps: #1 cold (first state rows, FPS unknown: needs two samples), #2 and #3 steady (all healthy).
// Reports wall time and process CPU (user+system, this process only: PostgreSQL and Redis are separate
// processes) per sweep, provider requests per sweep, samples by outcome, and memory after the largest size.
//
//   npx tsc -p tsconfig.build.json && node_modules/.bin/node --expose-gc bench/stream-sweep.mjs
//   (BENCH_STREAM_SIZES=1000,10000 for a shorter run)
import { fork } from 'node:child_process';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import {
  dist,
  freshPostgresDatabase,
  onCleanup,
  randomName,
  recordResult,
  requireBuild,
  requireRedis,
  ROOT,
  round,
  runBench,
  startBenchService,
} from './lib/common.mjs';

const NAME = 'stream-sweep';
const SIZES = (process.env.BENCH_STREAM_SIZES ?? '1000,10000,50000').split(',').map(Number);
const SWEEPS = 3;
const CHECK_MS = 30_000;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

/** The fakes' child process, with a request/answer helper. */
async function startFakes(n) {
  const child = fork(join(ROOT, 'bench', 'lib', 'stream-fakes-child.mjs'), [], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    execArgv: [],
  });
  await new Promise((resolve, reject) => {
    child.once('message', (m) => (m.ready ? resolve() : reject(new Error('fakes child failed to start'))));
    child.once('exit', (code) => reject(new Error(`fakes child exited with ${code}`)));
  });
  const ask = (message) =>
    new Promise((resolve, reject) => {
      child.once('message', (m) => (m.ok ? resolve(m) : reject(new Error(m.error))));
      child.send(message);
    });
  const started = await ask({ cmd: 'start', n, clockMs: T0 });
  return {
    ...started,
    advance: (ms) => ask({ cmd: 'advance', ms }),
    stats: () => ask({ cmd: 'stats' }),
    close: async () => {
      if (child.exitCode === null) await ask({ cmd: 'close' }).catch(() => child.kill('SIGKILL'));
    },
  };
}

/** N active matches, players and checklists in three statements. */
async function seedMatches(db, n) {
  const { sql } = await import('kysely');
  await sql`INSERT INTO matches (id, mode, status, entry_fee_cents, currency, overlay_required, created_at, updated_at)
    SELECT 'm-' || i, 'VERIFIED_STREAM', 'IN_PROGRESS', 500, 'USD', true, now(), now() FROM generate_series(0, ${n - 1}::int) AS i`.execute(
    db,
  );
  await sql`INSERT INTO match_players (match_id, side, player_id, stream_channels)
    SELECT 'm-' || i, s.side, s.side || '-' || i, jsonb_build_array('twitch:p' || i || s.c, 'srs:live/s' || i || s.c)
    FROM generate_series(0, ${n - 1}::int) AS i CROSS JOIN (VALUES ('p1', 'a'), ('p2', 'b')) AS s(side, c)`.execute(db);
  await sql`INSERT INTO checklists (match_id, updated_at) SELECT 'm-' || i, now() FROM generate_series(0, ${n - 1}::int) AS i`.execute(db);
}

function mib(bytes) {
  return round(bytes / 2 ** 20, 1);
}

async function runSize(n, redisUrl) {
  const { ManualClock } = await dist('src/infra/clock.js');
  const db = await freshPostgresDatabase();
  const fakes = await startFakes(n);
  const clock = new ManualClock(T0);
  const service = await startBenchService(
    {
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: randomName('fwbench') + ':',
      PTERO_APP_URL: 'http://127.0.0.1:9',
      PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
      TWITCH_CLIENT_ID: fakes.twitch.clientId,
      TWITCH_CLIENT_SECRET: fakes.twitch.clientSecret,
      TWITCH_API_URL: fakes.twitch.apiUrl,
      TWITCH_AUTH_URL: fakes.twitch.authUrl,
      INGEST_STATS_URL: fakes.srs,
      TELEMETRY_TIMEOUT_MS: '25000',
      STREAM_CHECK_EVERY_MS: String(CHECK_MS),
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
    },
    { clock },
  );
  await service.services.scheduler.stop();
  const seedStart = performance.now();
  await seedMatches(service.services.db, n);
  const seedMs = performance.now() - seedStart;
  global.gc?.();
  const memBefore = process.memoryUsage();

  const sweeps = [];
  for (let i = 0; i < SWEEPS; i++) {
    if (i > 0) {
      clock.advance(CHECK_MS);
      await fakes.advance(CHECK_MS);
    }
    await fakes.stats();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const report = await service.services.streamHealth.sweep();
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const requests = await fakes.stats();
    sweeps.push({
      sweep: i + 1,
      wallMs: round(wallMs, 0),
      cpuMs: round((cpu.user + cpu.system) / 1000, 0),
      twitchStreamsRequests: requests.twitchStreams,
      twitchTokenRequests: requests.twitchTokens,
      srsPages: requests.srsPages,
      providerErrors: requests.errors,
      samples: report.samples,
      swept: report.swept,
      stale: report.stale,
      phases: report.phases,
    });
    console.log(`n=${n} sweep ${i + 1}: ${JSON.stringify(sweeps.at(-1))}`);
  }
  global.gc?.();
  const memAfter = process.memoryUsage();
  await service.close();
  await fakes.close();
  await db.drop();
  return { n, seedMs: round(seedMs, 0), sweeps, memory: { before: memBefore, after: memAfter } };
}

async function main() {
  requireBuild();
  const redisUrl = await requireRedis();
  const results = [];
  for (const n of SIZES) results.push(await runSize(n, redisUrl));

  const figures = [];
  for (const r of results) {
    const steady = r.sweeps.slice(1);
    const avg = (f) => round(steady.reduce((a, s) => a + f(s), 0) / steady.length, 0);
    const cold = r.sweeps[0];
    figures.push({
      name: `${r.n} matches: cold sweep (first state rows)`,
      value: cold.wallMs,
      unit: 'ms wall',
      note: `${cold.cpuMs} ms CPU`,
    });
    figures.push({
      name: `${r.n} matches: steady sweep`,
      value: avg((s) => s.wallMs),
      unit: 'ms wall',
      note: `${avg((s) => s.cpuMs)} ms CPU; ${round(avg((s) => s.wallMs) / (r.n / 1000), 0)} ms per 1k matches`,
    });
    figures.push({
      name: `${r.n} matches: provider requests per sweep`,
      value: steady[0].twitchStreamsRequests + steady[0].srsPages,
      unit: 'requests',
      note: `Twitch ${steady[0].twitchStreamsRequests} (100 logins each), SRS ${steady[0].srsPages} pages (1000 streams each)`,
    });
    figures.push({
      name: `${r.n} matches: steady samples`,
      value: steady[0].samples.healthy,
      unit: 'healthy',
      note: `${steady[0].samples.unknown} unknown, ${steady[0].samples.violating} violating`,
    });
  }
  const last = results.at(-1);
  figures.push({
    name: `memory after ${last.n} matches: rss`,
    value: mib(last.memory.after.rss),
    unit: 'MiB',
    note: `before the first sweep ${mib(last.memory.before.rss)} MiB`,
  });
  figures.push({
    name: `memory after ${last.n} matches: heap used`,
    value: mib(last.memory.after.heapUsed),
    unit: 'MiB',
    note: `before ${mib(last.memory.before.heapUsed)} MiB${global.gc ? ' (after gc)' : ' (run with --expose-gc for post-gc figures)'}`,
  });

  recordResult(NAME, {
    measured: 'StreamHealthWorker.sweep() on real PostgreSQL + Redis, Twitch/SRS fakes over HTTP in a child process',
    figures,
    details: { sizes: SIZES, checkEveryMs: CHECK_MS, results },
  });
}

onCleanup(async () => undefined);
runBench(NAME, main, { hardLimitMs: 1_200_000 });
