#!/usr/bin/env node
// Runs the benchmarks in bench/ one after another against the BUILT code (dist/), then prints one figures table
// and writes bench/results/latest.json. `npm run bench` builds first; run alone with `node scripts/bench.mjs`.
//
//   node scripts/bench.mjs                     every bench, in the order below
//   node scripts/bench.mjs hmac-verify ...     only the named ones
//
// Each bench is a separate process (`node --expose-gc bench/<name>.mjs`, also runnable alone) that writes
// bench/results/<name>.json through bench/lib/common.mjs `recordResult`. Real services on loopback only:
// PostgreSQL 127.0.0.1:5432, Redis 127.0.0.1:6379, Kafka from `node scripts/services.mjs up` (started here first
// unless BENCH_SKIP_SERVICES=1). A bench that runs past BENCH_TIMEOUT_MS (default 300 s; stream-sweep 900 s) is
// stopped with SIGTERM (it cleans up), then SIGKILL. Exit code: 1 when any bench failed or was missing results.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS = join(ROOT, 'bench', 'results');
/** Order: CPU-sensitive micro-benchmarks first, then the service-level ones; stream-sweep is optional. */
const BENCHES = [
  { name: 'hmac-verify' },
  { name: 'hook-latency' },
  { name: 'hook-throughput', timeoutMs: 600_000 },
  { name: 'provision-throughput' },
  { name: 'provision-fleet', timeoutMs: 900_000 },
  { name: 'event-pipeline', timeoutMs: 1_500_000 },
  { name: 'stream-sweep', optional: true, timeoutMs: 900_000 },
];
const DEFAULT_TIMEOUT_MS = Number(process.env.BENCH_TIMEOUT_MS ?? 300_000);

function fail(message) {
  console.error(`bench: ${message}`);
  process.exit(1);
}

const requested = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const unknown = requested.filter((r) => !BENCHES.some((b) => b.name === r));
if (unknown.length) fail(`unknown bench ${unknown.join(', ')} (known: ${BENCHES.map((b) => b.name).join(', ')})`);
const selected = requested.length ? BENCHES.filter((b) => requested.includes(b.name)) : BENCHES;

if (!existsSync(join(ROOT, 'dist', 'src', 'app.module.js'))) fail('dist/ is missing: build first (npm run build, or use npm run bench)');
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) fail(`Node ${process.version} is too old; run through npm (npm run bench) or node_modules/.bin/node`);

