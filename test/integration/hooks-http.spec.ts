import { randomBytes } from 'node:crypto';
import { Writable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../../src/infra/clock.js';
import { Topics } from '../../src/events/topics.js';
import { createLogger } from '../../src/observability/logger.js';
import type { RunningService } from '../../src/app.module.js';
import { freshPostgresDatabase, randomName, requireRedis, TEST_SECRETS } from '../support/infra.js';
import { headerPairs, rawRequest, signed, type RawResponse } from '../support/hook-client.js';
import { internalApi, matchBody, startTestService } from '../support/service.js';
import { tcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

// Every case of hmac-v1.md as a real HTTP request through the real stack (Fastify, Nest guard, verifier),
// with the nonce store on the real Redis and time on an injected clock.

const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);
const SKEW = 60_000;
const MAX_BODY = 65_536;
const clock = new ManualClock(T0);
const logLines: string[] = [];
const drops: (() => Promise<void>)[] = [];
const services: RunningService[] = [];
/** Instances of one test, closed after it: their database connections go back (the server's limit is shared). */
const scoped: RunningService[] = [];
let redisUrl: string;
let main: RunningService;
let api: ReturnType<typeof internalApi>;

async function startInstance(
  extra: Record<string, string>,
  options: { clock?: ManualClock; capture?: boolean; databaseVia?: (url: string) => Promise<string>; keep?: boolean } = {},
) {
  const db = await freshPostgresDatabase();
  drops.push(db.drop);
  const env = {
    INSTANCE_ID: randomName('hk-inst-'),
    ...TEST_SECRETS,
    DATABASE_URL: options.databaseVia ? await options.databaseVia(db.url) : db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: randomName('hk') + ':',
    PTERO_APP_URL: 'http://127.0.0.1:9',
    PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'info',
    HMAC_FAILURE_LIMIT_PER_MIN: '100000',
    ...extra,
  };
  const capture = new Writable({
    write(chunk, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  const service = await startTestService(env, {
    clock: options.clock ?? clock,
    ...(options.capture ? { logger: createLogger('info', { instanceId: env.INSTANCE_ID }, capture) } : {}),
  });
  services.push(service);
  if (!options.keep) scoped.push(service);
  return service;
}

beforeAll(async () => {
  redisUrl = await requireRedis();
  main = await startInstance({}, { capture: true, keep: true });
  api = internalApi(main);
});

afterEach(async () => {
  for (let s = scoped.pop(); s; s = scoped.pop()) await s.close();
});

afterAll(async () => {
  for (const s of services) await s.close();
  for (const d of drops) await d();
});

async function issue(service: RunningService, matchId: string, kind: 'overlay' | 'admin', ttlMs?: number) {
  const { status, json } = await internalApi(service)('POST', '/v1/internal/keys', { matchId, kind, ...(ttlMs ? { ttlMs } : {}) });
  expect(status).toBe(201);
  return json as { keyId: string; secret: string; expiresAt: string };
}

async function newMatch(service: RunningService = main) {
  const matchId = randomName('h-');
  const r = await internalApi(service)('PUT', `/v1/internal/matches/${matchId}`, { ...matchBody(matchId), status: 'IN_PROGRESS' });
  expect(r.status).toBe(201);
  return matchId;
}

const OVERLAY = '/v1/overlay/events';
const ADMIN = '/v1/hooks/admin';

function post(
  path: string,
  headers: [string, string][],
  body?: Buffer | string,
  service: RunningService = main,
  opts: { host?: string; family?: 4 | 6 } = {},
): Promise<RawResponse> {
  return rawRequest(service.url, { path, headers, ...(body !== undefined ? { body } : {}), ...opts });
}

/** Every 401 (hmac-v1.md): one RFC 9457 problem document, the same whatever the reason. */
const UNAUTHORIZED = JSON.stringify({
  type: 'tag:flocknode-workers,2026:problem:unauthorized',
  title: 'Not authenticated',
  status: 401,
  error: 'unauthorized',
});

/** The count of `flock_dependency_unavailable_total{dependency}` on an instance. */
async function dependencyUnavailable(service: RunningService, dependency: 'database' | 'redis'): Promise<number> {
  const text = await service.services.metrics.registry.getSingleMetricAsString('flock_dependency_unavailable_total');
  const match = new RegExp(`flock_dependency_unavailable_total\\{dependency="${dependency}"\\} (\\d+)`).exec(text);
  return match ? Number(match[1]) : 0;
}

/** The captured log lines (JSON) of one request, by its x-request-id. */
function logsOf(requestId: string): { level: string; msg: string; dependency?: string; reason?: string }[] {
  return logLines
    .flatMap((chunk) => chunk.split('\n'))
    .filter((l) => l.includes(requestId))
    .map((l) => JSON.parse(l));
}

describe('HmacGuard over real HTTP', () => {
  let matchId: string;
  let overlayKey: { keyId: string; secret: string };
  let adminKey: { keyId: string; secret: string };
  const progress = (m: string, extra: object = {}) => ({
    type: 'gameplay.progress',
    matchId: m,
    seq: Math.floor(Math.random() * 1e6),
    data: { score: [3, 1], mvp: 'Zoë' },
    ...extra,
  });
  const call = (body: object | string, opts: { ts?: number; nonce?: string; key?: { keyId: string; secret: string } } = {}) =>
    signed((opts.key ?? overlayKey).keyId, (opts.key ?? overlayKey).secret, body, opts.ts ?? clock.now(), opts.nonce);
  const send = (c: { headers: Record<string, string>; body: string }, extra: [string, string][] = [], path = OVERLAY) =>
    post(path, headerPairs(c.headers, extra), c.body);

  beforeAll(async () => {
    matchId = await newMatch();
    overlayKey = await issue(main, matchId, 'overlay');
    adminKey = await issue(main, matchId, 'admin');
  });

  describe('baseline', () => {
    it('accepts a valid overlay call; the handler sees the verified object', async () => {
      const body = progress(matchId, { seq: 1 });
      const r = await send(call(body));
      expect(r).toMatchObject({ status: 202, body: JSON.stringify({ ok: true }) });
      const rows = await main.services.db.selectFrom('overlay_events').selectAll().where('match_id', '=', matchId).execute();
      expect(rows.map((x) => x.body)).toContainEqual(body);
    });

    it('accepts a valid admin call and records the readiness signal', async () => {
      const r = await send(signed(adminKey.keyId, adminKey.secret, { type: 'admin.hooks.ok', matchId }, clock.now()), [], ADMIN);
      expect(r.status).toBe(202);
      const { json } = await api('GET', `/v1/internal/matches/${matchId}`);
      expect(json.checklist.adminHooksOk).toBe(true);
    });

    it("carries the caller's x-request-id as the correlation id of the stored call", async () => {
      const body = progress(matchId);
      const requestId = `req-${randomBytes(6).toString('hex')}`;
      expect((await send(call(body), [['x-request-id', requestId]])).status).toBe(202);
      const row = await main.services.db
        .selectFrom('overlay_events')
        .select(['request_id', 'seq'])
        .where('request_id', '=', requestId)
        .executeTakeFirst();
      expect(row?.seq).toBe(body.seq);
    });

    it('accepts header names in any case', async () => {
      const c = call(progress(matchId));
      const pairs: [string, string][] = [
        ['Content-Type', 'application/json'],
        ...Object.entries(c.headers).map(([k, v]) => [k.toUpperCase(), v] as [string, string]),
      ];
      expect((await post(OVERLAY, pairs, c.body)).status).toBe(202);
    });

    it.each([
      [-SKEW, 202],
      [SKEW, 202],
      [-SKEW - 1, 401],
      [SKEW + 1, 401],
    ])('ts at now%+d ms → %i', async (offset, status) => {
      expect((await send(call(progress(matchId), { ts: clock.now() + offset }))).status).toBe(status);
    });
  });

  describe('headers', () => {
    const names = ['x-flock-key-id', 'x-flock-ts', 'x-flock-nonce', 'x-flock-signature'];
    it.each(names)('%s missing, empty, or sent twice → 401', async (name) => {
      const c = call(progress(matchId));
      const without = Object.entries(c.headers).filter(([k]) => k !== name) as [string, string][];
      expect((await post(OVERLAY, [['content-type', 'application/json'], ...without], c.body)).status).toBe(401);
      expect((await post(OVERLAY, [['content-type', 'application/json'], ...without, [name, '']], c.body)).status).toBe(401);
      const twice = await post(OVERLAY, headerPairs(c.headers, [[name, c.headers[name]!]]), c.body);
      expect(twice.status).toBe(401);
    });

    it.each([
      ['uppercase', (s: string) => s.toUpperCase()],
      ['63 chars', (s: string) => s.slice(0, 63)],
      ['65 chars', (s: string) => `${s}0`],
      ['sha256= prefix', (s: string) => `sha256=${s}`],
      ['base64', (s: string) => Buffer.from(s, 'hex').toString('base64')],
      ['valid prefix of the right MAC', (s: string) => s.slice(0, 32)],
      ['non-hex tail', (s: string) => `${s.slice(0, 62)}zz`],
    ])('signature %s → 401', async (_label, mutate) => {
      const c = call(progress(matchId));
      c.headers['x-flock-signature'] = mutate(c.headers['x-flock-signature']!);
      expect((await send(c)).status).toBe(401);
    });

    it.each([
      ['seconds', (ts: number) => String(Math.floor(ts / 1000))],
      ['letters', (ts: number) => `${ts}a`],
      ['exponent', (ts: number) => (ts / 1e12).toFixed(12) + 'e12'],
      ['sign', (ts: number) => `+${ts}`],
      ['leading zero', (ts: number) => `0${ts}`],
      ['negative', (ts: number) => `-${ts}`],
    ])('ts %s → 401', async (_label, mutate) => {
      const ts = clock.now();
      const c = call(progress(matchId), { ts });
      c.headers['x-flock-ts'] = mutate(ts);
      expect((await send(c)).status).toBe(401);
    });

    it.each([
      ['too short', 'a'.repeat(21)],
      ['too long', 'a'.repeat(129)],
      ...['+', '/', '=', ':', '*', '{', '}'].map((ch) => [`with ${ch}`, `${'a'.repeat(24)}${ch}`] as [string, string]),
    ])('nonce %s → 401', async (_label, nonce) => {
      expect((await send(call(progress(matchId), { nonce }))).status).toBe(401);
    });

    it.each([
      ['wrong prefix', (k: string) => k.replace(/^ovl_/, 'key_')],
      ['extra segment', (k: string) => `${k}_1`],
      ['missing segment', (k: string) => k.replace(/_[0-9]+$/, '')],
      ['non-ASCII', (k: string) => k.replace(/^ovl_/, 'ovl_é')],
      ['future issuedAt', (k: string) => k.replace(/_([0-9]+)$/, (_m, n: string) => `_${Number(n) + 3_600_000}`)],
    ])('key id %s → 401', async (_label, mutate) => {
      const c = call(progress(matchId));
      const keyId = mutate(overlayKey.keyId);
      // Sign with the mutated key id so only the key id itself is wrong.
      const s = signed(keyId, overlayKey.secret, c.body, clock.now());
      const headers: [string, string][] = [['content-type', 'application/json'], ...(Object.entries(s.headers) as [string, string][])];
      expect(
        (
          await post(
            OVERLAY,
            headers.map(([k, v]) => [k, k === 'x-flock-key-id' ? Buffer.from(v, 'utf8').toString('latin1') : v]),
            s.body,
          )
        ).status,
      ).toBe(401);
    });
  });

  describe('binding', () => {
    it('one body byte changed → 401', async () => {
      const c = call(progress(matchId, { note: 'abc' }));
      expect((await send({ ...c, body: c.body.replace('abc', 'abd') })).status).toBe(401);
    });

    it.each([
      ['reordered keys', (b: string) => JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(b)).reverse()))],
      ['different escapes', (b: string) => b.replace('Zoë', 'Zo\\u00eb')],
      ['4.50 instead of 4.5', (b: string) => b.replace('"x":4.5', '"x":4.50')],
    ])('%s (the same JSON value) → accepted', async (_label, variant) => {
      const c = call(progress(matchId, { x: 4.5 }));
      expect((await send({ ...c, body: variant(c.body) })).status).toBe(202);
    });

    it.each([
      ['duplicate keys', (m: string) => `{"type":"gameplay.progress","matchId":"${m}","seq":1,"seq":2}`],
      ['2^53+1', (m: string) => `{"type":"gameplay.progress","matchId":"${m}","n":9007199254740993}`],
      ['1e400', (m: string) => `{"type":"gameplay.progress","matchId":"${m}","n":1e400}`],
      ['lone surrogate', (m: string) => `{"type":"gameplay.progress","matchId":"${m}","s":"\\ud800"}`],
      [
        '32 000-deep nesting',
        (m: string) => `{"type":"gameplay.progress","matchId":"${m}","d":${'['.repeat(32_000)}${']'.repeat(32_000)}}`,
      ],
      ['empty body', () => ''],
      ['null', () => 'null'],
      ['an array', () => '[1,2]'],
    ])('%s → 400, not 500', async (_label, body) => {
      const text = body(matchId);
      // Sign the exact bytes (the signer canonicalizes only what it can parse; these never reach the MAC check).
      const headers = call(progress(matchId)).headers;
      const r = await post(OVERLAY, headerPairs(headers), text);
      expect(r.status).toBe(400);
    });

    it('NFC and NFD spellings are different strings → 401', async () => {
      const nfc = progress(matchId, { name: 'Zoë'.normalize('NFC') });
      const c = call(nfc);
      expect((await send({ ...c, body: c.body.replace('Zoë'.normalize('NFC'), 'Zoë'.normalize('NFD')) })).status).toBe(401);
    });

    it('a key for match A with a body for match B → 401', async () => {
      const other = await newMatch();
      expect((await send(call(progress(other)))).status).toBe(401);
    });

    it('an overlay type on the admin route, and an overlay key on the admin route → 401', async () => {
      expect((await send(signed(adminKey.keyId, adminKey.secret, progress(matchId), clock.now()), [], ADMIN)).status).toBe(401);
      expect((await send(call({ type: 'admin.hooks.ok', matchId }), [], ADMIN)).status).toBe(401);
    });

    it('__proto__, constructor and toJSON are plain keys, without prototype pollution', async () => {
      const text = `{"type":"gameplay.progress","matchId":"${matchId}","seq":424242,"__proto__":{"polluted":true},"constructor":{"prototype":{"polluted":true}},"toJSON":"x"}`;
      const r = await send(call(text));
      expect(r.status).toBe(202);
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      const rows = await main.services.db.selectFrom('overlay_events').select('body').where('seq', '=', 424242).execute();
      expect(Object.keys(rows[0]!.body)).toEqual(expect.arrayContaining(['__proto__', 'constructor', 'toJSON']));
    });
  });

  describe('replay (real Redis)', () => {
    it('an exact replay → 401 and replay.attack.detected', async () => {
      const c = call(progress(matchId));
      expect((await send(c)).status).toBe(202);
      expect((await send(c)).status).toBe(401);
      const events = await main.services.db
        .selectFrom('outbox')
        .select('payload')
        .where('topic', '=', Topics.replayAttackDetected)
        .execute();
      expect(events.some((e) => (e.payload as { keyId: string }).keyId === overlayKey.keyId)).toBe(true);
    });

    it('20 identical requests in parallel → exactly one accepted', async () => {
      const c = call(progress(matchId));
      const results = await Promise.all(Array.from({ length: 20 }, () => send(c)));
      expect(results.filter((r) => r.status === 202)).toHaveLength(1);
      expect(results.filter((r) => r.status === 401)).toHaveLength(19);
    });

    it('a replay after the skew window but within 2·skew is still refused', async () => {
      const c = call(progress(matchId), { ts: clock.now() + SKEW - 1000 }); // signed 59 s ahead
      expect((await send(c)).status).toBe(202);
      clock.advance(2 * SKEW - 2000); // 118 s later the ts is again within ±skew of now
      try {
        expect((await send(c)).status).toBe(401);
      } finally {
        clock.set(T0);
      }
    });

    it('a bad signature does not spend the nonce', async () => {
      const good = call(progress(matchId));
      const bad = { ...good, headers: { ...good.headers, 'x-flock-signature': '0'.repeat(64) } };
      expect((await send(bad)).status).toBe(401);
      expect((await send(good)).status).toBe(202);
    });

    it('the nonce store unreachable → 503 (fail closed), named redis in the answer, the log and the metric', async () => {
      const proxy = await tcpProxy('127.0.0.1', Number(new URL(redisUrl).port || 6379));
      let service: RunningService | undefined;
      try {
        service = await startInstance({ REDIS_URL: `redis://127.0.0.1:${proxy.port}` }, { capture: true });
        const m = await newMatch(service);
        const key = await issue(service, m, 'overlay');
        const ok = signed(key.keyId, key.secret, progress(m), clock.now());
        expect((await post(OVERLAY, headerPairs(ok.headers), ok.body, service)).status).toBe(202);
        proxy.cut();
        const after = signed(key.keyId, key.secret, progress(m), clock.now());
        const requestId = randomName('kv-down-');
        const down = await post(OVERLAY, headerPairs(after.headers, [['x-request-id', requestId]]), after.body, service);
        expect({ status: down.status, retryAfter: down.headers['retry-after'] }).toEqual({ status: 503, retryAfter: '2' });
        expect(JSON.parse(down.body)).toMatchObject({ error: 'unavailable', reason: 'KV_UNAVAILABLE' });
        expect(await dependencyUnavailable(service, 'redis')).toBe(1);
        expect(await dependencyUnavailable(service, 'database')).toBe(0);
        const logged = logsOf(requestId).filter((l) => l.level === 'error');
        expect(logged.map((l) => [l.msg, l.dependency])).toEqual([
          ['hmac verification: key-value store unavailable, failing closed', 'redis'],
        ]);
      } finally {
        proxy.restore();
        await service?.close(); // before the proxy goes: closing needs Redis
        await proxy.close();
      }
    });
  });

  describe('faults', () => {
    it('a database outage answers 503 with Retry-After and gives the nonce back: the identical retry is accepted, no replay reported', async () => {
      let proxy: TcpProxy | undefined;
      const service = await startInstance(
        { DB_QUERY_TIMEOUT_MS: '1000' },
        {
          capture: true,
          databaseVia: async (url) => {
            const u = new URL(url);
            proxy = await tcpProxy(u.hostname, Number(u.port || 5432));
            u.host = `127.0.0.1:${proxy.port}`;
            return u.toString();
          },
        },
      );
      try {
        const m = await newMatch(service);
        const key = await issue(service, m, 'overlay');
        const first = signed(key.keyId, key.secret, progress(m, { seq: 1 }), clock.now());
        expect((await post(OVERLAY, headerPairs(first.headers), first.body, service)).status).toBe(202);

        proxy!.cut();
        const c = signed(key.keyId, key.secret, progress(m, { seq: 2 }), clock.now());
        const requestId = randomName('db-down-');
        const down = await post(OVERLAY, headerPairs(c.headers, [['x-request-id', requestId]]), c.body, service);
        expect({ status: down.status, retryAfter: down.headers['retry-after'] }).toEqual({ status: 503, retryAfter: '2' });
        // Verified (the key record was cached), then the database failed: named as such, never as Redis.
        expect(JSON.parse(down.body)).toMatchObject({ error: 'unavailable', reason: 'DATABASE_UNAVAILABLE' });
        expect(await dependencyUnavailable(service, 'database')).toBe(1);
        expect(await dependencyUnavailable(service, 'redis')).toBe(0);
        expect(
          logsOf(requestId)
            .filter((l) => l.level !== 'info')
            .map((l) => [l.msg, l.reason]),
        ).toEqual([['database unreachable; answered 503', 'DATABASE_UNAVAILABLE']]);
        const apiDown = await fetch(`${service.url}/v1/internal/matches/${m}`, {
          headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}` },
        });
        expect({ status: apiDown.status, retryAfter: apiDown.headers.get('retry-after') }).toEqual({ status: 503, retryAfter: '2' });

        // A key record in neither cache must come from PostgreSQL: with the database down the guard fails closed,
        // names the database (not the key-value store), and the nonce is not spent.
        await service.services.kv.del(`hmac:secret:${key.keyId}`);
        clock.advance(5_001); // past the in-process record cache
        const lookup = signed(key.keyId, key.secret, progress(m, { seq: 3 }), clock.now());
        const lookupId = randomName('db-lookup-');
        try {
          const refused = await post(OVERLAY, headerPairs(lookup.headers, [['x-request-id', lookupId]]), lookup.body, service);
          expect({ status: refused.status, retryAfter: refused.headers['retry-after'] }).toEqual({ status: 503, retryAfter: '2' });
          expect(JSON.parse(refused.body)).toMatchObject({ error: 'unavailable', reason: 'DATABASE_UNAVAILABLE' });
          expect(await dependencyUnavailable(service, 'database')).toBe(3);
          expect(await dependencyUnavailable(service, 'redis')).toBe(0);
          const logged = logsOf(lookupId).filter((l) => l.level === 'error');
          expect(logged.map((l) => [l.msg, l.dependency])).toEqual([
            ['hmac verification: database unavailable, failing closed', 'database'],
          ]);
        } finally {
          clock.set(T0);
        }

        proxy!.restore();
        expect((await post(OVERLAY, headerPairs(c.headers), c.body, service)).status).toBe(202);
        clock.advance(5_001);
        try {
          // The nonce of the call refused at the key lookup was never spent: the identical call is accepted now.
          expect((await post(OVERLAY, headerPairs(lookup.headers), lookup.body, service)).status).toBe(202);
        } finally {
          clock.set(T0);
        }
        const stored = await service.services.db
          .selectFrom('overlay_events')
          .select('seq')
          .where('key_id', '=', key.keyId)
          .orderBy('seq')
          .execute();
        expect(stored.map((r) => r.seq)).toEqual([1, 2, 3]);
        const replays = await service.services.db
          .selectFrom('outbox')
          .select('payload')
          .where('topic', '=', Topics.replayAttackDetected)
          .execute();
        expect(replays).toEqual([]);

        // A hung database (connections open, nothing answers) holds a hook call only for a bounded time.
        proxy!.hang();
        const h = signed(key.keyId, key.secret, progress(m, { seq: 4 }), clock.now());
        const started = Date.now();
        const hung = await post(OVERLAY, headerPairs(h.headers), h.body, service);
        expect(hung.status).toBe(503);
        expect(Date.now() - started).toBeLessThan(15_000);
        proxy!.restore();
        expect((await post(OVERLAY, headerPairs(h.headers), h.body, service)).status).toBe(202);
      } finally {
        proxy?.restore();
        await service.close();
        await proxy?.close();
      }
    });

    it('issued keys are durable: after FLUSHDB the next signed call is accepted', async () => {
      // A Redis database of its own, so flushing it disturbs no other test.
      const u = new URL(redisUrl);
      u.pathname = '/13';
      const own = new ManualClock(T0);
      const service = await startInstance({ REDIS_URL: u.toString() }, { clock: own });
      const m = await newMatch(service);
      const key = await issue(service, m, 'overlay');
      const before = signed(key.keyId, key.secret, progress(m, { seq: 1 }), own.now());
      expect((await post(OVERLAY, headerPairs(before.headers), before.body, service)).status).toBe(202);
      const redis = new Redis(u.toString());
      try {
        await redis.flushdb();
      } finally {
        redis.disconnect();
      }
      own.advance(5_001); // past the in-process record cache: the record must come from PostgreSQL
      const after = signed(key.keyId, key.secret, progress(m, { seq: 2 }), own.now());
      expect((await post(OVERLAY, headerPairs(after.headers), after.body, service)).status).toBe(202);
    });
  });

  describe('keys', () => {
    it('never issued, revoked, expired, and too early → 401, unknown and known key ids alike', async () => {
      const fake = `ovl_${matchId}_${clock.now() - 1000}`;
      const never = await send(signed(fake, overlayKey.secret, progress(matchId), clock.now()));
      const wrongSecret = await send(signed(overlayKey.keyId, Buffer.alloc(32, 7).toString('base64url'), progress(matchId), clock.now()));
      expect([never.status, wrongSecret.status]).toEqual([401, 401]);
      expect(never.body).toBe(wrongSecret.body);

      const toRevoke = await issue(main, matchId, 'overlay');
      expect((await send(call(progress(matchId), { key: toRevoke }))).status).toBe(202);
      expect((await api('DELETE', `/v1/internal/keys/${toRevoke.keyId}`)).status).toBe(200);
      clock.advance(5001); // revocation is effective everywhere within 5 s
      try {
        expect((await send(call(progress(matchId), { key: toRevoke }))).status).toBe(401);
      } finally {
        clock.set(T0);
      }
      expect((await api('DELETE', '/v1/internal/keys/ovl_nope_1767225600000')).status).toBe(404);

      clock.advance(10);
      const shortLived = await issue(main, matchId, 'overlay', 1000);
      clock.advance(2000);
      try {
        expect((await send(call(progress(matchId), { key: shortLived }))).status).toBe(401);
        // ts before issuedAt − skew
        expect((await send(call(progress(matchId), { key: shortLived, ts: clock.now() - 2000 - SKEW - 20 }))).status).toBe(401);
      } finally {
        clock.set(T0);
      }
    });
  });

  describe('network', () => {
    it('an unlisted address → 403, and a spoofed X-Forwarded-For does not help', async () => {
      const restricted = await startInstance({ HMAC_ALLOWED_CIDRS: '10.0.0.0/8' });
      const m = await newMatch(restricted);
      const key = await issue(restricted, m, 'overlay');
      const c = signed(key.keyId, key.secret, progress(m), clock.now());
      expect((await post(OVERLAY, headerPairs(c.headers), c.body, restricted)).status).toBe(403);
      expect((await post(OVERLAY, headerPairs(c.headers, [['x-forwarded-for', '10.42.0.5']]), c.body, restricted)).status).toBe(403);
      // The address is judged before the media type, whatever the media type.
      expect((await post(OVERLAY, headerPairs(c.headers, [], 'text/plain'), c.body, restricted)).status).toBe(403);
    });

    it('IPv4-mapped IPv6 peers are judged by their IPv4 address', async () => {
      const dual = await startInstance({ HOST: '::' });
      const dualUrl = dual.url.replace('127.0.0.1', '[::ffff:127.0.0.1]');
      const m = await newMatch(dual);
      const key = await issue(dual, m, 'overlay');
      const c = signed(key.keyId, key.secret, progress(m), clock.now());
      const r = await rawRequest(dualUrl, {
        path: OVERLAY,
        headers: headerPairs(c.headers),
        body: c.body,
        host: '::ffff:127.0.0.1',
        family: 6,
      });
      expect(r.status).toBe(202); // peer ::ffff:127.0.0.1 is 127.0.0.1/32

      const dualRestricted = await startInstance({ HOST: '::', HMAC_ALLOWED_CIDRS: '10.0.0.0/8,::1/128' });
      const m2 = await newMatch(dualRestricted);
      const key2 = await issue(dualRestricted, m2, 'overlay');
      const c2 = signed(key2.keyId, key2.secret, progress(m2), clock.now());
      const r2 = await rawRequest(dualRestricted.url, {
        path: OVERLAY,
        headers: headerPairs(c2.headers),
        body: c2.body,
        host: '::ffff:127.0.0.1',
        family: 6,
      });
      expect(r2.status).toBe(403);
    });

    it('behind a trusted proxy, 127.0.0.1/32 does not let every external client in', async () => {
      const proxied = await startInstance({ TRUST_PROXY: '127.0.0.1', HMAC_ALLOWED_CIDRS: '127.0.0.1/32,10.42.0.0/16' });
      const m = await newMatch(proxied);
      const key = await issue(proxied, m, 'overlay');
      const external = signed(key.keyId, key.secret, progress(m), clock.now());
      expect(
        (await post(OVERLAY, headerPairs(external.headers, [['x-forwarded-for', '203.0.113.9']]), external.body, proxied)).status,
      ).toBe(403);
      const mesh = signed(key.keyId, key.secret, progress(m), clock.now());
      expect((await post(OVERLAY, headerPairs(mesh.headers, [['x-forwarded-for', '10.42.3.4']]), mesh.body, proxied)).status).toBe(202);
    });
  });

  describe('body', () => {
    function padded(size: number) {
      const base = progress(matchId, { pad: '' });
      const baseLength = Buffer.byteLength(JSON.stringify(base));
      return { ...base, pad: 'x'.repeat(size - baseLength) };
    }

    it('MAX_BODY_BYTES accepted; one byte more → 413 before any crypto', async () => {
      const exact = call(padded(MAX_BODY));
      expect(Buffer.byteLength(exact.body)).toBe(MAX_BODY);
      expect((await send(exact)).status).toBe(202);
      const over = call(padded(MAX_BODY + 1));
      over.headers['x-flock-signature'] = 'not even hex';
      expect((await send(over)).status).toBe(413);
    });

    it('a gzip body that would inflate past the limit → 415; wrong media type or charset → 415', async () => {
      const c = call(padded(MAX_BODY));
      const zipped = gzipSync(Buffer.from(c.body + ' '.repeat(10 * MAX_BODY)));
      expect((await post(OVERLAY, headerPairs(c.headers, [['content-encoding', 'gzip']]), zipped)).status).toBe(415);
      const small = call(progress(matchId));
      expect((await post(OVERLAY, headerPairs(small.headers, [], 'text/plain'), small.body)).status).toBe(415);
      expect((await post(OVERLAY, headerPairs(small.headers, [], 'application/json; charset=latin1'), small.body)).status).toBe(415);
    });
  });

  describe('hygiene', () => {
    it('every 401 has the same body, and logs carry the reason but never a secret or expected MAC', async () => {
      const bodies = new Set<string>();
      const c = call(progress(matchId));
      bodies.add((await send({ ...c, headers: { ...c.headers, 'x-flock-signature': 'f'.repeat(64) } })).body);
      bodies.add((await send(call(progress(matchId), { ts: clock.now() - 10 * SKEW }))).body);
      bodies.add((await send(signed(`ovl_${matchId}_${clock.now() - 5}`, overlayKey.secret, progress(matchId), clock.now()))).body);
      const d = call(progress(matchId));
      delete (d.headers as Record<string, string>)['x-flock-nonce'];
      bodies.add((await send(d)).body);
      expect([...bodies]).toEqual([UNAUTHORIZED]);
      await new Promise((r) => setTimeout(r, 200));
      const logs = logLines.join('');
      expect(logs).toContain('SIGNATURE_MISMATCH');
      expect(logs).toContain('TS_OUT_OF_WINDOW');
      expect(logs).not.toContain(overlayKey.secret);
      expect(logs).not.toContain(adminKey.secret);
      expect(logs).not.toContain(TEST_SECRETS.OVERLAY_MASTER_SECRET);
      expect(logs).not.toContain(c.headers['x-flock-signature']); // the expected MAC of that request
      const failed = await main.services.db
        .selectFrom('outbox')
        .select('payload')
        .where('topic', '=', Topics.hmacVerificationFailed)
        .execute();
      expect(failed.map((f) => (f.payload as { reason: string }).reason)).toEqual(
        expect.arrayContaining(['SIGNATURE_MISMATCH', 'TS_OUT_OF_WINDOW']),
      );
      expect(JSON.stringify(failed)).not.toContain(overlayKey.secret);
      const metrics = await (await fetch(`${main.url}/metrics`)).text();
      expect(metrics).toMatch(/flock_hmac_verifications_total\{result="rejected",reason="SIGNATURE_MISMATCH",route="overlay"\} [1-9]/);
    });

    it('repeated failures from one address are rate-limited (429) while valid calls still pass', async () => {
      const limited = await startInstance({ HMAC_FAILURE_LIMIT_PER_MIN: '5' });
      const m = await newMatch(limited);
      const key = await issue(limited, m, 'overlay');
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        const bad = signed(key.keyId, key.secret, progress(m), clock.now());
        bad.headers['x-flock-signature'] = '0'.repeat(64);
        statuses.push((await post(OVERLAY, headerPairs(bad.headers), bad.body, limited)).status);
      }
      expect(statuses.slice(0, 5)).toEqual([401, 401, 401, 401, 401]);
      expect(statuses.slice(5)).toEqual([429, 429, 429]);
      const good = signed(key.keyId, key.secret, progress(m), clock.now());
      expect((await post(OVERLAY, headerPairs(good.headers), good.body, limited)).status).toBe(202);

      // A replay past the failure budget is answered 429 but still recorded: summed into one summary event.
      for (let i = 0; i < 3; i++) expect((await post(OVERLAY, headerPairs(good.headers), good.body, limited)).status).toBe(429);
      expect(await limited.services.hookVerifier.flushReplaySummaries()).toBe(1);
      const replays = await limited.services.db
        .selectFrom('outbox')
        .select('payload')
        .where('topic', '=', Topics.replayAttackDetected)
        .execute();
      expect(replays.map((r) => r.payload)).toEqual([expect.objectContaining({ keyId: key.keyId, summary: true, count: 3 })]);
    });

    it('a key over its budget of valid calls is answered 429 with Retry-After; other keys still pass', async () => {
      const budgeted = await startInstance({ HMAC_KEY_BUDGET: '3', HMAC_KEY_BUDGET_WINDOW_MS: '60000' });
      const m = await newMatch(budgeted);
      const key = await issue(budgeted, m, 'overlay');
      const other = await issue(budgeted, m, 'overlay');
      const statuses: number[] = [];
      let last: RawResponse | undefined;
      for (let i = 0; i < 5; i++) {
        const c = signed(key.keyId, key.secret, progress(m), clock.now());
        last = await post(OVERLAY, headerPairs(c.headers), c.body, budgeted);
        statuses.push(last.status);
      }
      expect(statuses).toEqual([202, 202, 202, 429, 429]);
      expect(Number(last!.headers['retry-after'])).toBeGreaterThanOrEqual(1);
      expect(Number(last!.headers['retry-after'])).toBeLessThanOrEqual(60);
      const o = signed(other.keyId, other.secret, progress(m), clock.now());
      expect((await post(OVERLAY, headerPairs(o.headers), o.body, budgeted)).status).toBe(202);
    });
  });

  describe('hook semantics', () => {
    it('admin hook then overlay.connected complete readiness of a match that requires an overlay → server.ready once', async () => {
      const m = randomName('h-');
      expect((await api('PUT', `/v1/internal/matches/${m}`, { ...matchBody(m, { overlayRequired: true }) })).status).toBe(201);
      const at = new Date(clock.now());
      // The panel already reported the install (the provisioning tests cover that part).
      await main.services.db
        .insertInto('provisions')
        .values({
          match_id: m,
          panel_server_id: 4242,
          state: 'WAITING_SIGNALS',
          reserved_event_id: 'e-1',
          reserved_at: at,
          deadline_at: new Date(clock.now() + 300_000),
          next_poll_at: null,
          poll_failures: 0,
          last_panel_status: 'null',
          ready_at: null,
          failed_at: null,
          failure_reason: null,
          released_event_id: null,
          released_at: null,
          cleanup_state: 'NONE',
          cleanup_attempts: 0,
          cleanup_next_at: null,
          lease_owner: null,
          lease_until: null,
          updated_at: at,
        })
        .execute();
      await main.services.db.updateTable('checklists').set({ server_installed: true }).where('match_id', '=', m).execute();
      const admin = await issue(main, m, 'admin');
      const overlay = await issue(main, m, 'overlay');
      expect((await send(signed(admin.keyId, admin.secret, { type: 'admin.hooks.ok', matchId: m }, clock.now()), [], ADMIN)).status).toBe(
        202,
      );
      expect((await api('GET', `/v1/internal/matches/${m}`)).json.provisioning.state).toBe('WAITING_SIGNALS');
      expect((await send(call({ type: 'overlay.connected', matchId: m, seq: 1 }, { key: overlay }))).status).toBe(202);
      expect((await send(call({ type: 'overlay.heartbeat', matchId: m, seq: 2 }, { key: overlay }))).status).toBe(202);
      const view = (await api('GET', `/v1/internal/matches/${m}`)).json;
      expect(view.provisioning.state).toBe('READY');
      expect(view.checklist).toMatchObject({ serverInstalled: true, adminHooksOk: true, overlayConnected: true });
      const ready = await main.services.db
        .selectFrom('outbox')
        .select('id')
        .where('topic', '=', Topics.serverReady)
        .where('key', '=', m)
        .execute();
      expect(ready).toHaveLength(1);
    });

    it('overlay.connected sets overlayConnected; overlay.disconnected clears it; a stale sequence is an overlay.violation', async () => {
      const m = await newMatch();
      const key = await issue(main, m, 'overlay');
      const k = { keyId: key.keyId, secret: key.secret };
      expect((await send(call({ type: 'overlay.connected', matchId: m, seq: 10 }, { key: k }))).status).toBe(202);
      expect((await api('GET', `/v1/internal/matches/${m}`)).json.checklist.overlayConnected).toBe(true);
      expect((await send(call({ type: 'gameplay.progress', matchId: m, seq: 5 }, { key: k }))).status).toBe(202);
      const violations = await main.services.db
        .selectFrom('outbox')
        .select('payload')
        .where('topic', '=', Topics.overlayViolation)
        .where('key', '=', m)
        .execute();
      expect(violations.map((v) => (v.payload as { reason: string }).reason)).toEqual(['SEQUENCE_REGRESSION']);
      expect((await send(call({ type: 'overlay.disconnected', matchId: m, seq: 11 }, { key: k }))).status).toBe(202);
      expect((await api('GET', `/v1/internal/matches/${m}`)).json.checklist.overlayConnected).toBe(false);
      // An agent that restarted its counter: a violation is reported, but its presence still counts.
      expect((await send(call({ type: 'overlay.connected', matchId: m, seq: 1 }, { key: k }))).status).toBe(202);
      expect((await api('GET', `/v1/internal/matches/${m}`)).json.checklist.overlayConnected).toBe(true);
      // A violating sequence number does not raise the bar for later calls.
      expect((await send(call({ type: 'gameplay.progress', matchId: m, seq: 12 }, { key: k }))).status).toBe(202);
      const reasons = (
        await main.services.db
          .selectFrom('outbox')
          .select('payload')
          .where('topic', '=', Topics.overlayViolation)
          .where('key', '=', m)
          .execute()
      ).map((v) => (v.payload as { reason: string }).reason);
      expect(reasons).toEqual(['SEQUENCE_REGRESSION', 'SEQUENCE_REGRESSION']);
      const evidence = await main.services.db
        .selectFrom('overlay_events')
        .select(['type', 'seq'])
        .where('match_id', '=', m)
        .orderBy('id')
        .execute();
      expect(evidence.map((e) => `${e.type}#${e.seq}`)).toEqual([
        'overlay.connected#10',
        'violation:gameplay.progress#5',
        'overlay.disconnected#11',
        'violation:overlay.connected#1',
        'gameplay.progress#12',
      ]);
    });

    describe('coalesced presence (no transaction per heartbeat)', () => {
      // Its own instance, clock and a flush interval that never fires during the test: flushes happen when asked.
      const own = new ManualClock(T0);
      let svc: RunningService;
      let ownApi: ReturnType<typeof internalApi>;
      const sendTo = (c: { headers: Record<string, string>; body: string }) => post(OVERLAY, headerPairs(c.headers), c.body, svc);
      const rowsOf = async (m: string) =>
        (await svc.services.db.selectFrom('overlay_events').select(['type', 'seq']).where('match_id', '=', m).orderBy('id').execute()).map(
          (e) => `${e.type}#${e.seq}`,
        );
      const checklistOf = (m: string) =>
        svc.services.db
          .selectFrom('checklists')
          .select(['overlay_connected', 'overlay_last_seen_at'])
          .where('match_id', '=', m)
          .executeTakeFirstOrThrow();
      const violationsOf = async (m: string) =>
        (
          await svc.services.db
            .selectFrom('outbox')
            .select('payload')
            .where('topic', '=', Topics.overlayViolation)
            .where('key', '=', m)
            .execute()
        ).map((v) => (v.payload as { reason: string }).reason);

      beforeAll(async () => {
        svc = await startInstance({ OVERLAY_PRESENCE_FLUSH_MS: '3600000' }, { clock: own, keep: true });
        ownApi = internalApi(svc);
      });

      async function connectedOverlay() {
        const m = randomName('h-');
        expect((await ownApi('PUT', `/v1/internal/matches/${m}`, { ...matchBody(m), status: 'IN_PROGRESS' })).status).toBe(201);
        const k = await issue(svc, m, 'overlay');
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.connected', matchId: m, seq: 1 }, own.now()))).status).toBe(202);
        return { m, k };
      }

      it('heartbeats of a connected overlay are held and persisted in one batch; last seen moves to the latest', async () => {
        const { m, k } = await connectedOverlay();
        const connectedAt = (await checklistOf(m)).overlay_last_seen_at?.getTime();
        expect(connectedAt).toBe(own.now());
        for (const seq of [2, 3, 4]) {
          own.advance(1_000);
          expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq }, own.now()))).status).toBe(202);
        }
        // Accepted, not yet written: no transaction was spent on them.
        expect(await rowsOf(m)).toEqual(['overlay.connected#1']);
        expect((await checklistOf(m)).overlay_last_seen_at?.getTime()).toBe(connectedAt);
        expect(await svc.services.hookSignals.flushPresence()).toBeGreaterThanOrEqual(3);
        expect(await rowsOf(m)).toEqual(['overlay.connected#1', 'overlay.heartbeat#2', 'overlay.heartbeat#3', 'overlay.heartbeat#4']);
        expect(await checklistOf(m)).toEqual({ overlay_connected: true, overlay_last_seen_at: new Date(own.now()) });
      });

      it('a coalesced heartbeat still checks its sequence number: a regression is stored and reported at once', async () => {
        const { m, k } = await connectedOverlay();
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 5 }, own.now()))).status).toBe(202);
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 5 }, own.now()))).status).toBe(202);
        expect(await violationsOf(m)).toEqual(['SEQUENCE_REGRESSION']);
        expect(await rowsOf(m)).toEqual(['overlay.connected#1', 'violation:overlay.heartbeat#5']);
        await svc.services.hookSignals.flushPresence();
        expect(await rowsOf(m)).toEqual(['overlay.connected#1', 'violation:overlay.heartbeat#5', 'overlay.heartbeat#5']);
      });

      it('concurrent heartbeats with one sequence number → exactly one is presence, the rest violations', async () => {
        const { m, k } = await connectedOverlay();
        const calls = Array.from({ length: 12 }, () =>
          signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 9 }, own.now()),
        );
        expect(await Promise.all(calls.map((c) => sendTo(c).then((r) => r.status)))).toEqual(Array(12).fill(202));
        await svc.services.hookSignals.flushPresence();
        const rows = await rowsOf(m);
        expect(rows.filter((r) => r === 'overlay.heartbeat#9')).toHaveLength(1);
        expect(rows.filter((r) => r === 'violation:overlay.heartbeat#9')).toHaveLength(11);
        expect(await violationsOf(m)).toEqual(Array(11).fill('SEQUENCE_REGRESSION'));
      });

      it('after a disconnect, a held heartbeat does not reconnect the overlay; the next heartbeat does, at once', async () => {
        const { m, k } = await connectedOverlay();
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 2 }, own.now()))).status).toBe(202);
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.disconnected', matchId: m, seq: 3 }, own.now()))).status).toBe(202);
        await svc.services.hookSignals.flushPresence();
        expect((await checklistOf(m)).overlay_connected).toBe(false);
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 4 }, own.now()))).status).toBe(202);
        expect((await checklistOf(m)).overlay_connected).toBe(true);
        // The held heartbeat was flushed (stored, it was accepted) before the direct one.
        expect(await rowsOf(m)).toEqual(['overlay.connected#1', 'overlay.disconnected#3', 'overlay.heartbeat#2', 'overlay.heartbeat#4']);
      });

      it('the stale-overlay sweep flushes first: an overlay that kept beating is not expired', async () => {
        const { m, k } = await connectedOverlay();
        const timeout = svc.services.config.OVERLAY_HEARTBEAT_TIMEOUT_MS;
        for (let i = 0; i < 4; i++) {
          own.advance(timeout / 4);
          expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 2 + i }, own.now()))).status).toBe(
            202,
          );
        }
        own.advance(1_000);
        await svc.services.hookSignals.expireStaleOverlays(timeout);
        expect((await checklistOf(m)).overlay_connected).toBe(true);
        own.advance(timeout + 1);
        await svc.services.hookSignals.expireStaleOverlays(timeout);
        expect((await checklistOf(m)).overlay_connected).toBe(false);
      });

      it('a finished match: its heartbeats are violations stored at once, never presence', async () => {
        const { m, k } = await connectedOverlay();
        expect((await ownApi('PUT', `/v1/internal/matches/${m}`, { ...matchBody(m), status: 'COMPLETED' })).status).toBe(200);
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 2 }, own.now()))).status).toBe(202);
        expect(await rowsOf(m)).toEqual(['overlay.connected#1', 'violation:overlay.heartbeat#2']);
        expect(await violationsOf(m)).toEqual(['MATCH_NOT_ACTIVE']);
      });

      it('the sequence mark lost from the store (Redis restart) is seeded from PostgreSQL and held rows', async () => {
        const { m, k } = await connectedOverlay();
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'gameplay.progress', matchId: m, seq: 7 }, own.now()))).status).toBe(202);
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq: 8 }, own.now()))).status).toBe(202);
        await svc.services.kv.del(`overlay:seq:${k.keyId}`);
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'gameplay.progress', matchId: m, seq: 8 }, own.now()))).status).toBe(202);
        await svc.services.kv.del(`overlay:seq:${k.keyId}`);
        await svc.services.hookSignals.flushPresence();
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'gameplay.progress', matchId: m, seq: 6 }, own.now()))).status).toBe(202);
        expect((await sendTo(signed(k.keyId, k.secret, { type: 'gameplay.progress', matchId: m, seq: 9 }, own.now()))).status).toBe(202);
        expect(await violationsOf(m)).toEqual(['SEQUENCE_REGRESSION', 'SEQUENCE_REGRESSION']);
        expect((await rowsOf(m)).filter((r) => r.startsWith('gameplay'))).toEqual(['gameplay.progress#7', 'gameplay.progress#9']);
      });
    });

    describe('coalesced presence under faults (PostgreSQL cut through a TCP proxy, held with a row lock)', () => {
      const own = new ManualClock(T0);
      const proxies: TcpProxy[] = [];
      const clients: pg.Client[] = [];

      afterAll(async () => {
        for (const c of clients) await c.end().catch(() => undefined);
        for (const p of proxies) {
          p.restore();
          await p.close();
        }
      });

      /** An instance whose database connections go through a proxy, and a direct connection to the same database. */
      async function proxied(flushEveryMs: number) {
        let proxy: TcpProxy | undefined;
        let directUrl = '';
        const service = await startInstance(
          { DB_QUERY_TIMEOUT_MS: '1000', OVERLAY_PRESENCE_FLUSH_MS: String(flushEveryMs) },
          {
            clock: own,
            capture: true,
            databaseVia: async (url) => {
              directUrl = url;
              const u = new URL(url);
              proxy = await tcpProxy(u.hostname, Number(u.port || 5432));
              u.host = `127.0.0.1:${proxy.port}`;
              return u.toString();
            },
          },
        );
        proxies.push(proxy as TcpProxy);
        const db = new pg.Client({ connectionString: directUrl });
        await db.connect();
        clients.push(db);
        return { service, proxy: proxy as TcpProxy, db };
      }

      async function connected(service: RunningService) {
        const m = randomName('h-');
        expect((await internalApi(service)('PUT', `/v1/internal/matches/${m}`, { ...matchBody(m), status: 'IN_PROGRESS' })).status).toBe(
          201,
        );
        const k = await issue(service, m, 'overlay');
        const hb = (seq: number) => signed(k.keyId, k.secret, { type: 'overlay.heartbeat', matchId: m, seq }, own.now());
        const send = (c: { headers: Record<string, string>; body: string }) => post(OVERLAY, headerPairs(c.headers), c.body, service);
        expect((await send(signed(k.keyId, k.secret, { type: 'overlay.connected', matchId: m, seq: 1 }, own.now()))).status).toBe(202);
        return { m, k, hb, send };
      }

      const rowsIn = async (db: pg.Client, m: string) =>
        (
          await db.query<{ type: string; seq: number }>('SELECT type, seq FROM overlay_events WHERE match_id = $1 ORDER BY id', [m])
        ).rows.map((r) => `${r.type}#${r.seq}`);
      const lastSeen = async (db: pg.Client, m: string) =>
        (
          await db.query<{ overlay_connected: boolean; overlay_last_seen_at: Date }>(
            'SELECT overlay_connected, overlay_last_seen_at FROM checklists WHERE match_id = $1',
            [m],
          )
        ).rows[0];
      const eventsOf = async (db: pg.Client, topic: string, keyId: string) =>
        (
          await db.query<{ payload: { reason?: string } }>(`SELECT payload FROM outbox WHERE topic = $1 AND payload->>'keyId' = $2`, [
            topic,
            keyId,
          ])
        ).rows;
      /** Holds the match's checklist row: a flush blocks on it after its INSERT, before its commit. */
      const holdChecklist = async (db: pg.Client, m: string) => {
        await db.query('BEGIN');
        await db.query('SELECT 1 FROM checklists WHERE match_id = $1 FOR UPDATE', [m]);
      };
      const lockWaiters = async (db: pg.Client) =>
        (
          await db.query<{ n: number }>(
            `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
          )
        ).rows[0]?.n ?? 0;
      const until = async (what: string, check: () => boolean | Promise<boolean>, ms = 10_000) => {
        const deadline = Date.now() + ms;
        while (!(await check())) {
          if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 20));
        }
      };
      const logged = (service: RunningService, msg: string) =>
        logLines
          .flatMap((chunk) => chunk.split('\n'))
          .filter((l) => l.includes(service.services.config.instanceId) && l.includes(msg))
          .map((l) => JSON.parse(l) as Record<string, unknown>);

      it('a flush that fails keeps its rows; the next tick after recovery writes them; a heartbeat refused meanwhile moves no mark', async () => {
        own.set(T0);
        const { service, proxy, db } = await proxied(50);
        try {
          const { m, k, hb, send } = await connected(service);
          await holdChecklist(db, m);
          own.advance(1_000);
          expect((await send(hb(2))).status).toBe(202);
          own.advance(1_000);
          expect((await send(hb(3))).status).toBe(202);
          await until('the flush to wait on the checklist row', async () => (await lockWaiters(db)) >= 1);
          proxy.cut(); // the flush in flight loses its connection before its commit
          await db.query('ROLLBACK');
          await until('the failed flush to be logged', () => logged(service, 'overlay presence flush failed; rows kept').length > 0);
          expect(service.services.hookSignals.presencePending).toBe(2);

          // PostgreSQL out: the next heartbeat cannot read its match, is answered 503, and puts its mark back.
          own.advance(1_000);
          const h4 = hb(4);
          const refused = await send(h4);
          expect({ status: refused.status, retryAfter: refused.headers['retry-after'] }).toEqual({ status: 503, retryAfter: '2' });
          expect(JSON.parse(refused.body)).toMatchObject({ error: 'unavailable', reason: 'DATABASE_UNAVAILABLE' });
          await new Promise((r) => setTimeout(r, 250)); // several failing ticks
          expect(service.services.hookSignals.presencePending).toBe(2);
          expect(await rowsIn(db, m)).toEqual(['overlay.connected#1']);

          proxy.restore();
          // The identical retry is accepted as presence: its nonce was given back, its mark put back.
          expect((await send(h4)).status).toBe(202);
          await until('the held rows to be written', async () => (await rowsIn(db, m)).length === 4);
          expect(await rowsIn(db, m)).toEqual(['overlay.connected#1', 'overlay.heartbeat#2', 'overlay.heartbeat#3', 'overlay.heartbeat#4']);
          expect(await lastSeen(db, m)).toEqual({ overlay_connected: true, overlay_last_seen_at: new Date(own.now()) });
          expect(service.services.hookSignals.presencePending).toBe(0);
          expect(await eventsOf(db, Topics.overlayViolation, k.keyId)).toEqual([]);
          expect(await eventsOf(db, Topics.replayAttackDetected, k.keyId)).toEqual([]);
          expect(logged(service, 'overlay presence flush recovered')).toHaveLength(1);

          // A statement error (not an outage) fails the flush the same way: the row is kept until the batch goes in.
          await db.query(`CREATE FUNCTION refuse_heartbeats() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'heartbeats refused by the test'; END $$`);
          await db.query(`CREATE TRIGGER refuse_heartbeats BEFORE INSERT ON overlay_events FOR EACH ROW
            WHEN (NEW.type = 'overlay.heartbeat') EXECUTE FUNCTION refuse_heartbeats()`);
          own.advance(1_000);
          expect((await send(hb(5))).status).toBe(202);
          await until('the refused flush to be logged', () =>
            logged(service, 'overlay presence flush failed; rows kept').some((l) => JSON.stringify(l.err).includes('refused by the test')),
          );
          await new Promise((r) => setTimeout(r, 250)); // several failing ticks
          expect(service.services.hookSignals.presencePending).toBe(1);
          await db.query('DROP TRIGGER refuse_heartbeats ON overlay_events');
          await until('the kept row to be written', async () => (await rowsIn(db, m)).length === 5);
          expect((await rowsIn(db, m)).slice(-1)).toEqual(['overlay.heartbeat#5']);
          expect(await lastSeen(db, m)).toEqual({ overlay_connected: true, overlay_last_seen_at: new Date(own.now()) });
        } finally {
          proxy.restore();
          await service.close();
        }
      });

      it('heartbeats racing a flush in flight are kept and written once; a lost mark is seeded above the rows in flight; a failed flush at shutdown is reported', async () => {
        own.set(T0);
        const { service, proxy, db } = await proxied(3_600_000);
        try {
          const { m, k, hb, send } = await connected(service);
          for (const seq of [2, 3]) {
            own.advance(500);
            expect((await send(hb(seq))).status).toBe(202);
          }
          await holdChecklist(db, m);
          const flushing = service.services.hookSignals.flushPresence();
          await until('the flush to wait on the checklist row', async () => (await lockWaiters(db)) >= 1);
          for (const seq of [4, 5]) {
            own.advance(500);
            expect((await send(hb(seq))).status).toBe(202);
          }
          expect(service.services.hookSignals.presencePending).toBe(4);
          // The mark is lost (Redis restarted) while 2 and 3 are in flight, uncommitted, and 4 and 5 wait behind them:
          // it is seeded from all of them, so a heartbeat going back to 3 is a regression (stored directly; its
          // presence update waits for the checklist row too).
          await service.services.kv.del(`overlay:seq:${k.keyId}`);
          const regressed = send(hb(3));
          await until('the regression to wait on the checklist row', async () => (await lockWaiters(db)) >= 2);
          await db.query('COMMIT');
          expect(await flushing).toBe(4);
          expect((await regressed).status).toBe(202);
          own.advance(500);
          expect((await send(hb(6))).status).toBe(202);
          expect((await send(hb(5))).status).toBe(202); // below the newest: the mark was not moved back
          expect(await service.services.hookSignals.flushPresence()).toBe(1);
          expect((await rowsIn(db, m)).sort()).toEqual(
            [
              'overlay.connected#1',
              'overlay.heartbeat#2',
              'overlay.heartbeat#3',
              'overlay.heartbeat#4',
              'overlay.heartbeat#5',
              'overlay.heartbeat#6',
              'violation:overlay.heartbeat#3',
              'violation:overlay.heartbeat#5',
            ].sort(),
          );
          expect((await eventsOf(db, Topics.overlayViolation, k.keyId)).map((e) => e.payload.reason)).toEqual([
            'SEQUENCE_REGRESSION',
            'SEQUENCE_REGRESSION',
          ]);
          expect(await lastSeen(db, m)).toEqual({ overlay_connected: true, overlay_last_seen_at: new Date(own.now()) });

          // Shutdown flushes once; with PostgreSQL out that flush fails: the held row (in this process only) is
          // reported dropped and the shutdown still completes in bounded time.
          own.advance(500);
          expect((await send(hb(7))).status).toBe(202);
          proxy.cut();
          const started = Date.now();
          await service.close();
          expect(Date.now() - started).toBeLessThan(15_000);
          expect(logged(service, 'overlay presence not persisted at shutdown').map((l) => l.dropped)).toEqual([1]);
          expect(await rowsIn(db, m)).not.toContain('overlay.heartbeat#7');
        } finally {
          proxy.restore();
          await service.close();
        }
      });

      it('shutdown flushes the held heartbeats once', async () => {
        own.set(T0);
        const { service, db } = await proxied(3_600_000);
        try {
          const { m, hb, send } = await connected(service);
          for (const seq of [2, 3]) {
            own.advance(500);
            expect((await send(hb(seq))).status).toBe(202);
          }
          expect(await rowsIn(db, m)).toEqual(['overlay.connected#1']);
          await service.close();
          expect(await rowsIn(db, m)).toEqual(['overlay.connected#1', 'overlay.heartbeat#2', 'overlay.heartbeat#3']);
          expect(await lastSeen(db, m)).toEqual({ overlay_connected: true, overlay_last_seen_at: new Date(own.now()) });
        } finally {
          await service.close();
        }
      });
    });

    it('concurrent calls of one key with the same sequence number → one counts as gameplay evidence, the rest are violations', async () => {
      const m = await newMatch();
      const k = await issue(main, m, 'overlay');
      const calls = Array.from({ length: 12 }, () => call({ type: 'gameplay.progress', matchId: m, seq: 7 }, { key: k }));
      const statuses = await Promise.all(calls.map((c) => send(c).then((r) => r.status)));
      expect(statuses).toEqual(Array(12).fill(202));
      const stored = await main.services.db.selectFrom('overlay_events').select('type').where('match_id', '=', m).execute();
      expect(stored).toHaveLength(12);
      expect(stored.filter((e) => e.type === 'gameplay.progress')).toHaveLength(1);
      const violations = await main.services.db
        .selectFrom('outbox')
        .select('payload')
        .where('topic', '=', Topics.overlayViolation)
        .where('key', '=', m)
        .execute();
      expect(violations.map((v) => (v.payload as { reason: string }).reason)).toEqual(Array(11).fill('SEQUENCE_REGRESSION'));
    });
  });
});
