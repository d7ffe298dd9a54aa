#!/usr/bin/env node
// The project runs on Node 24 (pinned by the `node` devDependency). When started by an older system node,
// re-run this command on the pinned one instead of failing deep inside a dependency.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const major = Number(process.versions.node.split('.')[0]);
if (major < 24) {
  const pinned = join(root, 'node_modules', 'node', 'bin', 'node');
  if (!existsSync(pinned)) {
    process.stderr.write(`flock-workers: needs Node.js 24 (this is ${process.versions.node}); run \`npm ci\` first\n`);
    process.exit(1);
  }
  const result = spawnSync(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  process.exit(result.status ?? 1);
}
const main = join(root, 'dist', 'src', 'main.js');
if (!existsSync(main)) {
  process.stderr.write('flock-workers: not built yet; run `npm run build`\n');
  process.exit(1);
}
await import(main);
