#!/usr/bin/env node
// Accepted overlay.heartbeat calls/s of the SERVICE beside a BARE Fastify webhook route (the yardstick), in one run,
// same machine, same client, same Redis and PostgreSQL:
//   service — `node dist/src/main.js start` as its own process (one instance; Fastify + Nest + HmacGuard +
//             HookVerifier; nonces and the key budget on the real Redis; PostgreSQL; embedded bus; LOG_LEVEL info to
//             /dev/null). Every overlay is connected first, so heartbeats take the steady-state path (coalesced
//             presence, docs/security.md "Overlay presence").
//   bare    — bench/lib/bare-hook-server.mjs as its own process: raw-body HMAC check, nonce SET NX PX on the same
//             Redis, one INSERT into PostgreSQL, 202.
// Bodies: 1 KB heartbeats (`seq` increasing per key, a data object with numbers and text), each validly signed with
// a fresh nonce and the real time (the service's HMAC v1 headers, the bare route's raw-body headers), signed just
// before sending in the closed loop, before each step in the open loop. Keys: BENCH_HOOK_KEYS (640) matches with one overlay key each; in the closed loop each connection
// owns its keys, so one key's calls never overtake each other.
//
// Phases, alternating between the targets (service, bare, service, …) so load changes on the machine hit both:
//   max    — closed loop, 32 keep-alive connections, BENCH_HOOK_MAX_S (8) s: accepted (202) calls/s, best of
//            BENCH_HOOK_ROUNDS (3) rounds;
//   rates  — open loop at 500 / 1,000 / 2,000 calls/s (BENCH_HOOK_OPEN_RATES), BENCH_HOOK_OPEN_S (5) s each, over
//            the same 32 connections: requests sent at their scheduled instants whether or not earlier ones
//            answered; latency from the SCHEDULED time to the last response byte (no coordinated omission).
// Ratio = service max ÷ bare max (target ≥ 0.5, and ≥ 2,000 accepted/s).
// RSS mode: BENCH_HOOK_RSS_REQUESTS=1000000 then also sends that many heartbeats to the service (closed loop, 32
// connections) and samples the service process's RSS (/proc/<pid>/status) every 100,000 requests: levels off or not.
// At the end the service is stopped with SIGTERM (it flushes held presence) and stored rows are counted.
//
//   node_modules/.bin/node bench/hook-throughput.mjs
import { fork, spawn } from 'node:child_process';
import { createHmac, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import {
  DIST,
  deleteRedisPrefix,
  freshPostgresDatabase,
  onCleanup,
  percentile,
  randomName,
  recordResult,
  requireBuild,
  requireRedis,
  ROOT,
  round,
  runBench,
  SECRETS,
  sleep,
  waitFor,
} from './lib/common.mjs';

const NAME = 'hook-throughput';
const CONNECTIONS = 32;
const KEYS = Number(process.env.BENCH_HOOK_KEYS ?? 640);
const MAX_S = Number(process.env.BENCH_HOOK_MAX_S ?? 8);
const OPEN_S = Number(process.env.BENCH_HOOK_OPEN_S ?? 5);
const ROUNDS = Number(process.env.BENCH_HOOK_ROUNDS ?? 3);
const OPEN_GRACE_S = 10;
const OPEN_RATES = (process.env.BENCH_HOOK_OPEN_RATES ?? '500,1000,2000').split(',').map(Number);
const RSS_REQUESTS = Number(process.env.BENCH_HOOK_RSS_REQUESTS ?? 0);
const RSS_EVERY = 100_000;
const BODY_BYTES = 1024;
const TARGET_RATIO = 0.5;
const TARGET_ACCEPTED = 2000;

const { sign } = await import(join(DIST, 'src/security/signer.js'));

// ---- requests ----------------------------------------------------------------------------------------------------

/** A 1 KB heartbeat: realistic fields, numbers and text, padded to BODY_BYTES of JSON. */
function heartbeatBody(matchId, seq) {
  const body = {
    type: 'overlay.heartbeat',
    matchId,
    seq,
    data: {
      scene: 'in-game',
      fps: 60,
      bitrateKbps: 6000 + (seq % 500),
      droppedFrames: seq % 7,
      encoder: { name: 'x264', preset: 'veryfast', keyframeSec: 2 },
      samples: Array.from({ length: 24 }, (_, i) => ((seq + i) * 37) % 1000),
      note: '',
    },
  };
  const pad = BODY_BYTES - Buffer.byteLength(JSON.stringify(body));
  body.data.note = 'x'.repeat(Math.max(0, pad));
  return JSON.stringify(body);
}

const seqOf = new Map();
const nextSeq = (key) => {
  const n = (seqOf.get(key.keyId) ?? 0) + 1;
  seqOf.set(key.keyId, n);
  return n;
};

/** One request for `target`: the service gets HMAC v1 headers, the bare route the raw-body ones. */
function signedRequest(target, key) {
  const text = heartbeatBody(key.matchId, nextSeq(key));
  if (target === 'service') {
    const s = sign({ keyId: key.keyId, secret: key.secret, ts: Date.now(), body: text });
    return {
      body: s.body,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(s.body)), ...s.headers },
    };
  }
  const ts = String(Date.now());
  const nonce = randomBytes(16).toString('base64url');
  const signature = createHmac('sha256', Buffer.from(key.secret, 'base64url')).update(`${nonce}.${ts}.${text}`).digest('base64');
  return {
    body: text,
    headers: {
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(text)),
      'x-key-id': key.keyId,
      'x-ts': ts,
      'x-nonce': nonce,
      'x-signature': signature,
    },
  };
}

