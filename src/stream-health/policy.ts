/**
 * Stream-health policy: pure functions of plain data and a time. No I/O, no clock reads.
 *
 *   sample ──checkSample──▶ SampleCheck ──advanceGrace──▶ SideGrace (+ effects) ──decideMatchVerdict──▶ verdict
 *
 * The worker keeps one `SideGrace` per match side (persisted as a row, or at `str:grace:<matchId>:<side>`),
 * feeds it each sweep's check, persists what comes back and acts on the effects. Re-running a sweep with the
 * same or an older sample is a no-op, so redelivery and duplicate ticks are harmless.
 * The rules are explained for operators and players in docs/stream-health.md.
 */
import type { PolicyVerdictRule } from '../config/enforcement-policy.js';
import { UNKNOWN, type SideSample, type Unknown } from './telemetry.js';

export type Side = 'p1' | 'p2';
export type CheckOutcome = 'ok' | 'violation' | 'unknown';
export type SampleOutcome = 'healthy' | 'violating' | 'unknown';

/** Reason codes of a violation; the most serious one becomes the verdict's `reason`. */
export type ViolationCode = 'STREAM_OFFLINE' | 'TITLE_MISSING_MATCH_ID' | 'FPS_BELOW_MIN' | 'BITRATE_BELOW_MIN';
export const VIOLATION_PRIORITY: readonly ViolationCode[] = [
  'STREAM_OFFLINE',
  'TITLE_MISSING_MATCH_ID',
  'FPS_BELOW_MIN',
  'BITRATE_BELOW_MIN',
];

// ─── One sample ──────────────────────────────────────────────────────────────────────────────────────────────

/**
 * FPS is Δframes/Δt: at exactly 30 fps a 30 s window can read 29.97 from frame quantisation alone, and NTSC
 * "30 fps" is 29.97. So FPS passes at ≥ minFps × (1 − tolerance). Bitrate is SRS's own 30 s average: exact.
 */
export const DEFAULT_FPS_TOLERANCE = 0.01;

export interface CheckOptions {
  readonly matchId: string;
  readonly minFps: number;
  readonly minBitrateKbps: number;
  /** Relative allowance under minFps (default 1 %). */
  readonly fpsTolerance?: number;
}

export interface SampleCheck {
  readonly live: CheckOutcome;
  readonly title: CheckOutcome;
  readonly fps: CheckOutcome;
  readonly bitrate: CheckOutcome;
  /** any known violation → violating; all four known and ok → healthy; otherwise unknown. */
  readonly outcome: SampleOutcome;
  readonly violations: readonly ViolationCode[];
}

export type CheckableSample = Pick<SideSample, 'live' | 'title' | 'fps' | 'bitrateKbps'>;

/** Characters of a match id: the matchId grammar of HMAC key ids (hmac-v1.md: `[A-Za-z0-9-]{1,64}`). */
export const MATCH_ID_CHAR = '[A-Za-z0-9-]';

/** Whether `c` (one UTF-16 unit, or undefined past the end) is a match id character (`MATCH_ID_CHAR`). */
function isMatchIdChar(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 45;
}

/**
 * Title rule: the title contains `#<matchId>` or `[<matchId>]`, case-sensitive. After `#`, the id must not
 * continue with another id character, so `#m-12` and `#m-1-2` do not satisfy match `m-1`.
 * Plain string search (a sweep checks 100k titles: no pattern is compiled per call).
 */
export function titleContainsMatchId(title: string, matchId: string): boolean {
  if (matchId === '') return false;
  if (title.includes(`[${matchId}]`)) return true;
  const tagged = `#${matchId}`;
  for (let at = title.indexOf(tagged); at !== -1; at = title.indexOf(tagged, at + 1)) {
    const after = at + tagged.length;
    if (after >= title.length || !isMatchIdChar(title.charCodeAt(after))) return true;
  }
  return false;
}

function knownNumber(v: number | Unknown): number | null {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : null;
}

