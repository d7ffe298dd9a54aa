#!/usr/bin/env node
// Chromium for the operator console's browser test (test/e2e/console.spec.ts): Debian's `chromium` package, driven by
// playwright-core (which never downloads a browser of its own). Installed when absent, as scripts/prometheus.mjs
// installs promtool.
//
//   node scripts/chromium.mjs ensure     install the package when /usr/bin/chromium is missing

import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser'];

function which(name) {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  return found.status === 0 ? found.stdout.trim() : null;
}

function run(command, args, env = {}) {
  const result = spawnSync(command, args, { stdio: 'inherit', env: { ...process.env, ...env } });
  if (result.status !== 0) throw new Error(`${command} ${args.join(' ')} exited with ${result.status ?? result.signal}`);
}

function found() {
  if (process.env.CHROMIUM_PATH && existsSync(process.env.CHROMIUM_PATH)) return process.env.CHROMIUM_PATH;
  return CANDIDATES.find((path) => existsSync(path)) ?? null;
}

/** The path of a Chromium binary, installing Debian's `chromium` package first when there is none. */
export function ensureChromium() {
  const present = found();
  if (present) return present;
  if (!which('apt-get')) throw new Error('chromium missing and no apt-get here: install Chromium and set CHROMIUM_PATH to its binary');
  if (typeof process.getuid === 'function' && process.getuid() !== 0) {
    throw new Error('chromium missing: run `sudo apt-get update && sudo apt-get install -y chromium` (or set CHROMIUM_PATH)');
  }
  console.log('▶ installing Debian package chromium (for the operator console browser test)');
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  run('apt-get', ['update'], env);
  run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium'], env);
  const installed = found();
  if (!installed) throw new Error('installed the chromium package but /usr/bin/chromium is still missing');
  return installed;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [command] = process.argv.slice(2);
  if (command !== 'ensure') {
    console.error('usage: node scripts/chromium.mjs ensure');
    process.exit(2);
  }
  try {
    console.log(`chromium: ${ensureChromium()}`);
  } catch (error) {
    console.error(`✖ ${error.message}`);
    process.exit(1);
  }
}
