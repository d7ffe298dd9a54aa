import { describe, expect, it } from 'vitest';
import {
  advanceGrace,
  checkSample,
  checklistFromChecks,
  decideMatchVerdict,
  decideVerdict,
  emptySideGrace,
  episodeWindow,
  graceDeadline,
  titleContainsMatchId,
  verdictReason,
  type CheckableSample,
  type GraceEffect,
  type GraceEpisode,
  type GraceOptions,
  type SampleCheck,
  type SampleOutcome,
  type SideGrace,
  type ViolationCode,
} from './policy.js';

const S = 1000;
const T0 = Date.UTC(2026, 0, 1);
const OPTS = { matchId: 'm-1', minFps: 30, minBitrateKbps: 2500 };
const GRACE: GraceOptions = { graceMs: 90 * S, checkEveryMs: 30 * S };
const GOOD: CheckableSample = { live: true, title: 'Finals #m-1', fps: 60, bitrateKbps: 6000 };

describe('titleContainsMatchId', () => {
  it.each([
    ['Finals #m-1', 'm-1', true],
    ['Finals [m-1] live', 'm-1', true],
    ['#m-1', 'm-1', true],
    ['#m-1!', 'm-1', true],
    ['#m-1 and #m-12', 'm-1', true],
    ['##m-1', 'm-1', true],
    ['no id here', 'm-1', false],
    ['', 'm-1', false],
    ['m-1 without a marker', 'm-1', false],
    ['#m-12', 'm-1', false], // a longer id is not this one
    ['#m-1-2', 'm-1', false], // '-' is an id character
    ['#m-1a', 'm-1', false],
    ['[m-12]', 'm-1', false],
    ['[ m-1 ]', 'm-1', false],
    ['[m-1', 'm-1', false],
    ['#M-1', 'm-1', false], // case-sensitive
    ['#m-1_x', 'm-1', true], // '_' is not an id character
    ['#aXb', 'a.b', false], // ids are matched literally, never as a pattern
    ['#a.b', 'a.b', true],
    ['#', '', false],
  ])('%j for match %j → %s', (title, matchId, expected) => {
    expect(titleContainsMatchId(title, matchId)).toBe(expected);
  });
});

describe('checkSample', () => {
  it.each<[string, Partial<CheckableSample>, Partial<SampleCheck>]>([
    ['all good', {}, { live: 'ok', title: 'ok', fps: 'ok', bitrate: 'ok', outcome: 'healthy', violations: [] }],
    ['offline', { live: false }, { live: 'violation', outcome: 'violating', violations: ['STREAM_OFFLINE'] }],
    ['live unknown', { live: 'unknown' }, { live: 'unknown', outcome: 'unknown' }],
    ['title missing the id', { title: 'Finals' }, { title: 'violation', outcome: 'violating', violations: ['TITLE_MISSING_MATCH_ID'] }],
    ['title of a longer id', { title: 'Finals #m-12' }, { title: 'violation', outcome: 'violating' }],
    ['title unknown', { title: 'unknown' }, { title: 'unknown', outcome: 'unknown' }],
    ['a real title "unknown" (quoted by the provider)', { title: '"unknown"' }, { title: 'violation', outcome: 'violating' }],
    ['FPS 29', { fps: 29 }, { fps: 'violation', outcome: 'violating', violations: ['FPS_BELOW_MIN'] }],
    ['FPS 30', { fps: 30 }, { fps: 'ok', outcome: 'healthy' }],
    ['FPS 29.97 (NTSC / frame quantisation)', { fps: 29.97 }, { fps: 'ok', outcome: 'healthy' }],
    ['FPS 29.6', { fps: 29.6 }, { fps: 'violation', outcome: 'violating' }],
    ['FPS 0 (ingest sees nothing)', { fps: 0 }, { fps: 'violation', outcome: 'violating' }],
    ['FPS unknown', { fps: 'unknown' }, { fps: 'unknown', outcome: 'unknown' }],
    ['FPS NaN is unknown', { fps: Number.NaN }, { fps: 'unknown', outcome: 'unknown' }],
    ['bitrate 2499', { bitrateKbps: 2499 }, { bitrate: 'violation', outcome: 'violating', violations: ['BITRATE_BELOW_MIN'] }],
    ['bitrate 2500', { bitrateKbps: 2500 }, { bitrate: 'ok', outcome: 'healthy' }],
    ['bitrate unknown', { bitrateKbps: 'unknown' }, { bitrate: 'unknown', outcome: 'unknown' }],
    [
      'a known violation beats unknowns',
      { live: 'unknown', fps: 'unknown', bitrateKbps: 100 },
      { outcome: 'violating', violations: ['BITRATE_BELOW_MIN'] },
    ],
    [
      'everything wrong',
      { live: false, title: 'x', fps: 10, bitrateKbps: 10 },
      { outcome: 'violating', violations: ['STREAM_OFFLINE', 'TITLE_MISSING_MATCH_ID', 'FPS_BELOW_MIN', 'BITRATE_BELOW_MIN'] },
    ],
    [
      'offline with everything else unknown (Twitch gives no title offline)',
      { live: false, title: 'unknown', fps: 'unknown', bitrateKbps: 'unknown' },
      { outcome: 'violating', violations: ['STREAM_OFFLINE'] },
    ],
  ])('%s', (_name, patch, expected) => {
    expect(checkSample({ ...GOOD, ...patch }, OPTS)).toMatchObject(expected);
  });

  it('takes the FPS tolerance as an option', () => {
    expect(checkSample({ ...GOOD, fps: 29.97 }, { ...OPTS, fpsTolerance: 0 }).fps).toBe('violation');
    expect(checkSample({ ...GOOD, fps: 59.94 }, { ...OPTS, minFps: 60 }).fps).toBe('ok');
  });
});

