#!/usr/bin/env node
// Prometheus tools for the alert-rule unit tests and the dashboard e2e test: `promtool` and `prometheus` from
// Debian's `prometheus` package. Installed when absent, as scripts/services.mjs fetches Kafka.
//
//   node scripts/prometheus.mjs ensure     install the package when promtool or prometheus is missing
//
// The package's service is never started: while installing, a policy-rc.d that refuses every start is put in
// place (unless the machine has one already), so the postinst does not launch a Prometheus on :9090.

import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const POLICY = '/usr/sbin/policy-rc.d';

function which(name) {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

function run(command, args, env = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
}

/** Paths of promtool and prometheus, installing Debian's package first when either is missing. */
export function ensurePrometheusTools() {
  let promtool = which('promtool');
  let prometheus = which('prometheus');
  if (promtool && prometheus) return { promtool, prometheus };
  if (!which('apt-get')) throw new Error('promtool/prometheus missing and no apt-get here: install Prometheus 2.x so both are on PATH');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error(
      'promtool/prometheus missing: run `sudo apt-get update && sudo apt-get install -y prometheus` (then `sudo systemctl disable --now prometheus` if you do not want the service)',
    );
  }
  console.log('▶ installing Debian package prometheus (for promtool and the dashboard test; its service is not started)');
  const ownPolicy = !existsSync(POLICY);
  if (ownPolicy) {
    writeFileSync(POLICY, '#!/bin/sh\n# Placed by flocknode-workers scripts/prometheus.mjs while installing; removed after.\nexit 101\n');
    chmodSync(POLICY, 0o755);
  }
  try {
    const env = { DEBIAN_FRONTEND: 'noninteractive' };
    run('apt-get', ['update'], env);
    run('apt-get', ['install', '-y', '--no-install-recommends', 'prometheus'], env);
  } finally {
    if (ownPolicy) rmSync(POLICY, { force: true });
  }
  promtool = which('promtool');
  prometheus = which('prometheus');
  if (!promtool || !prometheus) throw new Error('installed the prometheus package but promtool/prometheus are still not on PATH');
  return { promtool, prometheus };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command] = process.argv.slice(2);
  if (command !== 'ensure') {
    console.error('usage: node scripts/prometheus.mjs ensure');
    process.exit(2);
  }
  try {
    const tools = ensurePrometheusTools();
    console.log(`promtool: ${tools.promtool}\nprometheus: ${tools.prometheus}`);
  } catch (error) {
    console.error(`✖ ${error.message}`);
    process.exit(1);
  }
}
