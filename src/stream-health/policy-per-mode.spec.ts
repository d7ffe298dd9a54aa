import { describe, expect, it } from 'vitest';
import type { EnforcementPolicy } from '../config/enforcement-policy.js';
import { planMatch, policyGrace, sampleDue } from './match-plan.js';
import {
  advanceGrace,
  checkSample,
  decideMatchVerdict,
  emptySideGrace,
  verdictRule,
  type CheckableSample,
  type SideGrace,
} from './policy.js';
import type { ActiveMatch } from './stream-health.repository.js';
import type { ChannelTelemetry } from './telemetry.js';

const S = 1000;
const T0 = Date.UTC(2026, 0, 1);
const BASE_EVERY = 30 * S;
const OFFLINE: CheckableSample = { live: false, title: 'unknown', fps: 0, bitrateKbps: 0 };
const policy = (over: Partial<EnforcementPolicy> = {}): EnforcementPolicy => ({
  name: 'default',
  minFps: 30,
  minBitrateKbps: 2500,
  graceMs: 90 * S,
  checkIntervalMultiple: 1,
  verdictRule: 'forfeit',
  ...over,
});

/** A side offline from T0 on, sampled every `every` ms until `until`. */
function offlineFor(p: EnforcementPolicy, until: number, every = BASE_EVERY): { grace: SideGrace; kinds: string[] } {
  let grace = emptySideGrace('m-1', 'p1');
  const kinds: string[] = [];
  for (let at = T0; at <= until; at += every) {
    const check = checkSample(OFFLINE, { matchId: 'm-1', minFps: p.minFps, minBitrateKbps: p.minBitrateKbps });
    const next = advanceGrace(grace, check, at, policyGrace(p, BASE_EVERY));
    kinds.push(...next.effects.map((e) => e.kind));
    grace = next.grace;
  }
  return { grace, kinds };
}

describe('verdict rules per policy', () => {
  it("forfeit (default, today's rule): forfeit with gameplay, dispute without", () => {
    const { grace } = offlineFor(policy(), T0 + 150 * S);
    const withPlay = decideMatchVerdict({
      p1: { episode: grace.episode, overlay: { gameplayProgressDuringEpisode: true } },
      p2: { episode: null, overlay: { gameplayProgressDuringEpisode: false } },
    });
    expect(withPlay?.verdict).toBe('FORFEIT');
    expect(verdictRule(withPlay!)).toBe('GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT');
  });

  it('dispute: a human decides even when the overlay saw gameplay', () => {
    const { grace } = offlineFor(policy({ verdictRule: 'dispute' }), T0 + 150 * S);
    const sides = {
      p1: { episode: grace.episode, overlay: { gameplayProgressDuringEpisode: true } },
      p2: { episode: null, overlay: { gameplayProgressDuringEpisode: false } },
    };
    const verdict = decideMatchVerdict(sides, 'dispute');
    expect(verdict).toMatchObject({ side: 'p1', verdict: 'DISPUTE', reason: 'STREAM_OFFLINE' });
    expect(verdictRule(verdict!, 'dispute')).toBe('GRACE_EXPIRED_POLICY_DISPUTE');
  });

  it('warn-only: the episode opens (one warning) but the grace never runs out into a verdict', () => {
    const { grace, kinds } = offlineFor(policy({ verdictRule: 'warn-only' }), T0 + 600 * S);
    expect(kinds).toEqual(['episode-opened']);
    expect(grace.episode).toMatchObject({ state: 'open', verdictAt: null });
    expect(grace.episode!.elapsedMs).toBeGreaterThan(90 * S);
  });

  it('a longer grace (a final) holds the verdict back until it has run out', () => {
    expect(offlineFor(policy({ graceMs: 180 * S }), T0 + 150 * S).grace.episode?.state).toBe('open');
    expect(offlineFor(policy({ graceMs: 180 * S }), T0 + 210 * S).grace.episode?.state).toBe('verdict');
  });
});

describe('check interval multiple', () => {
  it('sampleDue: every N-th sweep, with half a sweep of slack, always before the first sample', () => {
    expect(sampleDue(null, T0, 60 * S, BASE_EVERY)).toBe(true);
    expect(sampleDue(T0, T0 + 30 * S, 60 * S, BASE_EVERY)).toBe(false);
    expect(sampleDue(T0, T0 + 46 * S, 60 * S, BASE_EVERY)).toBe(true);
    expect(sampleDue(T0, T0 + 30 * S, 30 * S, BASE_EVERY)).toBe(true);
  });

  it('planMatch skips a match that is not due: nothing changes, no checklist write; the grace clock assumes the longer interval', () => {
    const p = policy({ checkIntervalMultiple: 2, graceMs: 120 * S });
    const offline: ChannelTelemetry = {
      channel: 'twitch:a',
      live: false,
      title: 'unknown',
      fps: 'unknown',
      bitrateKbps: 'unknown',
      observedAt: T0,
    };
    const telemetry = new Map([
      ['twitch:a', offline],
      ['twitch:b', { ...offline, channel: 'twitch:b' }],
    ]);
    const match = (last: number | null): ActiveMatch => ({
      id: 'm-1',
      overlayRequired: false,
      enforcementMode: 'slow',
      channels: { p1: ['twitch:a'], p2: ['twitch:b'] },
      checklist: null,
      sides:
        last === null
          ? {}
          : {
              p1: {
                version: 1,
                grace: { ...emptySideGrace('m-1', 'p1'), lastSampleAt: last, lastSampleOutcome: 'healthy', lastHealthyAt: last },
              },
            },
    });
    const first = planMatch(match(null), telemetry, T0, p, BASE_EVERY);
    expect(first.sides.p1.changed).toBe(true);
    expect(first.grace).toMatchObject({ checkEveryMs: 60 * S, graceMs: 120 * S, maxGapMs: 180 * S, verdicts: true });
    const early = planMatch(match(T0), telemetry, T0 + 30 * S, p, BASE_EVERY);
    expect([early.sides.p1.changed, early.sides.p2.changed, early.sides.p1.effects, early.checklist]).toEqual([false, false, [], null]);
    const due = planMatch(match(T0), telemetry, T0 + 60 * S, p, BASE_EVERY);
    expect(due.sides.p1.effects.map((e) => e.kind)).toEqual(['episode-opened']);
    expect(due.policy.name).toBe('default');
  });
});
