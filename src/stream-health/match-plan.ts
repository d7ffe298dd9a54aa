/**
 * A sweep's decisions for one match, in memory: each side's sample composed, checked and applied to its grace
 * state (policy.ts). Pure; the sweep persists the plans (batched when quiet, one transaction each when eventful).
 */
import { anomaliesOfSide, recordAnomalies, type ProviderAnomaly } from './anomaly-guard.js';
import {
  advanceGrace,
  checklistFromChecks,
  checkSample,
  emptySideGrace,
  type GraceEffect,
  type GraceOptions,
  type SampleCheck,
  type Side,
  type SideGrace,
  type StreamChecklist,
  STREAM_CHECKLIST_ITEMS,
} from './policy.js';
import { policyCheckEveryMs, type EnforcementPolicy } from '../config/enforcement-policy.js';
import { resolveGraceOptions } from './policy.js';
import { SIDES, type ActiveMatch, type SampleRow } from './stream-health.repository.js';
import { composeSideSample, type ChannelTelemetry, type SideSample } from './telemetry.js';

export interface SidePlan {
  readonly side: Side;
  readonly expectedVersion: number;
  readonly prev: SideGrace;
  readonly sample: SideSample;
  readonly check: SampleCheck;
  next: SideGrace;
  readonly effects: readonly GraceEffect[];
  /** false when the sample changed nothing (not newer than the stored one). */
  readonly changed: boolean;
  /** The stored state was a verdict on a match that is IN_PROGRESS again: enforcement starts afresh. */
  readonly reset: boolean;
}

export interface MatchPlan {
  readonly match: ActiveMatch;
  /** The policy that judged this match, and its grace options (its own check interval). */
  readonly policy: EnforcementPolicy;
  readonly grace: Required<GraceOptions>;
  readonly sides: Record<Side, SidePlan>;
  readonly checklist: StreamChecklist | null;
  readonly at: number;
}

/** The grace options of a policy: its grace, its check interval; a warn-only policy never reaches a verdict. */
export function policyGrace(policy: EnforcementPolicy, baseCheckEveryMs: number): Required<GraceOptions> {
  return resolveGraceOptions({
    graceMs: policy.graceMs,
    checkEveryMs: policyCheckEveryMs(policy, { checkEveryMs: baseCheckEveryMs }),
    verdicts: policy.verdictRule !== 'warn-only',
  });
}

/**
 * Whether a match is due this sweep: a policy with a check interval of N sweeps is sampled every N-th one
 * (half a sweep of slack for scheduler jitter). Always due before its first sample.
 */
export function sampleDue(lastSampleAt: number | null, at: number, policyEveryMs: number, baseEveryMs: number): boolean {
  return lastSampleAt === null || at - lastSampleAt >= policyEveryMs - baseEveryMs / 2;
}

/** Composes, checks and advances both sides of one match under its policy. */

/**
 * Composes, checks and advances both sides of one match under its policy. `anomalies`: this sweep's systemic
 * anomalies (anomaly-guard.ts); a side read through a flagged provider records them.
 */