export function checkSample(sample: CheckableSample, options: CheckOptions): SampleCheck {
  const violations: ViolationCode[] = [];

  const live: CheckOutcome = sample.live === UNKNOWN ? 'unknown' : sample.live ? 'ok' : 'violation';
  if (live === 'violation') violations.push('STREAM_OFFLINE');

  const title: CheckOutcome =
    sample.title === UNKNOWN ? 'unknown' : titleContainsMatchId(sample.title, options.matchId) ? 'ok' : 'violation';
  if (title === 'violation') violations.push('TITLE_MISSING_MATCH_ID');

  const fpsValue = knownNumber(sample.fps);
  const fpsFloor = options.minFps * (1 - (options.fpsTolerance ?? DEFAULT_FPS_TOLERANCE));
  const fps: CheckOutcome = fpsValue === null ? 'unknown' : fpsValue >= fpsFloor ? 'ok' : 'violation';
  if (fps === 'violation') violations.push('FPS_BELOW_MIN');

  const kbps = knownNumber(sample.bitrateKbps);
  const bitrate: CheckOutcome = kbps === null ? 'unknown' : kbps >= options.minBitrateKbps ? 'ok' : 'violation';
  if (bitrate === 'violation') violations.push('BITRATE_BELOW_MIN');

  const all = [live, title, fps, bitrate];
  const outcome: SampleOutcome = violations.length > 0 ? 'violating' : all.every((c) => c === 'ok') ? 'healthy' : 'unknown';
  return { live, title, fps, bitrate, outcome, violations };
}

// ─── Grace episodes ──────────────────────────────────────────────────────────────────────────────────────────

export type EpisodeState = 'open' | 'closed' | 'verdict';

/** One violation episode of one side: opened at its first violating sample, ended by recovery or a verdict. */
export interface GraceEpisode {
  /** Deterministic (`<matchId>:<side>:<openedAt>`): the key that makes its warn and verdict happen once. */
  readonly id: string;
  readonly matchId: string;
  readonly side: Side;
  readonly state: EpisodeState;
  /** Time of the first violating sample. */
  readonly openedAt: number;
  /** The grace clock's zero: the last healthy sample just before the episode, or `openedAt` if there was none. */
  readonly anchorAt: number;
  /** Latest healthy sample, before or during the episode. */
  readonly lastHealthyAt: number | null;
  readonly lastViolationAt: number;
  /** Known time since `anchorAt`: the grace consumed. A verdict is due once it exceeds graceMs. */
  readonly elapsedMs: number;
  /** Time since `anchorAt` that did not count (telemetry unknown, or a sampling gap). elapsed + paused = last − anchor. */
  readonly pausedMs: number;
  /** First sample of the current run of healthy samples (null while violating). */
  readonly healthyRunStartedAt: number | null;
  /** Known time the current healthy run has lasted; the episode closes when it reaches recoveryMs. */
  readonly healthyRunMs: number;
  /** Distinct violation codes seen during the episode, in order of first appearance. */
  readonly violations: readonly ViolationCode[];
  readonly closedAt: number | null;
  /** Time of the violating sample at which the grace ran out. */
  readonly verdictAt: number | null;
}

/** A provider whose readings were set aside in one sweep. Kept on each side it touched (SideGrace.anomalies); found by anomaly-guard.ts. */
export interface ProviderAnomaly {
  readonly provider: string;
  /** Sweep time (ms). */
  readonly at: number;
  /** Sides read through the provider in the sweep. */
  readonly streams: number;
  /** Of those, sides that were healthy and turned violating through this provider's readings. */
  readonly turnedViolating: number;
  readonly share: number;
  readonly minShare: number;
  readonly minStreams: number;
}

/** Everything the policy remembers about one side between sweeps. Persist it as is. */
export interface SideGrace {
  readonly matchId: string;
  readonly side: Side;
  readonly lastSampleAt: number | null;
  readonly lastSampleOutcome: SampleOutcome | null;
  readonly lastHealthyAt: number | null;
  /** The open episode, or the most recent closed / verdict one (null before the first violation). */
  readonly episode: GraceEpisode | null;
  /** Systemic anomalies that set this side's readings aside (anomaly-guard.ts), most recent last; evidence for any later verdict. */
  readonly anomalies?: readonly ProviderAnomaly[];
}

