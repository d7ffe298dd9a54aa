import { describe, expect, it } from 'vitest';
import { advanceGrace, emptySideGrace, type SideGrace } from '../stream-health/policy.js';
import { streamSideView } from './match.repository.js';

const T0 = Date.UTC(2026, 0, 1, 12, 0, 0);
const OPTIONS = { graceMs: 90_000, checkEveryMs: 30_000 };

/** The side state the policy itself produces from `samples` (outcome at offset ms). */
function play(samples: [number, 'healthy' | 'violating' | 'unknown'][]): SideGrace {
  let grace = emptySideGrace('m-1', 'p1');
  for (const [at, outcome] of samples) {
    grace = advanceGrace(grace, outcome === 'violating' ? { outcome, violations: ['STREAM_OFFLINE'] } : outcome, T0 + at, OPTIONS).grace;
  }
  return grace;
}

const row = (grace: SideGrace) => ({
  side: 'p1' as const,
  grace,
  last_sample_at: grace.lastSampleAt === null ? null : new Date(grace.lastSampleAt),
  last_outcome: grace.lastSampleOutcome,
});

describe("streamSideView (the match view of a side's stream health)", () => {
  it('an open episode: the grace deadline is anchor + grace + paused time, as the worker counts it', () => {
    // healthy at 0, offline from 30 s, one unknown sample (paused 30 + 30 s), offline again.
    const grace = play([
      [0, 'healthy'],
      [30_000, 'violating'],
      [60_000, 'unknown'],
      [90_000, 'violating'],
    ]);
    const view = streamSideView(row(grace), OPTIONS.graceMs);
    expect(view).toMatchObject({
      side: 'p1',
      graceMs: 90_000,
      lastOutcome: 'violating',
      lastSampleAt: new Date(T0 + 90_000).toISOString(),
    });
    expect(view.episode).toMatchObject({
      state: 'open',
      openedAt: new Date(T0 + 30_000).toISOString(),
      anchorAt: new Date(T0).toISOString(),
      elapsedMs: 30_000,
      pausedMs: 60_000,
      violations: ['STREAM_OFFLINE'],
      graceDeadlineAt: new Date(T0 + 90_000 + 60_000).toISOString(),
      closedAt: null,
      verdictAt: null,
    });
  });

  it('a verdict episode keeps the time the grace ran out; a policy no longer configured leaves the deadline unknown', () => {
    const grace = play([
      [0, 'healthy'],
      [30_000, 'violating'],
      [60_000, 'violating'],
      [90_000, 'violating'],
      [120_000, 'violating'],
    ]);
    const view = streamSideView(row(grace), null);
    expect(view.graceMs).toBeNull();
    expect(view.episode).toMatchObject({ state: 'verdict', verdictAt: new Date(T0 + 120_000).toISOString(), graceDeadlineAt: null });
  });

  it("no episode yet, or a stored state that is not the policy's shape: no episode shown", () => {
    expect(streamSideView(row(play([[0, 'healthy']])), 90_000).episode).toBeNull();
    const broken = { ...row(play([[0, 'healthy']])), grace: { episode: { id: 'x', state: 'open', openedAt: 'yesterday' } } };
    expect(streamSideView(broken, 90_000)).toMatchObject({ lastOutcome: 'healthy', episode: null });
  });
});