// ─── Grace ───────────────────────────────────────────────────────────────────────────────────────────────────

type Step = [seconds: number, outcome: 'H' | 'V' | 'U', violations?: ViolationCode[]];
const OUTCOME: Record<Step[1], SampleOutcome> = { H: 'healthy', V: 'violating', U: 'unknown' };

function run(steps: Step[], options: GraceOptions = GRACE, start: SideGrace = emptySideGrace('m-1', 'p1')) {
  let grace = start;
  const effects: (GraceEffect & { at: number })[] = [];
  for (const [sec, o, violations] of steps) {
    const outcome = OUTCOME[o];
    const result = advanceGrace(
      grace,
      { outcome, violations: violations ?? (outcome === 'violating' ? ['STREAM_OFFLINE'] : []) },
      T0 + sec * S,
      options,
    );
    grace = result.grace;
    for (const e of result.effects) effects.push({ ...e, at: sec });
  }
  return { grace, effects, kinds: effects.map((e) => `${e.kind}@${e.at}`) };
}

/** Every 30 s from `from` to `to` inclusive. */
function every30(from: number, to: number, o: Step[1]): Step[] {
  const steps: Step[] = [];
  for (let s = from; s <= to; s += 30) steps.push([s, o]);
  return steps;
}

function ep(grace: SideGrace): GraceEpisode {
  if (!grace.episode) throw new Error('no episode');
  return grace.episode;
}

