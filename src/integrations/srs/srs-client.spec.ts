import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeSrs, type PublishOptions, type SrsVersion } from '../../demo/simulated/srs.js';
import { ManualClock } from '../../infra/clock.js';
import { Metrics } from '../../observability/metrics.js';
import { UNKNOWN } from '../../stream-health/telemetry.js';
import { SrsClient, SrsTelemetryProvider, type SrsClientOptions, type SrsProviderOptions } from './srs-client.js';

/**
 * Per-request timeout. Generous: a request the fake answers must never read as `timeout` because a loaded machine
 * stalled it for a few hundred milliseconds. Only the hang case uses HANG_TIMEOUT_MS, to stay quick; there the
 * fake's log proves that the request which timed out was held and never answered.
 */
const TIMEOUT_MS = 2_500;
const HANG_TIMEOUT_MS = 1_000;

let clock: ManualClock;
let srs: FakeSrs;
let metrics: Metrics;

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  srs = await FakeSrs.start({ clock });
  metrics = new Metrics();
});
afterEach(async () => {
  await srs.close();
});

function provider(client: Partial<SrsClientOptions> = {}, options: Partial<SrsProviderOptions> = {}) {
  const c = new SrsClient({ baseUrl: srs.url, timeoutMs: TIMEOUT_MS, metrics, ...client });
  return new SrsTelemetryProvider(c, clock, { checkEveryMs: 30_000, ...options });
}

const ALICE = 'srs:live/alice';
/** Listing requests only (the provider also reads /api/v1/versions once per SRS start). */
const listings = () => srs.requests.filter((r) => r.path === '/api/v1/streams');

