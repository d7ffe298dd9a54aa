import { randomBytes, randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { sql } from 'kysely';
import type { RunningService } from '../../src/app.module.js';
import { KafkaMessageSink } from '../../src/infra/bus/kafka-bus.js';
import { Topics } from '../../src/events/topics.js';
import { ManualClock } from '../../src/infra/clock.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { sign } from '../../src/security/signer.js';
import {
  LAST_SWEEP_KEY,
  StreamHealthWorker,
  type StreamHealthSettings,
  type SweepReport,
  type SweepTracePoint,
} from '../../src/stream-health/stream-health.worker.js';
import { telemetryProvidersFromConfig } from '../../src/integrations/telemetry-providers.js';
import { FakeSrs } from '../fakes/srs.js';
import { FakeTwitchHelix } from '../fakes/twitch-helix.js';
import { freshPostgresDatabase, randomName, requireKafka, requireRedis } from '../support/infra.js';
import { eventually, KafkaTap } from '../support/kafka-tap.js';
import { internalApi, serviceEnv, startTestService } from '../support/service.js';

// StreamHealthWorker on the real PostgreSQL, Redis and Kafka, with the Twitch Helix and SRS fakes over real HTTP.
// One ManualClock drives the service and both fakes: each test scripts its streams and calls
// `services.streamHealth.sweep()` tick by tick (the scheduler is stopped so that only the test decides when a
// sweep runs; the scheduled tasks themselves are covered at the end). Outputs are read back from Kafka.
// Overlay gameplay evidence goes through the signed hook endpoint (POST /v1/overlay/events) in the forfeit
// test and is inserted into overlay_events directly elsewhere (the HTTP path is covered by the hook tests).

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const CHECK = 30_000;
const GRACE = 90_000;
// The service's telemetry timeout: generous, so that a loaded machine stalling a request to a fake never turns a
// sample unknown (exact sample counts below depend on it). Only the outage test's blind sweeps, where every request
// meets an injected fault, run with a short one (OUTAGE_TIMEOUT_MS) to keep its hangs quick.
const TELEMETRY_TIMEOUT_MS = 2_500;
const OUTAGE_TIMEOUT_MS = 500;

let drop: () => Promise<void>;
let clock: ManualClock;
let twitch: FakeTwitchHelix;
let srs: FakeSrs;
let service: RunningService;
let tap: KafkaTap;
let producer: KafkaMessageSink;
let redis: Redis;
let redisPrefix: string;
let env: Record<string, string>;
let api: ReturnType<typeof internalApi>;
const extra: RunningService[] = [];

beforeAll(async () => {
  const prefix = randomName('t') + '.';
  const [db, redisUrl, brokers] = await Promise.all([freshPostgresDatabase(), requireRedis(), requireKafka(prefix)]);
  drop = db.drop;
  clock = new ManualClock(T0);
  twitch = await FakeTwitchHelix.start({ clock });
  srs = await FakeSrs.start({ clock });
  redisPrefix = randomName('fw') + ':';
  redis = new Redis(redisUrl);
  env = serviceEnv(
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
      TWITCH_CLIENT_ID: twitch.clientId,
      TWITCH_CLIENT_SECRET: twitch.clientSecret,
      TWITCH_API_URL: twitch.apiUrl,
      TWITCH_AUTH_URL: twitch.authUrl,
      INGEST_STATS_URL: srs.url,
      TELEMETRY_TIMEOUT_MS: String(TELEMETRY_TIMEOUT_MS),
      OFFLINE_GRACE_MS: String(GRACE),
      STREAM_CHECK_EVERY_MS: String(CHECK),
      STREAM_BACKUP_EVERY_MS: '60000',
      STREAM_POLICIES: JSON.stringify({ final: { graceMs: 180_000, verdictRule: 'dispute' }, casual: { verdictRule: 'warn-only' } }),
    },
  );
  service = await startTestService(env, { clock });
  // Only the tests decide when a sweep runs (the scheduled tasks get their own test below).
  await service.services.scheduler.stop();
  api = internalApi(service);
  producer = new KafkaMessageSink({ brokers, clientId: 'test-platform', topicPrefix: prefix, logger: createLogger('silent') });
  tap = await KafkaTap.start(brokers, prefix, [Topics.streamHealthWarn, Topics.matchForfeit, Topics.matchDispute, Topics.deadLetter]);
});

afterAll(async () => {
  for (const s of extra) await s.close().catch(() => undefined);
  await tap?.stop();
  await producer?.close();
  await service?.close();
  await twitch?.close();
  await srs?.close();
  await redis?.quit();
  await drop?.();
});

// ─── helpers ─────────────────────────────────────────────────────────────────────────────────────────────────

interface Player {
  login: string;
  stream: string;
}
interface TestMatch {
  id: string;
  p1: Player;
  p2: Player;
}

const created: TestMatch[] = [];

/** A VERIFIED_STREAM match in progress whose two players stream healthily (60 fps, 6000 kbps, title with the id). */
async function newMatch(tag: string, options: { overlayRequired?: boolean; enforcementMode?: string } = {}): Promise<TestMatch> {
  const r = randomBytes(4).toString('hex');
  const id = `m-${tag}-${r}`;
  const m: TestMatch = { id, p1: { login: `a_${r}`, stream: `alice_${r}` }, p2: { login: `b_${r}`, stream: `bob_${r}` } };
  for (const p of [m.p1, m.p2]) {
    twitch.setChannel(p.login, { live: true, title: `Grand final [${id}] GLHF` });
    srs.publish('live', p.stream, { fps: 60, kbps: 6000 });
  }
  const { status, json } = await api('PUT', `/v1/internal/matches/${id}`, {
    mode: 'VERIFIED_STREAM',
    status: 'IN_PROGRESS',
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired: options.overlayRequired ?? true,
    ...(options.enforcementMode ? { enforcementMode: options.enforcementMode } : {}),
    players: [
      { side: 'p1', playerId: `alice-${r}`, streamChannels: [`twitch:${m.p1.login}`, `srs:live/${m.p1.stream}`] },
      { side: 'p2', playerId: `bob-${r}`, streamChannels: [`twitch:${m.p2.login}`, `srs:live/${m.p2.stream}`] },
    ],
  });
  expect(status, JSON.stringify(json)).toBe(201);
  created.push(m);
  return m;
}

// Every test leaves its matches completed, so a full sweep of a later test sees only its own.
afterEach(async () => {
  const ids = created.splice(0).map((m) => m.id);
  if (ids.length)
    await service.services.db
      .updateTable('matches')
      .set({ status: 'COMPLETED' })
      .where('id', 'in', ids)
      .where('status', '=', 'IN_PROGRESS')
      .execute();
});