describe('advanceGrace', () => {
  it('a healthy stream never opens an episode', () => {
    const { grace, effects } = run(every30(0, 600, 'H'));
    expect(effects).toEqual([]);
    expect(grace.episode).toBeNull();
    expect(grace.lastHealthyAt).toBe(T0 + 600 * S);
  });

  it('opens at the first violating sample, warns once, and counts from the last healthy sample', () => {
    const { grace, kinds } = run([
      [0, 'H'],
      [30, 'V'],
      [60, 'V'],
    ]);
    expect(kinds).toEqual(['episode-opened@30']);
    expect(ep(grace)).toMatchObject({
      id: `m-1:p1:${T0 + 30 * S}`,
      state: 'open',
      openedAt: T0 + 30 * S,
      anchorAt: T0,
      elapsedMs: 60 * S,
      pausedMs: 0,
      lastViolationAt: T0 + 60 * S,
    });
    expect(graceDeadline(ep(grace), GRACE.graceMs)).toBe(T0 + 90 * S);
  });

  it('a stream violating from its very first sample starts the clock at that sample', () => {
    const { grace, kinds } = run([
      [0, 'V'],
      [30, 'V'],
      [60, 'V'],
      [90, 'V'],
      [120, 'V'],
    ]);
    expect(ep(grace).anchorAt).toBe(T0);
    expect(kinds).toEqual(['episode-opened@0', 'grace-expired@120']);
  });

  describe('the 90 s boundary with 30 s samples (last healthy at 0)', () => {
    it.each<[string, Step[], string[]]>([
      [
        'recovered at 89 s, confirmed at 119 s → closed, no verdict',
        [
          [0, 'H'],
          [30, 'V'],
          [60, 'V'],
          [89, 'H'],
          [119, 'H'],
        ],
        ['episode-opened@30', 'episode-closed@119'],
      ],
      [
        'still violating at 91 s → verdict at 91 s',
        [
          [0, 'H'],
          [30, 'V'],
          [60, 'V'],
          [91, 'V'],
        ],
        ['episode-opened@30', 'grace-expired@91'],
      ],
      [
        'violating at exactly 90 s → not yet (grace must be exceeded)',
        [
          [0, 'H'],
          [30, 'V'],
          [60, 'V'],
          [90, 'V'],
        ],
        ['episode-opened@30'],
      ],
      [
        '…and at 120 s → verdict',
        [
          [0, 'H'],
          [30, 'V'],
          [60, 'V'],
          [90, 'V'],
          [120, 'V'],
        ],
        ['episode-opened@30', 'grace-expired@120'],
      ],
      [
        'a healthy sample after the deadline is never a verdict',
        [
          [0, 'H'],
          [30, 'V'],
          [60, 'V'],
          [95, 'H'],
        ],
        ['episode-opened@30'],
      ],
      [
        'a short dip (one violating sample) closes after two healthy samples',
        [
          [0, 'H'],
          [30, 'V'],
          [60, 'H'],
          [90, 'H'],
        ],
        ['episode-opened@30', 'episode-closed@90'],
      ],
    ])('%s', (_name, steps, expected) => {
      expect(run(steps).kinds).toEqual(expected);
    });
  });

  it('flapping every other sample keeps one episode whose clock never resets, and reaches a verdict', () => {
    const steps: Step[] = [[0, 'H']];
    for (let s = 30; s <= 600; s += 30) steps.push([s, (s / 30) % 2 === 1 ? 'V' : 'H']);
    const { kinds, grace } = run(steps);
    expect(kinds).toEqual(['episode-opened@30', 'grace-expired@150']);
    expect(ep(grace)).toMatchObject({ anchorAt: T0, verdictAt: T0 + 150 * S, elapsedMs: 150 * S });
  });

  it('…whereas closing on a single healthy sample (recoveryMs 0, the 5stack rule) would never reach one', () => {
    const steps: Step[] = [[0, 'H']];
    for (let s = 30; s <= 600; s += 30) steps.push([s, (s / 30) % 2 === 1 ? 'V' : 'H']);
    const { kinds } = run(steps, { ...GRACE, recoveryMs: 0 });
    expect(kinds.filter((k) => k.startsWith('grace-expired'))).toEqual([]);
    expect(kinds.filter((k) => k.startsWith('episode-opened'))).toHaveLength(10);
  });

  it('two healthy samples a few seconds apart (a manual check) are not a recovery', () => {
    const { kinds } = run([
      [0, 'H'],
      [30, 'V'],
      [60, 'H'],
      [65, 'H'],
      [80, 'V'],
      [91, 'V'],
    ]);
    expect(kinds).toEqual(['episode-opened@30', 'grace-expired@91']);
  });

  it('provider unknown for 5 minutes → no verdict, the episode stays open and the deadline moves out', () => {
    const { kinds, grace } = run([[0, 'H'], [30, 'V'], ...every30(60, 360, 'U')]);
    expect(kinds).toEqual(['episode-opened@30']);
    expect(ep(grace)).toMatchObject({ state: 'open', elapsedMs: 30 * S, pausedMs: 330 * S });
    // Back to known violating: 60 s more of known time are left.
    const after = run(
      [
        [390, 'V'],
        [420, 'V'],
        [450, 'V'],
        [480, 'V'],
      ],
      GRACE,
      grace,
    );
    expect(after.kinds).toEqual(['grace-expired@480']);
  });

  it('unknown from the start for 5 minutes → no episode at all', () => {
    const { effects, grace } = run(every30(0, 300, 'U'));
    expect(effects).toEqual([]);
    expect(grace.episode).toBeNull();
  });

  it('unknown in the middle pauses the clock by the intervals it touches', () => {
    const steps: Step[] = [
      [0, 'H'],
      [30, 'V'],
      [60, 'V'],
      [90, 'U'],
      [120, 'V'],
      [150, 'V'],
      [180, 'V'],
    ];
    const { kinds, grace } = run(steps);
    // 0→60 counts (60 s); 60→90 and 90→120 touch the unknown sample (60 s paused); 120→180 counts (60 s).
    expect(kinds).toEqual(['episode-opened@30', 'grace-expired@180']);
    const e = ep(grace);
    expect(e).toMatchObject({ elapsedMs: 120 * S, pausedMs: 60 * S });
    expect(graceDeadline(e, GRACE.graceMs)).toBe(T0 + 150 * S);
    expect(e.elapsedMs + e.pausedMs).toBe(e.lastViolationAt - e.anchorAt);
  });

  it('a gap longer than 3 check intervals (our monitor was down) pauses instead of counting', () => {
    const { kinds, grace } = run([
      [0, 'H'],
      [30, 'V'],
      [330, 'V'],
      [360, 'V'],
    ]);
    expect(kinds).toEqual(['episode-opened@30']);
    expect(ep(grace)).toMatchObject({ elapsedMs: 60 * S, pausedMs: 300 * S });
  });

  it('a gap before the first violation does not count either', () => {
    const { grace } = run([
      [0, 'H'],
      [300, 'V'],
    ]);
    expect(ep(grace)).toMatchObject({ anchorAt: T0 + 300 * S, elapsedMs: 0 });
  });

  it('an unknown sample neither extends nor breaks a healthy run', () => {
    const base: Step[] = [
      [0, 'H'],
      [30, 'V'],
      [60, 'H'],
      [90, 'U'],
      [120, 'H'],
    ];
    expect(run(base).kinds).toEqual(['episode-opened@30']);
    expect(run([...base, [150, 'H']]).kinds).toEqual(['episode-opened@30', 'episode-closed@150']);
  });

  it('after recovery the next violation is a new episode with its own id, anchored at the last healthy sample', () => {
    const { kinds, grace } = run([
      [0, 'H'],
      [30, 'V'],
      [60, 'H'],
      [90, 'H'],
      [120, 'H'],
      [150, 'V'],
    ]);
    expect(kinds).toEqual(['episode-opened@30', 'episode-closed@90', 'episode-opened@150']);
    expect(ep(grace)).toMatchObject({ id: `m-1:p1:${T0 + 150 * S}`, anchorAt: T0 + 120 * S, elapsedMs: 30 * S });
  });

  it('keeps the distinct violations in order of first appearance', () => {
    const { grace } = run([
      [0, 'H'],
      [30, 'V', ['FPS_BELOW_MIN']],
      [60, 'V', ['STREAM_OFFLINE', 'FPS_BELOW_MIN']],
      [90, 'V', ['FPS_BELOW_MIN']],
    ]);
    expect(ep(grace).violations).toEqual(['FPS_BELOW_MIN', 'STREAM_OFFLINE']);
  });

  it('a verdict is final and a stale or repeated sample is a no-op', () => {
    const { grace } = run([
      [0, 'H'],
      [30, 'V'],
      [60, 'V'],
      [91, 'V'],
    ]);
    expect(advanceGrace(grace, 'violating', T0 + 121 * S, GRACE)).toEqual({ grace, effects: [] });
    const open = run([
      [0, 'H'],
      [30, 'V'],
    ]).grace;
    expect(advanceGrace(open, 'violating', T0 + 30 * S, GRACE)).toEqual({ grace: open, effects: [] });
    expect(advanceGrace(open, 'healthy', T0 + 10 * S, GRACE)).toEqual({ grace: open, effects: [] });
  });

  it('re-running the same sweep from the persisted state gives the same result (deterministic ids)', () => {
    const a = run([
      [0, 'H'],
      [30, 'V'],
    ]);
    const b = run([
      [0, 'H'],
      [30, 'V'],
    ]);
    expect(a.grace).toEqual(b.grace);
  });

  it('accepts a bare outcome', () => {
    const { effects } = advanceGrace(emptySideGrace('m-1', 'p2'), 'violating', T0, GRACE);
    expect(effects[0]?.episode).toMatchObject({ side: 'p2', violations: [] });
  });

  it('honours a configured grace and check interval', () => {
    const fast: GraceOptions = { graceMs: 20 * S, checkEveryMs: 10 * S };
    const { kinds } = run(
      [
        [0, 'H'],
        [10, 'V'],
        [20, 'V'],
        [30, 'V'],
      ],
      fast,
    );
    expect(kinds).toEqual(['episode-opened@10', 'grace-expired@30']);
  });
});

