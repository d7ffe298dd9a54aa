/**
 * A full sweep works slice by slice (STREAM_SWEEP_SLICE): these tests sweep more matches than one slice holds,
 * on the embedded defaults (PGlite, the in-process KV store), with a scripted Twitch provider and the SRS
 * provider over real HTTP against the SRS fake (whose request log counts the listing's pages).
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeSrs } from '../demo/simulated/srs.js';
import { ManualClock } from '../infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { SrsClient, SrsTelemetryProvider } from '../integrations/srs/srs-client.js';
import { getMatchView, upsertMatch } from '../matches/match.repository.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import type { SideGrace } from './policy.js';
import { StreamHealthWorker, type SweepReport } from './stream-health.worker.js';
import { UNKNOWN, unknownTelemetry, type ChannelTelemetry, type TelemetryProvider } from './telemetry.js';

type Script = Partial<Pick<ChannelTelemetry, 'live' | 'title' | 'fps' | 'bitrateKbps'>>;

/** Answers from a per-channel script (a channel without one is down: unknown); records each call's channels. */
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
      const s = this.script.get(channel);
      out.set(
        channel,
        s
          ? { channel, live: UNKNOWN, title: UNKNOWN, fps: UNKNOWN, bitrateKbps: UNKNOWN, observedAt: at, ...s }
          : unknownTelemetry(channel, at, 'http_5xx'),
      );
    }
    return out;
  }
}

const CHECK = 30_000;
const HOOK_MS = 60_000;
const TEST_MS = 120_000;
const IDS = ['m-1', 'm-2', 'm-3', 'm-4', 'm-5'];

let clock: ManualClock;
let databases: DatabaseHandle[];
let workers: StreamHealthWorker[];
let srsFake: FakeSrs;
let twitch: ScriptedProvider;

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  srsFake = await FakeSrs.start({ clock });
  twitch = new ScriptedProvider('twitch', clock);
  databases = [];
  workers = [];
}, HOOK_MS);
afterEach(async () => {
  for (const w of workers) await w.stop();
  for (const d of databases) await d.close();
  await srsFake.close();
}, HOOK_MS);

interface World {
  db: DatabaseHandle['db'];
  kv: MemoryKeyValueStore;
  worker: StreamHealthWorker;
}

/** A database with the five matches and a worker over it (its own SRS provider: FPS history is per provider). */
async function world(sliceSize: number, providers?: TelemetryProvider[]): Promise<World> {
  const database = await openDatabase({ dataDir: 'memory://' });
  databases.push(database);
  await migrateToLatest(database.db);
  const kv = new MemoryKeyValueStore(clock);
  const srs = new SrsTelemetryProvider(new SrsClient({ baseUrl: srsFake.url, timeoutMs: 5_000, pageSize: 3 }), clock, {
    checkEveryMs: CHECK,
  });
  const worker = new StreamHealthWorker({
    db: database.db,
    kv,
    clock,
    logger: createLogger('silent'),
    metrics: new Metrics(),
    providers: providers ?? [twitch, srs],
    settings: { minFps: 30, minBitrateKbps: 2500, graceMs: 90_000, checkEveryMs: CHECK, sliceSize },
    instanceId: `slice-${sliceSize}`,
  });
  workers.push(worker);
  for (const id of IDS) await createMatch(database.db, id);
  return { db: database.db, kv, worker };
}

async function createMatch(db: DatabaseHandle['db'], id: string) {
  await upsertMatch(
    db,
    id,
    {
      mode: 'VERIFIED_STREAM',
      status: 'IN_PROGRESS',
      entryFee: { amountCents: 0, currency: 'USD' },
      overlayRequired: false,
      players: [
        { side: 'p1', playerId: `a-${id}`, streamChannels: [`twitch:a_${id}`, `srs:live/a_${id}`] },
        { side: 'p2', playerId: `b-${id}`, streamChannels: [`twitch:b_${id}`, `srs:live/b_${id}`] },
      ],
    },
    clock.now(),
  );
}

