#!/usr/bin/env node
// `npm test`: checks the imports of src/ (scripts/check-imports.mjs), starts what the suite needs (PostgreSQL and
// Redis from the machine, a local Kafka broker fetched from Maven Central, promtool, prometheus and chromium from
// Debian's packages), runs every test project (unit, integration, e2e) and prints one closing line.
// A Kafka broker this run started is stopped again at the end; one that was already running is left alone.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const node = process.execPath;
const services = join(ROOT, 'scripts', 'services.mjs');
const results = join(ROOT, '.cache', 'vitest-results.json');
mkdirSync(dirname(results), { recursive: true });

const run = (args, opts = {}) => spawnSync(node, args, { stdio: 'inherit', cwd: ROOT, ...opts });
const started = Date.now();

console.log('▶ checking imports (cycles in src/, test code in the product)');
const imports = run([join(ROOT, 'scripts', 'check-imports.mjs')]);
if (imports.status !== 0) {
  console.error('✖ import check failed; see the findings above');
  console.log('Tests: 0 passed, 1 failed');
  process.exit(1);
}

console.log('▶ lint and format (Biome)');
const lint = run([join(ROOT, 'node_modules', '@biomejs', 'biome', 'bin', 'biome'), 'check', '.']);
if (lint.status !== 0) {
  console.error('✖ lint or format check failed; `npm run format` fixes formatting, the messages above name the rest');
  console.log('Tests: 0 passed, 1 failed');
  process.exit(1);
}

const before = spawnSync(node, [services, 'status'], { cwd: ROOT, encoding: 'utf8' });
const kafkaWasRunning = /kafka\s+\S+\s+answering/.test(before.stdout ?? '');

console.log('▶ starting test services (PostgreSQL, Redis, Kafka)');
const up = run([services, 'up']);
if (up.status !== 0) {
  console.error('✖ test services could not be started; see the messages above');
  process.exit(1);
}

console.log('▶ checking promtool and prometheus (alert-rule and dashboard tests)');
const tools = run([join(ROOT, 'scripts', 'prometheus.mjs'), 'ensure']);
if (tools.status !== 0) {
  console.error('✖ promtool/prometheus could not be installed; see the messages above');
  process.exit(1);
}

console.log('▶ checking chromium (operator console browser test)');
const browser = run([join(ROOT, 'scripts', 'chromium.mjs'), 'ensure']);
if (browser.status !== 0) {
  console.error('✖ chromium could not be installed; see the messages above');
  process.exit(1);
}

console.log('▶ running the test suite (unit, integration, e2e)');
const vitest = run([
  join(ROOT, 'node_modules', 'vitest', 'vitest.mjs'),
  'run',
  '--reporter=default',
  '--reporter=json',
  `--outputFile=${results}`,
  ...process.argv.slice(2),
]);

if (!kafkaWasRunning && !process.env.KEEP_SERVICES) {
  console.log('▶ stopping the Kafka broker this run started');
  run([services, 'down']);
}

let passed = 0;
let failed = 0;
let skipped = 0;
if (existsSync(results)) {
  const report = JSON.parse(readFileSync(results, 'utf8'));
  passed = report.numPassedTests ?? 0;
  // A file that fails to load has no failed test of its own; count it once.
  failed = report.numFailedTests || report.numFailedTestSuites || 0;
  skipped = (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
}
const code = vitest.status ?? 1;
if (code !== 0 && failed === 0) failed = 1; // a suite that failed to load counts as a failure
console.log(`\nfinished in ${Math.round((Date.now() - started) / 1000)} s`);
console.log(`Tests: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(code);