const sweepOf = (m: TestMatch, s: RunningService = service) => s.services.streamHealth.sweep({ matchId: m.id });

/** Moves the clock on by `ms` and sweeps the match. */
async function tick(m: TestMatch, ms = CHECK, s: RunningService = service): Promise<SweepReport> {
  clock.advance(ms);
  return sweepOf(m, s);
}

/** First sweep (FPS needs two samples: unknown) then `n` healthy ticks; returns the time of the last one. */
async function warmUp(m: TestMatch, n = 2): Promise<number> {
  const first = await sweepOf(m);
  expect(first.samples.unknown).toBe(2);
  for (let i = 0; i < n; i++) {
    const r = await tick(m);
    expect(r.samples).toEqual({ healthy: 2, violating: 0, unknown: 0 });
  }
  return clock.now();
}

function goOffline(p: Player) {
  twitch.setChannel(p.login, { live: false });
  srs.unpublish('live', p.stream);
}
function comeBack(p: Player, title: string) {
  twitch.setChannel(p.login, { live: true, title });
  srs.publish('live', p.stream, { fps: 60, kbps: 6000 });
}

/** An in-process "instance" of the worker on the service's database, KV store and fakes (its own providers). */
function inProcessWorker(instanceId: string, settings: Partial<StreamHealthSettings>, trace?: (point: SweepTracePoint) => void) {
  return new StreamHealthWorker({
    db: service.services.db,
    kv: service.services.kv,
    clock,
    logger: createLogger('silent'),
    metrics: new Metrics(),
    providers: telemetryProvidersFromConfig(service.services.config, { clock, logger: createLogger('silent'), metrics: new Metrics() }),
    settings: { minFps: 30, minBitrateKbps: 2500, graceMs: GRACE, checkEveryMs: CHECK, ...settings },
    instanceId,
    ...(trace ? { trace } : {}),
  });
}

async function view(m: TestMatch) {
  const { status, json } = await api('GET', `/v1/internal/matches/${m.id}`);
  expect(status).toBe(200);
  return json;
}

async function enforcements(m: TestMatch) {
  return service.services.db.selectFrom('enforcements').selectAll().where('match_id', '=', m.id).execute();
}

async function sideState(m: TestMatch, side: 'p1' | 'p2') {
  return service.services.db
    .selectFrom('stream_sides')
    .selectAll()
    .where('match_id', '=', m.id)
    .where('side', '=', side)
    .executeTakeFirst();
}

/** Overlay evidence written as the hook endpoint writes it (that path is covered by the hook tests). */
async function insertOverlay(m: TestMatch, type: string, at = clock.now()) {
  await service.services.db
    .insertInto('overlay_events')
    .values({
      match_id: m.id,
      request_id: randomUUID(),
      key_id: `ovl_${m.id}_1767225600000`,
      type,
      seq: null,
      body: JSON.stringify({ type, matchId: m.id }),
      received_at: new Date(at),
    })
    .execute();
}

/** Waits until Kafka shows `n` distinct events of the topic for the match, then a little longer to catch extras. */
async function kafkaEvents(topic: string, m: TestMatch, n: number) {
  if (n > 0) await eventually(() => tap.distinct(topic, m.id).length >= n, 30_000, `${n} × ${topic} for ${m.id}`);
  await new Promise((r) => setTimeout(r, 600));
  return tap.distinct(topic, m.id);
}

// ─── tests ───────────────────────────────────────────────────────────────────────────────────────────────────

