import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import type { KafkaMessageSink } from '../../src/infra/bus/kafka-bus.js';
import { Topics } from '../../src/events/topics.js';
import { ledgerBalances } from '../../src/matches/match.repository.js';
import type { RunningService } from '../../src/app.module.js';
import type { FakePanel } from '../fakes/pterodactyl-panel.js';
import { randomName } from '../support/infra.js';
import { eventually, KafkaTap } from '../support/kafka-tap.js';
import { internalApi, matchBody, platformProducer, realStack, serviceEnv, startTestService, type RealStack } from '../support/service.js';

// ServerProvisionWorker against the real PostgreSQL, Redis and Kafka, with the fake panel over real HTTP.
// Inputs are produced to Kafka exactly as the platform would; outputs are read back from Kafka.

// These tests pin the per-server poller (the coalesced listing's fallback); the listing has its own tests (docs/panel.md).
const PER_SERVER = { PANEL_LIST_EVERY_MS: '0' };
let real: RealStack;
let panel: FakePanel;
let service: RunningService;
let tap: KafkaTap;
let producer: KafkaMessageSink;
let redis: Redis;
let redisPrefix: string;
let api: ReturnType<typeof internalApi>;

// Nothing in the main block waits for a deadline, so it is long: a slow (loaded) run never races it. Only the
// last block, on its own instance, runs into a deadline, and that one is short.
const READY_DEADLINE_MS = 60_000;
const SHORT_READY_DEADLINE_MS = 8_000;

beforeAll(async () => {
  real = await realStack();
  panel = real.panel;
  redisPrefix = real.stack.REDIS_KEY_PREFIX;
  redis = new Redis(real.stack.REDIS_URL);
  service = await startTestService(serviceEnv(real.stack, { ...PER_SERVER, READY_DEADLINE_MS: String(READY_DEADLINE_MS) }));
  api = internalApi(service);
  producer = platformProducer(real);
  tap = await KafkaTap.start(real.brokers, real.prefix, [
    Topics.serverReady,
    Topics.serverFailed,
    Topics.matchCancelled,
    Topics.deadLetter,
  ]);
});

afterAll(async () => {
  await tap?.stop();
  await producer?.close();
  await service?.close();
  await redis?.quit();
  await real?.close();
});

async function produce(topic: string, value: string | Record<string, unknown>, key: string) {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const eventId = typeof value === 'string' ? randomUUID() : String(value.eventId);
  await producer.send([{ topic, key, value: text, headers: { 'event-id': eventId, 'event-type': topic } }]);
}

const reserved = (matchId: string, panelServerId: number, eventId = randomUUID()) => ({ v: 'v1', eventId, matchId, panelServerId });

async function view(matchId: string) {
  const { status, json } = await api('GET', `/v1/internal/matches/${matchId}`);
  return status === 200 ? json : undefined;
}

async function createMatch(matchId: string, options?: { overlayRequired?: boolean }) {
  const { status } = await api('PUT', `/v1/internal/matches/${matchId}`, matchBody(matchId, options));
  expect(status).toBe(201);
}

