import { describe, expect, it } from 'vitest';
import { FrameHistory, type FrameSample } from './frame-history.js';

const s = (localMs: number, videoFrames: number | null = localMs / 10, recvBytes: number | null = localMs * 100): FrameSample => ({
  videoFrames,
  recvBytes,
  serverMs: localMs + 5,
  localMs,
});
const all = (h: FrameHistory, id: string) => Array.from({ length: h.count(id) }, (_, i) => h.sample(id, i));

describe('FrameHistory', () => {
  it('keeps samples per stream, oldest first, null counters as null', () => {
    const h = new FrameHistory(8);
    h.record('a', s(1000), 90_000, false);
    h.record('b', s(1000, null, null), 90_000, false);
    h.record('a', s(31_000), 90_000, false);
    expect(all(h, 'a')).toEqual([s(1000), s(31_000)]);
    expect(all(h, 'b')).toEqual([s(1000, null, null)]);
    expect(h.count('c')).toBe(0);
    expect(h.size).toBe(2);
  });

  it('drops samples older than the age limit when recording, and all of them on a reset', () => {
    const h = new FrameHistory(8);
    for (const t of [0, 30_000, 60_000, 90_000]) h.record('a', s(t), 60_000, false);
    expect(all(h, 'a').map((x) => x.localMs)).toEqual([30_000, 60_000, 90_000]);
    h.record('a', s(120_000), 60_000, true);
    expect(all(h, 'a')).toEqual([s(120_000)]);
  });

  it('keeps at most perStream samples, dropping the oldest', () => {
    const h = new FrameHistory(3);
    for (let t = 1; t <= 5; t++) h.record('a', s(t * 1000), 1e9, false);
    expect(all(h, 'a').map((x) => x.localMs)).toEqual([3000, 4000, 5000]);
  });

  it('finds the newest sample passing a test of its time', () => {
    const h = new FrameHistory(8);
    for (const t of [0, 10_000, 20_000, 25_000]) h.record('a', s(t), 1e9, false);
    expect(h.findLast('a', (localMs) => 30_000 - localMs >= 10_000)).toBe(2);
    expect(h.findLast('a', (localMs) => localMs < 0)).toBe(-1);
    expect(h.findLast('nobody', () => true)).toBe(-1);
  });

  it('tells a counter or clock ahead of the current sample (a reset), ignoring unknown counters', () => {
    const h = new FrameHistory(8);
    h.record('a', { videoFrames: 100, recvBytes: null, serverMs: 5000, localMs: 1000 }, 1e9, false);
    expect(h.anyAhead('a', { videoFrames: 99, recvBytes: 10, serverMs: 6000, localMs: 2000 })).toBe(true);
    expect(h.anyAhead('a', { videoFrames: 100, recvBytes: 0, serverMs: 6000, localMs: 2000 })).toBe(false);
    expect(h.anyAhead('a', { videoFrames: null, recvBytes: 0, serverMs: 6000, localMs: 2000 })).toBe(false);
    expect(h.anyAhead('a', { videoFrames: 200, recvBytes: 0, serverMs: 4999, localMs: 2000 })).toBe(true);
    h.record('b', { videoFrames: null, recvBytes: 500, serverMs: 5000, localMs: 1000 }, 1e9, false);
    expect(h.anyAhead('b', { videoFrames: 1, recvBytes: 499, serverMs: 6000, localMs: 2000 })).toBe(true);
    expect(h.anyAhead('nobody', s(0))).toBe(false);
  });

  it('prunes streams not seen within the age limit and reuses their slots', () => {
    const h = new FrameHistory(4);
    for (let i = 0; i < 100; i++) h.record(`old${i}`, s(0), 60_000, false);
    h.record('fresh', s(50_000), 60_000, false);
    h.prune(100_000, 60_000);
    expect(h.size).toBe(1);
    expect(h.count('old0')).toBe(0);
    for (let i = 0; i < 100; i++) h.record(`new${i}`, s(100_000 + i), 60_000, false);
    expect(h.size).toBe(101);
    expect(all(h, 'fresh')).toEqual([s(50_000)]);
    expect(all(h, 'new99')).toEqual([s(100_099)]);
  });

  it('refuses a per-stream size it cannot hold', () => {
    expect(() => new FrameHistory(0)).toThrow(RangeError);
    expect(() => new FrameHistory(256)).toThrow(RangeError);
  });
});