describe('SrsTelemetryProvider over real HTTP', () => {
  it('FPS = Δframes/Δt between sweeps of the same stream; bitrate = kbps.recv_30s', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const p = provider();
    const first = await p.fetch([ALICE]);
    expect(first.get(ALICE)).toMatchObject({
      live: true,
      title: 'unknown',
      fps: 'unknown',
      bitrateKbps: 6000,
      unknownReason: 'first_sample',
    });
    clock.advance(30_000);
    const second = (await p.fetch([ALICE])).get(ALICE);
    expect(second).toMatchObject({ live: true, fps: 60, bitrateKbps: 6000, detail: { frames: 1801 } });
    expect(second?.unknownReason).toBeUndefined();
    srs.set('live', 'alice', { fps: 24, kbps: 2400 });
    clock.advance(30_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 24, bitrateKbps: 2400 });
  });

  it('one listing per sweep, whatever the number of channels', async () => {
    for (let i = 0; i < 10; i++) srs.publish('live', `p${i}`, { fps: 30, kbps: 3000 });
    const p = provider();
    const result = await p.fetch(Array.from({ length: 10 }, (_, i) => `srs:live/p${i}`));
    expect(result.size).toBe(10);
    expect(listings()).toHaveLength(1);
  });

  it('a sweep seconds after the last one measures against an older sample (window_too_short otherwise)', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch([ALICE]);
    clock.advance(5_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 'unknown', unknownReason: 'window_too_short' });
    clock.advance(25_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 60 });
  });

  it('a previous sample older than 3 check intervals is stale → unknown, then measured again', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch([ALICE]);
    clock.advance(91_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 'unknown', unknownReason: 'stale_sample', bitrateKbps: 6000 });
    clock.advance(30_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 60 });
  });

  it('a counter that went backwards is a reset → unknown, never a negative FPS', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const p = provider();
    clock.advance(30_000);
    await p.fetch([ALICE]); // baseline: 1800 frames
    clock.advance(30_000);
    srs.zeroFrames('live', 'alice');
    clock.advance(1_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 'unknown', unknownReason: 'counter_reset' });
    clock.advance(30_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 60 });
  });

  it('a new stream id (republish after cleanup, SRS restart) starts over: first sample', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch([ALICE]);
    clock.advance(30_000);
    srs.restart('live', 'alice');
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 'unknown', unknownReason: 'first_sample' });
  });

  it('not publishing, or not listed while SRS answered → not live at ingest, FPS 0, bitrate 0', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    srs.publish('live', 'bob', { fps: 60, kbps: 6000 });
    srs.unpublish('live', 'bob');
    const result = await provider().fetch([ALICE, 'srs:live/bob', 'srs:live/carol']);
    expect(result.get('srs:live/bob')).toMatchObject({ live: false, fps: 0, bitrateKbps: 0 });
    expect(result.get('srs:live/carol')).toMatchObject({ live: false, fps: 0, bitrateKbps: 0, detail: { listed: false } });
  });

  it('audio only: frames do not grow → FPS 0', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 3000, video: false });
    const p = provider();
    await p.fetch([ALICE]);
    clock.advance(30_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ live: true, fps: 0 });
  });

  it.each([
    ['HTTP 500', () => srs.failNext({ kind: 'status', status: 500 }), 'http_5xx'],
    ['an SRS error code', () => srs.failNext({ kind: 'code', code: 1028 }), 'provider_error'],
    ['a hung request', () => srs.failNext({ kind: 'hang' }), 'timeout'],
    ['a reset connection', () => srs.failNext({ kind: 'reset' }), 'network_error'],
    ['a non-JSON body', () => srs.failNext({ kind: 'status', status: 200, body: '<html>' }), 'bad_response'],
  ])('%s → every channel unknown (never absent), and FPS resumes after', async (_name, inject, reason) => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const hang = reason === 'timeout';
    const p = provider(hang ? { timeoutMs: HANG_TIMEOUT_MS } : {});
    await p.fetch([ALICE]);
    clock.advance(30_000);
    inject();
    const down = await p.fetch([ALICE, 'srs:live/nobody']);
    // The hung request reached the fake and was never answered (status 0).
    if (hang) expect(listings().map((r) => r.status)).toEqual([200, 0]);
    for (const t of down.values())
      expect(t).toMatchObject({ live: 'unknown', fps: 'unknown', bitrateKbps: 'unknown', unknownReason: reason });
    clock.advance(30_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 60 });
  });

  it('SRS unreachable → unknown', async () => {
    const p = provider({ baseUrl: 'http://127.0.0.1:9' });
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ live: 'unknown', unknownReason: 'network_error' });
  });

  it('follows pages until all streams are read', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) srs.publish('live', n, { fps: 30, kbps: 3000 });
    const p = provider({ pageSize: 2 });
    const result = await p.fetch(['srs:live/a', 'srs:live/e']);
    expect(listings().map((r) => [r.start, r.count])).toEqual([
      ['0', '2'],
      ['2', '2'],
      ['4', '2'],
    ]);
    expect(result.get('srs:live/e')).toMatchObject({ live: true, bitrateKbps: 3000 });
  });

  it('one app/name on several vhosts: the publishing stream wins, then the higher bitrate; each stream keeps its own FPS history', async () => {
    const quiet = srs.publish('live', 'dup', { vhost: 'a', fps: 30, kbps: 3000 });
    const busy = srs.publish('live', 'dup', { vhost: 'b', fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch(['srs:live/dup']);
    clock.advance(30_000);
    const both = (await p.fetch(['srs:live/dup'])).get('srs:live/dup');
    expect(both).toMatchObject({ live: true, fps: 60, bitrateKbps: 6000, detail: { streamId: busy, active: true } });
    // vhost a's stream now sends more: it is chosen, with the FPS of its own history.
    srs.set('live', 'dup', { kbps: 9000 });
    clock.advance(30_000);
    const higher = (await p.fetch(['srs:live/dup'])).get('srs:live/dup');
    expect(higher).toMatchObject({ live: true, fps: 30, bitrateKbps: 9000, detail: { streamId: quiet } });
    srs.unpublish('live', 'dup'); // vhost a stops: b, still publishing, wins despite a lower bitrate
    clock.advance(30_000);
    const publishing = (await p.fetch(['srs:live/dup'])).get('srs:live/dup');
    expect(publishing).toMatchObject({ live: true, fps: 60, bitrateKbps: 6000, detail: { streamId: busy, active: true } });
  });

  it('pages by `total` when the server returns fewer than asked, overlapping pages deduplicated', async () => {
    for (let i = 0; i < 45; i++) srs.publish('live', `p${String(i).padStart(2, '0')}`, { fps: 30, kbps: 3000 });
    srs.maxCount = 20;
    const client = new SrsClient({ baseUrl: srs.url, timeoutMs: TIMEOUT_MS, pageSize: 20 });
    const listing = await client.listStreams();
    expect(listing).toMatchObject({ ok: true, malformed: 0 });
    if (listing.ok) expect(new Set(listing.streams.map((s) => s.name)).size).toBe(45);
    expect(srs.requests.map((r) => r.start)).toEqual(['0', '15', '30']);
  });

  it('streams ending between page requests (the listing shifted past some) → absent channels are unknown, not offline', async () => {
    for (let i = 0; i < 45; i++) srs.publish('live', `p${String(i).padStart(2, '0')}`, { fps: 30, kbps: 3000 });
    srs.maxCount = 20;
    // Before the second page, 10 streams of the first page end: page 2 starts 10 streams further on.
    srs.beforeListing = (start) => {
      if (start === 15) for (let i = 0; i < 10; i++) srs.remove('live', `p${String(i).padStart(2, '0')}`);
    };
    const p = provider({ pageSize: 20 });
    const result = await p.fetch(['srs:live/p22', 'srs:live/p44']);
    expect(result.get('srs:live/p22')).toMatchObject({ live: 'unknown', unknownReason: 'bad_response' });
    srs.beforeListing = undefined;
  });

  it('more pages than allowed → unknown rather than a partial list', async () => {
    for (const n of ['a', 'b', 'c']) srs.publish('live', n, { fps: 30, kbps: 3000 });
    const p = provider({ pageSize: 1, maxPages: 2 });
    expect((await p.fetch(['srs:live/c'])).get('srs:live/c')).toMatchObject({ live: 'unknown', unknownReason: 'bad_response' });
  });

  it('a channel that is not srs:<app>/<name> is unknown', async () => {
    const result = await provider().fetch(['srs:alice', 'srs:live/', 'twitch:live/alice']);
    for (const t of result.values()) expect(t.unknownReason).toBe('invalid_channel');
  });

  it('counts requests by status', async () => {
    srs.failNext({ kind: 'status', status: 503 });
    const p = provider();
    await p.fetch([ALICE]);
    await p.fetch([ALICE]);
    const text = await metrics.registry.getSingleMetricAsString('flock_telemetry_requests_total');
    expect(text).toContain('flock_telemetry_requests_total{provider="srs",status="503"} 1');
    expect(text).toContain('flock_telemetry_requests_total{provider="srs",status="200"} 1');
  });
});

