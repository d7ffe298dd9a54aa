import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { DEFAULT_EGG_VARIABLES, type FakePanel } from '../fakes/pterodactyl-panel.js';
import { summarizeMatch } from '../../src/cli/cli.js';
import { createLogger } from '../../src/observability/logger.js';
import { SystemClock } from '../../src/infra/clock.js';
import { headerPairs, rawRequest, signed } from '../support/hook-client.js';
import { randomName } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { internalApi, matchBody, realStack, serviceEnv, startTestService, type RealStack } from '../support/service.js';

// The admin key lifecycle on the real stack (PostgreSQL, Redis, Kafka) and the fake panel over HTTP: issued with
// server.reserved, delivered as startup variables (GET + PATCH /startup), read by the game server from its
// environment, revoked on release; refusals recorded and explained in the match view; secrets nowhere else.

const ID_VAR = 'FLOCK_ADMIN_KEY_ID';
const SECRET_VAR = 'FLOCK_ADMIN_KEY_SECRET';
/** Egg 5: the secret variable only takes 10 characters, so the panel answers 422 on the key's secret. */
const STRICT_EGG = 5;
/** Egg 4: no Flock variables (the panel ignores them). */
const PLAIN_EGG = 4;

let real: RealStack;
let panel: FakePanel;
let service: RunningService;
let api: ReturnType<typeof internalApi>;
const logLines: string[] = [];
const clock = new SystemClock();

beforeAll(async () => {
  real = await realStack({
    eggs: {
      3: DEFAULT_EGG_VARIABLES,
      4: DEFAULT_EGG_VARIABLES.filter((v) => !v.env.startsWith('FLOCK_')),
      5: DEFAULT_EGG_VARIABLES.map((v) => (v.env === SECRET_VAR ? { ...v, rules: 'required|string|max:10' } : v)),
    },
  });
  panel = real.panel;
  const capture = new Writable({
    write(chunk, _enc, done) {
      logLines.push(chunk.toString());
      done();
    },
  });
  service = await startTestService(
    serviceEnv(real.stack, {
      READY_DEADLINE_MS: '10000',
      POLL_EVERY_MS: '200',
      ADMIN_KEY_DELIVERY_MAX_ATTEMPTS: '3',
      PTERO_TIMEOUT_MS: '1500',
      PTERO_MUTATION_TIMEOUT_MS: '1500',
    }),
    { logger: createLogger('debug', {}, capture) },
  );
  api = internalApi(service);
});

afterAll(async () => {
  await service?.close();
  await real?.close();
});

async function view(matchId: string) {
  return (await api('GET', `/v1/internal/matches/${matchId}`)).json;
}

async function reserve(matchId: string, serverId: number, eventId: string = randomUUID()) {
  const { status } = await api('POST', '/v1/internal/events/server.reserved', { v: 'v1', eventId, matchId, panelServerId: serverId });
  expect(status).toBe(202);
  return eventId;
}

async function newMatch(tag: string, serverInit: Parameters<FakePanel['addServer']>[0] = { installAfterMs: 1000 }) {
  const matchId = `ak-${tag}-${randomName('')}`;
  const serverId = panel.addServer(serverInit);
  expect((await api('PUT', `/v1/internal/matches/${matchId}`, matchBody(matchId))).status).toBe(201);
  return { matchId, serverId };
}

function adminHook(keyId: string, secret: string, matchId: string) {
  const call = signed(keyId, secret, { type: 'admin.hooks.ok', matchId }, clock.now());
  return rawRequest(service.url, { path: '/v1/hooks/admin', headers: headerPairs(call.headers), body: call.body });
}

async function adminKeysOf(matchId: string) {
  return service.services.db.selectFrom('hmac_keys').selectAll().where('match_id', '=', matchId).where('kind', '=', 'admin').execute();
}

const delivered: string[] = [];