describe('StreamHealthWorker on real PostgreSQL, Redis and Kafka with the Twitch and SRS fakes', () => {
  it('healthy streams: checklist all true, no warning, no verdict; first sample is unknown (FPS needs two)', async () => {
    const m = await newMatch('healthy');
    await warmUp(m, 4);
    const v = await view(m);
    expect(v.status).toBe('IN_PROGRESS');
    expect(v.checklist).toMatchObject({ p1StreamLive: true, p2StreamLive: true, titlesContainMatchId: true, bitrateOk: true, fpsOk: true });
    expect(v.enforcement).toEqual([]);
    expect(await kafkaEvents(Topics.streamHealthWarn, m, 0)).toHaveLength(0);
    expect((await sideState(m, 'p1'))?.version).toBe(5);
    // Healthy samples outside episodes are metrics only; the first (unknown) one is kept.
    const rows = await service.services.db.selectFrom('stream_samples').select(['outcome']).where('match_id', '=', m.id).execute();
    expect(rows.map((r) => r.outcome)).toEqual(['unknown', 'unknown']);
    const metrics = await service.services.metrics.registry.getSingleMetricAsString('flock_stream_samples_total');
    expect(metrics).toMatch(/flock_stream_samples_total\{outcome="healthy"\} \d+/);
  });

  it('short dip then recovery: one stream.health.warn, the episode closes after two healthy checks, no verdict', async () => {
    const m = await newMatch('dip');
    await warmUp(m);
    twitch.setChannel(m.p1.login, { live: false });
    const bad = await tick(m);
    expect(bad.samples).toEqual({ healthy: 1, violating: 1, unknown: 0 });
    expect(bad.warnings).toBe(1);
    expect((await view(m)).checklist.p1StreamLive).toBe(false);
    twitch.setChannel(m.p1.login, { live: true, title: `back [${m.id}]` });
    await tick(m);
    expect((await sideState(m, 'p1'))?.grace).toMatchObject({ episode: { state: 'open' } });
    await tick(m);
    expect((await sideState(m, 'p1'))?.grace).toMatchObject({ episode: { state: 'closed' } });
    for (let i = 0; i < 4; i++) await tick(m);
    const v = await view(m);
    expect(v.status).toBe('IN_PROGRESS');
    expect(v.checklist.p1StreamLive).toBe(true);
    expect(v.enforcement).toEqual([]);
    const warns = await kafkaEvents(Topics.streamHealthWarn, m, 1);
    expect(warns).toHaveLength(1);
    expect(warns[0]!.value).toMatchObject({
      type: 'stream.health.warn',
      matchId: m.id,
      side: 'p1',
      reason: 'STREAM_OFFLINE',
      graceMs: GRACE,
    });
    expect(warns[0]!.key).toBe(m.id);
    const episodes = await service.services.db.selectFrom('grace_episodes').selectAll().where('match_id', '=', m.id).execute();
    expect(episodes.map((e) => [e.side, e.state])).toEqual([['p1', 'closed']]);
    expect(await redis.exists(`${redisPrefix}str:grace:${m.id}:p1`)).toBe(0);
  });

  it('offline while the overlay reports gameplay (signed hook calls) → exactly one match.forfeit with evidence in the match view', async () => {
    const m = await newMatch('forfeit');
    const key = (await api('POST', '/v1/internal/keys', { matchId: m.id, kind: 'overlay' })).json as { keyId: string; secret: string };
    const postOverlay = async (type: string, seq: number) => {
      const signed = sign({ keyId: key.keyId, secret: key.secret, body: { type, matchId: m.id, seq, round: seq }, ts: clock.now() });
      const r = await fetch(`${service.url}/v1/overlay/events`, {
        method: 'POST',
        headers: { ...signed.headers, 'content-type': 'application/json' },
        body: signed.body,
      });
      expect(r.status, await r.text()).toBe(202);
    };
    const lastHealthy = await warmUp(m);
    goOffline(m.p1);
    const reports: SweepReport[] = [];
    for (let i = 1; i <= 4; i++) {
      clock.advance(15_000);
      await postOverlay('gameplay.progress', i);
      reports.push(await tick(m, 15_000));
    }
    expect(reports.map((r) => r.verdicts.length)).toEqual([0, 0, 0, 1]); // anchor +120 s: the first sample with more than 90 s
    expect(reports[0]!.warnings).toBe(1);
    expect(await redis.exists(`${redisPrefix}str:grace:${m.id}:p1`)).toBe(0);
    // The match is no longer enforced.
    for (let i = 0; i < 3; i++) expect((await tick(m)).matches).toBe(0);

    const forfeits = await kafkaEvents(Topics.matchForfeit, m, 1);
    expect(forfeits).toHaveLength(1);
    expect(await kafkaEvents(Topics.matchDispute, m, 0)).toHaveLength(0);
    const event = forfeits[0]!.value;
    expect(event).toMatchObject({
      v: 'v1',
      type: 'match.forfeit',
      matchId: m.id,
      side: 'p1',
      reason: 'STREAM_OFFLINE',
      verdict: 'FORFEIT',
    });
    expect(event.episodeId).toBe(`${m.id}:p1:${lastHealthy + CHECK}`);
    expect(event.gameplayProgressEvents).toBe(3); // progress at +15 s (before the episode) does not count; +45, +75, +105 do
    expect(forfeits[0]!.key).toBe(m.id);

    const v = await view(m);
    expect(v.status).toBe('FORFEITED');
    expect(v.enforcement).toEqual([
      {
        side: 'p1',
        verdict: 'FORFEIT',
        reason: 'STREAM_OFFLINE',
        evidenceId: event.evidenceId,
        at: new Date(lastHealthy + 4 * CHECK).toISOString(),
      },
    ]);
    const evidence = v.evidence.find((e: { id: string }) => e.id === event.evidenceId);
    expect(evidence).toMatchObject({ side: 'p1', episodeId: event.episodeId, kind: 'stream-health-verdict' });
    const bundle = evidence.bundle;
    expect(bundle).toMatchObject({ verdict: 'FORFEIT', reason: 'STREAM_OFFLINE', rule: 'GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT' });
    expect(bundle.thresholds).toMatchObject({ minFps: 30, minBitrateKbps: 2500, graceMs: GRACE, checkEveryMs: CHECK });
    expect(bundle.episodes[0]).toMatchObject({ id: event.episodeId, state: 'verdict', anchorAt: lastHealthy, elapsedMs: 4 * CHECK });
    expect(bundle.samples.p1.map((s: { outcome: string }) => s.outcome)).toEqual(['violating', 'violating', 'violating', 'violating']);
    expect(bundle.samples.p1[0].sample.checks.live).toBe('violation');
    expect(bundle.overlay.p1.gameplayProgressEvents).toBe(3);
    expect(bundle.overlay.p1.events.map((e: { type: string }) => e.type)).toEqual([
      'gameplay.progress',
      'gameplay.progress',
      'gameplay.progress',
    ]);
    expect((await enforcements(m)).length).toBe(1);
    const verdicts = await service.services.metrics.registry.getSingleMetricAsString('flock_stream_verdicts_total');
    expect(verdicts).toMatch(/flock_stream_verdicts_total\{verdict="FORFEIT",reason="STREAM_OFFLINE"\} [1-9]/);
  });

  it('offline without gameplay (only heartbeats) → exactly one match.dispute, match DISPUTED', async () => {
    const m = await newMatch('dispute');
    await warmUp(m);
    goOffline(m.p2);
    let verdictAt = 0;
    for (let i = 1; i <= 6 && !verdictAt; i++) {
      await insertOverlay(m, 'overlay.heartbeat', clock.now() + 10_000);
      if ((await tick(m)).verdicts.length) verdictAt = i;
    }
    expect(verdictAt).toBe(4);
    const disputes = await kafkaEvents(Topics.matchDispute, m, 1);
    expect(disputes).toHaveLength(1);
    expect(disputes[0]!.value).toMatchObject({ side: 'p2', reason: 'STREAM_OFFLINE', verdict: 'DISPUTE', gameplayProgressEvents: 0 });
    expect(await kafkaEvents(Topics.matchForfeit, m, 0)).toHaveLength(0);
    const v = await view(m);
    expect(v.status).toBe('DISPUTED');
    expect(v.enforcement).toMatchObject([{ side: 'p2', verdict: 'DISPUTE', reason: 'STREAM_OFFLINE' }]);
    expect(v.evidence[0].bundle).toMatchObject({
      rule: 'GRACE_EXPIRED_WITHOUT_GAMEPLAY_DISPUTE',
      overlay: { p2: { gameplayProgressEvents: 0 } },
    });
    expect(v.evidence[0].bundle.overlay.p2.eventsInWindow).toBeGreaterThan(0);
  });

  it('provider outage for minutes (Twitch 5xx / 429 / timeouts / resets, SRS 5xx / error code / hang) while streams are down → nothing', async () => {
    const m = await newMatch('outage');
    await warmUp(m);
    goOffline(m.p1);
    goOffline(m.p2);
    const twitchFaults = [
      { kind: 'status', status: 503 },
      {
        kind: 'status',
        status: 429,
        headers: { 'Ratelimit-Remaining': '0', 'Ratelimit-Reset': String(Math.floor(clock.now() / 1000) + 30) },
      },
      { kind: 'hang' },
      { kind: 'reset' },
      { kind: 'status', status: 500 },
    ] as const;
    const srsFaults = [{ kind: 'status', status: 502 }, { kind: 'code', code: 1028 }, { kind: 'hang' }, { kind: 'reset' }] as const;
    const unknownBefore =
      (await service.services.metrics.registry.getSingleMetric('flock_stream_samples_total')!.get()).values.find(
        (v) => v.labels.outcome === 'unknown',
      )?.value ?? 0;
    const twitchLogged = twitch.requests.length;
    const srsLogged = srs.requests.length;
    // The blind sweeps run on an in-process instance of the worker (as in the crash test below) on the same database,
    // KV store, metrics and fakes, wired from the service's config with a short telemetry timeout so that its four
    // hangs stay quick. Every request of these sweeps meets an injected fault, so a stalled answer reads unknown
    // either way; the service itself (long timeout) sweeps before and after the outage.
    const { config, metrics } = service.services;
    const blind = new StreamHealthWorker({
      db: service.services.db,
      kv: service.services.kv,
      clock,
      logger: createLogger('silent'),
      metrics,
      providers: telemetryProvidersFromConfig(
        { ...config, TELEMETRY_TIMEOUT_MS: OUTAGE_TIMEOUT_MS },
        { clock, logger: createLogger('silent'), metrics },
      ),
      settings: {
        minFps: config.STREAM_MIN_FPS,
        minBitrateKbps: config.STREAM_MIN_BITRATE_KBPS,
        graceMs: config.OFFLINE_GRACE_MS,
        checkEveryMs: config.STREAM_CHECK_EVERY_MS,
      },
      instanceId: 'blind',
    });
    try {
      for (let i = 0; i < 12; i++) {
        twitch.failNext('streams', twitchFaults[i % twitchFaults.length]!);
        srs.failNext(srsFaults[i % srsFaults.length]!);
        clock.advance(CHECK);
        const r = await blind.sweep({ matchId: m.id });
        expect(r.swept, `sweep ${i}`).toBe(1);
        expect(r.samples, `sweep ${i}`).toEqual({ healthy: 0, violating: 0, unknown: 2 });
        expect(r.warnings).toBe(0);
      }
    } finally {
      await blind.stop();
    }
    // The timeouts were real hangs: the fakes held those requests and never answered them (status 0).
    expect(twitch.requests.slice(twitchLogged).filter((q) => q.route === 'streams' && q.status === 0)).toHaveLength(2);
    expect(srs.requests.slice(srsLogged).filter((q) => q.status === 0)).toHaveLength(3);
    // Both come back healthy: the whole outage passed without a warning, an episode or a verdict.
    comeBack(m.p1, `[${m.id}]`);
    comeBack(m.p2, `[${m.id}]`);
    expect((await tick(m)).samples.unknown).toBe(2);
    const r = await tick(m);
    expect(r.samples).toEqual({ healthy: 2, violating: 0, unknown: 0 });
    const v = await view(m);
    expect(v.status).toBe('IN_PROGRESS');
    expect(v.enforcement).toEqual([]);
    // The checklist kept the last known values during the outage.
    expect(v.checklist).toMatchObject({ p1StreamLive: true, p2StreamLive: true });
    expect(await kafkaEvents(Topics.streamHealthWarn, m, 0)).toHaveLength(0);
    const unknownAfter =
      (await service.services.metrics.registry.getSingleMetric('flock_stream_samples_total')!.get()).values.find(
        (v) => v.labels.outcome === 'unknown',
      )?.value ?? 0;
    // 12 blind sweeps × 2 sides, plus the first sweep after the outage: SRS's previous frame count is older than
    // 3 intervals, so FPS (hence the sample) is unknown once more.
    expect(unknownAfter - unknownBefore).toBe(26);
    // The start of the blind spell is kept as a sample row (with its reasons), not every unknown sample.
    const unknownRows = await service.services.db
      .selectFrom('stream_samples')
      .select(['sample'])
      .where('match_id', '=', m.id)
      .where('outcome', '=', 'unknown')
      .execute();
    expect(unknownRows.length).toBe(4); // first sweep (2 sides) + start of the outage (2 sides)
    const requestsMetric = await service.services.metrics.registry.getSingleMetricAsString('flock_telemetry_requests_total');
    expect(requestsMetric).toMatch(/provider="twitch",status="timeout"/);
    expect(requestsMetric).toMatch(/provider="srs",status="timeout"/);
  });

  it('title missing the match id → warn, grace, then a verdict with reason TITLE_MISSING_MATCH_ID (a longer id does not count)', async () => {
    const m = await newMatch('title');
    await warmUp(m);
    twitch.setChannel(m.p1.login, { live: true, title: `Grand final #${m.id}0 GLHF` });
    const reports: SweepReport[] = [];
    for (let i = 0; i < 4; i++) reports.push(await tick(m));
    expect(reports.map((r) => r.verdicts.length)).toEqual([0, 0, 0, 1]);
    const v = await view(m);
    expect(v.checklist.titlesContainMatchId).toBe(false);
    expect(v.enforcement).toMatchObject([{ side: 'p1', verdict: 'DISPUTE', reason: 'TITLE_MISSING_MATCH_ID' }]);
    const warns = await kafkaEvents(Topics.streamHealthWarn, m, 1);
    expect(warns[0]!.value).toMatchObject({ reason: 'TITLE_MISSING_MATCH_ID', violations: ['TITLE_MISSING_MATCH_ID'] });
  });

  it('FPS below 30 (25 fps measured at the ingest) with gameplay → forfeit FPS_BELOW_MIN; 29.9 fps passes', async () => {
    const m = await newMatch('fps');
    await warmUp(m);
    srs.set('live', m.p2.stream, { fps: 29.9 });
    expect((await tick(m)).samples.healthy).toBe(2);
    srs.set('live', m.p2.stream, { fps: 25 });
    const reports: SweepReport[] = [];
    for (let i = 0; i < 4; i++) {
      await insertOverlay(m, 'gameplay.progress', clock.now() + 40_000);
      reports.push(await tick(m));
    }
    expect(reports.map((r) => r.verdicts.length)).toEqual([0, 0, 0, 1]);
    const v = await view(m);
    expect(v.checklist.fpsOk).toBe(false);
    expect(v.status).toBe('FORFEITED');
    expect(v.enforcement).toMatchObject([{ side: 'p2', verdict: 'FORFEIT', reason: 'FPS_BELOW_MIN' }]);
    expect(v.evidence[0].bundle.samples.p2.at(-1).sample.fps).toBeCloseTo(25, 0);
    expect(await kafkaEvents(Topics.matchForfeit, m, 1)).toHaveLength(1);
  });

  it('bitrate below 2500 kbps → dispute BITRATE_BELOW_MIN; exactly 2500 passes', async () => {
    const m = await newMatch('kbps');
    await warmUp(m);
    srs.set('live', m.p1.stream, { kbps: 2500 });
    expect((await tick(m)).samples.healthy).toBe(2);
    srs.set('live', m.p1.stream, { kbps: 2499 });
    const reports: SweepReport[] = [];
    for (let i = 0; i < 4; i++) reports.push(await tick(m));
    expect(reports.map((r) => r.verdicts.length)).toEqual([0, 0, 0, 1]);
    const v = await view(m);
    expect(v.checklist).toMatchObject({ bitrateOk: false, fpsOk: true, titlesContainMatchId: true });
    expect(v.enforcement).toMatchObject([{ side: 'p1', verdict: 'DISPUTE', reason: 'BITRATE_BELOW_MIN' }]);
    expect(await kafkaEvents(Topics.matchDispute, m, 1)).toHaveLength(1);
  });

  it('recovery at 89 s closes the episode without a verdict; a violation still present at 91 s is a verdict', async () => {
    const a = await newMatch('rec89');
    const b = await newMatch('vio91');
    await sweepOf(a);
    await sweepOf(b);
    for (let i = 0; i < 2; i++) {
      clock.advance(CHECK);
      await sweepOf(a);
      await sweepOf(b);
    }
    const lastHealthy = clock.now();
    // Twitch says offline; the ingest keeps receiving, so the recovery sample at 89 s measures a real 60 fps.
    twitch.setChannel(a.p1.login, { live: false });
    twitch.setChannel(b.p1.login, { live: false });
    for (let i = 0; i < 2; i++) {
      clock.advance(CHECK);
      expect((await sweepOf(a)).verdicts).toHaveLength(0);
      expect((await sweepOf(b)).verdicts).toHaveLength(0);
    }
    clock.set(lastHealthy + 89_000);
    twitch.setChannel(a.p1.login, { live: true, title: `[${a.id}]` });
    expect((await sweepOf(a)).samples.healthy).toBe(2);
    clock.set(lastHealthy + 91_000);
    const late = await sweepOf(b);
    expect(late.verdicts).toMatchObject([{ side: 'p1', verdict: 'DISPUTE', reason: 'STREAM_OFFLINE' }]);
    clock.set(lastHealthy + 119_000);
    expect((await sweepOf(a)).verdicts).toHaveLength(0);
    expect((await sideState(a, 'p1'))?.grace).toMatchObject({ episode: { state: 'closed', closedAt: lastHealthy + 119_000 } });
    expect(await enforcements(a)).toHaveLength(0);
    expect((await view(b)).status).toBe('DISPUTED');
    expect((await enforcements(b))[0]?.created_at.getTime()).toBe(lastHealthy + 91_000);
  });

  it('flapping every other sample is one episode whose clock keeps running: verdict at +150 s as for a steady outage', async () => {
    const m = await newMatch('flap');
    const lastHealthy = await warmUp(m);
    const outcomes: string[] = [];
    for (let i = 1; i <= 5; i++) {
      if (i % 2 === 1) twitch.setChannel(m.p1.login, { live: false });
      else twitch.setChannel(m.p1.login, { live: true, title: `[${m.id}]` });
      const r = await tick(m);
      outcomes.push(r.verdicts.length ? 'verdict' : r.samples.violating ? 'bad' : 'good');
    }
    expect(outcomes).toEqual(['bad', 'good', 'bad', 'good', 'verdict']);
    expect((await enforcements(m))[0]?.created_at.getTime()).toBe(lastHealthy + 150_000);
    expect(await kafkaEvents(Topics.streamHealthWarn, m, 1)).toHaveLength(1);
    expect(await kafkaEvents(Topics.matchDispute, m, 1)).toHaveLength(1);
  });

  it('Twitch token expiry: the provider re-authenticates on 401 and no sample turns unknown', async () => {
    const m = await newMatch('token');
    await warmUp(m, 1);
    const issued = twitch.tokensIssued;
    for (let i = 0; i < 4; i++) {
      if (i % 2 === 0) twitch.expireTokens();
      const r = await tick(m);
      expect(r.samples, `sweep ${i}`).toEqual({ healthy: 2, violating: 0, unknown: 0 });
    }
    expect(twitch.tokensIssued - issued).toBe(2);
    expect(twitch.requests.some((r) => r.route === 'streams' && r.status === 401)).toBe(true);
  });

  it('two service instances sweeping the same match at the same ticks → one warning and one verdict; Redis losing the grace keys changes nothing', async () => {
    const second = await startTestService({ ...env, INSTANCE_ID: `second-${randomBytes(3).toString('hex')}` }, { clock });
    extra.push(second);
    await second.services.scheduler.stop();
    const m = await newMatch('twoinst');
    const both = async () => {
      clock.advance(CHECK);
      return Promise.all([sweepOf(m, service), sweepOf(m, second)]);
    };
    await Promise.all([sweepOf(m, service), sweepOf(m, second)]);
    for (let i = 0; i < 2; i++) await both();
    goOffline(m.p1);
    const reports: SweepReport[][] = [];
    for (let i = 0; i < 6; i++) {
      reports.push(await both());
      if (i === 1) {
        expect(await redis.exists(`${redisPrefix}str:grace:${m.id}:p1`)).toBe(1);
        const keys = await redis.keys(`${redisPrefix}str:*${m.id}*`);
        await redis.del(...keys);
      }
    }
    const all = reports.flat();
    expect(all.reduce((n, r) => n + r.verdicts.length, 0)).toBe(1);
    expect(all.reduce((n, r) => n + r.warnings, 0)).toBe(1);
    // Each tick, one instance swept the match; the other found it leased (or swept it after, at the same instant, changing nothing).
    expect(
      all.some((r) => r.leasedElsewhere === 1 || r.stale > 0 || r.samples.violating + r.samples.healthy + r.samples.unknown === 0),
    ).toBe(true);
    expect(await enforcements(m)).toHaveLength(1);
    expect(await kafkaEvents(Topics.matchDispute, m, 1)).toHaveLength(1);
    expect(await kafkaEvents(Topics.streamHealthWarn, m, 1)).toHaveLength(1);
    expect((await view(m)).status).toBe('DISPUTED');
  });

  it('duplicate stream.health.check events (same event id three times, and a second id at the same instant) → one sweep effect', async () => {
    const m = await newMatch('dupcheck');
    await warmUp(m);
    goOffline(m.p1);
    await tick(m); // the episode is open: every applied sample is stored
    const before = (await sideState(m, 'p1'))!.version;
    const samplesBefore = await countSamples(m);
    clock.advance(CHECK);
    const event = { v: 'v1', eventId: randomUUID(), matchId: m.id };
    for (let i = 0; i < 3; i++) {
      await producer.send([
        {
          topic: Topics.streamHealthCheck,
          key: m.id,
          value: JSON.stringify(event),
          headers: { 'event-id': event.eventId, 'event-type': Topics.streamHealthCheck },
        },
      ]);
    }
    const other = { v: 'v1', eventId: randomUUID(), matchId: m.id };
    await producer.send([
      {
        topic: Topics.streamHealthCheck,
        key: m.id,
        value: JSON.stringify(other),
        headers: { 'event-id': other.eventId, 'event-type': Topics.streamHealthCheck },
      },
    ]);
    await eventually(async () => (await sideState(m, 'p1'))!.version > before, 30_000, 'the check to sweep the match');
    await eventually(
      async () => {
        // Any member of the group may own the partition (the two-instance test left a second one running).
        let total = 0;
        for (const member of [service, ...extra]) {
          const consumed = (await member.services.metrics.registry.getSingleMetric('flock_events_consumed_total')!.get()).values.filter(
            (v) => v.labels.topic === Topics.streamHealthCheck,
          );
          const n = (result: string) => consumed.find((v) => v.labels.result === result)?.value ?? 0;
          total += n('processed') + n('duplicate');
        }
        return total >= 4;
      },
      30_000,
      'all four deliveries consumed',
    );
    await new Promise((r) => setTimeout(r, 500));
    expect((await sideState(m, 'p1'))!.version).toBe(before + 1);
    expect((await countSamples(m)) - samplesBefore).toBe(2);
    expect(await kafkaEvents(Topics.streamHealthWarn, m, 1)).toHaveLength(1);
  });

  it('a worker killed mid-sweep (one verdict committed, the next rolled back inside its transaction) → the next tick completes without double verdicts', async () => {
    const x = await newMatch('crashx');
    const y = await newMatch('crashy');
    // An in-process "instance" of the worker on the same database, KV store and fakes, with a fault seam.
    const killed = new AbortController();
    let committed = 0;
    const trace = (point: SweepTracePoint) => {
      if (point === 'match-committed') committed++;
      if (point === 'verdict-written' && committed >= 1) {
        killed.abort();
        throw new Error('worker killed before commit');
      }
    };
    const doomed = inProcessWorker('doomed', { concurrency: 1 }, trace);
    const sweepAll = () => service.services.streamHealth.sweep();
    await sweepAll();
    for (let i = 0; i < 2; i++) {
      clock.advance(CHECK);
      await sweepAll();
    }
    goOffline(x.p1);
    goOffline(y.p2);
    for (let i = 0; i < 3; i++) {
      clock.advance(CHECK);
      expect((await sweepAll()).verdicts).toHaveLength(0);
    }
    // Both graces run out at this tick; the doomed instance sweeps it and dies half-way.
    clock.advance(CHECK);
    const report = await doomed.sweep({ signal: killed.signal });
    expect(report.matches).toBe(2);
    expect(report.aborted).toBe(true);
    expect(report.verdicts).toHaveLength(1);
    const first = report.verdicts[0]!.matchId;
    const second = first === x.id ? y : x;
    expect(await enforcements(second)).toHaveLength(0);
    expect((await view(second)).status).toBe('IN_PROGRESS');
    await doomed.stop();

    clock.advance(CHECK);
    const next = await sweepAll();
    expect(next.matches).toBe(1);
    expect(next.verdicts).toMatchObject([{ matchId: second.id }]);
    for (let i = 0; i < 2; i++) {
      clock.advance(CHECK);
      expect((await sweepAll()).verdicts).toHaveLength(0);
    }
    for (const m of [x, y]) {
      expect(await enforcements(m)).toHaveLength(1);
      expect(await kafkaEvents(Topics.matchDispute, m, 1)).toHaveLength(1);
    }
  });

  it('scheduled sweeps: stream-sweep runs on its tick; the backup sweeps only when no full sweep completed recently', async () => {
    const m = await newMatch('sched');
    const worker = service.services.streamHealth;
    const tickCtx = () => ({ tickAt: clock.now(), signal: new AbortController().signal });
    await worker.primaryTick(tickCtx());
    clock.advance(CHECK);
    await worker.primaryTick(tickCtx());
    expect(Number(await service.services.kv.get(LAST_SWEEP_KEY))).toBe(clock.now());
    clock.advance(CHECK);
    expect(await worker.backupTick(tickCtx())).toBe(false); // primary completed 30 s ago
    clock.advance(CHECK);
    expect(await worker.backupTick(tickCtx())).toBe(true); // 60 s without a primary sweep: a stalled primary is covered
    clock.advance(5_000);
    await service.services.kv.del(LAST_SWEEP_KEY); // Redis lost the key: one extra backup sweep, nothing else
    expect(await worker.backupTick(tickCtx())).toBe(true);
    expect((await view(m)).checklist.fpsOk).toBe(true);

    // The real ScheduledTasksService of another instance drives the primary sweep on the clock's ticks.
    const scheduled = await startTestService({ ...env, INSTANCE_ID: `sched-${randomBytes(3).toString('hex')}` }, { clock });
    extra.push(scheduled);
    const version = (await sideState(m, 'p1'))!.version;
    // The new instance arms its scheduler on the manual clock at some point after start; a tick is due once the clock
    // passes the next 30 s boundary. Advance again every second until a tick has run, so a scheduler that armed late
    // on a loaded machine is still woken (only the "> version" matters, not how many ticks ran).
    clock.advance(CHECK + 1_000);
    let probes = 0;
    await eventually(
      async () => {
        if ((await sideState(m, 'p1'))!.version > version) return true;
        if (++probes % 10 === 0) clock.advance(CHECK);
        return false;
      },
      20_000,
      'a scheduled stream-sweep tick',
    );
    const ticks = await scheduled.services.metrics.registry.getSingleMetricAsString('flock_scheduled_ticks_total');
    expect(ticks).toMatch(/task="stream-sweep",result="ran"/);
    await scheduled.services.scheduler.stop();
  });
});