describe('SrsTelemetryProvider: stale telemetry (issue 8)', () => {
  const names = Array.from({ length: 25 }, (_, i) => `p${String(i).padStart(2, '0')}`);
  const channels = names.map((n) => `srs:live/${n}`);

  it('a frozen snapshot (live_ms did not advance) → every channel unknown, never FPS 0; measured again once it thaws', async () => {
    for (const n of names) srs.publish('live', n, { fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch(channels);
    clock.advance(30_000);
    for (const t of (await p.fetch(channels)).values()) expect(t).toMatchObject({ live: true, fps: 60, bitrateKbps: 6000 });
    srs.freeze();
    for (let sweep = 0; sweep < 3; sweep++) {
      clock.advance(30_000);
      const frozen = await p.fetch([...channels, 'srs:live/nobody']);
      for (const t of frozen.values()) {
        expect(t).toMatchObject({ live: 'unknown', fps: 'unknown', bitrateKbps: 'unknown', unknownReason: 'source_stale' });
      }
    }
    srs.thaw();
    clock.advance(30_000);
    // The last accepted samples are 120 s old by now (over 3 intervals): FPS restarts from a fresh baseline.
    expect((await p.fetch(channels)).get(channels[0] as string)).toMatchObject({
      live: true,
      fps: 'unknown',
      unknownReason: 'stale_sample',
      bitrateKbps: 6000,
    });
    clock.advance(30_000);
    expect((await p.fetch(channels)).get(channels[0] as string)).toMatchObject({ live: true, fps: 60 });
  });

  it('a repeated snapshot asked for within the clock resolution is not called stale', async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch([ALICE]);
    srs.freeze();
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ live: true, bitrateKbps: 6000, unknownReason: 'window_too_short' });
  });

  it("one stream whose counters stopped while SRS's clock went on → FPS and bitrate unknown (counters_frozen), the others measured", async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    srs.publish('live', 'bob', { fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch([ALICE, 'srs:live/bob']);
    srs.stickCounters('live', 'alice');
    clock.advance(30_000);
    const result = await p.fetch([ALICE, 'srs:live/bob']);
    expect(result.get(ALICE)).toMatchObject({ live: true, fps: 'unknown', bitrateKbps: 'unknown', unknownReason: 'counters_frozen' });
    expect(result.get('srs:live/bob')).toMatchObject({ live: true, fps: 60, bitrateKbps: 6000 });
  });

  it("SRS's clock stepped back 60 s → unknown (source_stale) until it passes the old samples, then measured", async () => {
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    const p = provider();
    await p.fetch([ALICE]);
    clock.advance(30_000);
    expect((await p.fetch([ALICE])).get(ALICE)).toMatchObject({ fps: 60 });
    srs.clockSkewMs = -60_000;
    const seen: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      clock.advance(30_000);
      const t = (await p.fetch([ALICE])).get(ALICE);
      seen.push(t?.fps === UNKNOWN ? t.unknownReason : t?.fps);
    }
    // The listing went back (stale), then its clock equals the old baseline's (stale), then moves past it.
    expect(seen).toEqual(['source_stale', 'source_stale', 60]);
  });
});