function publishAll() {
  for (const id of IDS) {
    for (const who of ['a', 'b'] as const) {
      twitch.script.set(`twitch:${who}_${id}`, { live: true, title: `Final [${id}]` });
      srsFake.publish('live', `${who}_${id}`, { fps: 60, kbps: 6000 });
    }
  }
}

/** What a sweep decided, without what differs by construction (ids, timings, slice counts). */
function outcome(r: SweepReport) {
  return {
    matches: r.matches,
    swept: r.swept,
    leasedElsewhere: r.leasedElsewhere,
    samples: r.samples,
    stale: r.stale,
    warnings: r.warnings,
    verdicts: r.verdicts
      .map((v) => ({ matchId: v.matchId, side: v.side, verdict: v.verdict, reason: v.reason }))
      .sort((a, b) => (a.matchId < b.matchId ? -1 : 1)),
    anomalies: r.anomalies.length,
    aborted: r.aborted,
  };
}

async function graceOf(db: DatabaseHandle['db']) {
  const rows = await db.selectFrom('stream_sides').select(['match_id', 'side', 'grace']).orderBy('match_id').orderBy('side').execute();
  return rows.map((r) => {
    const g = r.grace as unknown as SideGrace;
    return {
      matchId: r.match_id,
      side: r.side,
      outcome: g.lastSampleOutcome,
      episode: g.episode && { state: g.episode.state, violations: g.episode.violations },
    };
  });
}

const listingPages = () => srsFake.requests.filter((r) => r.path === '/api/v1/streams').length;

