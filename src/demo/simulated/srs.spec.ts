import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../infra/clock.js';
import { eventually } from '../../../test/support/kafka-tap.js';
import { FakeSrs } from './srs.js';

interface Listed {
  id: string;
  app: string;
  name: string;
  frames: number;
  video_frames?: number;
  audio_frames?: number;
  recv_bytes: number;
  live_ms: number;
  kbps: { recv_30s: number };
  publish: { active: boolean; cid?: string };
  video: unknown;
}
interface Page {
  code: number;
  total?: number;
  streams?: Listed[];
}

let clock: ManualClock;
let srs: FakeSrs;

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  srs = await FakeSrs.start({ clock });
});
afterEach(async () => {
  await srs.close();
});

async function list(query = 'start=0&count=100'): Promise<Page> {
  const res = await fetch(`${srs.url}/api/v1/streams?${query}`);
  expect(res.status).toBe(200);
  return (await res.json()) as Page;
}

describe('FakeSrs per SRS version', () => {
  it.each([
    ['5.0.213', { frames: 201 }],
    ['6.0.184', { frames: 201 }],
    ['7.0.121', { frames: 201 }],
    // 1 for the video sequence header, then 20 fps. 7.0.122+ (#4559): frames = video + audio (10 s of AAC 44.1 kHz: 430).
    ['7.0.143', { frames: 631, video_frames: 201, audio_frames: 430 }],
  ] as const)('SRS %s serves its `frames` shape and its version', async (version, shape) => {
    const fake = await FakeSrs.start({ clock, version });
    try {
      fake.publish('live', 'alice', { fps: 20, kbps: 3000 });
      clock.advance(10_000);
      const page = (await (await fetch(`${fake.url}/api/v1/streams?start=0&count=10`)).json()) as Page;
      const stream = page.streams?.[0] as Listed;
      expect({ frames: stream.frames, video_frames: stream.video_frames, audio_frames: stream.audio_frames }).toEqual({
        video_frames: undefined,
        audio_frames: undefined,
        ...shape,
      });
      const [major, minor, revision] = version.split('.').map(Number);
      expect(await (await fetch(`${fake.url}/api/v1/versions`)).json()).toMatchObject({ code: 0, data: { major, minor, revision } });
    } finally {
      await fake.close();
    }
  });
});

describe('FakeSrs /api/v1/streams', () => {
  it('freeze() serves the snapshot of that moment byte for byte until thaw()', async () => {
    srs.publish('live', 'alice', { fps: 30, kbps: 3000 });
    clock.advance(10_000);
    srs.freeze();
    const body = async () => (await fetch(`${srs.url}/api/v1/streams?start=0&count=10`)).text();
    const frozen = await body();
    clock.advance(30_000);
    srs.publish('live', 'bob', { fps: 30, kbps: 3000 });
    expect(await body()).toBe(frozen);
    srs.thaw();
    const live = (await list()).streams ?? [];
    expect(live.map((s) => [s.name, s.frames, s.live_ms])).toEqual([
      ['alice', 1201, clock.now()],
      ['bob', 1, clock.now()],
    ]);
  });

  it("stickCounters() stops one stream's counters while live_ms goes on", async () => {
    srs.publish('live', 'alice', { fps: 30, kbps: 3000 });
    clock.advance(10_000);
    srs.stickCounters('live', 'alice');
    const before = (await list()).streams?.[0] as Listed;
    clock.advance(30_000);
    const after = (await list()).streams?.[0] as Listed;
    expect([after.frames, after.recv_bytes, after.live_ms - before.live_ms]).toEqual([before.frames, before.recv_bytes, 30_000]);
  });

  it('lists streams with SRS fields; frames grow at the scripted FPS along the clock', async () => {
    const id = srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    clock.advance(10_000);
    const page = await list();
    expect(page).toMatchObject({ code: 0, total: 1 });
    expect(page.streams?.[0]).toMatchObject({
      id,
      app: 'live',
      name: 'alice',
      frames: 601, // the sequence header, then 60 fps
      live_ms: clock.now(),
      kbps: { recv_30s: 6000 },
      publish: { active: true },
      video: { codec: 'H264' },
    });
    srs.set('live', 'alice', { fps: 25 });
    clock.advance(10_000);
    expect((await list()).streams?.[0]?.frames).toBe(851);
  });

  it('unpublish keeps the object (inactive, video null, frames frozen); remove drops it', async () => {
    srs.publish('live', 'alice', { fps: 30, kbps: 3000 });
    clock.advance(10_000);
    srs.unpublish('live', 'alice');
    clock.advance(10_000);
    expect((await list()).streams?.[0]).toMatchObject({ frames: 301, publish: { active: false }, video: null, kbps: { recv_30s: 0 } });
    srs.remove('live', 'alice');
    expect(await list()).toMatchObject({ total: 0, streams: [] });
  });

  it('restart gives a new id and a zero counter; zeroFrames keeps the id', async () => {
    const first = srs.publish('live', 'alice', { fps: 30, kbps: 3000 });
    clock.advance(10_000);
    const second = srs.restart('live', 'alice');
    expect(second).not.toBe(first);
    expect((await list()).streams?.[0]).toMatchObject({ id: second, frames: 0 });
    clock.advance(10_000);
    srs.zeroFrames('live', 'alice');
    expect((await list()).streams?.[0]).toMatchObject({ id: second, frames: 0 });
  });

  it('pages by start/count in id order; a missing count reads as 1', async () => {
    for (const n of ['a', 'b', 'c', 'd', 'e']) srs.publish('live', n, { fps: 30, kbps: 3000 });
    expect((await list('start=0&count=2')).streams?.map((s) => s.name)).toEqual(['a', 'b']);
    expect((await list('start=4&count=2')).streams?.map((s) => s.name)).toEqual(['e']);
    expect((await list('start=9&count=2')).streams).toEqual([]);
    expect((await list('')).streams?.map((s) => s.name)).toEqual(['a']);
    srs.maxCount = 3;
    expect((await list('start=0&count=100')).streams).toHaveLength(3);
  });

  it('injects faults: HTTP status, SRS error code, reset, hang', async () => {
    srs.failNext({ kind: 'status', status: 502 });
    expect((await fetch(`${srs.url}/api/v1/streams`)).status).toBe(502);
    srs.failNext({ kind: 'code', code: 1028 });
    expect(await list()).toEqual({ code: 1028 });
    srs.failNext({ kind: 'reset' });
    await expect(fetch(`${srs.url}/api/v1/streams`)).rejects.toThrow();
    srs.failNext({ kind: 'hang' });
    // Abort only once the fake holds the request (logged, fault consumed, never answered): no race with the fault.
    const abort = new AbortController();
    const hung = fetch(`${srs.url}/api/v1/streams`, { signal: abort.signal });
    const settled = hung.then(
      () => true,
      () => true,
    );
    await eventually(() => srs.requests.length === 4, 10_000, 'the fake holding the request');
    expect(srs.requests[3]?.status).toBe(0);
    expect(await Promise.race([settled, new Promise((r) => setTimeout(() => r(false), 50))])).toBe(false);
    abort.abort();
    await expect(hung).rejects.toThrow();
    expect((await list()).code).toBe(0);
    expect(srs.requests.map((r) => r.status)).toEqual([502, 200, -1, 0, 200]);
  });
});