// ─── Verdicts ────────────────────────────────────────────────────────────────────────────────────────────────

function expiredEpisode(side: 'p1' | 'p2', openedSec: number, violations: ViolationCode[] = ['STREAM_OFFLINE']): GraceEpisode {
  const steps: Step[] = [[openedSec - 30, 'H']];
  for (let s = openedSec; s <= openedSec + 90; s += 30) steps.push([s, 'V', violations]);
  const { grace } = run(steps, GRACE, emptySideGrace('m-1', side));
  const e = ep(grace);
  expect(e.state).toBe('verdict');
  return e;
}

function openEpisode(side: 'p1' | 'p2', openedSec: number): GraceEpisode {
  return ep(
    run(
      [
        [openedSec - 30, 'H'],
        [openedSec, 'V'],
      ],
      GRACE,
      emptySideGrace('m-1', side),
    ).grace,
  );
}

const PLAYED = { gameplayProgressDuringEpisode: true };
const IDLE = { gameplayProgressDuringEpisode: false };

describe('decideVerdict', () => {
  it.each([
    ['gameplay went on → FORFEIT', PLAYED, 'FORFEIT'],
    ['no gameplay → DISPUTE', IDLE, 'DISPUTE'],
    ['overlay unknown → DISPUTE even with progress reported', { ...PLAYED, overlayUnknown: true }, 'DISPUTE'],
    ['overlay unknown, no progress → DISPUTE', { ...IDLE, overlayUnknown: true }, 'DISPUTE'],
  ])('%s', (_name, overlay, expected) => {
    expect(decideVerdict(expiredEpisode('p1', 30), overlay)).toBe(expected);
  });

  it('refuses an episode whose grace has not expired', () => {
    expect(() => decideVerdict(openEpisode('p1', 30), PLAYED)).toThrow(/no expired grace/);
  });

  it('names the most serious violation as the reason', () => {
    expect(verdictReason(expiredEpisode('p1', 30, ['BITRATE_BELOW_MIN', 'FPS_BELOW_MIN']))).toBe('FPS_BELOW_MIN');
    expect(verdictReason(expiredEpisode('p1', 30, ['TITLE_MISSING_MATCH_ID', 'STREAM_OFFLINE']))).toBe('STREAM_OFFLINE');
  });

  it('looks for gameplay between the first violating sample and the verdict', () => {
    const e = expiredEpisode('p1', 30);
    expect(episodeWindow(e)).toEqual({ from: T0 + 30 * S, to: T0 + 120 * S });
  });
});

