#!/usr/bin/env node
// Sums a V8 profile by function (or by source file) and prints the top entries:
// - a sampling heap profile (.heapprofile, e.g. from BENCH_STREAM_ALLOC_PROF): bytes allocated in the function itself;
// - a CPU profile (.cpuprofile, from --cpu-prof or BENCH_STREAM_CPU_PROF): self time.
//   node bench/profile-top.mjs <file> [--top=40] [--by=function|file]
import { readFileSync } from 'node:fs';

const [file, ...flags] = process.argv.slice(2);
if (!file) {
  console.error('usage: node bench/profile-top.mjs <file.heapprofile|file.cpuprofile> [--top=40] [--by=function|file]');
  process.exit(2);
}
const opt = Object.fromEntries(flags.map((f) => f.replace(/^--/, '').split('=')));
const top = Number(opt.top ?? 40);
const by = opt.by ?? 'function';
if (by !== 'function' && by !== 'file') {
  console.error(`--by must be function or file, not ${by}`);
  process.exit(2);
}
const profile = JSON.parse(readFileSync(file, 'utf8'));
const shortUrl = (url) => url.replace(/^file:\/\/.*?\/(dist|node_modules)\//, '$1/');
const keyOf = (f) =>
  by === 'file' ? shortUrl(f.url) || '(native)' : `${f.functionName || '(anonymous)'} ${shortUrl(f.url)}:${f.lineNumber + 1}`;
const totals = new Map();
let all = 0;
let unit;
if (profile.head) {
  // Heap profile: a tree of call frames with selfSize in bytes.
  unit = (v) => `${(v / 2 ** 20).toFixed(1).padStart(9)} MiB`;
  const walk = (node) => {
    const self = node.selfSize ?? 0;
    all += self;
    const key = keyOf(node.callFrame);
    totals.set(key, (totals.get(key) ?? 0) + self);
    for (const c of node.children ?? []) walk(c);
  };
  walk(profile.head);
} else if (profile.nodes && profile.samples) {
  // CPU profile: nodes with call frames, samples (node ids) and the time between samples (µs).
  unit = (v) => `${(v / 1000).toFixed(0).padStart(9)} ms`;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  profile.samples.forEach((id, i) => {
    const dt = profile.timeDeltas?.[i] ?? 0;
    all += dt;
    const key = keyOf(byId.get(id).callFrame);
    totals.set(key, (totals.get(key) ?? 0) + dt);
  });
} else {
  console.error(`${file}: neither a heap profile (head) nor a CPU profile (nodes, samples)`);
  process.exit(2);
}
console.log(`total ${unit(all).trim()}`);
for (const [k, v] of [...totals].sort((a, b) => b[1] - a[1]).slice(0, top))
  console.log(`${unit(v)} ${((100 * v) / all).toFixed(1).padStart(5)} %  ${k}`);