function sendOne(agent, port, req) {
  return new Promise((resolve) => {
    const r = http.request({ host: '127.0.0.1', port, method: 'POST', path: '/v1/overlay/events', agent, headers: req.headers }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(-1));
    });
    r.on('error', () => resolve(-1));
    r.end(req.body);
  });
}

const newAgent = () => new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS, maxFreeSockets: CONNECTIONS });

/** Closed loop: CONNECTIONS loops, each over its own keys, until `until()` says stop; requests from `next(loop)`. */
async function closedLoop(port, next, until) {
  const agent = newAgent();
  const byStatus = {};
  let count = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: CONNECTIONS }, async (_, loop) => {
      for (;;) {
        if (until(count)) return;
        const req = next(loop);
        if (!req) return;
        count++;
        const status = await sendOne(agent, port, req);
        byStatus[status] = (byStatus[status] ?? 0) + 1;
      }
    }),
  );
  const elapsedS = (performance.now() - t0) / 1000;
  agent.destroy();
  return { count, byStatus, elapsedS };
}

/** Each connection's own keys (so one key's calls never overtake each other in the closed loop). */
function keysPerConnection(keys) {
  return Array.from({ length: CONNECTIONS }, (_, loop) => keys.filter((_, i) => i % CONNECTIONS === loop));
}

/**
 * Closed loop for `seconds` (or until `limit` requests): each request is signed just before it is sent (the ts stays
 * fresh however slow the machine), by the same client code for both targets.
 */
async function maxThroughput(target, port, keys, seconds, limit = Number.POSITIVE_INFINITY) {
  const own = keysPerConnection(keys);
  const turn = new Array(CONNECTIONS).fill(0);
  const deadline = performance.now() + seconds * 1000;
  const r = await closedLoop(
    port,
    (loop) => signedRequest(target, own[loop][turn[loop]++ % own[loop].length]),
    (count) => count >= limit || performance.now() >= deadline,
  );
  const accepted = r.byStatus['202'] ?? 0;
  return { ...r, accepted, acceptedPerSec: round(accepted / r.elapsedS, 0) };
}

async function openLoop(target, port, keys, rate, seconds) {
  const count = Math.round(rate * seconds);
  const requests = Array.from({ length: count }, (_, i) => signedRequest(target, keys[i % keys.length]));
  const agent = newAgent();
  const latency = new Float64Array(count);
  const status = new Int32Array(count);
  const intervalMs = 1000 / rate;
  let next = 0;
  let done = 0;
  let maxLagMs = 0;
  const t0 = performance.now() + 20;
  // A saturated target is not waited out for ever: calls unanswered OPEN_GRACE_S after the step count as failed,
  // with latency from their scheduled time to the cut-off (a lower bound).
  let cutOff;
  await new Promise((resolveAll) => {
    cutOff = setTimeout(resolveAll, (seconds + OPEN_GRACE_S) * 1000);
    const pump = () => {
      const now = performance.now();
      while (next < count && t0 + next * intervalMs <= now) {
        const i = next++;
        const scheduled = t0 + i * intervalMs;
        maxLagMs = Math.max(maxLagMs, now - scheduled);
        void sendOne(agent, port, requests[i]).then((code) => {
          latency[i] = performance.now() - scheduled;
          status[i] = code;
          if (++done === count) resolveAll();
        });
      }
      if (next < count) {
        const wait = t0 + next * intervalMs - performance.now();
        if (wait > 1.5) setTimeout(pump, Math.floor(wait - 0.5));
        else setImmediate(pump);
      }
    };
    pump();
  });
  clearTimeout(cutOff);
  const elapsedS = (performance.now() - t0) / 1000;
  const unanswered = count - done;
  for (let i = 0; i < count; i++) if (status[i] === 0) latency[i] = performance.now() - (t0 + i * intervalMs);
  next = count; // stop the pump
  agent.destroy();
  const sorted = Array.from(latency).sort((a, b) => a - b);
  const byStatus = {};
  for (const s of status) byStatus[s] = (byStatus[s] ?? 0) + 1;
  const accepted = byStatus['202'] ?? 0;
  return {
    rate,
    count,
    accepted,
    nonAccepted: count - accepted,
    byStatus,
    achievedPerSec: round(accepted / elapsedS, 0),
    p50Ms: round(percentile(sorted, 50), 2),
    p99Ms: round(percentile(sorted, 99), 2),
    maxMs: round(sorted[sorted.length - 1], 2),
    clientMaxLagMs: round(maxLagMs, 1),
    unanswered,
    saturated: unanswered > 0 || accepted < count * 0.95,
  };
}