describe('ServerProvisionWorker on real PostgreSQL, Redis and Kafka', () => {
  it('reserved → installing → installed + admin hook → exactly one server.ready', async () => {
    const matchId = randomName('m-ready-');
    await createMatch(matchId);
    const serverId = panel.addServer({ installAfterMs: 800 });
    await produce(Topics.serverReserved, reserved(matchId, serverId), matchId);
    await eventually(
      async () =>
        (await view(matchId))?.provisioning?.state === 'INSTALLING' || (await view(matchId))?.provisioning?.state === 'WAITING_SIGNALS',
      20_000,
      'provisioning to start',
    );
    await eventually(async () => (await view(matchId))?.provisioning?.state === 'WAITING_SIGNALS', 20_000, 'install detected');
    expect((await view(matchId)).checklist.serverInstalled).toBe(true);
    expect(tap.of(Topics.serverReady, matchId)).toHaveLength(0);

    await service.services.provisioning.recordReadinessSignal(matchId, { adminHooksOk: true });
    await eventually(() => tap.distinct(Topics.serverReady, matchId).length === 1, 20_000, 'server.ready on Kafka');
    const v = await view(matchId);
    expect(v.provisioning.state).toBe('READY');
    expect(v.checklist).toMatchObject({ serverInstalled: true, adminHooksOk: true });
    const ready = tap.distinct(Topics.serverReady, matchId)[0]!;
    expect(ready.key).toBe(matchId);
    expect(ready.value).toMatchObject({ v: 'v1', type: 'server.ready', matchId, panelServerId: serverId });
    // A second signal changes nothing.
    await service.services.provisioning.recordReadinessSignal(matchId, { adminHooksOk: true });
    await new Promise((r) => setTimeout(r, 500));
    expect(tap.distinct(Topics.serverReady, matchId)).toHaveLength(1);
  });

  it('install_failed → FAILED (INSTALL_FAILED) well before the deadline', async () => {
    const matchId = randomName('m-instfail-');
    await createMatch(matchId);
    const serverId = panel.addServer({ installAfterMs: 300, outcome: 'install_failed' });
    await produce(Topics.serverReserved, reserved(matchId, serverId), matchId);
    await eventually(async () => (await view(matchId))?.provisioning?.state === 'FAILED', 20_000, 'failure');
    expect((await view(matchId)).provisioning.failureReason).toBe('INSTALL_FAILED');
    // The service's own timestamps, not the (possibly starved) test's wall clock: it failed with most of the
    // deadline still ahead. The reason alone already rules out the deadline (that one would say TIMEOUT).
    const row = await service.services.db
      .selectFrom('provisions')
      .select(['failed_at', 'deadline_at'])
      .where('match_id', '=', matchId)
      .executeTakeFirstOrThrow();
    expect(row.deadline_at!.getTime() - row.failed_at!.getTime()).toBeGreaterThan(READY_DEADLINE_MS / 2);
    await eventually(() => tap.distinct(Topics.serverFailed, matchId).length === 1, 20_000, 'server.failed');
    expect(tap.distinct(Topics.serverFailed, matchId)[0]!.value.reason).toBe('INSTALL_FAILED');
  });

  it('the same event delivered five times → one effect', async () => {
    const matchId = randomName('m-dup-');
    await createMatch(matchId);
    const serverId = panel.addServer({ installAfterMs: 200, outcome: 'install_failed' });
    const event = reserved(matchId, serverId);
    for (let i = 0; i < 5; i++) await produce(Topics.serverReserved, event, matchId);
    await eventually(() => tap.distinct(Topics.matchCancelled, matchId).length === 1, 20_000, 'match.cancelled');
    await new Promise((r) => setTimeout(r, 1500));
    expect(tap.distinct(Topics.serverFailed, matchId)).toHaveLength(1);
    expect((await view(matchId)).refunds).toHaveLength(2);
    const processed = await service.services.db.selectFrom('processed_events').selectAll().where('event_id', '=', event.eventId).execute();
    expect(processed).toHaveLength(1);
  });

  it('Redis flushed between deliveries → still one refund per player', async () => {
    const matchId = randomName('m-flush-');
    await createMatch(matchId);
    const serverId = panel.addServer({ installAfterMs: 200, outcome: 'install_failed' });
    const event = reserved(matchId, serverId);
    await produce(Topics.serverReserved, event, matchId);
    await eventually(async () => (await view(matchId))?.refunds?.length === 2, 20_000, 'refunds');
    expect(await redis.exists(`${redisPrefix}wk:idemp:srv:reserved:${event.eventId}`)).toBe(1);
    const keys = await redis.keys(`${redisPrefix}*`);
    if (keys.length) await redis.del(...keys);
    expect(await redis.exists(`${redisPrefix}wk:idemp:srv:reserved:${event.eventId}`)).toBe(0);
    await produce(Topics.serverReserved, event, matchId);
    await produce(Topics.serverReserved, reserved(matchId, serverId), matchId); // a new event id for the same match
    await eventually(
      async () => (await redis.exists(`${redisPrefix}wk:idemp:srv:reserved:${event.eventId}`)) === 1,
      20_000,
      'redelivery consumed',
    );
    await new Promise((r) => setTimeout(r, 1000));
    const refunds = await service.services.db
      .selectFrom('ledger_entries')
      .selectAll()
      .where('match_id', '=', matchId)
      .where('kind', '=', 'REFUND')
      .execute();
    expect(refunds).toHaveLength(2);
    expect(tap.distinct(Topics.serverFailed, matchId)).toHaveLength(1);
  });

  it('released after ready → panel server deleted, state RELEASED; released twice → one effect', async () => {
    const matchId = randomName('m-rel-');
    await createMatch(matchId);
    const serverId = panel.addServer({ installAfterMs: 100 });
    await service.services.provisioning.recordReadinessSignal(matchId, { adminHooksOk: true }); // the hook may call in before the install ends
    await produce(Topics.serverReserved, reserved(matchId, serverId), matchId);
    await eventually(() => tap.distinct(Topics.serverReady, matchId).length === 1, 20_000, 'ready');
    const release = { v: 'v1', eventId: randomUUID(), matchId, panelServerId: serverId };
    await produce(Topics.serverReleased, release, matchId);
    await produce(Topics.serverReleased, release, matchId);
    await produce(Topics.serverReleased, { ...release, eventId: randomUUID() }, matchId);
    await eventually(async () => (await view(matchId))?.provisioning?.cleanup === 'DONE', 20_000, 'cleanup done');
    expect((await view(matchId)).provisioning.state).toBe('RELEASED');
    expect(panel.has(serverId)).toBe(false);
    const deletes = panel.stats.byPath[`DELETE /api/application/servers/${serverId}`] ?? 0;
    expect(deletes).toBe(1);
  });

  it('released before reserved → remembered; the late reservation does not provision', async () => {
    const matchId = randomName('m-early-');
    await createMatch(matchId);
    const serverId = panel.addServer({ installAfterMs: 100 });
    await produce(Topics.serverReleased, { v: 'v1', eventId: randomUUID(), matchId, panelServerId: serverId }, matchId);
    await eventually(async () => (await view(matchId))?.provisioning?.state === 'RELEASED', 20_000, 'tombstone');
    await produce(Topics.serverReserved, reserved(matchId, serverId), matchId);
    await eventually(async () => {
      const rows = await service.services.db
        .selectFrom('processed_events')
        .select('event_id')
        .where('topic', '=', Topics.serverReserved)
        .execute();
      return rows.length > 0 && (await view(matchId))?.provisioning?.state === 'RELEASED';
    }, 20_000);
    await new Promise((r) => setTimeout(r, 1500));
    const v = await view(matchId);
    expect(v.provisioning.state).toBe('RELEASED');
    expect(v.refunds).toHaveLength(0);
    expect(panel.stats.byPath[`GET /api/application/servers/${serverId}`] ?? 0).toBe(0);
    expect(tap.distinct(Topics.serverReady, matchId)).toHaveLength(0);
    expect(tap.distinct(Topics.serverFailed, matchId)).toHaveLength(0);
  });

  it('poison messages go to the dead-letter topic with a reason and the partition keeps flowing', async () => {
    const matchId = randomName('m-poison-');
    await createMatch(matchId);
    await produce(Topics.serverReserved, '{not json', matchId);
    await produce(Topics.serverReserved, { v: 'v9', eventId: randomUUID(), matchId, panelServerId: 1 }, matchId);
    await produce(Topics.serverReserved, { v: 'v1', eventId: randomUUID(), matchId }, matchId);
    await produce(Topics.serverReserved, '[1,2,3]', matchId);
    const serverId = panel.addServer({ installAfterMs: 100, outcome: 'install_failed' });
    await produce(Topics.serverReserved, reserved(matchId, serverId), matchId); // same key → same partition, after the poison
    await eventually(() => tap.distinct(Topics.serverFailed, matchId).length === 1, 20_000, 'valid event after the poison processed');
    await eventually(() => tap.of(Topics.deadLetter, matchId).length >= 4, 20_000, 'dead letters');
    const reasons = tap
      .distinct(Topics.deadLetter, matchId)
      .map((e) => e.value.reason)
      .sort();
    expect(reasons).toEqual(['INVALID_FIELDS', 'INVALID_JSON', 'NOT_AN_OBJECT', 'UNSUPPORTED_VERSION']);
    const dl = tap.distinct(Topics.deadLetter, matchId).find((e) => e.value.reason === 'INVALID_FIELDS')!;
    expect(dl.value).toMatchObject({ sourceTopic: Topics.serverReserved, type: Topics.deadLetter });
    expect(String(dl.value.detail)).toContain('panelServerId');
    const rows = await service.services.db.selectFrom('dead_letters').selectAll().where('key', '=', matchId).execute();
    expect(rows).toHaveLength(4);
  });

  it('a poison message carrying NUL characters (key, header, body) is dead-lettered too, not retried forever', async () => {
    const matchId = randomName('m-nul-');
    await producer.send([
      {
        topic: Topics.serverReserved,
        key: `${matchId}\u0000x`,
        value: '\u0000{"v":"v1"',
        headers: { 'event-id': 'e\u0000vil', 'event-type': Topics.serverReserved },
      },
    ]);
    const serverId = panel.addServer({ installAfterMs: 50, outcome: 'install_failed' });
    await createMatch(matchId);
    await produce(Topics.serverReserved, reserved(matchId, serverId), `${matchId}\u0000x`); // same key, same partition, behind it
    await eventually(() => tap.distinct(Topics.serverFailed, matchId).length === 1, 20_000, 'the partition kept flowing');
    const rows = await service.services.db.selectFrom('dead_letters').selectAll().where('key', 'like', `${matchId}%`).execute();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ reason: 'INVALID_JSON', event_id: 'e\\u0000vil' });
    expect(rows[0]!.raw.startsWith('base64:')).toBe(true);
  });

  it('once entry fees are recorded a seat cannot change hands and the fee cannot change (409)', async () => {
    const matchId = randomName('m-seat-');
    await createMatch(matchId);
    const body = matchBody(matchId);
    const swapped = { ...body, players: [{ ...body.players[0]!, playerId: 'mallory' }, body.players[1]!] };
    expect(await api('PUT', `/v1/internal/matches/${matchId}`, swapped)).toMatchObject({ status: 409, json: { reason: 'SEAT_TAKEN' } });
    expect(await api('PUT', `/v1/internal/matches/${matchId}`, { ...body, entryFee: { amountCents: 900, currency: 'USD' } })).toMatchObject(
      { status: 409, json: { reason: 'ENTRY_FEE_FIXED' } },
    );
    expect((await api('PUT', `/v1/internal/matches/${matchId}`, { ...body, status: 'IN_PROGRESS' })).status).toBe(200);
  });

  it('the internal API rejects bad input with field-level reasons and unknown ids with 404', async () => {
    const bad = await api('PUT', '/v1/internal/matches/m-bad', {
      mode: 'NOPE',
      entryFee: { amountCents: -1, currency: 'usd' },
      overlayRequired: true,
      players: [],
    });
    expect(bad.status).toBe(400);
    const fields = bad.json.issues.map((i: { field: string }) => i.field);
    expect(fields).toEqual(expect.arrayContaining(['body.mode', 'body.entryFee.amountCents', 'body.entryFee.currency', 'body.players']));
    expect((await api('GET', '/v1/internal/matches/nope-never')).status).toBe(404);
    const unauth = await fetch(`${service.url}/v1/internal/matches/x`, { headers: { authorization: 'Bearer wrong' } });
    expect(unauth.status).toBe(401);
    const badEvent = await api('POST', '/v1/internal/events/server.reserved', { v: 'v1', eventId: 'e1', matchId: 'm-1' });
    expect(badEvent.status).toBe(400);
    expect(JSON.stringify(badEvent.json)).toContain('panelServerId');
    expect((await api('POST', '/v1/internal/events/server.ready', {})).status).toBe(404);
    // A fleet-wide stream.health.check keeps its shape: no matchId in the event, partition key "all".
    const all = await api('POST', '/v1/internal/events/stream.health.check', { v: 'v1', eventId: 'check-all-1' });
    expect(all.status).toBe(202);
    const row = await service.services.db
      .selectFrom('outbox')
      .select(['key', 'payload'])
      .where('payload', '@>', JSON.stringify({ eventId: 'check-all-1' }) as never)
      .executeTakeFirstOrThrow();
    expect(row.key).toBe('all');
    expect(row.payload).not.toHaveProperty('matchId');
  });

  it('an input event published through the internal API takes the same path as Kafka input', async () => {
    const matchId = randomName('m-api-');
    await createMatch(matchId);
    const serverId = panel.addServer({ installAfterMs: 100, outcome: 'install_failed' });
    const event = reserved(matchId, serverId);
    const first = await api('POST', '/v1/internal/events/server.reserved', event);
    expect(first).toMatchObject({ status: 202, json: { accepted: true, eventId: event.eventId, duplicate: false } });
    const again = await api('POST', '/v1/internal/events/server.reserved', event);
    expect(again.json.duplicate).toBe(true);
    await eventually(() => tap.distinct(Topics.serverFailed, matchId).length === 1, 20_000, 'server.failed');
  });

  it('exposes readiness and provisioning metrics', async () => {
    const ready = await fetch(`${service.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', checks: { database: 'ok', redis: 'ok', bus: 'ok', topics: 'ok' } });
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/flock_provisioning_outcomes_total\{outcome="failed",reason="INSTALL_FAILED"\} [1-9]/);
    expect(metrics).toMatch(/flock_pterodactyl_requests_total\{operation="get_server",status="200"\} [1-9]/);
    expect(metrics).toMatch(/flock_dead_letters_total\{topic="server.reserved",reason="INVALID_JSON"\} 2/); // the poison test and the NUL test
    expect(metrics).not.toContain(real.panelKey);
  });
});

describe('ServerProvisionWorker on the real stack, an instance with a short ready deadline', () => {
  // Same database, topics and consumer group: the main instance stops (leaves the group, hands over its leases)
  // and this one takes over the partitions. Its deadline is the only thing that differs.
  beforeAll(async () => {
    await service.close();
    service = await startTestService(serviceEnv(real.stack, { ...PER_SERVER, READY_DEADLINE_MS: String(SHORT_READY_DEADLINE_MS) }));
    api = internalApi(service);
  });

  it('deadline passes → one server.failed (TIMEOUT), match CANCELLED, each player refunded once, ledger balanced', async () => {
    const matchId = randomName('m-timeout-');
    await createMatch(matchId);
    const serverId = panel.addServer({ status: 'installing' });
    await produce(Topics.serverReserved, reserved(matchId, serverId), matchId);
    await eventually(() => tap.distinct(Topics.matchCancelled, matchId).length === 1, SHORT_READY_DEADLINE_MS + 30_000, 'match.cancelled');
    const v = await view(matchId);
    expect(v.status).toBe('CANCELLED');
    expect(v.provisioning).toMatchObject({ state: 'FAILED', failureReason: 'TIMEOUT' });
    const row = await service.services.db
      .selectFrom('provisions')
      .select(['reserved_at', 'deadline_at', 'failed_at'])
      .where('match_id', '=', matchId)
      .executeTakeFirstOrThrow();
    expect(row.deadline_at!.getTime() - row.reserved_at!.getTime()).toBe(SHORT_READY_DEADLINE_MS); // this instance's deadline
    expect(row.failed_at!.getTime()).toBeGreaterThanOrEqual(row.deadline_at!.getTime()); // not a moment early
    expect(v.refunds.map((r: { playerId: string; amountCents: number }) => [r.playerId, r.amountCents]).sort()).toEqual([
      [`alice-${matchId}`, 500],
      [`bob-${matchId}`, 500],
    ]);
    expect(tap.distinct(Topics.serverFailed, matchId)).toHaveLength(1);
    expect(tap.distinct(Topics.serverFailed, matchId)[0]!.value.reason).toBe('TIMEOUT');
    const cancelled = tap.distinct(Topics.matchCancelled, matchId)[0]!.value;
    expect(cancelled.refunds).toHaveLength(2);
    expect(await ledgerBalances(service.services.db, matchId)).toEqual({ [`alice-${matchId}`]: 0, [`bob-${matchId}`]: 0 });
    // A cancelled (refunded) match is final; seats and fees never change after the money moved.
    const again = await api('PUT', `/v1/internal/matches/${matchId}`, { ...matchBody(matchId), status: 'IN_PROGRESS' });
    expect(again).toMatchObject({ status: 409, json: { reason: 'MATCH_CANCELLED' } });
    // The panel server is cleaned up after the failure.
    await eventually(() => !panel.has(serverId), 20_000, 'panel server deleted');
  });
});
