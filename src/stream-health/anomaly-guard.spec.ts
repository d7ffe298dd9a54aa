import { describe, expect, it } from 'vitest';
import {
  anomaliesOfSide,
  ANOMALIES_KEPT,
  DEFAULT_ANOMALY_GUARD,
  detectSystemicAnomalies,
  lastKnownHealthy,
  planBehindGuard,
  recordAnomalies,
  setAsideProviders,
  sideProviders,
  violationSources,
  type GuardedSide,
  type ProviderAnomaly,
} from './anomaly-guard.js';
import { advanceGrace, checkSample, emptySideGrace, type Side, type SideGrace, type ViolationCode } from './policy.js';
import { composeSideSample, type ChannelTelemetry } from './telemetry.js';

const AT = Date.UTC(2026, 0, 1);
const ON = DEFAULT_ANOMALY_GUARD;
const BOTH = ['twitch', 'srs'];

const healthy = (providers = BOTH): GuardedSide => ({ providers, wasHealthy: true, violatingThrough: [] });
const flipped = (through: string[], providers = BOTH): GuardedSide => ({ providers, wasHealthy: true, violatingThrough: through });
const sides = (n: number, make: () => GuardedSide) => Array.from({ length: n }, make);

describe('detectSystemicAnomalies', () => {
  it('flags a provider when ≥ 30 % of ≥ 20 sides read through it turn healthy → violating through its readings', () => {
    const input = [...sides(6, () => flipped(['srs'])), ...sides(14, () => healthy())];
    expect(detectSystemicAnomalies(input, AT, ON)).toEqual([
      { provider: 'srs', at: AT, streams: 20, turnedViolating: 6, share: 0.3, minShare: 0.3, minStreams: 20 },
    ]);
  });

  it('does not flag just under the share (5 of 20 = 25 %)', () => {
    expect(detectSystemicAnomalies([...sides(5, () => flipped(['srs'])), ...sides(15, () => healthy())], AT, ON)).toEqual([]);
  });

  it('does not judge a provider read for fewer than minStreams sides, even if all of them flip', () => {
    expect(
      detectSystemicAnomalies(
        sides(19, () => flipped(['srs'])),
        AT,
        ON,
      ),
    ).toEqual([]);
  });

  it('never hides a single real violator among healthy streams', () => {
    expect(detectSystemicAnomalies([flipped(['srs', 'twitch']), ...sides(24, () => healthy())], AT, ON)).toEqual([]);
  });

  it('is off when disabled, whatever the share', () => {
    expect(
      detectSystemicAnomalies(
        sides(50, () => flipped(['srs'])),
        AT,
        { ...ON, enabled: false },
      ),
    ).toEqual([]);
  });

  it('counts only sides that were healthy at their last known sample', () => {
    const wasViolating = { providers: BOTH, wasHealthy: false, violatingThrough: ['srs'] };
    expect(detectSystemicAnomalies([...sides(20, () => wasViolating), ...sides(5, () => flipped(['srs']))], AT, ON)).toEqual([]);
  });

  it('attributes each flip to the providers whose readings violated, not to every provider of the side', () => {
    const input = [...sides(10, () => flipped(['twitch'])), ...sides(15, () => healthy())];
    expect(detectSystemicAnomalies(input, AT, ON).map((a) => [a.provider, a.turnedViolating, a.streams])).toEqual([['twitch', 10, 25]]);
  });

  it('judges each provider on its own population, and flags several at once, sorted by name', () => {
    const kickOnly = (through: string[]) => flipped(through, ['kick', 'srs']);
    const input = [...sides(20, () => kickOnly(['kick', 'srs'])), ...sides(10, () => flipped(['twitch'])), ...sides(30, () => healthy())];
    // kick: 20 of 20; srs: 20 of 60 (33 %); twitch: 10 of 40 (25 %).
    expect(detectSystemicAnomalies(input, AT, ON).map((a) => [a.provider, a.turnedViolating, a.streams])).toEqual([
      ['kick', 20, 20],
      ['srs', 20, 60],
    ]);
  });

  it('counts a side once per provider even if it names two channels of that provider', () => {
    const twoIngests = flipped(['srs'], ['twitch', 'srs', 'srs']);
    expect(detectSystemicAnomalies([...sides(6, () => twoIngests), ...sides(14, () => healthy())], AT, ON)[0]).toMatchObject({
      streams: 20,
      turnedViolating: 6,
    });
  });

  it('follows the configured threshold exactly, for every population and count', () => {
    const options = { enabled: true, minShare: 0.25, minStreams: 8 };
    for (let n = 1; n <= 40; n++) {
      for (let k = 0; k <= n; k++) {
        const found = detectSystemicAnomalies([...sides(k, () => flipped(['srs'])), ...sides(n - k, () => healthy())], AT, options);
        expect(found.length, `${k} of ${n}`).toBe(n >= 8 && k > 0 && k / n >= 0.25 ? 1 : 0);
      }
    }
  });
});

