import { DEFAULT_ANOMALY_GUARD } from './anomaly-guard.js';
import { describe, expect, it } from 'vitest';
import {
  EVIDENCE_OVERLAY_LIMIT,
  EVIDENCE_SAMPLE_LIMIT,
  evidenceBundle,
  evidenceOverlayRange,
  evidenceSampleRange,
  primaryEpisode,
  settledEpisodes,
  type EvidenceInput,
  type EvidenceSample,
} from './evidence-policy.js';
import {
  emptySideGrace,
  resolveGraceOptions,
  settleEpisode,
  verdictRule,
  type GraceEpisode,
  type MatchVerdict,
  type Side,
  type SideGrace,
} from './policy.js';

const T0 = Date.UTC(2026, 0, 1);
const GRACE = resolveGraceOptions({ graceMs: 90_000, checkEveryMs: 30_000 });

function episode(side: Side, over: Partial<GraceEpisode> = {}): GraceEpisode {
  return {
    id: `m-1:${side}:${T0 + 30_000}`,
    matchId: 'm-1',
    side,
    state: 'verdict',
    openedAt: T0 + 30_000,
    anchorAt: T0,
    lastHealthyAt: T0,
    lastViolationAt: T0 + 120_000,
    elapsedMs: 120_000,
    pausedMs: 5_000,
    healthyRunStartedAt: null,
    healthyRunMs: 0,
    violations: ['STREAM_OFFLINE'],
    closedAt: null,
    verdictAt: T0 + 120_000,
    ...over,
  };
}

function grace(side: Side, ep: GraceEpisode | null): SideGrace {
  return { ...emptySideGrace('m-1', side), lastSampleAt: T0 + 120_000, lastSampleOutcome: 'violating', episode: ep };
}

function sample(side: Side, at: number): EvidenceSample {
  return {
    side,
    episodeId: `m-1:${side}:${T0 + 30_000}`,
    outcome: 'violating',
    observedAt: new Date(at).toISOString(),
    sample: { live: false },
  };
}

const forfeit: MatchVerdict = { side: 'p1', verdict: 'FORFEIT', reason: 'STREAM_OFFLINE', episodeIds: [episode('p1').id] };

function input(over: Partial<EvidenceInput> = {}): EvidenceInput {
  return {
    matchId: 'm-1',
    overlayRequired: true,
    verdict: forfeit,
    graces: { p1: grace('p1', episode('p1')), p2: grace('p2', null) },
    decidedAt: T0 + 120_000,
    policy: { name: 'default', verdictRule: 'forfeit', checkIntervalMultiple: 1 },
    storedSamples: { p1: [sample('p1', T0 + 30_000), sample('p1', T0 + 60_000)] },
    verdictSamples: { p1: sample('p1', T0 + 120_000) },
    overlay: { p1: { gameplayProgress: 3, total: 5, events: [{ type: 'gameplay.progress' }] } },
    thresholds: { minFps: 30, minBitrateKbps: 2500, grace: GRACE },
    guard: DEFAULT_ANOMALY_GUARD,
    ...over,
  };
}

describe('evidence ranges', () => {
  it('samples run from the grace anchor to just before the verdict sample, one short of the limit (the verdict sample completes it)', () => {
    expect(evidenceSampleRange(episode('p1'), T0 + 120_000)).toEqual({ from: T0, to: T0 + 119_999, limit: EVIDENCE_SAMPLE_LIMIT - 1 });
  });

  it('overlay events cover the episode window: first violating sample to verdict (or recovery)', () => {
    expect(evidenceOverlayRange(episode('p1'))).toEqual({ from: T0 + 30_000, to: T0 + 120_000, limit: EVIDENCE_OVERLAY_LIMIT });
    const closed = episode('p1', { state: 'closed', verdictAt: null, closedAt: T0 + 90_000 });
    expect(evidenceOverlayRange(closed)).toEqual({ from: T0 + 30_000, to: T0 + 90_000, limit: EVIDENCE_OVERLAY_LIMIT });
  });
});

describe('verdict rule', () => {
  it('names the rule that decided', () => {
    expect(verdictRule({ ...forfeit })).toBe('GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT');
    expect(verdictRule({ ...forfeit, verdict: 'DISPUTE', reason: 'FPS_BELOW_MIN' })).toBe('GRACE_EXPIRED_WITHOUT_GAMEPLAY_DISPUTE');
    expect(verdictRule({ ...forfeit, verdict: 'DISPUTE', reason: 'BOTH_SIDES_VIOLATING' })).toBe('BOTH_SIDES_VIOLATING_DISPUTE');
  });
});

