import { describe, expect, it } from 'vitest';
import { enforcementGaps } from './enforceability.js';

const ALL = new Set(['twitch', 'kick', 'srs', 'mediamtx']);
const side = (s: 'p1' | 'p2', ...streamChannels: string[]) => ({ side: s, streamChannels });

describe('enforcementGaps', () => {
  it('a platform channel plus an SRS channel per side is enforceable', () => {
    expect(enforcementGaps([side('p1', 'twitch:a', 'srs:live/a'), side('p2', 'kick:b', 'srs:live/b')], ALL)).toEqual([]);
  });

  it('only kick/youtube channels without those providers: live/title and FPS/bitrate missing, named per side', () => {
    const gaps = enforcementGaps([side('p2', 'youtube:b'), side('p1', 'kick:a')], new Set(['twitch', 'srs']));
    expect(gaps.map((g) => [g.side, g.missing])).toEqual([
      ['p1', ['live', 'title', 'fps', 'bitrate']],
      ['p2', ['live', 'title', 'fps', 'bitrate']],
    ]);
    expect(gaps[0]?.detail).toBe(
      'p1: no channel a configured provider can observe for live/title, and no channel an ingest can measure for fps/bitrate; without a configured provider: kick:a (configured providers: srs, twitch)',
    );
  });

  it('no channels at all', () => {
    expect(enforcementGaps([side('p1'), side('p2', 'twitch:b', 'srs:live/b')], ALL)).toEqual([
      { side: 'p1', missing: ['live', 'title', 'fps', 'bitrate'], detail: expect.stringContaining('no channels given') },
    ]);
  });

  it('MediaMTX measures bitrate but not FPS', () => {
    const gaps = enforcementGaps([side('p1', 'twitch:a', 'mediamtx:live/a'), side('p2', 'twitch:b', 'mediamtx:live/b', 'srs:live/b')], ALL);
    expect(gaps).toEqual([{ side: 'p1', missing: ['fps'], detail: expect.stringContaining('no channel an ingest can measure for fps') }]);
  });

  it('a platform channel without an ingest channel misses FPS and bitrate', () => {
    expect(enforcementGaps([side('p1', 'twitch:a'), side('p2', 'twitch:b', 'srs:live/b')], ALL).map((g) => g.missing)).toEqual([
      ['fps', 'bitrate'],
    ]);
  });

  it('no configured provider at all: every side is unenforceable and the message says so', () => {
    const gaps = enforcementGaps([side('p1', 'twitch:a', 'srs:live/a'), side('p2', 'twitch:b', 'srs:live/b')], new Set());
    expect(gaps).toHaveLength(2);
    expect(gaps[1]?.detail).toContain('(configured providers: none)');
  });
});