export interface GraceOptions {
  /** OFFLINE_GRACE_MS. */
  readonly graceMs: number;
  /** STREAM_CHECK_EVERY_MS (default 30 s); the two defaults below derive from it. */
  readonly checkEveryMs?: number;
  /**
   * Known healthy time needed to close an episode. Default 0.8 × checkEveryMs: two consecutive healthy samples
   * at the normal cadence, allowing for scheduler jitter, but not two samples a few seconds apart.
   * 0 closes on the first healthy sample (5stack's behaviour; lets a flapping stream reset grace forever).
   */
  readonly recoveryMs?: number;
  /** A gap between samples longer than this is our monitor's outage, not the player's: it pauses. Default 3 × checkEveryMs. */
  readonly maxGapMs?: number;
  /** false for a warn-only policy: episodes open (and warn) and close, but the grace never runs out into a verdict. */
  readonly verdicts?: boolean;
}

export type GraceEffect =
  | { readonly kind: 'episode-opened'; readonly episode: GraceEpisode }
  | { readonly kind: 'episode-closed'; readonly episode: GraceEpisode }
  | { readonly kind: 'grace-expired'; readonly episode: GraceEpisode };

export interface GraceAdvance {
  readonly grace: SideGrace;
  readonly effects: readonly GraceEffect[];
}

export function episodeId(matchId: string, side: Side, openedAt: number): string {
  return `${matchId}:${side}:${openedAt}`;
}

export function resolveGraceOptions(options: GraceOptions): Required<GraceOptions> {
  const checkEveryMs = options.checkEveryMs ?? 30_000;
  return {
    graceMs: options.graceMs,
    checkEveryMs,
    recoveryMs: options.recoveryMs ?? Math.round(checkEveryMs * 0.8),
    maxGapMs: options.maxGapMs ?? checkEveryMs * 3,
    verdicts: options.verdicts ?? true,
  };
}

/** The earliest time a verdict can fall due if telemetry stays known: anchor + grace + paused time. */
export function graceDeadline(episode: GraceEpisode, graceMs: number): number {
  return episode.anchorAt + graceMs + episode.pausedMs;
}

/** A side's state before its first sample: start here when nothing is persisted yet. */
export function emptySideGrace(matchId: string, side: Side): SideGrace {
  return { matchId, side, lastSampleAt: null, lastSampleOutcome: null, lastHealthyAt: null, episode: null };
}

/**
 * Applies one sample (its outcome and violations, taken at `at`) to a side's grace state.
 *
 * - **Opening.** The first violating sample opens an episode (effect `episode-opened` → `stream.health.warn`,
 *   once). Its grace clock starts at the last healthy sample just before it, so the interval in which the
 *   stream broke already counts (grace is measured from the last healthy moment, as 5stack does).
 * - **Counting.** Between two consecutive samples, the interval counts toward `elapsedMs` only if both samples
 *   are known (healthy or violating) and the gap is at most `maxGapMs`. Any interval touching an unknown
 *   sample, or a longer gap (our monitor was down), is added to `pausedMs` instead: the deadline moves out by
 *   exactly the time we could not see. While the episode is open, healthy intervals count too — a brief
 *   recovery does not stop or reset the clock.
 * - **Recovery.** The episode closes (effect `episode-closed`) only when the side has been healthy for
 *   `recoveryMs` of known time — by default two consecutive healthy samples. A violating sample resets the
 *   healthy run; an unknown one neither extends nor breaks it. So flapping healthy/violating every other
 *   sample never closes the episode and its clock runs on from the last *sustained* healthy moment.
 * - **Verdict.** At a violating sample whose `elapsedMs` exceeds `graceMs`, the episode becomes `verdict`
 *   (effect `grace-expired`). A healthy or unknown sample never triggers a verdict, however late.
 * - A verdict episode is final; later samples change nothing. A sample not newer than the last one is ignored.
 */
