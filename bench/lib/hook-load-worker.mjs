// Open-loop load generator for bench/hook-latency.mjs, run in a worker thread (its own event loop, so the
// service's event loop in the main thread is not disturbed by the client's bookkeeping).
//
// For each step (a fixed arrival rate for a fixed time) every request is signed beforehand with a fresh nonce and
// the real time (ts at most one step old, far inside the ±60 s skew); then requests are sent at their scheduled
// instants whether or not earlier ones have answered. Latency is measured from the SCHEDULED send time to the last
// byte of the response, so a server that falls behind is charged for the queueing it causes (no coordinated
// omission). The lag between schedule and actual send is reported separately, to show the client kept up.
import http from 'node:http';
import { parentPort, workerData } from 'node:worker_threads';

const { url, keys, signerPath, path } = workerData;
const { sign } = await import(signerPath);
const target = new URL(url);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 1024 });

function sendOne(req) {
  return new Promise((resolve) => {
    const r = http.request({ host: target.hostname, port: target.port, method: 'POST', path, agent, headers: req.headers }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve(res.statusCode ?? 0));
      res.on('error', () => resolve(-1));
    });
    r.on('error', () => resolve(-1));
    r.end(req.body);
  });
}

/** Next `seq` per key for gameplay.progress (keys are used round-robin, so one key's calls are far apart). */
const seqOf = new Map();

function bodyFor(hookType, key) {
  if (hookType === 'gameplay.progress') {
    const seq = (seqOf.get(key.keyId) ?? 0) + 1;
    seqOf.set(key.keyId, seq);
    return {
      type: 'gameplay.progress',
      matchId: key.matchId,
      seq,
      data: { round: seq, score: [seq % 13, (seq * 7) % 13], mvp: 'player-3' },
    };
  }
  return { type: hookType, matchId: key.matchId };
}

function presign(count, seqBase, hookType) {
  const ts = Date.now();
  const out = new Array(count);
  for (let i = 0; i < count; i++) {
    const key = keys[(seqBase + i) % keys.length];
    const signed = sign({ keyId: key.keyId, secret: key.secret, ts, body: JSON.stringify(bodyFor(hookType, key)) });
    out[i] = {
      body: signed.body,
      headers: { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(signed.body)), ...signed.headers },
    };
  }
  return out;
}

let sequence = 0;

async function step({ rate, durationMs, hookType }) {
  const count = Math.max(1, Math.round((rate * durationMs) / 1000));
  const requests = presign(count, sequence, hookType);
  sequence += count;
  const latency = new Float64Array(count);
  const lag = new Float64Array(count);
  const status = new Int32Array(count);
  const intervalMs = 1000 / rate;
  let next = 0;
  let done = 0;
  let maxInFlight = 0;
  let inFlight = 0;
  const t0 = performance.now() + 20;
  await new Promise((resolveAll) => {
    const pump = () => {
      const now = performance.now();
      while (next < count && t0 + next * intervalMs <= now) {
        const i = next++;
        const scheduled = t0 + i * intervalMs;
        lag[i] = performance.now() - scheduled;
        inFlight++;
        if (inFlight > maxInFlight) maxInFlight = inFlight;
        void sendOne(requests[i]).then((code) => {
          latency[i] = performance.now() - scheduled;
          status[i] = code;
          inFlight--;
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
  const elapsedMs = performance.now() - t0;
  const byStatus = {};
  for (const s of status) byStatus[s] = (byStatus[s] ?? 0) + 1;
  return { rate, count, elapsedMs, latency: Array.from(latency), lag: Array.from(lag), byStatus, maxInFlight };
}

parentPort.on('message', async (message) => {
  if (message.kind === 'step') parentPort.postMessage({ kind: 'result', result: await step(message) });
  if (message.kind === 'close') {
    agent.destroy();
    parentPort.postMessage({ kind: 'closed' });
  }
});
parentPort.postMessage({ kind: 'ready' });