// ---- processes ---------------------------------------------------------------------------------------------------

function rssMb(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)\s+kB/.exec(status)?.[1] ?? Number.NaN);
  return round(kb / 1024, 1);
}

async function freePort() {
  const server = net.createServer();
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address();
  await new Promise((r) => server.close(r));
  return port;
}

async function startServiceProcess(env) {
  const port = await freePort();
  const node = join(ROOT, 'node_modules', 'node', 'bin', 'node');
  // BENCH_HOOK_SERVICE_CPU_PROF=<dir>: the service writes a V8 CPU profile there when it exits (after SIGTERM).
  const profile = process.env.BENCH_HOOK_SERVICE_CPU_PROF
    ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_HOOK_SERVICE_CPU_PROF}`]
    : [];
  const child = spawn(node, [...profile, join(DIST, 'src', 'main.js'), 'start'], {
    env: { PATH: process.env.PATH ?? '', ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  const exited = new Promise((r) => child.once('exit', (code) => r(code)));
  const url = `http://127.0.0.1:${port}`;
  await waitFor(
    async () => {
      if (child.exitCode !== null) throw new Error(`service exited with ${child.exitCode}: ${stderr}`);
      return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200;
    },
    60_000,
    'service /readyz',
  );
  let stopped = false;
  const stop = async () => {
    if (stopped) return exited;
    stopped = true;
    child.kill('SIGTERM');
    const code = await Promise.race([exited, sleep(20_000).then(() => 'timeout')]);
    if (code === 'timeout') child.kill('SIGKILL');
    return code;
  };
  onCleanup(stop);
  return { pid: child.pid, port, url, stop };
}

