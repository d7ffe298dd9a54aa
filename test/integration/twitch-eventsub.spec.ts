import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { FakeTwitchEventSub, type SentMessage } from '../../src/demo/simulated/twitch-eventsub.js';
import { ManualClock } from '../../src/infra/clock.js';
import { EventSubStateStore } from '../../src/integrations/twitch/eventsub.js';
import { activeTwitchLogins } from '../../src/integrations/twitch/eventsub.repository.js';
import { EventSubSubscriptions } from '../../src/integrations/twitch/eventsub-subscriptions.js';
import { HelixClient } from '../../src/integrations/twitch/helix-client.js';
import { FakeSrs } from '../fakes/srs.js';
import { FakeTwitchHelix } from '../fakes/twitch-helix.js';
import { freshPostgresDatabase, randomName, requireKafka, requireRedis } from '../support/infra.js';
import { internalApi, serviceEnv, startTestService } from '../support/service.js';

// Twitch EventSub through the service's real webhook route, pushed state in real Redis, sweeps on real PostgreSQL.
const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const CHECK = 30_000;
const EVENTSUB_SECRET = `es_${randomBytes(24).toString('hex')}`;

let drop: () => Promise<void>;
let clock: ManualClock;
let helix: FakeTwitchHelix;
let srs: FakeSrs;
let eventsub: FakeTwitchEventSub;
let service: RunningService;
let redis: Redis;
let redisPrefix: string;
let api: ReturnType<typeof internalApi>;

beforeAll(async () => {
  const prefix = `${randomName('t')}.`;
  const [db, redisUrl, brokers] = await Promise.all([freshPostgresDatabase(), requireRedis(), requireKafka(prefix)]);
  drop = db.drop;
  clock = new ManualClock(T0);
  helix = await FakeTwitchHelix.start({ clock });
  srs = await FakeSrs.start({ clock });
  eventsub = await FakeTwitchEventSub.start({ clock });
  helix.attachEventSub(eventsub);
  redisPrefix = `${randomName('fw')}:`;
  redis = new Redis(redisUrl);
  const env = serviceEnv(
    {
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: redisPrefix,
      KAFKA_BROKERS: brokers.join(','),
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_GROUP_ID: randomName('g'),
      PTERO_APP_URL: 'http://127.0.0.1:1',
      PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    },
    {
      TWITCH_CLIENT_ID: helix.clientId,
      TWITCH_CLIENT_SECRET: helix.clientSecret,
      TWITCH_API_URL: helix.apiUrl,
      TWITCH_AUTH_URL: helix.authUrl,
      TWITCH_EVENTSUB_SECRET: EVENTSUB_SECRET,
      TWITCH_HELIX_POINTS_PER_SWEEP: '1',
      TWITCH_HELIX_SAMPLE_POINTS_PER_SWEEP: '0',
      INGEST_STATS_URL: srs.url,
      TELEMETRY_TIMEOUT_MS: '2500',
      STREAM_CHECK_EVERY_MS: String(CHECK),
    },
  );
  service = await startTestService(env, { clock });
  await service.services.scheduler.stop();
  api = internalApi(service);
});

afterAll(async () => {
  await service?.close();
  await eventsub?.close();
  await helix?.close();
  await srs?.close();
  await redis?.quit();
  await drop?.();
});

async function subscribe(userId: string): Promise<void> {
  for (const type of ['stream.online', 'stream.offline', 'channel.update']) {
    const res = await fetch(`${eventsub.apiUrl}/eventsub/subscriptions`, {
      method: 'POST',
      headers: { 'client-id': helix.clientId, authorization: 'Bearer app-token', 'content-type': 'application/json' },
      body: JSON.stringify({
        type,
        version: '1',
        condition: { broadcaster_user_id: userId },
        transport: { method: 'webhook', callback: `${service.url}/v1/twitch/eventsub`, secret: EVENTSUB_SECRET },
      }),
    });
    expect(res.status).toBe(202);
  }
  await expect
    .poll(
      () => [...eventsub.subscriptions.values()].filter((s) => s.condition.broadcaster_user_id === userId && s.status === 'enabled').length,
    )
    .toBe(3);
}