describe('admin key lifecycle', () => {
  it('reserved → the key arrives as startup variables; the game server signs its first hook with it → READY; released → 401', async () => {
    const { matchId, serverId } = await newMatch('ok', { installAfterMs: 1000, variables: { SERVER_JARFILE: 'paper.jar' } });
    const eventId = await reserve(matchId, serverId);
    const ak = await eventually(
      async () => {
        const v = await view(matchId);
        return v.provisioning?.adminKey?.delivery === 'DELIVERED' && v.provisioning.adminKey;
      },
      20_000,
      'admin key delivered',
    );
    // What the game server's environment now holds: the key, and every other variable as it was.
    const env = panel.variables(serverId);
    expect(env[ID_VAR]).toBe(ak.keyId);
    expect(env[ID_VAR]).toMatch(new RegExp(`^adm_${matchId}_\\d{13}$`));
    expect(env[SECRET_VAR]).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(env.SERVER_JARFILE).toBe('paper.jar');
    expect(env.VANILLA_VERSION).toBe('latest');
    // The startup fields were sent back as the panel had them.
    expect(panel.startupOf(serverId)).toEqual({
      startup: 'java -Xms128M -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}}',
      image: 'ghcr.io/pterodactyl/yolks:java_17',
      egg: 3,
      skipScripts: false,
    });
    delivered.push(env[SECRET_VAR] as string);
    expect(panel.stats.byPathStatus[`PATCH /api/application/servers/${serverId}/startup 200`]).toBe(1);

    // A redelivered server.reserved (same event id) and a second reservation (new id) issue nothing more.
    await reserve(matchId, serverId, eventId);
    await reserve(matchId, serverId);
    await eventually(async () => (await view(matchId)).provisioning?.state === 'WAITING_SIGNALS', 20_000, 'installed');
    expect(await adminKeysOf(matchId)).toHaveLength(1);

    // The admin plugin reads its key from the environment and signs its first hook.
    const hook = await adminHook(env[ID_VAR] as string, env[SECRET_VAR] as string, matchId);
    expect(hook.status).toBe(202);
    await eventually(async () => (await view(matchId)).provisioning?.state === 'READY', 20_000, 'ready');

    // Overlay keys: one per player, fetched through the internal API (token-guarded), never in events.
    const keys = await api('GET', `/v1/internal/matches/${matchId}/overlay-keys`);
    expect(keys.status).toBe(200);
    expect(keys.json.issued).toBe(true);
    expect(keys.json.keys.map((k: { side: string; playerId: string }) => [k.side, k.playerId])).toEqual([
      ['p1', `alice-${matchId}`],
      ['p2', `bob-${matchId}`],
    ]);
    for (const k of keys.json.keys) {
      expect(k.keyId).toMatch(new RegExp(`^ovl_${matchId}_\\d{13}$`));
      expect(k.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
      delivered.push(k.secret);
    }
    expect(new Set(keys.json.keys.map((k: { keyId: string }) => k.keyId)).size).toBe(2);
    const noToken = await fetch(`${service.url}/v1/internal/matches/${matchId}/overlay-keys`);
    expect(noToken.status).toBe(401);
    expect((await api('GET', `/v1/internal/matches/no-such-${matchId}/overlay-keys`)).status).toBe(404);

    // Released: every key of the match is revoked; the admin hook is refused from then on.
    await api('POST', '/v1/internal/events/server.released', { v: 'v1', eventId: randomUUID(), matchId, panelServerId: serverId });
    await eventually(async () => (await view(matchId)).provisioning?.adminKey?.revoked === true, 20_000, 'revoked');
    await eventually(
      async () => (await adminHook(env[ID_VAR] as string, env[SECRET_VAR] as string, matchId)).status === 401,
      10_000,
      '401',
    );
    const after = await api('GET', `/v1/internal/matches/${matchId}/overlay-keys`);
    expect(after.json.keys.every((k: { revoked: boolean; secret?: string }) => k.revoked && k.secret === undefined)).toBe(true);
  });

  it('matches that go ready together get one overlay key per player from one bulk write; a player who already has a key keeps it', async () => {
    const matches = await Promise.all(Array.from({ length: 6 }, (_, i) => newMatch(`bulk${i}`, { installAfterMs: 300 })));
    // The platform (or an earlier attempt) already recorded a key for p1 of the first match: it stays, the spare is revoked.
    const kept = `ovl_${matches[0]!.matchId}_1000000000000`;
    await service.services.db
      .insertInto('overlay_keys')
      .values({ match_id: matches[0]!.matchId, player_id: `alice-${matches[0]!.matchId}`, side: 'p1', key_id: kept, issued_at: new Date() })
      .execute();
    for (const { matchId } of matches) await service.services.provisioning.recordReadinessSignal(matchId, { adminHooksOk: true });
    for (const { matchId, serverId } of matches) await reserve(matchId, serverId);
    for (const { matchId } of matches)
      await eventually(async () => (await view(matchId)).provisioning?.state === 'READY', 30_000, `${matchId} ready`);

    for (const [i, { matchId }] of matches.entries()) {
      const rows = await service.services.db
        .selectFrom('overlay_keys')
        .selectAll()
        .where('match_id', '=', matchId)
        .orderBy('side')
        .execute();
      expect(rows.map((r) => [r.side, r.player_id])).toEqual([
        ['p1', `alice-${matchId}`],
        ['p2', `bob-${matchId}`],
      ]);
      const records = await service.services.db
        .selectFrom('hmac_keys')
        .selectAll()
        .where('match_id', '=', matchId)
        .where('kind', '=', 'overlay')
        .execute();
      if (i === 0) {
        expect(rows[0]!.key_id).toBe(kept);
        // Two records issued for the match; the one p1 did not take is revoked in the same transaction.
        expect(records).toHaveLength(2);
        const spare = records.filter((r) => r.key_id !== rows[1]!.key_id);
        expect(spare).toHaveLength(1);
        expect(spare[0]!.revoked_at).not.toBeNull();
      } else {
        expect(records.map((r) => r.key_id).sort()).toEqual(rows.map((r) => r.key_id).sort());
        expect(records.every((r) => r.revoked_at === null)).toBe(true);
      }
    }
  });

  it('bulk issue: a key id already taken moves to the next millisecond, in request order, inside the caller transaction', async () => {
    const { KeyServiceMatchKeys } = await import('../../src/security/match-keys.js');
    const matchKeys = new KeyServiceMatchKeys(service.services.keys);
    const matchId = `ak-issue-${randomName('')}`;
    const at = 1_800_000_000_000;
    await service.services.db
      .insertInto('hmac_keys')
      .values({
        key_id: `ovl_${matchId}_${at}`,
        match_id: matchId,
        kind: 'overlay',
        issued_at: at,
        expires_at: at + 60_000,
        revoked_at: null,
      })
      .execute();
    const issued = await service.services.db.transaction().execute((trx) =>
      matchKeys.issueMany(trx, [
        { matchId, kind: 'overlay', at },
        { matchId, kind: 'overlay', at: at + 5 },
      ]),
    );
    expect(issued?.map((k) => k.keyId)).toEqual([`ovl_${matchId}_${at + 1}`, `ovl_${matchId}_${at + 5}`]);
    const ids = (
      await service.services.db.selectFrom('hmac_keys').select('key_id').where('match_id', '=', matchId).orderBy('key_id').execute()
    ).map((r) => r.key_id);
    expect(ids).toEqual([`ovl_${matchId}_${at}`, `ovl_${matchId}_${at + 1}`, `ovl_${matchId}_${at + 5}`]);
    // A transaction that rolls back leaves no record behind.
    await expect(
      service.services.db.transaction().execute(async (trx) => {
        await matchKeys.issueMany(trx, [{ matchId, kind: 'overlay', at: at + 9 }]);
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(
      await service.services.db
        .selectFrom('hmac_keys')
        .select('key_id')
        .where('key_id', '=', `ovl_${matchId}_${at + 9}`)
        .execute(),
    ).toEqual([]);
  });

  it('a PATCH that hangs (client timeout, outcome unknown) is retried with the same key: delivered once, one key', async () => {
    const { matchId, serverId } = await newMatch('retry');
    panel.injectFault({ kind: 'hang', serverId, methods: ['PATCH'], times: 1 });
    panel.injectFault({ kind: 'server_error', serverId, methods: ['PATCH'], times: 1 });
    await reserve(matchId, serverId);
    const ak = await eventually(
      async () => {
        const v = await view(matchId);
        return v.provisioning?.adminKey?.delivery === 'DELIVERED' && v.provisioning.adminKey;
      },
      30_000,
      'delivered after retries',
    );
    expect(ak.attempts).toBe(3);
    expect(await adminKeysOf(matchId)).toHaveLength(1);
    expect(panel.variables(serverId)[ID_VAR]).toBe(ak.keyId);
    delivered.push(panel.variables(serverId)[SECRET_VAR] as string);
  });

  const refusals = [
    {
      tag: '403',
      setup: (serverId: number) => panel.injectFault({ kind: 'forbidden', serverId, methods: ['PATCH'] }),
      init: { installAfterMs: 1000 },
      reason: 'FORBIDDEN',
      status: 403,
      attempts: 1,
    },
    {
      tag: '422',
      setup: () => undefined,
      init: { installAfterMs: 1000, egg: STRICT_EGG },
      reason: 'BAD_REQUEST',
      status: 422,
      attempts: 1,
    },
    {
      tag: 'noegg',
      setup: () => undefined,
      init: { installAfterMs: 1000, egg: PLAIN_EGG },
      reason: 'VARIABLE_NOT_IN_EGG',
      status: 200,
      attempts: 1,
    },
    {
      tag: '500',
      setup: (serverId: number) => panel.injectFault({ kind: 'server_error', serverId, methods: ['PATCH'] }),
      init: { installAfterMs: 1000 },
      reason: 'SERVER_ERROR',
      status: 500,
      attempts: 3,
    },
  ] as const;

  for (const r of refusals) {
    it(`a panel that refuses the update (${r.tag}) → recorded; the match view says why the admin hook cannot arrive, before the deadline`, async () => {
      const { matchId, serverId } = await newMatch(r.tag, r.init);
      r.setup(serverId);
      await reserve(matchId, serverId);
      const v = await eventually(
        async () => {
          const x = await view(matchId);
          return x.provisioning?.adminKey?.delivery === 'FAILED' && x;
        },
        30_000,
        `${r.tag} recorded`,
      );
      const ak = v.provisioning.adminKey;
      expect(ak.lastFailure).toMatchObject({ reason: r.reason, status: r.status });
      expect(ak.attempts).toBe(r.attempts);
      // Before the deadline cancels it: the provision is still active and the view says why.
      expect(['RESERVED', 'INSTALLING', 'WAITING_SIGNALS']).toContain(v.provisioning.state);
      expect(ak.adminHookBlocked).toContain(r.reason);
      expect(ak.adminHookBlocked).toContain(`server ${serverId}`);
      expect(ak.adminHookBlocked).toContain('fails (TIMEOUT) at');
      expect(panel.variables(serverId)[ID_VAR] ?? '').toBe('');
      expect(await adminKeysOf(matchId)).toHaveLength(1);
      if (r.tag === '422') expect(ak.lastFailure.detail).toContain('Flock admin key secret');
      if (r.tag === '500') expect(panel.stats.byPathStatus[`PATCH /api/application/servers/${serverId}/startup 500`]).toBe(3);
      // The CLI view says it too.
      expect(summarizeMatch(v)).toContain('admin hook cannot arrive:');
      // Then the deadline cancels the match and the key is revoked.
      await eventually(
        async () => {
          const x = await view(matchId);
          return x.provisioning?.state === 'FAILED' && x.provisioning.adminKey?.revoked === true;
        },
        30_000,
        `${r.tag} cancelled and revoked`,
      );
      const finalView = await view(matchId);
      expect(finalView.status).toBe('CANCELLED');
      expect(finalView.provisioning.adminKey.adminHookBlocked).not.toContain('fails (TIMEOUT) at');
      const row = (await adminKeysOf(matchId))[0];
      expect(row?.revoked_at).not.toBeNull();
      if (ak.keyId) delivered.push(service.services.keys.secretOf(ak.keyId) as string);
    }, 60_000);
  }

  it('no secret appears in a log line, an event or an error body', async () => {
    expect(delivered.length).toBeGreaterThanOrEqual(6);
    const logs = logLines.join('');
    expect(logs.length).toBeGreaterThan(1000);
    expect(logs).toContain('admin key delivered'); // the captured log is the real one …
    for (const secret of delivered) expect(logs).not.toContain(secret); // … and it never holds a secret
    const outbox = await service.services.db.selectFrom('outbox').select(['payload', 'headers']).execute();
    expect(outbox.length).toBeGreaterThan(0);
    const events = JSON.stringify(outbox);
    for (const secret of delivered) expect(events).not.toContain(secret);
    const matches = await api('GET', '/v1/internal/matches?limit=100');
    const views = JSON.stringify(matches.json);
    expect(views).toContain('adminHookBlocked');
    for (const secret of delivered) expect(views).not.toContain(secret);
  });
});
