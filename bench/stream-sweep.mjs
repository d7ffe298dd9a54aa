#!/usr/bin/env node
// StreamHealthWorker sweep cost at 1k / 10k / 50k / 100k active VERIFIED_STREAM matches, beside a bare sweep of the
// same matches (bench/lib/bare-sweep-child.mjs: same database, same fakes, same requests, the least a sweep must
// do), on the real PostgreSQL and Redis, against the Twitch Helix and SRS fakes over real HTTP.
// Three processes: this one runs the service alone (scheduler stopped; the bench calls
// `services.streamHealth.sweep()`), the fakes run in one child, the bare sweep in another, so each CPU figure and
// this process's memory are the service's own. The service's clock and the fakes' clock advance together by
// STREAM_CHECK_EVERY_MS before each tick; per tick the service sweeps, then the bare sweep.
// Per size: a fresh database, N matches with two players each (one Twitch + one SRS channel per player),
// BENCH_STREAM_TICKS ticks (default 3: #1 cold — first state rows, FPS unknown: needs two samples — then steady,
// all healthy); at BENCH_STREAM_MEMORY_SIZE (default 50000) BENCH_STREAM_MEMORY_TICKS ticks (default 20).
// Reports per tick: wall time and process CPU (user+system) of the service sweep and of the bare sweep, provider
// requests, samples by outcome, and this process's RSS and V8 heap right after the sweep (no forced GC);
// figures: steady CPU per sweep (mean of ticks 2..n), the ratio service / bare, CPU per 1k matches (linearity),
// requests against ⌈streams per provider / 100⌉ + token requests, memory per tick at the memory size.
//
// The service runs under the production image's memory settings (the Dockerfile's NODE_OPTIONS V8 flags and
// MALLOC_ARENA_MAX, see productionRuntime): the bench starts itself again under them. BENCH_STREAM_RUNTIME=
// node-defaults measures under Node's own defaults instead (V8 sizes its heap from the machine's memory).
// The bare sweep runs under Node's defaults unless BENCH_STREAM_BARE_RUNTIME=production (the service's V8 flags).
// Per tick the service's main-thread GC pauses are reported by kind (scavenge, mark-compact, incremental marking).
//
//   npx tsc -p tsconfig.build.json && node_modules/.bin/node --expose-gc bench/stream-sweep.mjs
//   (BENCH_STREAM_SIZES=1000,10000 for a shorter run; --cpu-prof to profile the service;
//   BENCH_STREAM_ALLOC_PROF=<file.heapprofile>: V8's sampling heap profiler over the steady ticks, counting objects
//   already collected too, i.e. where the service allocates; BENCH_STREAM_CPU_PROF=<file.cpuprofile>: a CPU
//   profile of the same ticks; either summed by function with `node bench/profile-top.mjs <file>`)
import { fork, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { constants as perfConstants, PerformanceObserver, performance } from 'node:perf_hooks';
import {
  dist,
  freshPostgresDatabase,
  onCleanup,
  productionRuntime,
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
const RUNTIME = process.env.BENCH_STREAM_RUNTIME ?? 'production';
const BARE_RUNTIME = process.env.BENCH_STREAM_BARE_RUNTIME ?? 'node-defaults';
const SIZES = (process.env.BENCH_STREAM_SIZES ?? '1000,10000,50000,100000').split(',').map(Number);
const TICKS = Number(process.env.BENCH_STREAM_TICKS ?? 3);
const MEMORY_SIZE = Number(process.env.BENCH_STREAM_MEMORY_SIZE ?? 50000);
const MEMORY_TICKS = Number(process.env.BENCH_STREAM_MEMORY_TICKS ?? 20);
const CHECK_MS = 30_000;
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);

/** A bench child process driven over IPC, with a request/answer helper. */
async function startChild(file, execArgv = []) {
  const child = fork(join(ROOT, 'bench', 'lib', file), [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv });
  await new Promise((resolve, reject) => {
    child.once('message', (m) => (m.ready ? resolve() : reject(new Error(`${file} failed to start`))));
    child.once('exit', (code) => reject(new Error(`${file} exited with ${code}`)));
  });
  const ask = (message) =>
    new Promise((resolve, reject) => {
      // A child that dies mid-request (say, out of memory under BENCH_STREAM_BARE_RUNTIME=production) fails the run.
      const died = (code, signal) => reject(new Error(`${file} exited (${signal ?? code}) while answering ${message.cmd}`));
      child.once('exit', died);
      child.once('message', (m) => {
        child.off('exit', died);
        if (m.ok) resolve(m);
        else reject(new Error(m.error));
      });
      child.send(message);
    });
  const close = async () => {
    if (child.exitCode === null) await ask({ cmd: 'close' }).catch(() => child.kill('SIGKILL'));
  };
  return { ask, close };
}

/** The fakes' child process. */
async function startFakes(n) {
  const child = await startChild('stream-fakes-child.mjs');
  const started = await child.ask({ cmd: 'start', n, clockMs: T0 });
  return {
    ...started,
    advance: (ms) => child.ask({ cmd: 'advance', ms }),
    stats: () => child.ask({ cmd: 'stats' }),
    close: child.close,
  };
}

/**
 * The bare sweep's child process: under Node's defaults (BENCH_STREAM_BARE_RUNTIME=node-defaults, the default, as
 * in every earlier run), or under the same V8 flags as the service (`production`: both sweeps then pay the same
 * memory settings).
 */
async function startBare(databaseUrl, fakes) {
  const child = await startChild('bare-sweep-child.mjs', BARE_RUNTIME === 'production' ? productionRuntime().v8Flags : []);
  await child.ask({ cmd: 'start', databaseUrl, twitch: fakes.twitch, srs: fakes.srs });
  return { sweep: (at) => child.ask({ cmd: 'sweep', at }), close: child.close };
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

/**
 * Main-thread GC pauses of this process by kind (ms), summed as V8 reports them; helper-thread GC work is not in
 * these (it is in the process CPU figure).
 */
const gcPauses = { minor: 0, major: 0, incremental: 0, other: 0 };
new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const kind = entry.detail?.kind;
    const key =
      kind === perfConstants.NODE_PERFORMANCE_GC_MINOR
        ? 'minor'
        : kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR
          ? 'major'
          : kind === perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL
            ? 'incremental'
            : 'other';
    gcPauses[key] += entry.duration;
  }
}).observe({ entryTypes: ['gc'] });