describe('Twitch EventSub webhook on the running service', () => {
  it('confirms subscriptions, enforces from pushes alone, refuses forgeries and replays, dedupes, and falls back on revocation', async () => {
    const r = randomBytes(3).toString('hex');
    const matchId = `m-es-${r}`;
    const a = { id: `7${r}1`.replace(/[^0-9]/g, '1'), login: `a_${r}` };
    const b = { id: `7${r}2`.replace(/[^0-9]/g, '2'), login: `b_${r}` };
    for (const p of [a, b]) {
      srs.publish('live', `s_${p.login}`, { fps: 60, kbps: 6000 });
      // Helix would say live for the whole test: every "offline" below can only come from a push.
      helix.setChannel(p.login, { live: true, title: `Final [${matchId}]` });
      await subscribe(p.id);
      expect((await eventsub.notify('channel.update', p, { title: `Final [${matchId}]` }))[0]?.status).toBe(204);
      expect((await eventsub.notify('stream.online', p))[0]?.status).toBe(204);
    }
    expect(await redis.get(`${redisPrefix}tw:es:login:${a.login}`)).toBe(a.id);

    const put = await api('PUT', `/v1/internal/matches/${matchId}`, {
      mode: 'VERIFIED_STREAM',
      status: 'IN_PROGRESS',
      entryFee: { amountCents: 500, currency: 'USD' },
      overlayRequired: true,
      players: [
        { side: 'p1', playerId: `alice-${r}`, streamChannels: [`twitch:${a.login}`, `srs:live/s_${a.login}`] },
        { side: 'p2', playerId: `bob-${r}`, streamChannels: [`twitch:${b.login}`, `srs:live/s_${b.login}`] },
      ],
    });
    expect(put.status, JSON.stringify(put.json)).toBe(201);
    const sweep = () => service.services.streamHealth.sweep({ matchId });
    await sweep();
    clock.advance(CHECK);
    expect((await sweep()).samples).toEqual({ healthy: 2, violating: 0, unknown: 0 });
    expect(helix.streamsRequests()).toHaveLength(0); // both answered from pushed state

    // Forged, stale and duplicate deliveries through the real route.
    const [offline] = await eventsub.notify('stream.offline', a);
    const sent = (offline as { message: SentMessage }).message;
    expect((await eventsub.resend({ ...sent, id: `forged-${r}`, secret: 'not-the-secret-0123456789' })).status).toBe(403);
    const [stale] = await eventsub.notify('stream.online', a, {}, { sentAt: clock.now() - 11 * 60_000 });
    expect(stale?.status).toBe(403);
    expect((await eventsub.resend(sent)).status).toBe(204);
    expect(await redis.exists(`${redisPrefix}tw:es:msg:${sent.id}`)).toBe(1);

    // The offline push reaches the violation path in the very next sweep.
    clock.advance(CHECK);
    const after = await sweep();
    expect(after.samples).toEqual({ healthy: 1, violating: 1, unknown: 0 });
    const side = await service.services.db
      .selectFrom('stream_sides')
      .selectAll()
      .where('match_id', '=', matchId)
      .where('side', '=', 'p1')
      .executeTakeFirstOrThrow();
    expect(JSON.stringify(side)).toContain('STREAM_OFFLINE');

    // Revocation: the pushed state is gone from Redis; the channel is asked on Helix, within one request.
    const online = [...eventsub.subscriptions.values()].find((s) => s.type === 'stream.online' && s.condition.broadcaster_user_id === a.id);
    expect((await eventsub.revoke(online?.id ?? '')).status).toBe(204);
    expect(await redis.exists(`${redisPrefix}tw:es:live:${a.id}`)).toBe(0);
    clock.advance(CHECK);
    await sweep();
    expect(helix.streamsRequests()).toHaveLength(1);
    expect(helix.streamsRequests()[0]?.logins).toEqual([a.login]);
  });

  it('answers 403 to a delivery without the EventSub headers, and never echoes the secret', async () => {
    const res = await fetch(`${service.url}/v1/twitch/eventsub`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(403);
    expect(await res.text()).not.toContain(EVENTSUB_SECRET);
  });

  it('creates the subscriptions of an active match, confirms them through the route, and deletes them when it ends', async () => {
    const r = randomBytes(3).toString('hex');
    const matchId = `m-sub-${r}`;
    const logins = [`c_${r}`, `d_${r}`];
    for (const login of logins) helix.setChannel(login, { live: false });
    const put = await api('PUT', `/v1/internal/matches/${matchId}`, {
      mode: 'VERIFIED_STREAM',
      status: 'IN_PROGRESS',
      entryFee: { amountCents: 500, currency: 'USD' },
      overlayRequired: true,
      players: logins.map((login, i) => ({
        side: i === 0 ? 'p1' : 'p2',
        playerId: `pl-${login}`,
        streamChannels: [`twitch:${login}`, `srs:live/${login}`],
      })),
    });
    expect(put.status, JSON.stringify(put.json)).toBe(201);
    const store = new EventSubStateStore(service.services.kv);
    const manager = new EventSubSubscriptions(
      new HelixClient({
        clientId: helix.clientId,
        clientSecret: helix.clientSecret,
        apiUrl: helix.apiUrl,
        authUrl: helix.authUrl,
        timeoutMs: 2_500,
        clock,
      }),
      store,
      { callbackUrl: `${service.url}/v1/twitch/eventsub`, secret: EVENTSUB_SECRET, maxChanges: 50 },
    );
    const ids = logins.map((l) => helix.userIdOf(l) as string);
    const ours = () => [...eventsub.subscriptions.values()].filter((s) => ids.includes(s.condition.broadcaster_user_id));

    // Other tests' matches ended: their subscriptions are leftovers of this callback.
    await service.services.db.updateTable('matches').set({ status: 'COMPLETED' }).where('id', '!=', matchId).execute();
    const wanted = await activeTwitchLogins(service.services.db);
    expect(wanted.sort()).toEqual([...logins].sort());
    const leftovers = eventsub.subscriptions.size;
    expect(await manager.reconcile(wanted)).toEqual({ created: 6, removed: leftovers, unresolved: 0 });
    await expect.poll(() => ours().filter((s) => s.status === 'enabled').length).toBe(6);
    for (const id of ids) expect((await store.read(id)).confirmed).toBe(true);
    // Reconciling again changes nothing.
    expect(await manager.reconcile(wanted)).toMatchObject({ created: 0, removed: 0 });

    await service.services.db.updateTable('matches').set({ status: 'COMPLETED' }).where('id', '=', matchId).execute();
    const after = await activeTwitchLogins(service.services.db);
    expect(after).toEqual([]);
    expect(await manager.reconcile(after)).toMatchObject({ created: 0, removed: 6 });
    expect(eventsub.subscriptions.size).toBe(0);
    for (const id of ids) expect((await store.read(id)).confirmed).toBe(false);
  });
});
