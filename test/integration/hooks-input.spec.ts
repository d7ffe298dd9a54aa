import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { findNul, isInt4 } from '../../src/infra/db/storable.js';
import { headerPairs, rawRequest, signed } from '../support/hook-client.js';
import { freshPostgresDatabase, randomName, requireRedis, TEST_SECRETS } from '../support/infra.js';
import { randomJson, randomSafeNumber, randomString, Rng, type Json } from '../support/json-gen.js';
import { internalApi, matchBody, startTestService } from '../support/service.js';

// Bad input never becomes a 500: generated values (NUL in strings and keys, integers past the columns' ranges)
// driven through every route that writes to PostgreSQL, on the real stack.

const OVERLAY_TYPES = ['overlay.connected', 'overlay.heartbeat', 'overlay.disconnected', 'gameplay.progress'];
const EDGE_INTEGERS = [0, 1, -1, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53 - 1, -(2 ** 53 - 1), 2 ** 32, 0.5, 1e-7];

let service: RunningService;
let drop: () => Promise<void>;
let api: ReturnType<typeof internalApi>;

beforeAll(async () => {
  const redisUrl = await requireRedis();
  const db = await freshPostgresDatabase();
  drop = db.drop;
  service = await startTestService({
    ...TEST_SECRETS,
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: randomName('hi') + ':',
    PTERO_APP_URL: 'http://127.0.0.1:9',
    PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    HMAC_FAILURE_LIMIT_PER_MIN: '100000',
    HMAC_KEY_BUDGET: '100000',
  });
  api = internalApi(service);
});

afterAll(async () => {
  await service?.close();
  await drop?.();
});

/** A value that is often hostile to PostgreSQL: NUL-laden strings and keys, integers at and past int32. */
function hostile(rng: Rng): Json {
  switch (rng.int(4)) {
    case 0:
      return rng.pick(EDGE_INTEGERS);
    case 1:
      return `${randomString(rng, 4)}\u0000${randomString(rng, 4)}`;
    case 2:
      return { [`k\u0000${randomString(rng, 2)}`]: randomJson(rng, 1, randomSafeNumber) };
    default:
      return randomJson(rng, 3, randomSafeNumber);
  }
}

async function newMatch(): Promise<string> {
  const matchId = randomName('fz-');
  expect((await api('PUT', `/v1/internal/matches/${matchId}`, { ...matchBody(matchId), status: 'IN_PROGRESS' })).status).toBe(201);
  return matchId;
}

describe('no generated input is answered 5xx', () => {
  it('signed overlay and admin calls: 202, or 400 exactly when a value cannot be stored', async () => {
    const rng = new Rng(0x5eed14);
    const matchId = await newMatch();
    const overlay = (await api('POST', '/v1/internal/keys', { matchId, kind: 'overlay' })).json as { keyId: string; secret: string };
    const admin = (await api('POST', '/v1/internal/keys', { matchId, kind: 'admin' })).json as { keyId: string; secret: string };
    const seen = new Map<number, number>();
    for (let i = 0; i < 160; i++) {
      const isAdmin = rng.bool(0.2);
      const body: Record<string, Json> = { type: isAdmin ? 'admin.hooks.ok' : rng.pick(OVERLAY_TYPES), matchId };
      if (rng.bool(0.6)) body.seq = rng.bool(0.6) ? rng.pick(EDGE_INTEGERS) : hostile(rng);
      for (let n = rng.int(3); n > 0; n--) body[rng.bool(0.3) ? `x\u0000${i}` : `f${n}`] = hostile(rng);
      const key = isAdmin ? admin : overlay;
      const call = signed(key.keyId, key.secret, body, Date.now());
      const r = await rawRequest(service.url, {
        path: isAdmin ? '/v1/hooks/admin' : '/v1/overlay/events',
        headers: headerPairs(call.headers),
        body: call.body,
      });
      seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
      const storable = findNul(body) === null && (body.seq === undefined || body.seq === null || isInt4(body.seq));
      expect({ i, status: r.status, body: call.body }).toEqual({ i, status: storable ? 202 : 400, body: call.body });
      if (!storable)
        expect(JSON.parse(r.body)).toMatchObject({
          error: 'bad_request',
          reason: expect.stringMatching(/^(BODY_NOT_STORABLE|SEQ_INVALID)$/),
        });
    }
    // The generator must actually produce both kinds of input, or this test proves nothing.
    expect(seen.get(202)).toBeGreaterThan(20);
    expect(seen.get(400)).toBeGreaterThan(20);
  });

  it('internal API: PUT match, POST event, POST key with generated values → never 5xx', async () => {
    const rng = new Rng(0xbad14);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 120; i++) {
      const matchId = randomName('fz-');
      type Player = { playerId: Json; streamChannels: Json[] };
      const body = structuredClone(matchBody(matchId)) as unknown as {
        players: Player[];
        entryFee: Record<string, Json>;
        [field: string]: unknown;
      };
      const mutate = rng.int(6);
      if (mutate === 0) (body.players[rng.int(2)] as Player).playerId = `${randomString(rng, 3)}\u0000${randomString(rng, 3)}`;
      else if (mutate === 1) body.entryFee.amountCents = rng.pick(EDGE_INTEGERS);
      else if (mutate === 2) (body.players[rng.int(2)] as Player).streamChannels = [hostile(rng)];
      else if (mutate === 3) body.entryFee.currency = rng.pick(['US\u0000', 'USD', randomString(rng, 3)]);
      else if (mutate === 4) body[`extra\u0000${i}`] = hostile(rng);
      else body.mode = hostile(rng);
      const put = await api('PUT', `/v1/internal/matches/${matchId}`, body);
      statuses.set(put.status, (statuses.get(put.status) ?? 0) + 1);
      expect({ i, route: 'PUT match', status: put.status < 500 }).toEqual({ i, route: 'PUT match', status: true });
      if (findNul(body)) expect(put.status).toBe(400);

      const event: Record<string, Json> = {
        v: 'v1',
        eventId: `e-${randomName('')}`,
        matchId,
        panelServerId: rng.bool() ? rng.pick(EDGE_INTEGERS) : 7,
      };
      for (let n = rng.int(3) + 1; n > 0; n--) event[rng.bool(0.4) ? `extra\u0000${n}` : `extra${n}`] = hostile(rng);
      const topic = rng.pick(['server.reserved', 'server.released', 'stream.health.check']);
      const post = await api('POST', `/v1/internal/events/${topic}`, event);
      statuses.set(post.status, (statuses.get(post.status) ?? 0) + 1);
      expect({ i, route: `POST ${topic}`, status: post.status < 500 }).toEqual({ i, route: `POST ${topic}`, status: true });
      if (findNul(event)) expect(post.status).toBe(400);

      const key = await api('POST', '/v1/internal/keys', {
        matchId: rng.bool(0.3) ? `m\u0000${i}` : matchId,
        kind: rng.pick(['overlay', 'admin', 'x\u0000']),
        ...(rng.bool(0.3) ? { ttlMs: hostile(rng) } : {}),
      });
      expect({ i, route: 'POST key', status: key.status < 500 }).toEqual({ i, route: 'POST key', status: true });
      const revoke = await api('DELETE', `/v1/internal/keys/${encodeURIComponent(`ovl_${matchId}\u0000_1767225600000`)}`);
      // A NUL in the key id is refused as bad input (400), as in every other path parameter; never a 5xx.
      expect(revoke.status).toBe(400);
    }
    expect(statuses.get(400)).toBeGreaterThan(20);
    expect([...statuses.keys()].some((s) => s >= 200 && s < 300)).toBe(true);
  });
});
