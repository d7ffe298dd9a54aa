#!/usr/bin/env node
// The project runs on Node 24 (pinned by the `node` devDependency). When started by an older system node,
// re-run this command on the pinned one instead of failing deep inside a dependency.
import { spawn } from 'node:child_process';
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
  // The child is the real service: signals sent to this wrapper (a container's PID 1, a supervisor) go on to it,
  // and its exit code (or the signal that ended it) becomes ours.
  const child = spawn(pinned, [fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' });
  const forwarded = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGQUIT', 'SIGUSR2'];
  const forward = (signal) => child.kill(signal);
  for (const signal of forwarded) process.on(signal, forward);
  child.on('error', (error) => {
    process.stderr.write(`flock-workers: could not start Node.js 24 (${error.message})\n`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    for (const s of forwarded) process.off(s, forward);
    if (signal) process.kill(process.pid, signal);
    else process.exit(code ?? 1);
  });
} else {
  const main = join(root, 'dist', 'src', 'main.js');
  if (!existsSync(main)) {
    process.stderr.write('flock-workers: not built yet; run `npm run build`\n');
    process.exit(1);
  }
  await import(main);
}
