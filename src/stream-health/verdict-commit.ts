/**
 * An eventful match (an episode open, opening, closing or expiring) is written in its own transaction together
 * with its events (warn, verdict), so state and effects commit or vanish together; a crash at any point leaves
 * the next sweep to redo the work. The writes themselves are the verdict repository's unit of work.
 */
import type { Logger } from 'pino';
import { decideWithEvidence, type DecidedVerdict } from './evidence.js';
import { iso } from './evidence-policy.js';
import { mirrorGrace } from './grace-mirror.js';
import { checksOf, episodeOfSample, sampleRow, type MatchPlan, type SidePlan } from './match-plan.js';
import type { StreamWarning } from './outbound-events.js';
import { graceDeadline, verdictReason, type GraceOptions } from './policy.js';
import { SIDES } from './stream-health.repository.js';
import { countSample, type SweepContext, type SweepReport, type VerdictSummary } from './sweep-context.js';
import { commitMatchState, type EpisodeWrite, type MatchCommit, type MatchCommitResult } from './verdict.repository.js';

export async function commitMatch(ctx: SweepContext, plan: MatchPlan, report: SweepReport, logger: Logger): Promise<void> {
  const matchId = plan.match.id;
  const decided = await decideWithEvidence(ctx, plan);
  const commit = matchCommit(plan, decided);
  let result: MatchCommitResult;
  try {
    result = await commitMatchState(ctx.db, commit, () => ctx.trace?.('verdict-written', { matchId }));
  } catch (err) {
    logger.error({ err, reason: 'MATCH_COMMIT_FAILED' }, 'could not persist this match; the next sweep retries');
    return;
  }
  if (result.outcome === 'stale') {
    report.stale += commit.sides.length;
    logger.info({ reason: result.reason }, 'match was swept concurrently; this sample is dropped');
    return;
  }
  if (result.outcome === 'already-enforced') {
    logger.warn({ reason: result.reason }, result.message);
    return;
  }
  const verdict =
    result.outcome === 'committed' && result.evidenceId !== null && decided ? verdictSummary(matchId, decided, result.evidenceId) : null;
  reportCommitted(ctx, plan, commit, report, logger);
  if (result.outcome === 'verdict-skipped')
    logger.warn({ reason: result.reason }, 'grace expired but the match left IN_PROGRESS meanwhile; no verdict');
  if (verdict) {
    report.verdicts.push(verdict);
    ctx.metrics.streamVerdicts.inc({ verdict: verdict.verdict, reason: verdict.reason });
    logger.warn(
      {
        side: verdict.side,
        verdict: verdict.verdict,
        reason: verdict.reason,
        evidenceId: verdict.evidenceId,
        episodeId: verdict.episodeId,
      },
      'stream verdict issued',
    );
  }
  if (commit.warnings.length > 0 || verdict) ctx.onOutboxWrite?.();
  ctx.trace?.('match-committed', { matchId });
  await mirrorGrace(ctx.kv, plan, plan.grace, logger);
}

/** What the match's transaction writes: changed sides and their samples, episodes in play, warnings, checklist, verdict. */
function matchCommit(plan: MatchPlan, decided: DecidedVerdict | null): MatchCommit {
  const matchId = plan.match.id;
  const changed = SIDES.map((side) => plan.sides[side]).filter((s) => s.changed);
  const settled = decided?.verdict.episodeIds ?? [];
  const episodes: EpisodeWrite[] = [];
  for (const side of SIDES) {
    const s = plan.sides[side];
    const ep = s.next.episode;
    if (ep && (ep.state === 'open' || s.effects.length > 0 || settled.includes(ep.id))) {
      episodes.push({ episode: ep, graceDeadlineAt: graceDeadline(ep, plan.grace.graceMs) });
    }
  }
  return {
    matchId,
    at: plan.at,
    sides: changed.map((s) => ({ matchId, side: s.side, expectedVersion: s.expectedVersion, grace: s.next })),
    samples: changed.map((s) => sampleRow(matchId, s, episodeOfSample(s))),
    episodes,
    warnings: SIDES.flatMap((side) => warningsOf(plan.grace, plan.sides[side])),
    checklist: plan.checklist,
    verdict: decided && {
      side: decided.verdict.side,
      verdict: decided.verdict.verdict,
      reason: decided.verdict.reason,
      episodeId: decided.episodeId,
      episodeIds: decided.verdict.episodeIds,
      rule: decided.bundle.rule,
      policy: decided.bundle.policy.name,
      gameplayProgressEvents: decided.gameplayProgressEvents,
      bundle: decided.bundle,
    },
  };
}

/** `stream.health.warn` for each episode this sample opened. */
function warningsOf(grace: Required<GraceOptions>, s: SidePlan): StreamWarning[] {
  return s.effects.flatMap((effect) =>
    effect.kind !== 'episode-opened'
      ? []
      : [
          {
            side: s.side,
            episodeId: effect.episode.id,
            reason: verdictReason(effect.episode),
            violations: effect.episode.violations,
            checks: checksOf(s.check),
            openedAt: iso(effect.episode.openedAt),
            graceMs: grace.graceMs,
            graceDeadlineAt: iso(graceDeadline(effect.episode, grace.graceMs)),
          },
        ],
  );
}

function verdictSummary(matchId: string, decided: DecidedVerdict, evidenceId: string): VerdictSummary {
  const { side, verdict, reason } = decided.verdict;
  return { matchId, side, verdict, reason, evidenceId, episodeId: decided.episodeId };
}

/** Counts and logs what the committed transaction did (samples, warnings, recoveries). */
function reportCommitted(ctx: SweepContext, plan: MatchPlan, commit: MatchCommit, report: SweepReport, logger: Logger): void {
  for (const side of SIDES) if (plan.sides[side].changed) countSample(ctx, report, plan.sides[side].check.outcome);
  for (const w of commit.warnings) {
    report.warnings++;
    ctx.metrics.graceEpisodesOpened.inc();
    logger.warn(
      { side: w.side, episodeId: w.episodeId, violations: w.violations, reason: w.reason },
      'stream violation: grace episode opened',
    );
  }
  for (const side of SIDES) {
    for (const effect of plan.sides[side].effects) {
      if (effect.kind !== 'episode-closed') continue;
      ctx.metrics.graceEpisodesClosed.inc();
      logger.info({ side, episodeId: effect.episode.id, reason: 'STREAM_RECOVERED' }, 'stream recovered: grace episode closed');
    }
  }
}
