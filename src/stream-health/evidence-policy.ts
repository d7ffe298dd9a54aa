/**
 * The evidence rule: which stored samples and overlay events a verdict's evidence bundle holds, how many, and
 * what else a human reviewing it needs (episodes, thresholds, the rule applied). Pure: the caller reads the
 * ranges named here and passes what it read to `evidenceBundle`.
 */
import type { AnomalyGuardOptions } from './anomaly-guard.js';
import {
  DEFAULT_FPS_TOLERANCE,
  episodeWindow,
  graceDeadline,
  type GraceEpisode,
  type GraceOptions,
  type MatchVerdict,
  type Side,
  type SideGrace,
  type VerdictRule,
  verdictRule,
} from './policy.js';
import type { PolicyVerdictRule } from '../config/enforcement-policy.js';

/** Samples per side in a bundle, the verdict's own sample included. */
export const EVIDENCE_SAMPLE_LIMIT = 500;
/** Overlay events per side in a bundle (their counts are always complete). */
export const EVIDENCE_OVERLAY_LIMIT = 200;

/** Stored rows to read: [from, to] in clock ms, at most `limit`. */
export interface EvidenceRange {
  readonly from: number;
  readonly to: number;
  readonly limit: number;
}

/** An episode's stored samples: from its grace anchor up to just before the verdict's sample, which the bundle adds itself. */
export function evidenceSampleRange(episode: GraceEpisode, decidedAt: number): EvidenceRange {
  return { from: episode.anchorAt, to: decidedAt - 1, limit: EVIDENCE_SAMPLE_LIMIT - 1 };
}

/** An episode's overlay events: its window, first violating sample to verdict (`episodeWindow`). */
export function evidenceOverlayRange(episode: GraceEpisode): EvidenceRange {
  const { from, to } = episodeWindow(episode);
  return { from, to, limit: EVIDENCE_OVERLAY_LIMIT };
}

/** The episode the verdict names: its side's, which the verdict must settle. */
export function primaryEpisode(graces: Readonly<Record<Side, SideGrace>>, verdict: MatchVerdict): GraceEpisode {
  const ep = graces[verdict.side].episode;
  if (!ep || !verdict.episodeIds.includes(ep.id)) throw new Error(`verdict for ${verdict.side} without its episode`);
  return ep;
}

/** The episodes the verdict settles, by side (a side without one is left out). */
export function settledEpisodes(graces: Readonly<Record<Side, SideGrace>>, verdict: MatchVerdict): Partial<Record<Side, GraceEpisode>> {
  const settled: Partial<Record<Side, GraceEpisode>> = {};
  for (const side of ['p1', 'p2'] as const) {
    const ep = graces[side].episode;
    if (ep && verdict.episodeIds.includes(ep.id)) settled[side] = ep;
  }
  return settled;
}

function ruleExplanation(rule: VerdictRule, graceMs: number): string {
  switch (rule) {
    case 'BOTH_SIDES_VIOLATING_DISPUTE':
      return 'both sides were violating when the first grace ran out: one dispute for the match, never a forfeit';
    case 'GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT':
      return `the side violated for more than ${graceMs} ms of known time while the overlay reported gameplay progress`;
    case 'GRACE_EXPIRED_WITHOUT_GAMEPLAY_DISPUTE':
      return `the side violated for more than ${graceMs} ms of known time and the overlay showed no gameplay progress (or none was reported)`;
    case 'GRACE_EXPIRED_POLICY_DISPUTE':
      return `the side violated for more than ${graceMs} ms of known time; the match's policy leaves every verdict to a human (dispute)`;
  }
}

export interface EvidenceSample {
  readonly side: Side;
  readonly episodeId: string | null;
  readonly outcome: string;
  readonly observedAt: string;
  readonly sample: unknown;
}

export interface EvidenceOverlay {
  readonly gameplayProgress: number;
  readonly total: number;
  readonly events: readonly unknown[];
}

