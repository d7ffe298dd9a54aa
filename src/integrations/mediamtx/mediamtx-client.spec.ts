import { afterEach, describe, expect, it } from 'vitest';
import { FakeMediaMtx, type MediaMtxSchema } from '../../demo/simulated/mediamtx.js';
import { ManualClock } from '../../infra/clock.js';
import { MediaMtxClient, MediaMtxTelemetryProvider } from './mediamtx-client.js';

const CHECK_EVERY_MS = 30_000;
let fake: FakeMediaMtx | undefined;
afterEach(async () => {
  await fake?.close();
  fake = undefined;
});

async function setup(schema: MediaMtxSchema = 'current', pageSize?: number) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  fake = await FakeMediaMtx.start({ clock, schema });
  const client = new MediaMtxClient({ baseUrl: fake.url, timeoutMs: 2_500, ...(pageSize ? { pageSize } : {}) });
  return { clock, fake, provider: new MediaMtxTelemetryProvider(client, clock, { checkEveryMs: CHECK_EVERY_MS }) };
}

describe('MediaMtxTelemetryProvider against the fake MediaMTX', () => {
  it.each<MediaMtxSchema>(['current', 'legacy'])(
    '%s field names: online + bitrate from Δbytes over the listing interval',
    async (schema) => {
      const { clock, fake, provider } = await setup(schema);
      fake.publish('live/alice', 6000);
      const first = (await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice');
      expect(first).toMatchObject({ live: true, fps: 'unknown', bitrateKbps: 'unknown', unknownReason: 'first_sample' });
      clock.advance(CHECK_EVERY_MS);
      const second = (await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice');
      expect(second?.live).toBe(true);
      expect(second?.bitrateKbps).toBeCloseTo(6000, 0);
      fake.setBitrate('live/alice', 1200);
      clock.advance(CHECK_EVERY_MS);
      expect((await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice')?.bitrateKbps).toBeCloseTo(1200, 0);
    },
  );

  it('offline or unlisted paths read not live with bitrate 0; FPS stays unknown (MediaMTX does not measure it)', async () => {
    const { fake, provider } = await setup();
    fake.publish('live/bob', 3000);
    fake.unpublish('live/bob');
    const result = await provider.fetch(['mediamtx:live/bob', 'mediamtx:live/nobody']);
    expect(result.get('mediamtx:live/bob')).toMatchObject({ live: false, bitrateKbps: 0, fps: 'unknown' });
    expect(result.get('mediamtx:live/nobody')).toMatchObject({ live: false, bitrateKbps: 0 });
  });

  it('a new publisher session restarts the counter: one unknown reading, never a negative bitrate', async () => {
    const { clock, fake, provider } = await setup();
    fake.publish('live/alice', 6000);
    await provider.fetch(['mediamtx:live/alice']);
    clock.advance(CHECK_EVERY_MS);
    fake.unpublish('live/alice');
    clock.advance(1_000);
    fake.publish('live/alice', 6000);
    clock.advance(5_000);
    expect((await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice')).toMatchObject({
      bitrateKbps: 'unknown',
      unknownReason: 'counter_reset',
    });
    clock.advance(CHECK_EVERY_MS);
    expect((await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice')?.bitrateKbps).toBeCloseTo(6000, 0);
  });

  it('a sample older than three check intervals is stale, not averaged over', async () => {
    const { clock, fake, provider } = await setup();
    fake.publish('live/alice', 6000);
    await provider.fetch(['mediamtx:live/alice']);
    clock.advance(CHECK_EVERY_MS * 4);
    expect((await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice')?.bitrateKbps).toBe('unknown');
  });

  it('reads every page', async () => {
    const { clock, fake, provider } = await setup('current', 2);
    for (const n of ['a', 'b', 'c', 'd', 'e']) fake.publish(`live/${n}`, 3000);
    await provider.fetch(['mediamtx:live/e']);
    clock.advance(CHECK_EVERY_MS);
    expect((await provider.fetch(['mediamtx:live/e'])).get('mediamtx:live/e')?.bitrateKbps).toBeCloseTo(3000, 0);
    expect(fake.requests.slice(0, 3).map((r) => r.page)).toEqual(['0', '1', '2']);
  });

  it.each([
    ['a 500', { kind: 'status', status: 500 } as const, 'http_5xx'],
    ['a connection reset', { kind: 'reset' } as const, 'network_error'],
    ['an unparseable page', { kind: 'status', status: 200, body: { items: 'x' } } as const, 'bad_response'],
  ])('%s makes every channel unknown (an outage is never "offline")', async (_name, fault, reason) => {
    const { fake, provider } = await setup();
    fake.failNext(fault);
    expect((await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice')).toMatchObject({
      live: 'unknown',
      bitrateKbps: 'unknown',
      unknownReason: reason,
    });
  });

  it('a hung MediaMTX times out as unknown', async () => {
    const clock = new ManualClock();
    fake = await FakeMediaMtx.start({ clock });
    const provider = new MediaMtxTelemetryProvider(new MediaMtxClient({ baseUrl: fake.url, timeoutMs: 300 }), clock, {
      checkEveryMs: CHECK_EVERY_MS,
    });
    fake.failNext({ kind: 'hang' });
    expect((await provider.fetch(['mediamtx:live/alice'])).get('mediamtx:live/alice')?.unknownReason).toBe('timeout');
    expect(fake.requests).toHaveLength(1);
  });
});