describe('SrsTelemetryProvider: frame counters per SRS version (issue 8)', () => {
  async function fpsOn(version: SrsVersion, setup: (fake: FakeSrs) => void = () => {}, encoder: PublishOptions = { fps: 20, kbps: 3000 }) {
    const fake = await FakeSrs.start({ clock, version });
    try {
      setup(fake);
      fake.publish('live', 'alice', encoder);
      const p = new SrsTelemetryProvider(new SrsClient({ baseUrl: fake.url, timeoutMs: TIMEOUT_MS }), clock, { checkEveryMs: 30_000 });
      await p.fetch([ALICE]);
      clock.advance(30_000);
      return (await p.fetch([ALICE])).get(ALICE);
    } finally {
      await fake.close();
    }
  }

  it.each(['5.0.213', '6.0.184', '7.0.121'] as const)('SRS %s: `frames` counts video only → a 20 fps stream reads 20', async (version) => {
    expect(await fpsOn(version)).toMatchObject({ live: true, fps: 20 });
  });

  it('SRS 7.0.143: `frames` counts audio too → FPS from `video_frames`, 20 and not ~63', async () => {
    const t = await fpsOn('7.0.143');
    expect(t).toMatchObject({ live: true, fps: 20, detail: { videoFrames: 601 } });
    expect(t?.detail?.frames).toBeGreaterThan(1800); // 600 video + ~1292 audio frames
  });

  it('SRS 7.0.143 without `video_frames` (stripped by a proxy) → FPS unknown, never derived from audio+video', async () => {
    expect(await fpsOn('7.0.143', (f) => (f.stripFrameDetail = true))).toMatchObject({
      live: true,
      fps: 'unknown',
      bitrateKbps: 3000,
      unknownReason: 'frames_include_audio',
    });
  });

  it('SRS 6.0.184, an SRT publisher (frames never counted) → FPS unknown, never 0; on 7.0.143 it is measured', async () => {
    const srt: PublishOptions = { fps: 20, kbps: 3000, protocol: 'srt' };
    expect(await fpsOn('6.0.184', undefined, srt)).toMatchObject({
      live: true,
      fps: 'unknown',
      bitrateKbps: 3000,
      unknownReason: 'frames_not_counted',
    });
    expect(await fpsOn('7.0.143', undefined, srt)).toMatchObject({ live: true, fps: 20 });
  });

  it('an RTMP publisher whose video stalls from the start (only the sequence header counted) reads 0 FPS: a real violation', async () => {
    expect(await fpsOn('6.0.184', undefined, { fps: 0, kbps: 3000 })).toMatchObject({ live: true, fps: 0 });
  });

  it('version unreadable and no `video_frames` → FPS unknown (version_unknown)', async () => {
    expect(await fpsOn('6.0.184', (f) => (f.versionsStatus = 404))).toMatchObject({
      live: true,
      fps: 'unknown',
      unknownReason: 'version_unknown',
    });
  });

  it('reads the version once per SRS process, not per sweep', async () => {
    srs.publish('live', 'alice', { fps: 30, kbps: 3000 });
    const p = provider();
    for (let i = 0; i < 3; i++) {
      await p.fetch([ALICE]);
      clock.advance(30_000);
    }
    expect(srs.requests.filter((r) => r.path === '/api/v1/versions')).toHaveLength(1);
  });
});