export interface EvidenceInput {
  readonly matchId: string;
  readonly overlayRequired: boolean;
  readonly verdict: MatchVerdict;
  /** Both sides' grace states with the verdict's episodes settled. */
  readonly graces: Readonly<Record<Side, SideGrace>>;
  readonly decidedAt: number;
  /** Per settled side: its stored samples (`evidenceSampleRange`), oldest first. */
  readonly storedSamples: Partial<Record<Side, readonly EvidenceSample[]>>;
  /** Per settled side: the sample that settled it, taken at `decidedAt`. */
  readonly verdictSamples: Partial<Record<Side, EvidenceSample>>;
  /** Per side read (`evidenceOverlayRange`). */
  readonly overlay: Partial<Record<Side, EvidenceOverlay>>;
  readonly thresholds: { readonly minFps: number; readonly minBitrateKbps: number; readonly grace: Required<GraceOptions> };
  /** The systemic-anomaly guard's settings in force (anomaly-guard.ts). */
  readonly guard: AnomalyGuardOptions;
  /** Which policy judged the match (its enforcementMode) and how. */
  readonly policy: { readonly name: string; readonly verdictRule: PolicyVerdictRule; readonly checkIntervalMultiple: number };
}

export interface EvidenceBundle {
  readonly version: 1;
  readonly kind: 'stream-health-verdict';
  readonly matchId: string;
  readonly side: Side;
  readonly verdict: MatchVerdict['verdict'];
  readonly reason: MatchVerdict['reason'];
  readonly rule: VerdictRule;
  readonly explanation: string;
  readonly decidedAt: string;
  readonly episodeId: string;
  readonly episodes: readonly Record<string, unknown>[];
  readonly thresholds: Record<string, unknown>;
  readonly policy: EvidenceInput['policy'];
  readonly samples: Partial<Record<Side, EvidenceSample[]>>;
  readonly overlay: Partial<Record<Side, { gameplayProgressEvents: number; eventsInWindow: number; events: readonly unknown[] }>>;
  readonly overlayRequired: boolean;
  readonly guard: AnomalyGuardOptions;
  /** Per side: the systemic anomalies that set its readings aside before this verdict (SideGrace.anomalies). */
  readonly systemicAnomalies: Record<Side, readonly Record<string, unknown>[]>;
}

/** The evidence a human reviews: episodes, their samples, overlay events, thresholds and the rule applied. */
export function evidenceBundle(input: EvidenceInput): EvidenceBundle {
  const { verdict, thresholds } = input;
  const { grace } = thresholds;
  const settled = settledEpisodes(input.graces, verdict);
  const samples: Partial<Record<Side, EvidenceSample[]>> = {};
  for (const side of Object.keys(settled) as Side[]) {
    const current = input.verdictSamples[side];
    const stored = (input.storedSamples[side] ?? []).slice(-(EVIDENCE_SAMPLE_LIMIT - 1));
    samples[side] = current ? [...stored, current] : stored;
  }
  const rule = verdictRule(verdict, input.policy.verdictRule);
  return {
    version: 1,
    kind: 'stream-health-verdict',
    matchId: input.matchId,
    side: verdict.side,
    verdict: verdict.verdict,
    reason: verdict.reason,
    rule,
    explanation: ruleExplanation(rule, grace.graceMs),
    decidedAt: iso(input.decidedAt),
    episodeId: primaryEpisode(input.graces, verdict).id,
    episodes: Object.values(settled).map((e) => ({
      ...e,
      graceDeadlineAt: iso(graceDeadline(e, grace.graceMs)),
      window: isoWindow(episodeWindow(e)),
    })),
    thresholds: {
      minFps: thresholds.minFps,
      fpsTolerance: DEFAULT_FPS_TOLERANCE,
      minBitrateKbps: thresholds.minBitrateKbps,
      graceMs: grace.graceMs,
      checkEveryMs: grace.checkEveryMs,
      recoveryMs: grace.recoveryMs,
      maxGapMs: grace.maxGapMs,
      titleRule: `#${input.matchId} or [${input.matchId}]`,
    },
    policy: input.policy,
    samples,
    overlay: Object.fromEntries(
      Object.entries(input.overlay).map(([side, w]) => [
        side,
        { gameplayProgressEvents: w.gameplayProgress, eventsInWindow: w.total, events: w.events.slice(0, EVIDENCE_OVERLAY_LIMIT) },
      ]),
    ),
    overlayRequired: input.overlayRequired,
    guard: input.guard,
    systemicAnomalies: {
      p1: (input.graces.p1.anomalies ?? []).map((a) => ({ ...a, at: iso(a.at) })),
      p2: (input.graces.p2.anomalies ?? []).map((a) => ({ ...a, at: iso(a.at) })),
    },
  };
}

export function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function isoWindow(w: { from: number; to: number }) {
  return { from: iso(w.from), to: iso(w.to) };
}