describe('lastKnownHealthy', () => {
  const step = (g: SideGrace, outcome: 'healthy' | 'violating' | 'unknown', at: number, violations: ViolationCode[] = []) =>
    advanceGrace(g, { outcome, violations: outcome === 'violating' ? (violations.length ? violations : ['FPS_BELOW_MIN']) : [] }, at, {
      graceMs: 90_000,
    }).grace;

  it('is false before any healthy sample, true after one, and stays true across unknown samples', () => {
    let g = emptySideGrace('m-1', 'p1');
    expect(lastKnownHealthy(g)).toBe(false);
    g = step(g, 'unknown', AT);
    expect(lastKnownHealthy(g)).toBe(false);
    g = step(g, 'healthy', AT + 30_000);
    expect(lastKnownHealthy(g)).toBe(true);
    g = step(g, 'unknown', AT + 60_000);
    g = step(g, 'unknown', AT + 90_000);
    expect(lastKnownHealthy(g)).toBe(true);
  });

  it('is false inside an open episode and true again once it closed', () => {
    let g = step(emptySideGrace('m-1', 'p1'), 'healthy', AT);
    g = step(g, 'violating', AT + 30_000);
    expect(lastKnownHealthy(g)).toBe(false);
    g = step(g, 'healthy', AT + 60_000);
    expect(lastKnownHealthy(g)).toBe(false); // one healthy check does not close it
    g = step(g, 'healthy', AT + 90_000);
    expect(g.episode?.state).toBe('closed');
    expect(lastKnownHealthy(g)).toBe(true);
  });
});

describe('violationSources and sideProviders', () => {
  const side = { channels: ['twitch:alice', 'srs:live/alice'] };
  it.each<[ViolationCode[], string[]]>([
    [[], []],
    [['STREAM_OFFLINE'], ['twitch']],
    [['TITLE_MISSING_MATCH_ID'], ['twitch']],
    [['FPS_BELOW_MIN'], ['srs']],
    [['BITRATE_BELOW_MIN'], ['srs']],
    [
      ['STREAM_OFFLINE', 'FPS_BELOW_MIN'],
      ['srs', 'twitch'],
    ],
  ])('%j → %j', (violations, expected) => {
    expect(violationSources(side, { violations })).toEqual(expected);
  });

  it('blames the ingest for "offline" when the side has no platform channel (live falls back to the ingest)', () => {
    expect(violationSources({ channels: ['srs:live/alice'] }, { violations: ['STREAM_OFFLINE'] })).toEqual(['srs']);
  });

  it('ignores channels without a known role or prefix', () => {
    expect(violationSources({ channels: ['weird:x', 'nope', 'srs:live/a'] }, { violations: ['FPS_BELOW_MIN', 'STREAM_OFFLINE'] })).toEqual([
      'srs',
    ]);
    expect(sideProviders({ channels: ['weird:x', 'nope', 'srs:live/a', 'SRS:live/b'] })).toEqual(['weird', 'srs']);
  });
});

describe('setAsideProviders', () => {
  const t = (channel: string, over: Partial<ChannelTelemetry> = {}): ChannelTelemetry => ({
    channel,
    live: true,
    title: '#m-1',
    fps: 0,
    bitrateKbps: 0,
    observedAt: AT,
    detail: { streamId: 'vid-1' },
    ...over,
  });

  it('makes every channel of the flagged providers unknown, keeping what they read as evidence; others untouched', () => {
    const input = new Map([
      ['srs:live/a', t('srs:live/a')],
      ['srs:live/b', t('srs:live/b', { unknownReason: 'first_sample', fps: 'unknown' })],
      ['twitch:a', t('twitch:a', { fps: 'unknown', bitrateKbps: 'unknown' })],
    ]);
    const out = setAsideProviders(input, new Set(['srs']));
    expect(out.get('srs:live/a')).toEqual({
      channel: 'srs:live/a',
      live: 'unknown',
      title: 'unknown',
      fps: 'unknown',
      bitrateKbps: 'unknown',
      observedAt: AT,
      unknownReason: 'systemic_anomaly',
      detail: { streamId: 'vid-1', readLive: 'true', readTitle: '#m-1', readFps: '0', readBitrateKbps: '0' },
    });
    expect(out.get('srs:live/b')?.detail).toMatchObject({ readUnknownReason: 'first_sample', readFps: 'unknown' });
    expect(out.get('twitch:a')).toBe(input.get('twitch:a'));
    expect(input.get('srs:live/a')?.live).toBe(true); // the input map is not changed
  });
});