export function planMatch(
  match: ActiveMatch,
  telemetry: ReadonlyMap<string, ChannelTelemetry>,
  at: number,
  policy: EnforcementPolicy,
  baseCheckEveryMs: number,
  anomalies: readonly ProviderAnomaly[] = [],
): MatchPlan {
  const grace = policyGrace(policy, baseCheckEveryMs);
  const last = Math.max(...SIDES.map((s) => match.sides[s]?.grace.lastSampleAt ?? Number.NEGATIVE_INFINITY));
  const due = sampleDue(Number.isFinite(last) ? last : null, at, grace.checkEveryMs, baseCheckEveryMs);
  const sides = {} as Record<Side, SidePlan>;
  for (const side of SIDES) {
    const stored = match.sides[side];
    // Verdicts change the match status in the same transaction, so an active match with one was re-opened.
    const reset = stored?.grace.episode?.state === 'verdict';
    const prev = stored && !reset ? stored.grace : emptySideGrace(match.id, side);
    const sample = composeSideSample(match.channels[side], telemetry, at);
    const check = checkSample(sample, { matchId: match.id, minFps: policy.minFps, minBitrateKbps: policy.minBitrateKbps });
    // Not due (a slower policy): nothing is applied, so the plan changes nothing and is dropped.
    const advanced = due ? advanceGrace(prev, check, at, grace) : { grace: prev, effects: [] };
    // A sample not newer than the stored one changed nothing, and records nothing either.
    const next = advanced.grace === prev ? prev : recordAnomalies(advanced.grace, anomaliesOfSide(match.channels[side], anomalies));
    sides[side] = {
      side,
      expectedVersion: stored?.version ?? 0,
      prev,
      sample,
      check,
      next,
      effects: advanced.effects,
      changed: due && (reset || next !== prev),
      reset: due && reset,
    };
  }
  return { match, policy, grace, sides, checklist: due ? checklistChange(match, sides) : null, at };
}

/**
 * Quiet plans (no episode open or changing) are written in batches; eventful ones each in their own
 * transaction with their events. Plans that changed nothing are dropped.
 */
export function splitPlans(plans: readonly MatchPlan[]): { quiet: MatchPlan[]; eventful: MatchPlan[] } {
  const quiet: MatchPlan[] = [];
  const eventful: MatchPlan[] = [];
  for (const p of plans) {
    if (!p.sides.p1.changed && !p.sides.p2.changed) continue;
    const open = SIDES.some((s) => p.sides[s].next.episode?.state === 'open');
    const effects = SIDES.some((s) => p.sides[s].effects.length > 0);
    (open || effects ? eventful : quiet).push(p);
  }
  return { quiet, eventful };
}

/**
 * The checklist's stream items from this sweep's checks, or null when nothing changes. An item whose check
 * was unknown keeps its stored value: the checklist shows what we last knew, never a guess.
 */
function checklistChange(match: ActiveMatch, sides: Record<Side, SidePlan>): StreamChecklist | null {
  const wanted = checklistFromChecks(sides.p1.check, sides.p2.check);
  const stored = match.checklist;
  const change: StreamChecklist = {};
  let changed = false;
  for (const item of STREAM_CHECKLIST_ITEMS) {
    const v = wanted[item];
    if (v === undefined || (stored && stored[item] === v)) continue;
    change[item] = v;
    changed = true;
  }
  return changed ? change : null;
}

/** The episode a sample belongs to: the open one, or the one it just closed or settled. */
export function episodeOfSample(s: SidePlan): string | null {
  const ep = s.next.episode;
  if (!ep) return null;
  if (ep.state === 'open' || s.effects.length > 0 || ep.verdictAt === s.next.lastSampleAt) return ep.id;
  return null;
}

/**
 * Outside episodes only the start of a blind spell is kept (healthy samples are metrics only: at 50k matches
 * one row per side per sweep would be ~290 M rows a day).
 */
export function quietSampleWorthKeeping(s: SidePlan): boolean {
  return s.check.outcome === 'unknown' && s.prev.lastSampleOutcome !== 'unknown';
}

export function checksOf(check: SampleCheck) {
  return { live: check.live, title: check.title, fps: check.fps, bitrate: check.bitrate };
}

export function sampleRow(matchId: string, s: SidePlan, episodeId: string | null): SampleRow {
  const { sample, check } = s;
  return {
    matchId,
    side: s.side,
    episodeId,
    outcome: check.outcome,
    observedAt: sample.observedAt,
    sample: {
      checks: checksOf(check),
      violations: check.violations,
      live: sample.live,
      title: sample.title,
      fps: sample.fps,
      bitrateKbps: sample.bitrateKbps,
      ingestLive: sample.ingestLive,
      channels: sample.channels,
      unknownReasons: sample.unknownReasons,
      telemetry: sample.telemetry,
    },
  };
}