export function advanceGrace(
  prev: SideGrace,
  sample: Pick<SampleCheck, 'outcome' | 'violations'> | SampleOutcome,
  at: number,
  options: GraceOptions,
): GraceAdvance {
  const opts = resolveGraceOptions(options);
  const outcome = typeof sample === 'string' ? sample : sample.outcome;
  const sampleViolations = typeof sample === 'string' ? [] : sample.violations;

  if (prev.episode?.state === 'verdict') return { grace: prev, effects: [] };
  if (prev.lastSampleAt !== null && at <= prev.lastSampleAt) return { grace: prev, effects: [] };

  const gap = prev.lastSampleAt === null ? null : at - prev.lastSampleAt;
  const counted =
    gap !== null &&
    gap <= opts.maxGapMs &&
    prev.lastSampleOutcome !== null &&
    prev.lastSampleOutcome !== 'unknown' &&
    outcome !== 'unknown';
  const countedMs = counted ? gap : 0;
  const pausedMs = gap !== null && !counted ? gap : 0;

  const base = {
    matchId: prev.matchId,
    side: prev.side,
    lastSampleAt: at,
    lastSampleOutcome: outcome,
    lastHealthyAt: outcome === 'healthy' ? at : prev.lastHealthyAt,
    ...(prev.anomalies ? { anomalies: prev.anomalies } : {}),
  };
  const open = prev.episode?.state === 'open' ? prev.episode : null;
  const effects: GraceEffect[] = [];

  if (!open) {
    if (outcome !== 'violating') return { grace: { ...base, episode: prev.episode }, effects };
    // Counted here means the previous sample was healthy (a violating one would have an open episode).
    let episode: GraceEpisode = {
      id: episodeId(prev.matchId, prev.side, at),
      matchId: prev.matchId,
      side: prev.side,
      state: 'open',
      openedAt: at,
      anchorAt: counted ? (prev.lastSampleAt as number) : at,
      lastHealthyAt: prev.lastHealthyAt,
      lastViolationAt: at,
      elapsedMs: countedMs,
      pausedMs: 0,
      healthyRunStartedAt: null,
      healthyRunMs: 0,
      violations: dedupe(sampleViolations),
      closedAt: null,
      verdictAt: null,
    };
    effects.push({ kind: 'episode-opened', episode });
    if (opts.verdicts && episode.elapsedMs > opts.graceMs) {
      episode = { ...episode, state: 'verdict', verdictAt: at };
      effects.push({ kind: 'grace-expired', episode });
    }
    return { grace: { ...base, episode }, effects };
  }

  let episode: GraceEpisode = {
    ...open,
    elapsedMs: open.elapsedMs + countedMs,
    pausedMs: open.pausedMs + pausedMs,
  };
  if (outcome === 'violating') {
    episode = {
      ...episode,
      lastViolationAt: at,
      violations: dedupe([...episode.violations, ...sampleViolations]),
      healthyRunStartedAt: null,
      healthyRunMs: 0,
    };
    if (opts.verdicts && episode.elapsedMs > opts.graceMs) {
      episode = { ...episode, state: 'verdict', verdictAt: at };
      effects.push({ kind: 'grace-expired', episode });
    }
  } else if (outcome === 'healthy') {
    const runStarted = episode.healthyRunStartedAt !== null;
    episode = {
      ...episode,
      lastHealthyAt: at,
      healthyRunStartedAt: runStarted ? episode.healthyRunStartedAt : at,
      healthyRunMs: runStarted ? episode.healthyRunMs + countedMs : 0,
    };
    if (episode.healthyRunMs >= opts.recoveryMs) {
      episode = { ...episode, state: 'closed', closedAt: at };
      effects.push({ kind: 'episode-closed', episode });
    }
  }
  return { grace: { ...base, episode }, effects };
}

