/**
 * A match's verdict with its evidence: reads the overlay windows and stored samples the evidence rule names
 * (evidence-policy.ts) through the repository, decides with the policy and builds the bundle. Runs before the
 * commit transaction: never query `db` while one is open (PGlite has one connection).
 */
import type { Db } from '../infra/db/db.js';
import {
  evidenceBundle,
  evidenceOverlayRange,
  evidenceSampleRange,
  iso,
  primaryEpisode,
  settledEpisodes,
  type EvidenceBundle,
  type EvidenceSample,
} from './evidence-policy.js';
import { sampleRow, type MatchPlan, type SidePlan } from './match-plan.js';
import {
  decideMatchVerdict,
  settleEpisode,
  type GraceEpisode,
  type MatchVerdict,
  type Side,
  type SideForVerdict,
  type SideGrace,
} from './policy.js';
import { SIDES } from './stream-health.repository.js';
import { readOverlayWindow, readSamples, type OverlayWindow } from './verdict.repository.js';
import type { SweepContext } from './sweep-context.js';

export interface DecidedVerdict {
  readonly verdict: MatchVerdict;
  /** The episode the verdict names (its side's). */
  readonly episodeId: string;
  readonly bundle: EvidenceBundle;
  /** `gameplay.progress` events of the named side during its episode. */
  readonly gameplayProgressEvents: number;
}

/**
 * The verdict when a side's grace expired in this plan, or null. Settles the verdict's episodes in the plan
 * (`sides[side].next`), so the commit persists them as final.
 */
export async function decideWithEvidence(ctx: SweepContext, plan: MatchPlan): Promise<DecidedVerdict | null> {
  const { sides } = plan;
  if (!SIDES.some((s) => sides[s].effects.some((e) => e.kind === 'grace-expired'))) return null;
  const overlay: Partial<Record<Side, OverlayWindow>> = {};
  for (const side of SIDES) {
    const ep = sides[side].next.episode;
    if (ep?.state === 'verdict') overlay[side] = await readOverlay(ctx.db, plan.match.id, ep);
  }
  const { policy } = plan;
  const verdict = decideMatchVerdict({ p1: forVerdict(sides.p1, overlay.p1), p2: forVerdict(sides.p2, overlay.p2) }, policy.verdictRule);
  if (!verdict) return null;
  for (const side of SIDES) sides[side].next = settleEpisode(sides[side].next, verdict, plan.at);

  const graces: Record<Side, SideGrace> = { p1: sides.p1.next, p2: sides.p2.next };
  const storedSamples: Partial<Record<Side, EvidenceSample[]>> = {};
  const verdictSamples: Partial<Record<Side, EvidenceSample>> = {};
  for (const [side, ep] of Object.entries(settledEpisodes(graces, verdict)) as [Side, GraceEpisode][]) {
    overlay[side] ??= await readOverlay(ctx.db, plan.match.id, ep);
    const range = evidenceSampleRange(ep, plan.at);
    storedSamples[side] = await readSamples(ctx.db, plan.match.id, side, range.from, range.to, range.limit);
    verdictSamples[side] = verdictSample(plan.match.id, sides[side], ep.id);
  }
  const bundle = evidenceBundle({
    matchId: plan.match.id,
    overlayRequired: plan.match.overlayRequired,
    verdict,
    graces,
    decidedAt: plan.at,
    storedSamples,
    verdictSamples,
    overlay,
    thresholds: { minFps: policy.minFps, minBitrateKbps: policy.minBitrateKbps, grace: plan.grace },
    policy: { name: policy.name, verdictRule: policy.verdictRule, checkIntervalMultiple: policy.checkIntervalMultiple },
    guard: ctx.anomalyGuard,
  });
  const gameplayProgressEvents = overlay[verdict.side]?.gameplayProgress ?? 0;
  return { verdict, episodeId: primaryEpisode(graces, verdict).id, bundle, gameplayProgressEvents };
}

function readOverlay(db: Db, matchId: string, episode: GraceEpisode): Promise<OverlayWindow> {
  const range = evidenceOverlayRange(episode);
  return readOverlayWindow(db, matchId, range.from, range.to, range.limit);
}

/** Gameplay progress counts only for an episode whose grace expired; the overlay of any other side was not read. */
function forVerdict(s: SidePlan, seen: OverlayWindow | undefined): SideForVerdict {
  return { episode: s.next.episode, overlay: { gameplayProgressDuringEpisode: (seen?.gameplayProgress ?? 0) > 0 } };
}

function verdictSample(matchId: string, s: SidePlan, episodeId: string): EvidenceSample {
  const row = sampleRow(matchId, s, episodeId);
  return { side: s.side, episodeId, outcome: row.outcome, observedAt: iso(row.observedAt), sample: row.sample };
}