describe('Fairness under bad telemetry (issue 8): no scripted provider fault produces a verdict', () => {
  const LIVE = 25;
  const sweepAll = () => service.services.streamHealth.sweep();

  /** `LIVE` healthy matches, swept once (FPS unknown) and twice more healthy. */
  async function liveMatches(tag: string): Promise<TestMatch[]> {
    const list: TestMatch[] = [];
    for (let i = 0; i < LIVE; i++) list.push(await newMatch(`${tag}${i}`));
    expect((await sweepAll()).samples.unknown).toBe(2 * LIVE);
    for (let i = 0; i < 2; i++) {
      clock.advance(CHECK);
      expect((await sweepAll()).samples).toEqual({ healthy: 2 * LIVE, violating: 0, unknown: 0 });
    }
    return list;
  }

  async function anomaliesCounted(provider: string): Promise<number> {
    const metric = await service.services.metrics.registry.getSingleMetric('flock_stream_systemic_anomalies_total')!.get();
    return metric.values.find((v) => v.labels.provider === provider)?.value ?? 0;
  }

  /** No warning and no verdict reached Kafka for any of the matches (one wait for stragglers, then a look at each). */
  async function noEventsFor(list: readonly TestMatch[]) {
    await new Promise((r) => setTimeout(r, 1_000));
    for (const m of list) {
      for (const topic of [Topics.streamHealthWarn, Topics.matchForfeit, Topics.matchDispute])
        expect(tap.distinct(topic, m.id), `${topic} ${m.id}`).toHaveLength(0);
    }
  }

  it('SRS and Twitch answering frozen snapshots for 3 minutes with 25 live matches → every sample unknown, 0 warnings, 0 verdicts', async () => {
    const list = await liveMatches('frozen');
    srs.freeze();
    twitch.freeze();
    try {
      for (let i = 0; i < 6; i++) {
        clock.advance(CHECK);
        const r = await sweepAll();
        expect(r.samples).toEqual({ healthy: 0, violating: 0, unknown: 2 * LIVE });
        expect([r.warnings, r.verdicts.length]).toEqual([0, 0]);
      }
    } finally {
      srs.thaw();
      twitch.thaw();
    }
    // The stored start of the blind spell says why.
    const stored = await service.services.db
      .selectFrom('stream_samples')
      .select('sample')
      .where('match_id', '=', list[0]!.id)
      .where('outcome', '=', 'unknown')
      .execute();
    expect(stored.map((row) => (row.sample as { unknownReasons: string[] }).unknownReasons)).toContainEqual(
      expect.arrayContaining(['source_stale']),
    );
    // Thawed: FPS needs one fresh baseline (the last one is over 3 intervals old), then everyone is healthy.
    for (const expected of [
      { healthy: 0, violating: 0, unknown: 2 * LIVE },
      { healthy: 2 * LIVE, violating: 0, unknown: 0 },
    ]) {
      clock.advance(CHECK);
      expect((await sweepAll()).samples).toEqual(expected);
    }
    for (const m of list) expect(await enforcements(m)).toHaveLength(0);
    await noEventsFor(list);
  });

  it('the ingest losing every publisher at once (a fresh listing, 25 live matches) → the guard sets SRS aside: 0 verdicts, an alert, the anomaly on every side; a title violator meanwhile is still judged', async () => {
    const list = await liveMatches('lost');
    const violator = list[7]!;
    const before = await anomaliesCounted('srs');
    for (const m of list) for (const p of [m.p1, m.p2]) srs.unpublish('live', p.stream);
    twitch.setChannel(violator.p1.login, { live: true, title: 'Grand final GLHF' });
    const reports: SweepReport[] = [];
    for (let i = 0; i < 6; i++) {
      clock.advance(CHECK);
      reports.push(await sweepAll());
    }
    expect(reports.map((r) => r.anomalies.map((a) => a.provider))).toEqual(Array.from({ length: 6 }, () => ['srs']));
    expect(reports[0]!.anomalies[0]).toMatchObject({ streams: 2 * LIVE, turnedViolating: 2 * LIVE, minShare: 0.3, minStreams: 20 });
    expect(await anomaliesCounted('srs')).toBe(before + 6);
    // Only the title violator, judged on Twitch's reading after the usual grace (4th tick, as in the dispute test).
    expect(reports.map((r) => r.verdicts.map((v) => [v.matchId, v.side, v.reason]))).toEqual([
      [],
      [],
      [],
      [[violator.id, 'p1', 'TITLE_MISSING_MATCH_ID']],
      [],
      [],
    ]);
    expect(reports.map((r) => r.warnings)).toEqual([1, 0, 0, 0, 0, 0]);
    const v = await view(violator);
    expect(v.status).toBe('DISPUTED');
    expect(v.evidence[0].bundle).toMatchObject({ guard: { enabled: true, minShare: 0.3, minStreams: 20 } });
    expect(v.evidence[0].bundle.systemicAnomalies.p1).toEqual(expect.arrayContaining([expect.objectContaining({ provider: 'srs' })]));
    const bystander = await sideState(list[0]!, 'p2');
    expect((bystander!.grace as { anomalies: unknown[]; episode: unknown }).anomalies).toHaveLength(6);
    expect((bystander!.grace as { episode: unknown }).episode).toBeNull();
    for (const m of list) if (m !== violator) expect(await enforcements(m)).toHaveLength(0);
    await noEventsFor(list.filter((m) => m !== violator));
    for (const m of list) for (const p of [m.p1, m.p2]) srs.publish('live', p.stream, { fps: 60, kbps: 6000 });
  });

  it('the same fault with the guard off opens an episode on every side and disputes every match (what the guard prevents)', async () => {
    const list = await liveMatches('off');
    const unguarded = inProcessWorker('unguarded', { anomalyGuard: { enabled: false, minShare: 0.3, minStreams: 20 } });
    try {
      await unguarded.sweep(); // its own SRS provider needs a first sample
      for (const m of list) for (const p of [m.p1, m.p2]) srs.unpublish('live', p.stream);
      const reports: SweepReport[] = [];
      for (let i = 0; i < 4; i++) {
        clock.advance(CHECK);
        reports.push(await unguarded.sweep());
      }
      expect(reports.map((r) => r.anomalies)).toEqual([[], [], [], []]);
      expect(reports[0]!.warnings).toBe(2 * LIVE);
      expect(reports[3]!.verdicts).toHaveLength(LIVE);
      expect(new Set(reports[3]!.verdicts.map((v) => v.reason))).toEqual(new Set(['BOTH_SIDES_VIOLATING']));
    } finally {
      await unguarded.stop();
      for (const m of list) for (const p of [m.p1, m.p2]) srs.publish('live', p.stream, { fps: 60, kbps: 6000 });
    }
  });

  it('a single real violator among 25 healthy matches is judged: the guard does not hide it', async () => {
    const list = await liveMatches('single');
    const violator = list[11]!;
    srs.set('live', violator.p2.stream, { fps: 12 });
    const reports: SweepReport[] = [];
    for (let i = 0; i < 5; i++) {
      clock.advance(CHECK);
      reports.push(await sweepAll());
    }
    expect(reports.every((r) => r.anomalies.length === 0)).toBe(true);
    expect(reports[0]!.samples).toEqual({ healthy: 2 * LIVE - 1, violating: 1, unknown: 0 });
    expect(reports.flatMap((r) => r.verdicts.map((v) => [v.matchId, v.side, v.reason]))).toEqual([[violator.id, 'p2', 'FPS_BELOW_MIN']]);
    const v = await view(violator);
    expect(v.evidence[0].bundle).toMatchObject({
      rule: 'GRACE_EXPIRED_WITHOUT_GAMEPLAY_DISPUTE',
      guard: { enabled: true },
      systemicAnomalies: { p1: [], p2: [] },
    });
    expect(await kafkaEvents(Topics.matchDispute, violator, 1)).toHaveLength(1);
  });
});