function dedupe(codes: readonly ViolationCode[]): ViolationCode[] {
  return [...new Set(codes)];
}

// ─── Verdicts ────────────────────────────────────────────────────────────────────────────────────────────────

export type VerdictKind = 'FORFEIT' | 'DISPUTE';

/** What the overlay showed between the episode's first violating sample and the verdict (`episodeWindow`). */
export interface OverlayEvidence {
  readonly gameplayProgressDuringEpisode: boolean;
  /** The overlay was not connected / not required / its data is missing: we cannot tell whether play went on. */
  readonly overlayUnknown?: boolean;
}

/** The window in which gameplay progress counts as "play went on while the stream was violating". */
export function episodeWindow(episode: GraceEpisode): { readonly from: number; readonly to: number } {
  return { from: episode.openedAt, to: episode.verdictAt ?? episode.closedAt ?? episode.lastViolationAt };
}

/**
 * FORFEIT only when the overlay positively showed the match went on while the side's stream was violating:
 * the player kept playing unverified. Otherwise (no progress, or we cannot know) DISPUTE: a human decides.
 */
export function decideVerdict(episode: GraceEpisode, overlay: OverlayEvidence, rule: PolicyVerdictRule = 'forfeit'): VerdictKind {
  if (episode.state !== 'verdict') throw new Error(`episode ${episode.id} has no expired grace (state ${episode.state})`);
  // A policy whose rule is `dispute` leaves every verdict to a human, gameplay or not.
  if (rule === 'dispute') return 'DISPUTE';
  return overlay.gameplayProgressDuringEpisode && overlay.overlayUnknown !== true ? 'FORFEIT' : 'DISPUTE';
}

/** The most serious violation seen in the episode, as the verdict's reason code. */
export function verdictReason(episode: GraceEpisode): ViolationCode {
  return VIOLATION_PRIORITY.find((code) => episode.violations.includes(code)) ?? 'STREAM_OFFLINE';
}

export const BOTH_SIDES_VIOLATING = 'BOTH_SIDES_VIOLATING';

export interface MatchVerdict {
  /** The side the event names: the offender, or for a both-sides dispute the side whose episode opened first. */
  readonly side: Side;
  readonly verdict: VerdictKind;
  readonly reason: ViolationCode | typeof BOTH_SIDES_VIOLATING;
  /** Every episode this verdict settles (mark them all, so none produces a second verdict). */
  readonly episodeIds: readonly string[];
}

/** The rule a verdict applied, named in its event and its evidence bundle. */
export type VerdictRule =
  | 'BOTH_SIDES_VIOLATING_DISPUTE'
  | 'GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT'
  | 'GRACE_EXPIRED_WITHOUT_GAMEPLAY_DISPUTE'
  | 'GRACE_EXPIRED_POLICY_DISPUTE';

export function verdictRule(verdict: MatchVerdict, rule: PolicyVerdictRule = 'forfeit'): VerdictRule {
  if (verdict.reason === BOTH_SIDES_VIOLATING) return 'BOTH_SIDES_VIOLATING_DISPUTE';
  if (rule === 'dispute') return 'GRACE_EXPIRED_POLICY_DISPUTE';
  return verdict.verdict === 'FORFEIT' ? 'GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT' : 'GRACE_EXPIRED_WITHOUT_GAMEPLAY_DISPUTE';
}

export interface SideForVerdict {
  readonly episode: GraceEpisode | null;
  readonly overlay: OverlayEvidence;
}

/**
 * One verdict per match at most, decided after both sides have been advanced in the same sweep:
 * - no side's grace expired → null;
 * - the first side whose grace expired (X), while the other side was not violating at that moment → X's
 *   FORFEIT or DISPUTE by the overlay evidence;
 * - X expired while the other side was also violating (its episode open at X's verdict time, whether it later
 *   recovered or expired too) → one DISPUTE for the match, reason BOTH_SIDES_VIOLATING, never a forfeit:
 *   simultaneous failure points at a shared cause (platform, ingest, network) more than at either player, and
 *   two forfeits would be absurd. The side named is the one whose episode opened first.
 * Deterministic: called again with the same or later states of the same episodes it gives the same answer,
 * so a worker can re-derive it after a crash; key the effect on the match (or the episode ids).
 */
