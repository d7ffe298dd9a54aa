/**
 * StreamHealthWorker on the embedded defaults (PGlite with its single connection, the in-process KV store) with
 * scripted in-memory providers: the rules the integration tests do not reach cheaply.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { getMatchView, upsertMatch } from '../matches/match.repository.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { LAST_SWEEP_KEY, StreamHealthWorker } from './stream-health.worker.js';
import { UNKNOWN, unknownTelemetry, type ChannelTelemetry, type TelemetryProvider } from './telemetry.js';

type Script = Partial<Pick<ChannelTelemetry, 'live' | 'title' | 'fps' | 'bitrateKbps'>> | 'down';

/** A provider answering from a per-channel script; `'down'` is an outage (unknown with a reason). */
class ScriptedProvider implements TelemetryProvider {
  readonly calls: string[][] = [];
  readonly script = new Map<string, Script>();
  constructor(
    readonly platform: string,
    private readonly clock: ManualClock,
  ) {}
  async fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>> {
    this.calls.push([...channels]);
    const at = this.clock.now();
    const out = new Map<string, ChannelTelemetry>();
    for (const channel of channels) {
      const s = this.script.get(channel) ?? 'down';
      if (s === 'down') out.set(channel, unknownTelemetry(channel, at, 'http_5xx'));
      else out.set(channel, { channel, live: UNKNOWN, title: UNKNOWN, fps: UNKNOWN, bitrateKbps: UNKNOWN, observedAt: at, ...s });
    }
    return out;
  }
}

const CHECK = 30_000;
/** Opening and migrating an embedded PGlite takes over 10 s on a loaded machine: a margin, not a bound. */
const HOOK_MS = 60_000;

let clock: ManualClock;
let database: DatabaseHandle;
let kv: MemoryKeyValueStore;
let twitch: ScriptedProvider;
let srs: ScriptedProvider;
let worker: StreamHealthWorker;
let outboxWrites: number;
let metrics: Metrics;

function newWorker(instanceId = 'unit') {
  metrics = new Metrics();
  return new StreamHealthWorker({
    db: database.db,
    kv,
    clock,
    logger: createLogger('silent'),
    metrics,
    providers: [twitch, srs],
    settings: { minFps: 30, minBitrateKbps: 2500, graceMs: 90_000, checkEveryMs: CHECK },
    instanceId,
    onOutboxWrite: () => outboxWrites++,
  });
}

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  database = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(database.db);
  kv = new MemoryKeyValueStore(clock);
  twitch = new ScriptedProvider('twitch', clock);
  srs = new ScriptedProvider('srs', clock);
  outboxWrites = 0;
  worker = newWorker();
}, HOOK_MS);
afterEach(async () => {
  await worker.stop();
  await database.close();
}, HOOK_MS);

async function createMatch(id: string, options: { mode?: 'VERIFIED_STREAM' | 'STANDARD'; status?: 'IN_PROGRESS' | 'SCHEDULED' } = {}) {
  await upsertMatch(
    database.db,
    id,
    {
      mode: options.mode ?? 'VERIFIED_STREAM',
      status: options.status ?? 'IN_PROGRESS',
      entryFee: { amountCents: 0, currency: 'USD' },
      overlayRequired: false,
      players: [
        { side: 'p1', playerId: 'alice', streamChannels: [`twitch:a_${id}`, `srs:live/a_${id}`] },
        { side: 'p2', playerId: 'bob', streamChannels: [`twitch:b_${id}`, `srs:live/b_${id}`] },
      ],
    },
    clock.now(),
  );
  healthy(id, 'a');
  healthy(id, 'b');
}

function healthy(id: string, who: 'a' | 'b') {
  twitch.script.set(`twitch:${who}_${id}`, { live: true, title: `[${id}]` });
  srs.script.set(`srs:live/${who}_${id}`, { live: true, fps: 60, bitrateKbps: 6000 });
}
function offline(id: string, who: 'a' | 'b') {
  twitch.script.set(`twitch:${who}_${id}`, { live: false });
  srs.script.set(`srs:live/${who}_${id}`, { live: false, fps: 0, bitrateKbps: 0 });
}

async function outbox(topic: string) {
  return database.db.selectFrom('outbox').selectAll().where('topic', '=', topic).execute();
}

async function ticks(n: number) {
  const reports = [];
  for (let i = 0; i < n; i++) {
    clock.advance(CHECK);
    reports.push(await worker.sweep());
  }
  return reports;
}

