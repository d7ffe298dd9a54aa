import { describe, expect, it } from 'vitest';
import {
  collectTelemetry,
  composeSideSample,
  knownTitle,
  parseChannel,
  unknownTelemetry,
  type ChannelTelemetry,
  type TelemetryProvider,
} from './telemetry.js';

const AT = Date.UTC(2026, 0, 1);
const SIDE = ['twitch:alice_tv', 'srs:live/alice'];

function twitch(live: boolean | 'unknown', title: string = 'Finals #m-1'): ChannelTelemetry {
  return live === 'unknown'
    ? unknownTelemetry('twitch:alice_tv', AT, 'http_5xx')
    : { channel: 'twitch:alice_tv', live, title: live ? title : 'unknown', fps: 'unknown', bitrateKbps: 'unknown', observedAt: AT };
}
function srs(state: 'publishing' | 'absent' | 'down' | 'first', fps = 60, kbps = 6000): ChannelTelemetry {
  const channel = 'srs:live/alice';
  if (state === 'down') return unknownTelemetry(channel, AT, 'timeout');
  if (state === 'absent') return { channel, live: false, title: 'unknown', fps: 0, bitrateKbps: 0, observedAt: AT };
  if (state === 'first')
    return { channel, live: true, title: 'unknown', fps: 'unknown', bitrateKbps: kbps, observedAt: AT, unknownReason: 'first_sample' };
  return { channel, live: true, title: 'unknown', fps, bitrateKbps: kbps, observedAt: AT };
}
function map(...ts: ChannelTelemetry[]): Map<string, ChannelTelemetry> {
  return new Map(ts.map((t) => [t.channel, t]));
}

describe('parseChannel', () => {
  it.each([
    ['twitch:alice_tv', { platform: 'twitch', id: 'alice_tv' }],
    ['srs:live/alice', { platform: 'srs', id: 'live/alice' }],
    ['Twitch:Alice', { platform: 'twitch', id: 'Alice' }],
    ['alice', null],
    [':alice', null],
    ['twitch:', null],
  ])('%s', (channel, expected) => {
    expect(parseChannel(channel)).toEqual(expected);
  });
});

describe('composeSideSample: platform and ingest disagreeing', () => {
  it.each<[string, ChannelTelemetry, ChannelTelemetry, Record<string, unknown>]>([
    ['both fine', twitch(true), srs('publishing'), { live: true, title: 'Finals #m-1', fps: 60, bitrateKbps: 6000, ingestLive: true }],
    [
      'platform live, ingest absent → live, but fps/bitrate 0',
      twitch(true),
      srs('absent'),
      { live: true, fps: 0, bitrateKbps: 0, ingestLive: false },
    ],
    [
      'platform offline, ingest publishing → not live',
      twitch(false),
      srs('publishing'),
      { live: false, title: 'unknown', fps: 60, ingestLive: true },
    ],
    [
      'platform unknown, ingest publishing → live unknown (never guessed)',
      twitch('unknown'),
      srs('publishing'),
      { live: 'unknown', title: 'unknown', fps: 60 },
    ],
    [
      'platform unknown, ingest absent → live unknown, fps 0 (a known violation)',
      twitch('unknown'),
      srs('absent'),
      { live: 'unknown', fps: 0, bitrateKbps: 0 },
    ],
    [
      'platform live, ingest down → fps/bitrate unknown',
      twitch(true),
      srs('down'),
      { live: true, fps: 'unknown', bitrateKbps: 'unknown', ingestLive: 'unknown' },
    ],
    [
      'first ingest sample → fps unknown, bitrate known',
      twitch(true),
      srs('first'),
      { fps: 'unknown', bitrateKbps: 6000, unknownReasons: ['first_sample'] },
    ],
  ])('%s', (_name, p, i, expected) => {
    expect(composeSideSample(SIDE, map(p, i), AT)).toMatchObject(expected);
  });

  it('keeps per-channel evidence and the unknown reasons', () => {
    const sample = composeSideSample(SIDE, map(twitch('unknown'), srs('down')), AT);
    expect(sample.telemetry.map((t) => t.channel)).toEqual(SIDE);
    expect(sample.unknownReasons).toEqual(['http_5xx', 'timeout']);
    expect(sample.observedAt).toBe(AT);
  });

  it('a channel nobody reported on is unknown (missing)', () => {
    const sample = composeSideSample(SIDE, map(twitch(true)), AT);
    expect(sample).toMatchObject({ fps: 'unknown', bitrateKbps: 'unknown', unknownReasons: ['missing'] });
  });

  it('with two platform channels, any live one is enough and gives the title', () => {
    const kick: ChannelTelemetry = {
      channel: 'kick:alice',
      live: true,
      title: 'kick [m-1]',
      fps: 'unknown',
      bitrateKbps: 'unknown',
      observedAt: AT,
    };
    const sample = composeSideSample(['twitch:alice_tv', 'kick:alice', 'srs:live/alice'], map(twitch(false), kick, srs('publishing')), AT);
    expect(sample).toMatchObject({ live: true, title: 'kick [m-1]' });
  });

  it('the publishing ingest channel is the one measured', () => {
    const backup: ChannelTelemetry = { ...srs('publishing', 30, 3000), channel: 'srs:backup/alice' };
    const sample = composeSideSample(
      ['twitch:alice_tv', 'srs:live/alice', 'srs:backup/alice'],
      map(twitch(true), srs('absent'), backup),
      AT,
    );
    expect(sample).toMatchObject({ fps: 30, bitrateKbps: 3000 });
  });

  it('without an ingest channel FPS and bitrate stay unknown; without a platform channel live falls back to the ingest', () => {
    expect(composeSideSample(['twitch:alice_tv'], map(twitch(true)), AT)).toMatchObject({
      fps: 'unknown',
      unknownReasons: ['no_provider'],
    });
    expect(composeSideSample(['srs:live/alice'], map(srs('absent')), AT)).toMatchObject({ live: false, title: 'unknown' });
  });
});

describe('knownTitle', () => {
  it('quotes a real title that reads "unknown", leaves the rest', () => {
    expect(knownTitle('unknown')).toBe('"unknown"');
    expect(knownTitle('Finals #m-1')).toBe('Finals #m-1');
  });
});

describe('collectTelemetry', () => {
  const ok: TelemetryProvider = {
    platform: 'twitch',
    async fetch(channels) {
      return new Map(channels.filter((c) => c !== 'twitch:ghost').map((c) => [c, { ...twitch(true), channel: c }]));
    },
  };
  const broken: TelemetryProvider = {
    platform: 'srs',
    async fetch() {
      throw new Error('bug');
    },
  };
  it('asks each provider once with its channels and fills the gaps with unknown', async () => {
    const calls: string[][] = [];
    const spy: TelemetryProvider = {
      platform: 'twitch',
      fetch: (c) => {
        calls.push(c);
        return ok.fetch(c);
      },
    };
    const result = await collectTelemetry(
      [spy, broken],
      ['twitch:a', 'twitch:b', 'twitch:a', 'twitch:ghost', 'srs:live/a', 'kick:x', 'nonsense'],
      AT,
    );
    expect(calls).toEqual([['twitch:a', 'twitch:b', 'twitch:ghost']]);
    expect(result.get('twitch:a')?.live).toBe(true);
    expect(result.get('twitch:ghost')?.unknownReason).toBe('missing');
    expect(result.get('srs:live/a')?.unknownReason).toBe('provider_error');
    expect(result.get('kick:x')?.unknownReason).toBe('no_provider');
    expect(result.get('nonsense')?.unknownReason).toBe('invalid_channel');
  });
});