async function startBare(databaseUrl, redisUrl, redisPrefix, keys) {
  const child = fork(join(import.meta.dirname, 'lib', 'bare-hook-server.mjs'), [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const listening = new Promise((resolve, reject) => {
    child.once('message', resolve);
    child.once('exit', (code) => reject(new Error(`bare server exited with ${code}`)));
  });
  child.send({ kind: 'start', databaseUrl, redisUrl, redisPrefix, keys: keys.map(({ keyId, secret }) => ({ keyId, secret })) });
  const { port, pid } = await listening;
  const stop = async () => {
    if (child.exitCode !== null) return;
    child.disconnect();
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(5_000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  onCleanup(stop);
  return { pid, port, stop };
}

async function internal(url, method, path, body) {
  const r = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${SECRETS.INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  if (r.status >= 300) throw new Error(`${method} ${path}: ${r.status} ${text}`);
  return JSON.parse(text);
}

// ---- run ---------------------------------------------------------------------------------------------------------

/**
 * Both targets, phase by phase, alternating (service, bare, service, bare, …) so that a change in the machine's
 * load during the run hits both alike; max throughput is the best of ROUNDS rounds of each.
 */
async function measureBoth(targets, keys) {
  for (const t of targets) {
    console.log(`${t.name}: warm-up`);
    await maxThroughput(t.name, t.port, keys, 3);
  }
  const max = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const t of targets) {
      await sleep(1500);
      const r = await maxThroughput(t.name, t.port, keys, MAX_S);
      console.log(
        `${t.name}: max round ${round + 1}: ${r.acceptedPerSec} accepted/s (${r.accepted} of ${r.count} in ${round1(r.elapsedS)} s; statuses ${JSON.stringify(r.byStatus)})`,
      );
      max[t.name].push(r);
    }
  }
  const rates = Object.fromEntries(targets.map((t) => [t.name, []]));
  for (const rate of OPEN_RATES) {
    for (const t of targets) {
      await sleep(1500);
      const r = await openLoop(t.name, t.port, keys, rate, OPEN_S);
      console.log(
        `${t.name}: ${rate}/s offered → ${r.achievedPerSec}/s accepted, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms, max ${r.maxMs} ms, non-202 ${r.nonAccepted} (unanswered ${r.unanswered}), client lag max ${r.clientMaxLagMs} ms`,
      );
      rates[t.name].push(r);
    }
  }
  return Object.fromEntries(
    targets.map((t) => {
      const best = max[t.name].reduce((a, b) => (b.acceptedPerSec > a.acceptedPerSec ? b : a));
      return [
        t.name,
        { target: t.name, max: best, maxRounds: max[t.name].map((r) => r.acceptedPerSec), rates: rates[t.name], rssAfterMb: rssMb(t.pid) },
      ];
    }),
  );
}

const round1 = (x) => round(x, 1);

async function rssRun(port, keys, pid) {
  const samples = [{ requests: 0, rssMb: rssMb(pid) }];
  let sent = 0;
  let accepted = 0;
  const byStatus = {};
  const t0 = performance.now();
  while (sent < RSS_REQUESTS) {
    // Sampled every RSS_EVERY requests.
    const chunk = Math.min(RSS_EVERY, RSS_REQUESTS - sent);
    const r = await maxThroughput('service', port, keys, Number.POSITIVE_INFINITY, chunk);
    sent += r.count;
    accepted += r.byStatus['202'] ?? 0;
    for (const [s, n] of Object.entries(r.byStatus)) byStatus[s] = (byStatus[s] ?? 0) + n;
    samples.push({ requests: sent, rssMb: rssMb(pid), perSec: round(r.count / r.elapsedS, 0) });
    console.log(`rss: ${sent.toLocaleString('en-US')} requests → ${samples.at(-1).rssMb} MB (${samples.at(-1).perSec}/s)`);
  }
  // Levels off: the growth over the second half is under a tenth of the first half's (and under 32 MB).
  const mid = samples[Math.floor(samples.length / 2)].rssMb;
  const firstHalf = mid - samples[1].rssMb;
  const secondHalf = samples.at(-1).rssMb - mid;
  const levelsOff = secondHalf < 32 && secondHalf <= Math.max(8, firstHalf / 10 + 8);
  return {
    samples,
    sent,
    accepted,
    byStatus,
    elapsedS: round((performance.now() - t0) / 1000, 0),
    firstHalfMb: round(firstHalf, 1),
    secondHalfMb: round(secondHalf, 1),
    levelsOff,
  };
}

async function main() {
  requireBuild();
  const redisUrl = await requireRedis();
  const db = await freshPostgresDatabase();
  onCleanup(() => db.drop());
  const redisPrefix = `${randomName('fwbench')}:`;
  const barePrefix = `${randomName('fwbare')}:`;
  onCleanup(() => deleteRedisPrefix(redisUrl, redisPrefix));
  onCleanup(() => deleteRedisPrefix(redisUrl, barePrefix));

  const service = await startServiceProcess({
    ...SECRETS,
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: redisPrefix,
    ALLOW_EMBEDDED: 'kafka',
    PTERO_APP_URL: 'http://127.0.0.1:9',
    PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    HMAC_FAILURE_LIMIT_PER_MIN: '1000000',
    HMAC_KEY_BUDGET: '1000000000',
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    INSTANCE_ID: randomName('bench-'),
  });
  console.log(`${NAME}: service pid ${service.pid}, ${KEYS} matches with one overlay key each`);
  const agent = newAgent();
  const setUpKey = async (i) => {
    const matchId = `ht-${i}-${randomName('')}`;
    await internal(service.url, 'PUT', `/v1/internal/matches/${matchId}`, {
      mode: 'VERIFIED_STREAM',
      status: 'IN_PROGRESS',
      entryFee: { amountCents: 500, currency: 'USD' },
      overlayRequired: true,
      streamWaiver: { reason: 'bench: stream health is not measured here', grantedBy: 'bench' },
      players: [
        { side: 'p1', playerId: `a-${matchId}`, streamChannels: [`srs:live/a${i}`] },
        { side: 'p2', playerId: `b-${matchId}`, streamChannels: [`srs:live/b${i}`] },
      ],
    });
    const issued = await internal(service.url, 'POST', '/v1/internal/keys', { matchId, kind: 'overlay' });
    const key = { keyId: issued.keyId, secret: issued.secret, matchId };
    // Every overlay announces itself first (the direct path), as a real agent does before it beats.
    const s = sign({
      keyId: key.keyId,
      secret: key.secret,
      ts: Date.now(),
      body: JSON.stringify({ type: 'overlay.connected', matchId, seq: nextSeq(key) }),
    });
    const code = await sendOne(agent, service.port, { body: s.body, headers: { 'content-type': 'application/json', ...s.headers } });
    if (code !== 202) throw new Error(`overlay.connected: ${code}`);
    return key;
  };
  const keys = [];
  for (let i = 0; i < KEYS; i += 16)
    keys.push(...(await Promise.all(Array.from({ length: Math.min(16, KEYS - i) }, (_, j) => setUpKey(i + j)))));
  agent.destroy();

  const client = new pg.Client({ connectionString: db.url });
  await client.connect();
  onCleanup(() => client.end());
  await client.query(
    'CREATE TABLE bare_hook_calls (id bigserial PRIMARY KEY, key_id text NOT NULL, nonce text NOT NULL, body jsonb NOT NULL, received_at timestamptz NOT NULL)',
  );

  const bare = await startBare(db.url, redisUrl, barePrefix, keys);
  const results = await measureBoth(
    [
      { name: 'service', port: service.port, pid: service.pid },
      { name: 'bare', port: bare.port, pid: bare.pid },
    ],
    keys,
  );
  const serviceResult = results.service;
  const bareResult = results.bare;
  await bare.stop();
  let rss = null;
  if (RSS_REQUESTS > 0) rss = await rssRun(service.port, keys, service.pid);
  const exitCode = await service.stop();
  const rows = await client.query(
    `select count(*) filter (where type = 'overlay.heartbeat')::int hb, count(*) filter (where type like 'violation:%')::int v from overlay_events`,
  );

  const ratio = round(serviceResult.max.acceptedPerSec / bareResult.max.acceptedPerSec, 2);
  const figures = [
    {
      name: 'accepted overlay.heartbeat/s, 32 connections: service',
      value: serviceResult.max.acceptedPerSec,
      unit: 'calls/s',
      note: `target ≥ ${TARGET_ACCEPTED}; best of ${ROUNDS}: ${serviceResult.maxRounds.join(', ')}; non-202 ${serviceResult.max.count - serviceResult.max.accepted}`,
    },
    {
      name: 'same: bare Fastify route (yardstick)',
      value: bareResult.max.acceptedPerSec,
      unit: 'calls/s',
      note: `best of ${ROUNDS}: ${bareResult.maxRounds.join(', ')}; non-202 ${bareResult.max.count - bareResult.max.accepted}`,
    },
    { name: 'ratio service ÷ bare', value: ratio, unit: '×', note: `target ≥ ${TARGET_RATIO}` },
  ];
  for (const [i, rate] of OPEN_RATES.entries()) {
    const s = serviceResult.rates[i];
    const b = bareResult.rates[i];
    figures.push({
      name: `p50 / p99 at ${rate}/s offered: service | bare`,
      value: `${s.p50Ms} / ${s.p99Ms} | ${b.p50Ms} / ${b.p99Ms}`,
      unit: 'ms',
      note: `accepted ${s.achievedPerSec}/s | ${b.achievedPerSec}/s; non-202 ${s.nonAccepted} | ${b.nonAccepted}`,
    });
  }
  figures.push({
    name: 'service heartbeats stored after SIGTERM',
    value: rows.rows[0].hb,
    unit: 'rows',
    note: `violations ${rows.rows[0].v}; service exit ${exitCode}`,
  });
  if (rss) {
    figures.push({
      name: `service RSS after ${rss.sent.toLocaleString('en-US')} requests`,
      value: rss.samples.at(-1).rssMb,
      unit: 'MB',
      note: `${rss.levelsOff ? 'levels off' : 'GROWS'}: +${rss.firstHalfMb} MB first half, +${rss.secondHalfMb} MB second half; samples ${rss.samples.map((s) => s.rssMb).join(' → ')}`,
    });
  }
  recordResult(NAME, {
    measured:
      'accepted overlay.heartbeat calls/s and open-loop latency: the service (own process, real Redis + PostgreSQL) beside a bare Fastify route (raw-body HMAC, nonce SET NX PX, one INSERT)',
    figures,
    details: { service: serviceResult, bare: bareResult, ratio, rss, keys: KEYS, connections: CONNECTIONS, bodyBytes: BODY_BYTES },
  });
}

runBench(NAME, main, { hardLimitMs: 420_000 + RSS_REQUESTS * 2 });