describe('a full sweep in slices', () => {
  it(
    'gives the same samples, episodes and verdicts as one slice; SRS is listed once per sweep, Twitch asked once per slice',
    async () => {
      publishAll();
      const sliced = await world(2);
      const whole = await world(2000);
      // One listing of the ten streams, three to a page, for reference.
      const before = listingPages();
      await new SrsClient({ baseUrl: srsFake.url, timeoutMs: 5_000, pageSize: 3 }).listStreams();
      const pagesPerListing = listingPages() - before;
      expect(pagesPerListing).toBeGreaterThanOrEqual(4);

      const compare = async () => {
        twitch.calls.length = 0;
        const pages0 = listingPages();
        const a = await sliced.worker.sweep();
        expect(listingPages() - pages0).toBe(pagesPerListing);
        // Three slices of 2, 2 and 1 matches while all five are active (fewer once verdicts end some).
        expect(a.slices).toBe(Math.ceil(a.matches / 2));
        expect(twitch.calls).toHaveLength(a.slices);
        const pages1 = listingPages();
        const b = await whole.worker.sweep();
        expect(listingPages() - pages1).toBe(pagesPerListing);
        expect(b.slices).toBe(1);
        expect(outcome(a)).toEqual(outcome(b));
        return a;
      };

      const first = await compare();
      expect(first.samples).toEqual({ healthy: 0, violating: 0, unknown: 10 }); // FPS needs two samples
      expect(first.slices).toBe(3);
      clock.advance(CHECK);
      expect((await compare()).samples).toEqual({ healthy: 10, violating: 0, unknown: 0 });
      srsFake.unpublish('live', 'a_m-2'); // m-2 p1: FPS and bitrate 0 at our ingest
      twitch.script.set('twitch:a_m-4', { live: false });
      twitch.script.set('twitch:b_m-4', { live: false }); // m-4: both offline → a dispute
      const reports: SweepReport[] = [];
      for (let i = 0; i < 5; i++) {
        clock.advance(CHECK);
        reports.push(await compare());
      }
      expect(reports.map((r) => r.warnings)).toEqual([3, 0, 0, 0, 0]);
      expect(reports.flatMap((r) => outcome(r).verdicts)).toEqual([
        // No overlay gameplay progress was reported: an expired grace is a dispute, not a forfeit.
        { matchId: 'm-2', side: 'p1', verdict: 'DISPUTE', reason: 'FPS_BELOW_MIN' },
        { matchId: 'm-4', side: 'p1', verdict: 'DISPUTE', reason: 'BOTH_SIDES_VIOLATING' },
      ]);
      expect(await graceOf(sliced.db)).toEqual(await graceOf(whole.db));
      for (const { db } of [sliced, whole]) {
        expect((await getMatchView(db, 'm-2'))?.status).toBe('DISPUTED');
        expect((await getMatchView(db, 'm-4'))?.status).toBe('DISPUTED');
        expect((await getMatchView(db, 'm-3'))?.status).toBe('IN_PROGRESS');
      }
    },
    TEST_MS,
  );

  it(
    'a match leased elsewhere in one slice is skipped; the other slices are swept and their leases released',
    async () => {
      publishAll();
      const { db, kv, worker } = await world(2);
      await kv.set('str:lease:m-4', 'someone-else', { px: 60_000 });
      const report = await worker.sweep();
      expect(report).toMatchObject({ matches: 5, slices: 3, swept: 4, leasedElsewhere: 1, aborted: false });
      expect(twitch.calls.flat().filter((c) => c.includes('m-4'))).toEqual([]);
      expect(twitch.calls.map((c) => c.length)).toEqual([4, 2, 2]); // m-1 m-2 | m-3 (m-4 leased) | m-5
      const sides = await db.selectFrom('stream_sides').select('match_id').distinct().execute();
      expect(sides.map((s) => s.match_id).sort()).toEqual(['m-1', 'm-2', 'm-3', 'm-5']);
      for (const id of ['m-1', 'm-2', 'm-3', 'm-5']) expect(await kv.get(`str:lease:${id}`)).toBeNull();
      expect(await kv.get('str:lease:m-4')).toBe('someone-else');
    },
    TEST_MS,
  );

  it(
    'a provider fault caught in one slice sets its readings aside in the later slices too, even a slice too small to judge',
    async () => {
      // 30 matches in slices of 12, 12 and 6: the last slice reads 12 SRS sides, fewer than the guard's 20.
      const srs = new ScriptedProvider('srs', clock);
      const ids = Array.from({ length: 30 }, (_, i) => `g-${String(i).padStart(2, '0')}`);
      const { db, worker } = await world(12, [twitch, srs]);
      await db.deleteFrom('match_players').execute();
      await db.deleteFrom('checklists').execute();
      await db.deleteFrom('matches').execute();
      for (const id of ids) {
        await createMatch(db, id);
        for (const who of ['a', 'b'] as const) {
          twitch.script.set(`twitch:${who}_${id}`, { live: true, title: `Final [${id}]` });
          srs.script.set(`srs:live/${who}_${id}`, { live: true, fps: 60, bitrateKbps: 6000 });
        }
      }
      expect((await worker.sweep()).samples.healthy).toBe(60);
      // The ingest's statistics break for everyone at once: FPS 0 on every stream.
      for (const id of ids)
        for (const who of ['a', 'b'] as const) srs.script.set(`srs:live/${who}_${id}`, { live: true, fps: 0, bitrateKbps: 6000 });
      clock.advance(CHECK);
      const report = await worker.sweep();
      expect(report.slices).toBe(3);
      expect(report.anomalies.map((a) => a.provider)).toEqual(['srs']);
      expect(report.samples).toEqual({ healthy: 0, violating: 0, unknown: 60 });
      expect(report.warnings).toBe(0);
      const rows = await db.selectFrom('stream_sides').select(['match_id', 'grace']).execute();
      expect(rows).toHaveLength(60);
      for (const row of rows) {
        const g = row.grace as unknown as SideGrace;
        expect(g.episode, row.match_id).toBeNull();
        expect(
          g.anomalies?.map((a) => a.provider),
          row.match_id,
        ).toEqual(['srs']);
      }
    },
    TEST_MS,
  );
});