export function decideMatchVerdict(
  sides: Readonly<Record<Side, SideForVerdict>>,
  rule: PolicyVerdictRule = 'forfeit',
): MatchVerdict | null {
  const expired = (['p1', 'p2'] as const)
    .filter((s) => sides[s].episode?.state === 'verdict')
    .sort((a, b) => (sides[a].episode?.verdictAt ?? 0) - (sides[b].episode?.verdictAt ?? 0));
  const side = expired[0];
  if (side === undefined) return null;
  const episode = sides[side].episode as GraceEpisode;
  const at = episode.verdictAt as number;
  const other = sides[side === 'p1' ? 'p2' : 'p1'].episode;
  if (other && violatingAt(other, at)) {
    const [p1, p2] = side === 'p1' ? [episode, other] : [other, episode];
    return {
      side: p2.openedAt < p1.openedAt ? 'p2' : 'p1',
      verdict: 'DISPUTE',
      reason: BOTH_SIDES_VIOLATING,
      episodeIds: [p1.id, p2.id],
    };
  }
  return {
    side,
    verdict: decideVerdict(episode, sides[side].overlay, rule),
    reason: verdictReason(episode),
    episodeIds: [episode.id],
  };
}

/** A verdict settles each of its episodes: they become final (state verdict), so none can produce a second verdict. */
export function settleEpisode(grace: SideGrace, verdict: MatchVerdict, at: number): SideGrace {
  const ep = grace.episode;
  if (!ep || !verdict.episodeIds.includes(ep.id) || ep.state === 'verdict') return grace;
  return { ...grace, episode: { ...ep, state: 'verdict', verdictAt: at } };
}

/** Whether the episode was running (opened, not yet recovered) at time `at`. */
function violatingAt(episode: GraceEpisode, at: number): boolean {
  if (episode.openedAt > at) return false;
  return episode.state !== 'closed' || (episode.closedAt ?? 0) > at;
}

// ─── Checklist ───────────────────────────────────────────────────────────────────────────────────────────────

export interface StreamChecklist {
  p1StreamLive?: boolean;
  p2StreamLive?: boolean;
  titlesContainMatchId?: boolean;
  bitrateOk?: boolean;
  fpsOk?: boolean;
}

/** The match checklist's stream items from both sides' checks; an item left out is unknown this sweep (keep the old value). */
export function checklistFromChecks(p1: SampleCheck, p2: SampleCheck): StreamChecklist {
  const list: StreamChecklist = {};
  const p1Live = oneSide(p1.live);
  const p2Live = oneSide(p2.live);
  const titles = bothSides(p1.title, p2.title);
  const bitrate = bothSides(p1.bitrate, p2.bitrate);
  const fps = bothSides(p1.fps, p2.fps);
  if (p1Live !== undefined) list.p1StreamLive = p1Live;
  if (p2Live !== undefined) list.p2StreamLive = p2Live;
  if (titles !== undefined) list.titlesContainMatchId = titles;
  if (bitrate !== undefined) list.bitrateOk = bitrate;
  if (fps !== undefined) list.fpsOk = fps;
  return list;
}

/** The checklist's stream items, in their order. */
export const STREAM_CHECKLIST_ITEMS = [
  'p1StreamLive',
  'p2StreamLive',
  'titlesContainMatchId',
  'bitrateOk',
  'fpsOk',
] as const satisfies readonly (keyof StreamChecklist)[];

function oneSide(a: CheckOutcome): boolean | undefined {
  return a === 'unknown' ? undefined : a === 'ok';
}

function bothSides(a: CheckOutcome, b: CheckOutcome): boolean | undefined {
  return a === 'violation' || b === 'violation' ? false : a === 'ok' && b === 'ok' ? true : undefined;
}