describe('settled episodes', () => {
  it('are the episodes the verdict names; the primary is its side', () => {
    const p1 = episode('p1');
    const p2 = episode('p2', { id: 'm-1:p2:x', state: 'open', verdictAt: null });
    const graces = { p1: grace('p1', p1), p2: grace('p2', p2) };
    expect(settledEpisodes(graces, forfeit)).toEqual({ p1 });
    const both: MatchVerdict = { side: 'p2', verdict: 'DISPUTE', reason: 'BOTH_SIDES_VIOLATING', episodeIds: [p1.id, p2.id] };
    expect(settledEpisodes(graces, both)).toEqual({ p1, p2 });
    expect(primaryEpisode(graces, both)).toBe(p2);
    expect(() => primaryEpisode({ p1: grace('p1', null), p2: grace('p2', p2) }, forfeit)).toThrow(/without its episode/);
  });

  it('settling makes an open episode of the verdict final at the decision time, and leaves others alone', () => {
    const open = grace('p2', episode('p2', { id: 'm-1:p2:x', state: 'open', verdictAt: null }));
    const both: MatchVerdict = {
      side: 'p1',
      verdict: 'DISPUTE',
      reason: 'BOTH_SIDES_VIOLATING',
      episodeIds: [episode('p1').id, 'm-1:p2:x'],
    };
    expect(settleEpisode(open, both, T0 + 120_000).episode).toMatchObject({ state: 'verdict', verdictAt: T0 + 120_000 });
    expect(settleEpisode(open, forfeit, T0 + 120_000)).toBe(open);
    const already = grace('p1', episode('p1'));
    expect(settleEpisode(already, forfeit, T0 + 999_000)).toBe(already);
  });
});

describe('evidenceBundle', () => {
  it('holds the verdict, the rule and its explanation, the settled episodes with deadline and window, thresholds, samples and overlay', () => {
    const bundle = evidenceBundle(input());
    expect(bundle).toMatchObject({
      version: 1,
      kind: 'stream-health-verdict',
      matchId: 'm-1',
      side: 'p1',
      verdict: 'FORFEIT',
      reason: 'STREAM_OFFLINE',
      rule: 'GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT',
      decidedAt: new Date(T0 + 120_000).toISOString(),
      episodeId: episode('p1').id,
      overlayRequired: true,
      thresholds: {
        minFps: 30,
        minBitrateKbps: 2500,
        graceMs: 90_000,
        checkEveryMs: 30_000,
        recoveryMs: 24_000,
        maxGapMs: 90_000,
        titleRule: '#m-1 or [m-1]',
      },
      overlay: { p1: { gameplayProgressEvents: 3, eventsInWindow: 5, events: [{ type: 'gameplay.progress' }] } },
    });
    expect(bundle.explanation).toContain('90000 ms');
    expect(bundle.episodes).toEqual([
      {
        ...episode('p1'),
        graceDeadlineAt: new Date(T0 + 95_000).toISOString(),
        window: { from: new Date(T0 + 30_000).toISOString(), to: new Date(T0 + 120_000).toISOString() },
      },
    ]);
    expect(bundle.samples.p1?.map((s) => s.observedAt)).toEqual(
      [T0 + 30_000, T0 + 60_000, T0 + 120_000].map((t) => new Date(t).toISOString()),
    );
    expect(bundle.samples.p2).toBeUndefined();
  });

  it('keeps at most the limit of samples per side (the newest, ending with the verdict sample) and of overlay events', () => {
    const stored = Array.from({ length: EVIDENCE_SAMPLE_LIMIT + 10 }, (_, i) => sample('p1', T0 + i));
    const events = Array.from({ length: EVIDENCE_OVERLAY_LIMIT + 10 }, (_, i) => ({ seq: i }));
    const bundle = evidenceBundle(
      input({ storedSamples: { p1: stored }, overlay: { p1: { gameplayProgress: 0, total: events.length, events } } }),
    );
    const samples = bundle.samples.p1 ?? [];
    expect(samples).toHaveLength(EVIDENCE_SAMPLE_LIMIT);
    expect(samples[0]?.observedAt).toBe(new Date(T0 + 11).toISOString());
    expect(samples.at(-1)?.observedAt).toBe(new Date(T0 + 120_000).toISOString());
    expect(bundle.overlay.p1?.events).toHaveLength(EVIDENCE_OVERLAY_LIMIT);
    expect(bundle.overlay.p1?.eventsInWindow).toBe(EVIDENCE_OVERLAY_LIMIT + 10);
  });

  it('a both-sides dispute carries both episodes and explains why it is never a forfeit', () => {
    const p2 = episode('p2', { id: 'm-1:p2:x', openedAt: T0 + 20_000 });
    const verdict: MatchVerdict = { side: 'p2', verdict: 'DISPUTE', reason: 'BOTH_SIDES_VIOLATING', episodeIds: [episode('p1').id, p2.id] };
    const bundle = evidenceBundle(
      input({
        verdict,
        graces: { p1: grace('p1', episode('p1')), p2: grace('p2', p2) },
        verdictSamples: { p1: sample('p1', T0 + 120_000), p2: sample('p2', T0 + 120_000) },
      }),
    );
    expect(bundle).toMatchObject({ side: 'p2', episodeId: p2.id, rule: 'BOTH_SIDES_VIOLATING_DISPUTE' });
    expect(bundle.explanation).toMatch(/never a forfeit/);
    expect(bundle.episodes.map((e) => e['side'])).toEqual(['p1', 'p2']);
    expect(bundle.samples.p2).toHaveLength(1);
  });
});