describe('StreamHealthWorker (embedded PGlite, in-process KV)', () => {
  it('both sides violating when the first grace runs out → one DISPUTE (BOTH_SIDES_VIOLATING), never a forfeit', async () => {
    await createMatch('m-both');
    await worker.sweep();
    await ticks(1);
    offline('m-both', 'a');
    await ticks(1);
    offline('m-both', 'b');
    await database.db
      .insertInto('overlay_events')
      .values({
        match_id: 'm-both',
        request_id: 'r1',
        key_id: 'ovl_m-both_1767225600000',
        type: 'gameplay.progress',
        seq: 1,
        body: '{}',
        received_at: new Date(clock.now() + 1000),
      })
      .execute();
    const reports = await ticks(4);
    expect(reports.map((r) => r.verdicts.length)).toEqual([0, 0, 1, 0]);
    expect(reports[2]!.verdicts[0]).toMatchObject({ side: 'p1', verdict: 'DISPUTE', reason: 'BOTH_SIDES_VIOLATING' });
    const view = await getMatchView(database.db, 'm-both');
    expect(view?.status).toBe('DISPUTED');
    expect(view?.enforcement).toHaveLength(1);
    const bundle = view?.evidence[0]?.bundle as {
      episodes: { side: string; state: string }[];
      rule: string;
      samples: Record<string, unknown[]>;
    };
    expect(bundle.rule).toBe('BOTH_SIDES_VIOLATING_DISPUTE');
    expect(bundle.episodes.map((e) => [e.side, e.state])).toEqual([
      ['p1', 'verdict'],
      ['p2', 'verdict'],
    ]);
    expect(Object.keys(bundle.samples).sort()).toEqual(['p1', 'p2']);
    expect(await outbox('match.dispute')).toHaveLength(1);
    expect(await outbox('match.forfeit')).toHaveLength(0);
    expect(await outbox('stream.health.warn')).toHaveLength(2);
    expect(outboxWrites).toBeGreaterThanOrEqual(3);
    expect((await metrics.graceEpisodesOpened.get()).values[0]?.value).toBe(2);
    expect((await metrics.graceEpisodesClosed.get()).values[0]?.value).toBe(0);
  });

  it('counts a grace episode opened when a side starts violating and closed when it recovers within grace', async () => {
    await createMatch('m-recover');
    await worker.sweep();
    offline('m-recover', 'a');
    await ticks(1);
    expect((await metrics.graceEpisodesOpened.get()).values[0]?.value).toBe(1);
    expect((await metrics.graceEpisodesClosed.get()).values[0]?.value).toBe(0);
    healthy('m-recover', 'a');
    await ticks(3);
    expect((await metrics.graceEpisodesOpened.get()).values[0]?.value).toBe(1);
    expect((await metrics.graceEpisodesClosed.get()).values[0]?.value).toBe(1);
    expect((await getMatchView(database.db, 'm-recover'))?.status).toBe('IN_PROGRESS');
  });

  it('enforces only VERIFIED_STREAM matches that are IN_PROGRESS; their providers are asked once per sweep for all channels', async () => {
    await createMatch('m-active1');
    await createMatch('m-active2');
    await createMatch('m-standard', { mode: 'STANDARD' });
    await createMatch('m-scheduled', { status: 'SCHEDULED' });
    const report = await worker.sweep();
    expect(report.matches).toBe(2);
    expect(twitch.calls).toHaveLength(1);
    expect(srs.calls).toHaveLength(1);
    expect(twitch.calls[0]!.sort()).toEqual(['twitch:a_m-active1', 'twitch:a_m-active2', 'twitch:b_m-active1', 'twitch:b_m-active2']);
    const sides = await database.db.selectFrom('stream_sides').select('match_id').distinct().execute();
    expect(sides.map((s) => s.match_id).sort()).toEqual(['m-active1', 'm-active2']);
    expect((await worker.sweep({ matchId: 'm-standard' })).matches).toBe(0);
    expect(twitch.calls).toHaveLength(1);
  });

  it('an unknown check keeps the checklist item at its last known value; unknown never opens an episode', async () => {
    await createMatch('m-blind');
    await worker.sweep();
    expect((await getMatchView(database.db, 'm-blind'))?.checklist).toMatchObject({
      p1StreamLive: true,
      titlesContainMatchId: true,
      fpsOk: true,
      bitrateOk: true,
    });
    twitch.script.set('twitch:a_m-blind', 'down');
    srs.script.set('srs:live/b_m-blind', 'down');
    offline('m-blind', 'b');
    srs.script.set('srs:live/b_m-blind', 'down');
    twitch.script.set('twitch:b_m-blind', 'down');
    const reports = await ticks(10);
    expect(reports.every((r) => r.samples.unknown === 2 && r.warnings === 0 && r.verdicts.length === 0)).toBe(true);
    expect((await getMatchView(database.db, 'm-blind'))?.checklist).toMatchObject({
      p1StreamLive: true,
      p2StreamLive: true,
      titlesContainMatchId: true,
      fpsOk: true,
      bitrateOk: true,
    });
    expect(await database.db.selectFrom('grace_episodes').selectAll().execute()).toHaveLength(0);
  });

  it('a match put back IN_PROGRESS after a verdict is enforced afresh (a new episode, its own verdict)', async () => {
    await createMatch('m-again');
    await worker.sweep();
    offline('m-again', 'a');
    const first = await ticks(5);
    expect(first.flatMap((r) => r.verdicts)).toHaveLength(1);
    await database.db.updateTable('matches').set({ status: 'IN_PROGRESS' }).where('id', '=', 'm-again').execute();
    const again = await ticks(6);
    expect(again.flatMap((r) => r.verdicts)).toHaveLength(1);
    const rows = await database.db.selectFrom('enforcements').select(['episode_id']).where('match_id', '=', 'm-again').execute();
    expect(new Set(rows.map((r) => r.episode_id)).size).toBe(2);
  });

  it('without the KV store (outage) the sweep goes on: leases skipped, the version check and constraints keep effects single', async () => {
    await createMatch('m-nokv');
    const other = newWorker('other');
    await worker.sweep();
    offline('m-nokv', 'a');
    kv.simulateOutage(true);
    let verdicts = 0;
    for (let i = 0; i < 5; i++) {
      clock.advance(CHECK);
      const [a, b] = await Promise.all([worker.sweep(), other.sweep()]);
      verdicts += a.verdicts.length + b.verdicts.length;
    }
    kv.simulateOutage(false);
    expect(verdicts).toBe(1);
    expect(await outbox('stream.health.warn')).toHaveLength(1);
    expect(await outbox('match.dispute')).toHaveLength(1);
    await other.stop();
  });

  it('concurrent sweeps of one scope in one process share a single run; a completed full sweep is recorded for the backup', async () => {
    await createMatch('m-join');
    const [a, b] = await Promise.all([worker.sweep(), worker.sweep()]);
    expect(a).toBe(b);
    expect(twitch.calls).toHaveLength(1);
    expect(await kv.get(LAST_SWEEP_KEY)).toBe(String(clock.now()));
    // A per-match sweep does not count as a full sweep.
    clock.advance(CHECK);
    await worker.sweep({ matchId: 'm-join' });
    expect(await kv.get(LAST_SWEEP_KEY)).toBe(String(clock.now() - CHECK));
  });

  it('a match leased by another sweep is skipped, not waited for', async () => {
    await createMatch('m-leased');
    await kv.set('str:lease:m-leased', 'someone-else', { px: 60_000 });
    const report = await worker.sweep();
    expect(report).toMatchObject({ matches: 1, swept: 0, leasedElsewhere: 1 });
    expect(twitch.calls).toHaveLength(0);
  });
});

describe('StreamHealthWorker: sample counters', () => {
  it('flock_stream_samples_total counts every side the sweeps judged, by outcome, as the reports do', async () => {
    for (const id of ['m-c1', 'm-c2', 'm-c3']) await createMatch(id);
    offline('m-c2', 'b');
    srs.script.set('srs:live/a_m-c3', { live: true, fps: 60, bitrateKbps: 1000 });
    const reports = [await worker.sweep(), ...(await ticks(2))];
    const sum = { healthy: 0, violating: 0, unknown: 0 };
    for (const r of reports) for (const o of ['healthy', 'violating', 'unknown'] as const) sum[o] += r.samples[o];
    expect(sum.violating).toBeGreaterThan(0);
    expect(sum.healthy).toBeGreaterThan(0);
    const counted = Object.fromEntries((await metrics.streamSamples.get()).values.map((v) => [v.labels.outcome, v.value]));
    expect({ healthy: counted.healthy ?? 0, violating: counted.violating ?? 0, unknown: counted.unknown ?? 0 }).toEqual(sum);
    expect(sum.healthy + sum.violating + sum.unknown).toBe(3 * 2 * 3);
  });
});