/** GC pause totals now (after letting pending observer callbacks run). */
async function gcSnapshot() {
  await new Promise((resolve) => setImmediate(resolve));
  return { ...gcPauses };
}

function gcDelta(before, after) {
  return Object.fromEntries(Object.keys(after).map((k) => [k, round(after[k] - before[k], 0)]));
}

function mib(bytes) {
  return round(bytes / 2 ** 20, 1);
}

/**
 * RSS split into anonymous memory (heaps, malloc) and file-backed pages (the node binary, libraries), and the part
 * of it freed with MADV_FREE (V8 returns heap pages that way: still counted in RSS until the kernel needs the
 * memory), Linux only.
 */
function rssSplit() {
  try {
    const status = readFileSync('/proc/self/status', 'utf8');
    const rollup = readFileSync('/proc/self/smaps_rollup', 'utf8');
    const kib = (text, name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return {
      rssAnonMiB: round(kib(status, 'RssAnon') / 1024, 1),
      rssFileMiB: round(kib(status, 'RssFile') / 1024, 1),
      lazyFreeMiB: round(kib(rollup, 'LazyFree') / 1024, 1),
    };
  } catch {
    return {};
  }
}

/**
 * Profiles of the steady ticks (the largest size only), through the inspector: V8's sampling heap profiler with
 * the objects collected by minor and major GCs included (where the sweep allocates, not only what survives), and
 * the CPU profiler. Written as .heapprofile / .cpuprofile (Chrome DevTools loads both) when stopped.
 */
async function steadyProfiles(allocFile, cpuFile) {
  if (!allocFile && !cpuFile) return undefined;
  const { Session } = await import('node:inspector/promises');
  const { writeFileSync } = await import('node:fs');
  const session = new Session();
  session.connect();
  return {
    start: async () => {
      if (allocFile)
        await session.post('HeapProfiler.startSampling', {
          samplingInterval: 16_384,
          includeObjectsCollectedByMajorGC: true,
          includeObjectsCollectedByMinorGC: true,
        });
      if (cpuFile) {
        await session.post('Profiler.enable');
        await session.post('Profiler.start');
      }
    },
    stop: async () => {
      if (allocFile) {
        const { profile } = await session.post('HeapProfiler.stopSampling');
        writeFileSync(allocFile, JSON.stringify(profile));
        console.log(`allocation profile of the steady ticks: ${allocFile}`);
      }
      if (cpuFile) {
        const { profile } = await session.post('Profiler.stop');
        writeFileSync(cpuFile, JSON.stringify(profile));
        console.log(`CPU profile of the steady ticks: ${cpuFile}`);
      }
      session.disconnect();
    },
  };
}

async function runSize(n, redisUrl) {
  const { ManualClock } = await dist('src/infra/clock.js');
  const ticks = n === MEMORY_SIZE ? Math.max(TICKS, MEMORY_TICKS) : TICKS;
  const db = await freshPostgresDatabase();
  const fakes = await startFakes(n);
  const bare = await startBare(db.url, fakes);
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
      // The seed's 100k-row inserts and a cold sweep's writes outlast the 5 s default on a loaded shared machine.
      DB_QUERY_TIMEOUT_MS: process.env.BENCH_DB_QUERY_TIMEOUT_MS ?? '60000',
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'warn',
      // The sweep's slice (STREAM_SWEEP_SLICE); the service default when unset.
      ...(process.env.BENCH_STREAM_SLICE ? { STREAM_SWEEP_SLICE: process.env.BENCH_STREAM_SLICE } : {}),
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
  const profiles =
    n === SIZES.at(-1) ? await steadyProfiles(process.env.BENCH_STREAM_ALLOC_PROF, process.env.BENCH_STREAM_CPU_PROF) : undefined;
  for (let i = 0; i < ticks; i++) {
    if (i > 0) {
      clock.advance(CHECK_MS);
      await fakes.advance(CHECK_MS);
    }
    if (i === 1) await profiles?.start();
    await fakes.stats();
    const gc0 = await gcSnapshot();
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    const report = await service.services.streamHealth.sweep();
    const wallMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const gcMs = gcDelta(gc0, await gcSnapshot());
    const mem = process.memoryUsage();
    const requests = await fakes.stats();
    const b = await bare.sweep(clock.now());
    const bareRequests = await fakes.stats();
    sweeps.push({
      sweep: i + 1,
      wallMs: round(wallMs, 0),
      cpuMs: round((cpu.user + cpu.system) / 1000, 0),
      gcPauseMs: gcMs,
      bareCpuMs: b.cpuMs,
      bareWallMs: b.wallMs,
      bareOutcomes: b.outcomes,
      rssMiB: mib(mem.rss),
      heapUsedMiB: mib(mem.heapUsed),
      heapTotalMiB: mib(mem.heapTotal),
      externalMiB: mib(mem.external),
      arrayBuffersMiB: mib(mem.arrayBuffers),
      ...rssSplit(),
      twitchStreamsRequests: requests.twitchStreams,
      twitchTokenRequests: requests.twitchTokens,
      srsPages: requests.srsPages,
      bareRequests: { twitch: bareRequests.twitchStreams, tokens: bareRequests.twitchTokens, srsPages: bareRequests.srsPages },
      providerErrors: requests.errors,
      samples: report.samples,
      swept: report.swept,
      slices: report.slices,
      stale: report.stale,
      phases: report.phases,
    });
    console.log(`n=${n} tick ${i + 1}: ${JSON.stringify(sweeps.at(-1))}`);
    if (Number(process.env.BENCH_STREAM_SNAPSHOT_AFTER) === i + 1 && global.gc) {
      // What the service holds between sweeps: a heap snapshot after a full GC (outside the measured figures).
      global.gc();
      const { writeHeapSnapshot } = await import('node:v8');
      console.log(`n=${n} heap after gc ${mib(process.memoryUsage().heapUsed)} MiB; snapshot ${writeHeapSnapshot()}`);
    }
  }
  await profiles?.stop();
  global.gc?.();
  const memAfter = process.memoryUsage();
  await service.close();
  await bare.close();
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
  const perK = [];
  for (const r of results) {
    const steady = r.sweeps.slice(1);
    const avg = (f) => round(steady.reduce((a, s) => a + f(s), 0) / steady.length, 0);
    const cold = r.sweeps[0];
    const cpu = avg((s) => s.cpuMs);
    const bareCpu = avg((s) => s.bareCpuMs);
    perK.push(cpu / (r.n / 1000));
    figures.push({
      name: `${r.n} matches: cold sweep (first state rows)`,
      value: cold.wallMs,
      unit: 'ms wall',
      note: `${cold.cpuMs} ms CPU`,
    });
    figures.push({
      name: `${r.n} matches: steady sweep CPU, service`,
      value: cpu,
      unit: 'ms CPU',
      note: `${avg((s) => s.wallMs)} ms wall; ${round(cpu / (r.n / 1000), 0)} ms CPU per 1k matches; mean of ${steady.length} ticks`,
    });
    figures.push({
      name: `${r.n} matches: steady sweep GC pauses, service (main thread)`,
      value: avg((s) => s.gcPauseMs.minor + s.gcPauseMs.major + s.gcPauseMs.incremental + s.gcPauseMs.other),
      unit: 'ms',
      note: `scavenges ${avg((s) => s.gcPauseMs.minor)}, mark-compact ${avg((s) => s.gcPauseMs.major)}, incremental marking ${avg((s) => s.gcPauseMs.incremental)}`,
    });
    figures.push({
      name: `${r.n} matches: steady sweep CPU, bare sweep`,
      value: bareCpu,
      unit: 'ms CPU',
      note: `${avg((s) => s.bareWallMs)} ms wall; runtime ${BARE_RUNTIME}`,
    });
    figures.push({
      name: `${r.n} matches: service / bare CPU`,
      value: round(cpu / Math.max(1, bareCpu), 2),
      unit: '×',
      note: 'target ≤ 1.5',
    });
    const streams = r.n * 2;
    const s1 = steady[0];
    figures.push({
      name: `${r.n} matches: provider requests per sweep`,
      value: s1.twitchStreamsRequests + s1.srsPages,
      unit: 'requests',
      note: `Twitch ${s1.twitchStreamsRequests} (⌈${streams}/100⌉ = ${Math.ceil(streams / 100)}) + ${r.sweeps.reduce((a, s) => a + s.twitchTokenRequests, 0)} token over the run; SRS ${s1.srsPages} pages of 1000 (bare: ${s1.bareRequests.twitch} + ${s1.bareRequests.srsPages})`,
    });
    figures.push({
      name: `${r.n} matches: steady samples`,
      value: s1.samples.healthy,
      unit: 'healthy',
      note: `${s1.samples.unknown} unknown, ${s1.samples.violating} violating (bare: ${s1.bareOutcomes.healthy} healthy)`,
    });
    if (r.sweeps.length >= 10) {
      const rss = r.sweeps.map((s) => s.rssMiB);
      const heap = r.sweeps.map((s) => s.heapUsedMiB);
      figures.push({
        name: `${r.n} matches: service RSS after each of ${r.sweeps.length} ticks`,
        value: Math.max(...rss),
        unit: 'MiB max',
        note: `min ${Math.min(...rss)}, first ${rss[0]}, last ${rss.at(-1)}; target ≤ 256 MB (244 MiB)`,
      });
      figures.push({
        name: `${r.n} matches: service heap used after each tick`,
        value: Math.max(...heap),
        unit: 'MiB max',
        note: `min ${Math.min(...heap)}, first ${heap[0]}, last ${heap.at(-1)}`,
      });
    }
  }
  if (perK.length > 1) {
    figures.push({
      name: 'steady CPU per 1k matches, largest / smallest size',
      value: round(perK.at(-1) / perK[0], 2),
      unit: '×',
      note: perK.map((v, i) => `${results[i].n}: ${round(v, 0)} ms`).join(', '),
    });
  }
  const last = results.at(-1);
  figures.push({
    name: `memory after ${last.n} matches (gc): rss`,
    value: mib(last.memory.after.rss),
    unit: 'MiB',
    note: `before the first sweep ${mib(last.memory.before.rss)} MiB; heap ${mib(last.memory.after.heapUsed)} MiB${global.gc ? '' : ' (run with --expose-gc)'}`,
  });

  recordResult(NAME, {
    measured:
      'StreamHealthWorker.sweep() on real PostgreSQL + Redis, Twitch/SRS fakes over HTTP in a child process, a bare sweep of the same matches in another',
    figures,
    details: {
      sizes: SIZES,
      checkEveryMs: CHECK_MS,
      runtime: { mode: RUNTIME, execArgv: process.execArgv, MALLOC_ARENA_MAX: process.env.MALLOC_ARENA_MAX ?? null, bare: BARE_RUNTIME },
      results,
    },
  });
}

/** Runs this bench again under the production image's V8 flags and malloc setting; exits with its code. */
function underProductionRuntime() {
  const { v8Flags, env } = productionRuntime();
  console.log(
    `stream-sweep: the service runs under the production runtime: ${v8Flags.join(' ')}, MALLOC_ARENA_MAX=${env.MALLOC_ARENA_MAX}`,
  );
  const child = spawn(process.execPath, [...process.execArgv, ...v8Flags, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, ...env, BENCH_STREAM_RUNTIME_APPLIED: '1' },
  });
  for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => child.kill(signal));
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

if (RUNTIME !== 'production' && RUNTIME !== 'node-defaults') {
  console.error(`stream-sweep: BENCH_STREAM_RUNTIME must be production or node-defaults, not ${RUNTIME}`);
  process.exit(2);
} else if (BARE_RUNTIME !== 'production' && BARE_RUNTIME !== 'node-defaults') {
  console.error(`stream-sweep: BENCH_STREAM_BARE_RUNTIME must be production or node-defaults, not ${BARE_RUNTIME}`);
  process.exit(2);
} else if (RUNTIME === 'production' && process.env.BENCH_STREAM_RUNTIME_APPLIED !== '1') {
  underProductionRuntime();
} else {
  onCleanup(async () => undefined);
  runBench(NAME, main, { hardLimitMs: 3_600_000 });
}