async function countSamples(m: TestMatch): Promise<number> {
  const row = await sql<{ n: number }>`select count(*)::int as n from stream_samples where match_id = ${m.id}`.execute(service.services.db);
  return Number(row.rows[0]?.n ?? 0);
}

describe('no unenforceable match (Twitch and SRS configured here; Kick and MediaMTX not)', () => {
  const body = (p2Channels: string[], extra: Record<string, unknown> = {}) => ({
    mode: 'VERIFIED_STREAM',
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired: false,
    players: [
      { side: 'p1', playerId: 'alice', streamChannels: ['twitch:alice_tv', 'srs:live/alice'] },
      { side: 'p2', playerId: 'bob', streamChannels: p2Channels },
    ],
    ...extra,
  });

  it('refuses a side nobody can observe with a 400 naming the side and what is missing, and stores nothing', async () => {
    const id = `m-unenf-${randomBytes(3).toString('hex')}`;
    const { status, json } = await api('PUT', `/v1/internal/matches/${id}`, body(['kick:bob', 'youtube:bob']));
    expect(status).toBe(400);
    expect(json).toMatchObject({ error: 'unenforceable_match', gaps: [{ side: 'p2', missing: ['live', 'title', 'fps', 'bitrate'] }] });
    expect((json as { detail: string }).detail).toContain('p2: no channel a configured provider can observe for live/title');
    expect((json as { detail: string }).detail).toContain('without a configured provider: kick:bob, youtube:bob');
    expect((await api('GET', `/v1/internal/matches/${id}`)).status).toBe(404);
  });

  it("refuses a side without an FPS measurement, and an update that removes a side's ingest", async () => {
    const id = `m-unenf-${randomBytes(3).toString('hex')}`;
    const noFps = await api('PUT', `/v1/internal/matches/${id}`, body(['twitch:bob_tv']));
    expect(noFps.status).toBe(400);
    expect(noFps.json).toMatchObject({ gaps: [{ side: 'p2', missing: ['fps', 'bitrate'] }] });
    expect((await api('PUT', `/v1/internal/matches/${id}`, body(['twitch:bob_tv', 'srs:live/bob']))).status).toBe(201);
    expect((await api('PUT', `/v1/internal/matches/${id}`, body([]))).status).toBe(400);
    expect((await api('PUT', `/v1/internal/matches/${id}`, { ...body([]), mode: 'STANDARD' })).status).toBe(200);
  });

  it('accepts it with an explicit waiver, recorded with the gaps and shown in the match view', async () => {
    const id = `m-unenf-${randomBytes(3).toString('hex')}`;
    const waiver = { reason: 'show match, bob streams on YouTube only', grantedBy: 'ops-carol' };
    const { status, json } = await api('PUT', `/v1/internal/matches/${id}`, body(['youtube:bob'], { streamWaiver: waiver }));
    expect(status).toBe(201);
    expect(json).toMatchObject({
      streamWaiver: {
        ...waiver,
        gaps: [{ side: 'p2', missing: ['live', 'title', 'fps', 'bitrate'] }],
        at: new Date(clock.now()).toISOString(),
      },
    });
    // A later update without the waiver is judged again: refused while the gap remains.
    expect((await api('PUT', `/v1/internal/matches/${id}`, body(['youtube:bob']))).status).toBe(400);
    expect((await api('GET', `/v1/internal/matches/${id}`)).json).toMatchObject({ streamWaiver: waiver });
    expect(
      (await api('PUT', `/v1/internal/matches/${id}`, { ...body(['youtube:bob']), status: 'COMPLETED', streamWaiver: waiver })).status,
    ).toBe(200);
  });
});