describe('recordAnomalies', () => {
  const anomaly = (i: number): ProviderAnomaly => ({
    provider: 'srs',
    at: AT + i,
    streams: 20,
    turnedViolating: 20,
    share: 1,
    minShare: 0.3,
    minStreams: 20,
  });

  it('appends to the side, keeps the latest ANOMALIES_KEPT, and is a no-op without anomalies', () => {
    const g = emptySideGrace('m-1', 'p1');
    expect(recordAnomalies(g, [])).toBe(g);
    let next = g;
    for (let i = 0; i < ANOMALIES_KEPT + 3; i++) next = recordAnomalies(next, [anomaly(i)]);
    expect(next.anomalies?.map((a) => a.at - AT)).toEqual(Array.from({ length: ANOMALIES_KEPT }, (_, i) => i + 3));
  });

  it('advanceGrace carries the recorded anomalies to the next state', () => {
    const g = recordAnomalies(emptySideGrace('m-1', 'p1'), [anomaly(0)]);
    const next = advanceGrace(g, 'healthy', AT + 30_000, { graceMs: 90_000 }).grace;
    expect(next.anomalies).toEqual([anomaly(0)]);
  });
});

describe('planBehindGuard (the policy chain behind the guard)', () => {
  const GRACE = { graceMs: 90_000, checkEveryMs: 30_000 };
  const NOW = AT + 30_000;
  interface Match {
    id: string;
    channels: Record<Side, string[]>;
    prev: Record<Side, SideGrace>;
  }
  const healthyBefore = (id: string, side: Side) => advanceGrace(emptySideGrace(id, side), 'healthy', AT, GRACE).grace;
  const matches = (n: number): Match[] =>
    Array.from({ length: n }, (_, i) => {
      const id = `m-${i}`;
      return {
        id,
        channels: { p1: [`twitch:a${i}`, `srs:live/a${i}`], p2: [`twitch:b${i}`, `srs:live/b${i}`] },
        prev: { p1: healthyBefore(id, 'p1'), p2: healthyBefore(id, 'p2') },
      };
    });
  /** Telemetry for every channel: Twitch live with the right title, SRS at `fps` (per channel override). */
  function telemetry(list: Match[], fpsOf: (channel: string) => number): Map<string, ChannelTelemetry> {
    const out = new Map<string, ChannelTelemetry>();
    for (const m of list) {
      for (const side of ['p1', 'p2'] as const) {
        const [platform, ingest] = m.channels[side] as [string, string];
        out.set(platform, {
          channel: platform,
          live: true,
          title: `cup #${m.id}`,
          fps: 'unknown',
          bitrateKbps: 'unknown',
          observedAt: NOW,
        });
        out.set(ingest, { channel: ingest, live: true, title: 'unknown', fps: fpsOf(ingest), bitrateKbps: 6000, observedAt: NOW });
      }
    }
    return out;
  }
  const plan = (m: Match, t: ReadonlyMap<string, ChannelTelemetry>, anomalies: readonly ProviderAnomaly[]) => {
    const sides = {} as Record<
      Side,
      { prev: SideGrace; sample: ReturnType<typeof composeSideSample>; check: ReturnType<typeof checkSample>; next: SideGrace }
    >;
    for (const side of ['p1', 'p2'] as const) {
      const sample = composeSideSample(m.channels[side], t, NOW);
      const check = checkSample(sample, { matchId: m.id, minFps: 30, minBitrateKbps: 2500 });
      const next = recordAnomalies(advanceGrace(m.prev[side], check, NOW, GRACE).grace, anomaliesOfSide(m.channels[side], anomalies));
      sides[side] = { prev: m.prev[side], sample, check, next };
    }
    return { sides };
  };
  const guarded = (list: Match[], t: Map<string, ChannelTelemetry>, options = ON) => planBehindGuard(list, t, NOW, options, plan);
  const outcomes = (plans: ReturnType<typeof plan>[]) => plans.flatMap((p) => [p.sides.p1.check.outcome, p.sides.p2.check.outcome]);

  it('an ingest reading FPS 0 for every stream at once → its readings set aside: no episode, sides unknown, anomaly recorded on each', () => {
    const list = matches(25);
    const { plans, anomalies } = guarded(
      list,
      telemetry(list, () => 0),
    );
    expect(anomalies).toEqual([{ provider: 'srs', at: NOW, streams: 50, turnedViolating: 50, share: 1, minShare: 0.3, minStreams: 20 }]);
    expect(new Set(outcomes(plans))).toEqual(new Set(['unknown']));
    for (const p of plans) {
      expect(p.sides.p1.next.episode).toBeNull();
      expect(p.sides.p1.next.anomalies).toEqual(anomalies);
      expect(p.sides.p1.sample.telemetry.find((t) => t.channel.startsWith('srs:'))).toMatchObject({
        unknownReason: 'systemic_anomaly',
        detail: { readFps: '0' },
      });
    }
  });

  it('with the guard off the same readings open an episode on every side', () => {
    const list = matches(25);
    const { plans, anomalies } = guarded(
      list,
      telemetry(list, () => 0),
      { ...ON, enabled: false },
    );
    expect(anomalies).toEqual([]);
    expect(new Set(outcomes(plans))).toEqual(new Set(['violating']));
    expect(plans.every((p) => p.sides.p1.next.episode?.state === 'open' && p.sides.p1.next.anomalies === undefined)).toBe(true);
  });

  it('a single real violator among 25 healthy matches is still judged (episode opened, nothing set aside)', () => {
    const list = matches(25);
    const { plans, anomalies } = guarded(
      list,
      telemetry(list, (c) => (c === 'srs:live/a7' ? 12 : 60)),
    );
    expect(anomalies).toEqual([]);
    const violator = plans[7]?.sides.p1;
    expect(violator?.check.violations).toEqual(['FPS_BELOW_MIN']);
    expect(violator?.next.episode?.state).toBe('open');
    expect(outcomes(plans).filter((o) => o === 'violating')).toHaveLength(1);
  });

  it('a violation read through another provider keeps working while the flagged one is set aside', () => {
    const list = matches(25);
    const t = telemetry(list, () => 0);
    t.set('twitch:b3', { channel: 'twitch:b3', live: true, title: 'no id here', fps: 'unknown', bitrateKbps: 'unknown', observedAt: NOW });
    const { plans, anomalies } = guarded(list, t);
    expect(anomalies.map((a) => a.provider)).toEqual(['srs']);
    expect(plans[3]?.sides.p2.check).toMatchObject({ outcome: 'violating', violations: ['TITLE_MISSING_MATCH_ID'] });
    expect(plans[3]?.sides.p2.next.episode?.state).toBe('open');
  });

  describe('across the slices of one sweep (carry)', () => {
    it('a provider flagged in one slice is set aside from the start in the next: no episode there either, the same anomaly recorded', () => {
      const list = matches(40);
      const t = telemetry(list, () => 0);
      const first = planBehindGuard(list.slice(0, 20), t, NOW, ON, plan);
      expect(first.anomalies.map((a) => a.provider)).toEqual(['srs']);
      const second = planBehindGuard(list.slice(20), t, NOW, ON, plan, first.carry);
      expect(second.anomalies).toEqual([]); // not flagged twice in one sweep
      expect(new Set(outcomes(second.plans))).toEqual(new Set(['unknown']));
      for (const p of second.plans) expect(p.sides.p2.next.anomalies).toEqual(first.anomalies);
    });

    it('a slice with too few sides to judge on its own is judged on the sweep so far', () => {
      const list = matches(30);
      // The fault starts with the last slice (5 matches, 10 SRS sides < 20): the first slice read healthy streams.
      const t = telemetry(list, (c) => (Number(/\d+$/.exec(c)?.[0]) >= 25 ? 0 : 60));
      const first = planBehindGuard(list.slice(0, 25), t, NOW, ON, plan);
      expect(first.anomalies).toEqual([]);
      // 10 of 60 sides so far turned: under 30 %, so the tail is judged as usual (here: violating).
      const tail = planBehindGuard(list.slice(25), t, NOW, ON, plan, first.carry);
      expect(tail.anomalies).toEqual([]);
      expect(new Set(outcomes(tail.plans))).toEqual(new Set(['violating']));
      // After a smaller earlier slice, the same 10 of 26 sides so far cross the share and the tail is set aside.
      const small = planBehindGuard(list.slice(17, 25), t, NOW, ON, plan);
      const guardedTail = planBehindGuard(list.slice(25), t, NOW, ON, plan, small.carry);
      expect(guardedTail.anomalies).toEqual([
        { provider: 'srs', at: NOW, streams: 26, turnedViolating: 10, share: 10 / 26, minShare: 0.3, minStreams: 20 },
      ]);
      expect(new Set(outcomes(guardedTail.plans))).toEqual(new Set(['unknown']));
    });
  });
});