describe('decideMatchVerdict', () => {
  const none = { episode: null, overlay: PLAYED };
  it('no expired grace → no verdict', () => {
    expect(decideMatchVerdict({ p1: none, p2: none })).toBeNull();
    expect(decideMatchVerdict({ p1: { episode: openEpisode('p1', 30), overlay: PLAYED }, p2: none })).toBeNull();
  });

  it('one side expired, the other fine → that side, by the overlay', () => {
    const p2 = expiredEpisode('p2', 30);
    expect(decideMatchVerdict({ p1: none, p2: { episode: p2, overlay: PLAYED } })).toEqual({
      side: 'p2',
      verdict: 'FORFEIT',
      reason: 'STREAM_OFFLINE',
      episodeIds: [p2.id],
    });
    expect(decideMatchVerdict({ p1: none, p2: { episode: p2, overlay: IDLE } })?.verdict).toBe('DISPUTE');
  });

  it('the other side recovered (closed episode) → still a single-side verdict', () => {
    const closed = ep(
      run([
        [0, 'H'],
        [30, 'V'],
        [60, 'H'],
        [90, 'H'],
      ]).grace,
    );
    const p2 = expiredEpisode('p2', 30);
    expect(decideMatchVerdict({ p1: { episode: closed, overlay: PLAYED }, p2: { episode: p2, overlay: PLAYED } })?.verdict).toBe('FORFEIT');
  });

  it('both sides expired → one DISPUTE for the match, never two forfeits', () => {
    const p1 = expiredEpisode('p1', 60);
    const p2 = expiredEpisode('p2', 30);
    expect(decideMatchVerdict({ p1: { episode: p1, overlay: PLAYED }, p2: { episode: p2, overlay: PLAYED } })).toEqual({
      side: 'p2',
      verdict: 'DISPUTE',
      reason: 'BOTH_SIDES_VIOLATING',
      episodeIds: [p1.id, p2.id],
    });
  });

  it('is decided at the moment of expiry, so later sweeps re-derive the same verdict', () => {
    const p1 = expiredEpisode('p1', 30); // verdict at 120
    const p2Later = openEpisode('p2', 150); // the other side broke after the verdict
    expect(decideMatchVerdict({ p1: { episode: p1, overlay: PLAYED }, p2: { episode: p2Later, overlay: PLAYED } })?.verdict).toBe(
      'FORFEIT',
    );
    // Violating at 120, recovered at 150: still the same both-sides dispute.
    const p2Recovered = ep(
      run(
        [
          [30, 'H'],
          [60, 'V'],
          [90, 'V'],
          [120, 'H'],
          [150, 'H'],
        ],
        GRACE,
        emptySideGrace('m-1', 'p2'),
      ).grace,
    );
    expect(p2Recovered).toMatchObject({ state: 'closed', closedAt: T0 + 150 * S });
    expect(decideMatchVerdict({ p1: { episode: p1, overlay: PLAYED }, p2: { episode: p2Recovered, overlay: PLAYED } })?.reason).toBe(
      'BOTH_SIDES_VIOLATING',
    );
  });

  it('one side expired while the other is also violating → DISPUTE for the match', () => {
    const p1 = expiredEpisode('p1', 30);
    const p2 = openEpisode('p2', 90);
    expect(decideMatchVerdict({ p1: { episode: p1, overlay: PLAYED }, p2: { episode: p2, overlay: PLAYED } })).toMatchObject({
      side: 'p1',
      verdict: 'DISPUTE',
      reason: 'BOTH_SIDES_VIOLATING',
    });
  });
});

describe('checklistFromChecks', () => {
  const healthy = checkSample(GOOD, OPTS);
  it('sets every item when both sides are known', () => {
    expect(checklistFromChecks(healthy, healthy)).toEqual({
      p1StreamLive: true,
      p2StreamLive: true,
      titlesContainMatchId: true,
      bitrateOk: true,
      fpsOk: true,
    });
  });
  it('a violation on either side is false; unknown leaves the item out', () => {
    const lowFps = checkSample({ ...GOOD, fps: 12 }, OPTS);
    const unknown = checkSample({ live: 'unknown', title: 'unknown', fps: 'unknown', bitrateKbps: 'unknown' }, OPTS);
    expect(checklistFromChecks(lowFps, unknown)).toEqual({ p1StreamLive: true, fpsOk: false });
  });
});