describe('policy per match mode (STREAM_POLICIES: final = 180 s grace + dispute, casual = warn-only)', () => {
  it('an unknown enforcementMode is refused with a 400 listing the known ones', async () => {
    const { status, json } = await api('PUT', `/v1/internal/matches/m-mode-${randomBytes(3).toString('hex')}`, {
      mode: 'VERIFIED_STREAM',
      entryFee: { amountCents: 0, currency: 'USD' },
      overlayRequired: false,
      enforcementMode: 'ranked',
      players: [
        { side: 'p1', playerId: 'a', streamChannels: ['twitch:a_tv', 'srs:live/a'] },
        { side: 'p2', playerId: 'b', streamChannels: ['twitch:b_tv', 'srs:live/b'] },
      ],
    });
    expect(status).toBe(400);
    expect(json).toMatchObject({ error: 'unknown_enforcement_mode', known: ['casual', 'default', 'final'] });
    expect(json.detail).toBe('enforcementMode "ranked" is not one of: casual, default, final');
  });

  it('final: the longer grace holds, then a dispute even with gameplay; the policy is named in the event and the evidence', async () => {
    const m = await newMatch('final', { enforcementMode: 'final' });
    expect((await view(m)).enforcementMode).toBe('final');
    await warmUp(m);
    goOffline(m.p2);
    let verdictAt = 0;
    for (let i = 1; i <= 9 && !verdictAt; i++) {
      await insertOverlay(m, 'gameplay.progress', clock.now() + 10_000);
      if ((await tick(m)).verdicts.length) verdictAt = i;
    }
    expect(verdictAt).toBe(7); // 210 s of known violation > 180 s (the default policy decides at 4)
    const disputes = await kafkaEvents(Topics.matchDispute, m, 1);
    expect(disputes[0]!.value).toMatchObject({ side: 'p2', verdict: 'DISPUTE', rule: 'GRACE_EXPIRED_POLICY_DISPUTE', policy: 'final' });
    expect(await kafkaEvents(Topics.matchForfeit, m, 0)).toHaveLength(0);
    const v = await view(m);
    expect(v.evidence[0].bundle).toMatchObject({
      rule: 'GRACE_EXPIRED_POLICY_DISPUTE',
      policy: { name: 'final', verdictRule: 'dispute', checkIntervalMultiple: 1 },
      thresholds: { graceMs: 180_000 },
    });
    expect(v.evidence[0].bundle.overlay.p2.gameplayProgressEvents).toBeGreaterThan(0);
  });

  it('casual (warn-only): one warning, and no verdict however long the stream stays down', async () => {
    const m = await newMatch('casual', { enforcementMode: 'casual' });
    await warmUp(m);
    goOffline(m.p1);
    let warnings = 0;
    for (let i = 0; i < 12; i++) {
      const r = await tick(m);
      warnings += r.warnings;
      expect(r.verdicts).toEqual([]);
    }
    expect(warnings).toBe(1);
    expect((await view(m)).status).toBe('IN_PROGRESS');
    expect(await kafkaEvents(Topics.streamHealthWarn, m, 1)).toHaveLength(1);
    expect(await enforcements(m)).toHaveLength(0);
  });
});