if (process.env.BENCH_SKIP_SERVICES !== '1') {
  console.log('bench: making sure PostgreSQL, Redis and Kafka answer (node scripts/services.mjs up)');
  const up = spawnSync(process.execPath, [join(ROOT, 'scripts', 'services.mjs'), 'up'], {
    cwd: ROOT,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  if (up.status !== 0) fail('scripts/services.mjs up failed; see above');
}

function runOne(bench) {
  const file = join(ROOT, 'bench', `${bench.name}.mjs`);
  const timeoutMs = bench.timeoutMs && !process.env.BENCH_TIMEOUT_MS ? bench.timeoutMs : DEFAULT_TIMEOUT_MS;
  return new Promise((done) => {
    const started = Date.now();
    const child = spawn(process.execPath, ['--expose-gc', file], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'], env: process.env });
    let timedOut = false;
    let killTimer;
    const timer = setTimeout(() => {
      timedOut = true;
      console.error(`bench: ${bench.name} ran past ${timeoutMs / 1000} s; stopping it (SIGTERM, cleanup, then SIGKILL)`);
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    }, timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      done({ code, signal, timedOut, ms: Date.now() - started, started });
    });
  });
}

function readResult(name, since) {
  const file = join(RESULTS, `${name}.json`);
  if (!existsSync(file) || statSync(file).mtimeMs < since) return null;
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch {
    return null;
  }
}

const runStarted = Date.now();
const runs = [];
for (const bench of selected) {
  const file = join(ROOT, 'bench', `${bench.name}.mjs`);
  if (!existsSync(file)) {
    const note = bench.optional ? 'not present (optional); skipped' : 'file missing';
    console.log(`\nbench: ${bench.name}: ${note}`);
    runs.push({ name: bench.name, status: bench.optional ? 'skipped' : 'missing', note });
    continue;
  }
  console.log(`\n=== ${bench.name} ${'='.repeat(Math.max(0, 100 - bench.name.length))}`);
  const r = await runOne(bench);
  const result = readResult(bench.name, r.started);
  const ok = r.code === 0 && !r.timedOut && result !== null;
  const status = ok ? 'ok' : r.timedOut ? 'timed out' : r.code !== 0 ? `failed (exit ${r.code ?? r.signal})` : 'no results written';
  runs.push({ name: bench.name, status, seconds: Math.round(r.ms / 100) / 10, result });
  console.log(`=== ${bench.name}: ${status} in ${(r.ms / 1000).toFixed(1)} s`);
}

// ---- the combined table -----------------------------------------------------------------------------------------
const rows = [];
for (const run of runs) {
  if (!run.result) {
    rows.push([run.name, `(${run.note ?? run.status})`, '', '']);
    continue;
  }
  for (const f of run.result.figures ?? []) {
    const value = typeof f.value === 'number' ? f.value.toLocaleString('en-US') : String(f.value);
    rows.push([run.name, f.name, `${value} ${f.unit ?? ''}`.trim(), f.note ?? '']);
  }
}
const w = [0, 1, 2].map((i) => Math.max(...rows.map((r) => r[i].length), 5));
const cpu = os.cpus();
console.log(`\n${'#'.repeat(110)}`);
console.log(
  `Figures — ${new Date().toISOString()} — Node ${process.version}, ${cpu.length} × ${cpu[0]?.model ?? 'cpu'}, load ${os
    .loadavg()
    .map((x) => x.toFixed(2))
    .join(' ')}`,
);
console.log(`${'bench'.padEnd(w[0])}  ${'figure'.padEnd(w[1])}  ${'value'.padStart(w[2])}  note`);
console.log('-'.repeat(Math.min(160, w[0] + w[1] + w[2] + 40)));
let previous = '';
for (const r of rows) {
  console.log(`${(r[0] === previous ? '' : r[0]).padEnd(w[0])}  ${r[1].padEnd(w[1])}  ${r[2].padStart(w[2])}  ${r[3]}`.trimEnd());
  previous = r[0];
}
for (const run of runs) if (run.result?.measured) console.log(`* ${run.name}: ${run.result.measured}`);

// ---- bench/results/latest.json: this run only ----------------------------------------------------------------------
mkdirSync(RESULTS, { recursive: true });
const latest = {
  updatedAt: new Date().toISOString(),
  startedAt: new Date(runStarted).toISOString(),
  machine: { node: process.version, cpus: cpu.length, cpuModel: cpu[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30) },
  runs: runs.map(({ name, status, seconds, note }) => ({ name, status, seconds, note })),
  benches: Object.fromEntries(runs.filter((r) => r.result).map((r) => [r.name, r.result])),
};
if (requested.length) {
  // A partial run keeps the other benches' last results.
  try {
    const before = JSON.parse(readFileSync(join(RESULTS, 'latest.json'), 'utf8'));
    latest.benches = { ...(before.benches ?? {}), ...latest.benches };
  } catch {
    // nothing to keep
  }
}
writeFileSync(join(RESULTS, 'latest.json'), JSON.stringify(latest, null, 2) + '\n');
console.log(`\nbench: results in ${join('bench', 'results', 'latest.json')} (per bench: bench/results/<name>.json)`);
const bad = runs.filter((r) => r.status !== 'ok' && r.status !== 'skipped');
if (bad.length) {
  console.error(`bench: ${bad.map((r) => `${r.name} ${r.status}`).join('; ')}`);
  process.exit(1);
}
