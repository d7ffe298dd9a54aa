import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signed } from '../support/hook-client.js';
import { freshPostgresDatabase, randomName, requireRedis, TEST_SECRETS } from '../support/infra.js';
import { freePort, ServiceProcess } from '../support/process.js';
import { matchBody } from '../support/service.js';

// Gameplay evidence that a forfeit can rest on is durable before its 202: the process is killed with SIGKILL the
// instant a 202 arrives, with more calls in flight, and every call answered 202 must be in PostgreSQL after the
// restart. Heartbeats are coalesced (held in memory up to a tick; here the tick never comes) and may be lost with
// the process: they are presence only. Embedded bus; real PostgreSQL and Redis.

let db: { url: string; drop(): Promise<void> };
let env: Record<string, string>;
const procs: ServiceProcess[] = [];

beforeAll(async () => {
  db = await freshPostgresDatabase();
  env = {
    ...TEST_SECRETS,
    DATABASE_URL: db.url,
    REDIS_URL: await requireRedis(),
    REDIS_KEY_PREFIX: randomName('hd') + ':',
    PTERO_APP_URL: 'http://127.0.0.1:9',
    PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
    HMAC_KEY_BUDGET: '100000',
    ALLOW_EMBEDDED: 'kafka', // one process, embedded bus: the test is about PostgreSQL
    // Held heartbeats are never flushed before the kill: only the direct path can have stored anything.
    OVERLAY_PRESENCE_FLUSH_MS: '3600000',
    PROVISION_MONITOR_EVERY_MS: '3600000', // its stale-overlay sweep flushes held heartbeats too
  };
});

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) await p.kill('SIGKILL');
  await db?.drop();
});

async function api(proc: ServiceProcess, method: string, path: string, body: unknown) {
  const r = await fetch(`${proc.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: r.status, json: (await r.json()) as Record<string, string> };
}

function postHook(proc: ServiceProcess, call: { headers: Record<string, string>; body: string }): Promise<number> {
  return fetch(`${proc.url}/v1/overlay/events`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...call.headers },
    body: call.body,
  }).then(
    (r) => r.status,
    () => -1, // the connection died with the process
  );
}

describe('hook durability', () => {
  it('SIGKILL right after a 202: every gameplay call answered 202 is in PostgreSQL after the restart', async () => {
    const first = await ServiceProcess.start(env, await freePort());
    procs.push(first);
    const matchId = randomName('hd-');
    expect((await api(first, 'PUT', `/v1/internal/matches/${matchId}`, { ...matchBody(matchId), status: 'IN_PROGRESS' })).status).toBe(201);
    // One overlay key per caller, so that each key's calls are in order (no sequence regressions).
    const keys: { keyId: string; secret: string }[] = [];
    for (let i = 0; i < 8; i++)
      keys.push((await api(first, 'POST', '/v1/internal/keys', { matchId, kind: 'overlay' })).json as { keyId: string; secret: string });
    const sign = (key: { keyId: string; secret: string }, body: object) => signed(key.keyId, key.secret, body, Date.now());
    expect(await postHook(first, sign(keys[0] as { keyId: string; secret: string }, { type: 'overlay.connected', matchId, seq: 1 }))).toBe(
      202,
    );

    // 8 callers in parallel, each sending gameplay.progress and heartbeats with its key's next seq; the 40th gameplay
    // 202 kills the process synchronously in its own callback, while the other callers' requests are in flight.
    let killed = false;
    const acceptedGameplay: { keyId: string; seq: number }[] = [];
    const lastSeq = new Map<string, number>();
    const caller = async (key: { keyId: string; secret: string }) => {
      for (let n = 2; !killed; n++) {
        const gameplay = n % 3 !== 0;
        const body = gameplay
          ? { type: 'gameplay.progress', matchId, seq: n, data: { round: n, score: [n % 7, n % 5] } }
          : { type: 'overlay.heartbeat', matchId, seq: n };
        lastSeq.set(key.keyId, n);
        const status = await postHook(first, sign(key, body));
        if (killed) return;
        if (status !== 202) throw new Error(`seq ${n}: ${status}`);
        if (!gameplay) continue;
        acceptedGameplay.push({ keyId: key.keyId, seq: n });
        if (acceptedGameplay.length === 40) {
          killed = true;
          first.child.kill('SIGKILL');
        }
      }
    };
    await Promise.all(keys.map(caller));
    expect(await first.kill('SIGKILL')).toBe(null);

    const second = await ServiceProcess.start(env, await freePort());
    procs.push(second);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const stored = await client.query<{ key_id: string; seq: number; body: { data: { round: number } } }>(
        `select key_id, seq, body from overlay_events where match_id = $1 and type = 'gameplay.progress'`,
        [matchId],
      );
      const storedCalls = new Map(stored.rows.map((r) => [`${r.key_id}#${r.seq}`, r.body]));
      expect(acceptedGameplay).toHaveLength(40);
      expect(acceptedGameplay.map((c) => `${c.keyId}#${c.seq}`).filter((c) => !storedCalls.has(c))).toEqual([]);
      // The stored evidence is the signed body.
      for (const c of acceptedGameplay) expect(storedCalls.get(`${c.keyId}#${c.seq}`)?.data.round).toBe(c.seq);

      // The new process carries on: the keys still work and the sequence check still holds across the restart.
      const key = keys[0] as { keyId: string; secret: string };
      const sent = lastSeq.get(key.keyId) as number;
      expect(await postHook(second, sign(key, { type: 'gameplay.progress', matchId, seq: sent + 1 }))).toBe(202);
      expect(await postHook(second, sign(key, { type: 'gameplay.progress', matchId, seq: sent + 1 }))).toBe(202);
      const after = await client.query<{ type: string; seq: number }>(
        `select type, seq from overlay_events where key_id = $1 and seq > $2 order by id`,
        [key.keyId, sent],
      );
      expect(after.rows.map((r) => `${r.type}#${r.seq}`)).toEqual([
        `gameplay.progress#${sent + 1}`,
        `violation:gameplay.progress#${sent + 1}`,
      ]);
    } finally {
      await client.end();
    }
    expect(await second.kill('SIGTERM')).toBe(0);
  });
});
