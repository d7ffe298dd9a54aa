/**
 * One sweep, slice by slice: load the next STREAM_SWEEP_SLICE active matches (keyset pagination by id), take
 * their leases, collect telemetry for the slice's channels (a listing provider lists once per sweep, on the
 * first slice), plan each match behind the anomaly guard (match-plan.ts, anomaly-guard.ts), write the quiet ones
 * in batches and commit the eventful ones one by one (verdict-commit.ts), release the slice's leases, and drop
 * the slice before loading the next: memory is bounded by a slice, not by the number of active matches.
 * Abortable between steps; the next sweep completes what an aborted one left.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { emptyGuardCarry, planBehindGuard, type GuardCarry, type ProviderAnomaly } from './anomaly-guard.js';
import { recordSweepCompleted } from './backup-sweep.js';
import { planMatch, quietSampleWorthKeeping, sampleRow, splitPlans, type MatchPlan } from './match-plan.js';
import {
  commitQuietBatch,
  loadActiveMatches,
  loadActiveMatchSlice,
  SIDES,
  type ActiveMatch,
  type ChecklistWrite,
  type SampleRow,
  type SideWrite,
} from './stream-health.repository.js';
import { countSamples, emptyReport, policyOf, type SweepContext, type SweepOptions, type SweepReport } from './sweep-context.js';
import type { MatchLeases } from './sweep-leases.js';
import { collectTelemetry, openTelemetrySweep, type TelemetryProvider } from './telemetry.js';
import { commitMatch } from './verdict-commit.js';

interface Run {
  readonly ctx: SweepContext;
  readonly options: SweepOptions;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly report: SweepReport;
  readonly started: number;
  /** This sweep's lease owner, the same for every slice. */
  readonly owner: string;
  /** The providers' readers for this sweep (a listing provider lists once, on the first slice). */
  readonly providers: readonly TelemetryProvider[];
  mark: number;
  /** The anomaly guard's state across slices. */
  guard: GuardCarry;
}

export async function runSweep(ctx: SweepContext, leases: MatchLeases, options: SweepOptions, signal: AbortSignal): Promise<SweepReport> {
  const scope = options.matchId ?? 'all';
  const started = performance.now();
  const run: Run = {
    ctx,
    options,
    signal,
    logger: ctx.logger.child({ sweep: scope }),
    report: emptyReport(scope),
    started,
    owner: `${ctx.instanceId}:${randomUUID()}`,
    providers: openTelemetrySweep(ctx.providers),
    mark: started,
    guard: emptyGuardCarry(),
  };
  if (options.matchId !== undefined) {
    const active = await loadActiveMatches(ctx.db, options.matchId);
    phase(run, 'loadMs');
    run.report.matches = active.length;
    if (active.length === 0)
      run.logger.info({ reason: 'MATCH_NOT_ACTIVE' }, 'match is not an active VERIFIED_STREAM match; nothing to check');
    await sweepSlice(run, leases, active);
    return finish(run);
  }
  let cursor: string | null = null;
  do {
    const slice = await loadActiveMatchSlice(ctx.db, cursor, ctx.sliceSize);
    phase(run, 'loadMs');
    run.report.matches += slice.matches.length;
    if (slice.matches.length > 0) run.report.slices++;
    await sweepSlice(run, leases, slice.matches);
    cursor = slice.next;
  } while (cursor !== null && !signal.aborted);
  return finish(run);
}

/** One slice: its leases, then (unless aborted) its telemetry, plans and writes; its leases released either way. */
async function sweepSlice(run: Run, leases: MatchLeases, active: readonly ActiveMatch[]): Promise<void> {
  const { ctx, report, signal } = run;
  if (active.length === 0) return;
  const held = await leases.acquire(
    active.map((m) => m.id),
    run.owner,
    run.logger,
  );
  phase(run, 'leasesMs');
  try {
    const mine = active.filter((m) => held.has(m.id));
    report.leasedElsewhere += active.length - mine.length;
    report.swept += mine.length;
    ctx.trace?.('leases-acquired', {});
    if (!signal.aborted && mine.length > 0) await sweepMatches(run, mine);
  } finally {
    await leases.release(held, run.owner, run.logger);
  }
}

async function sweepMatches(run: Run, mine: readonly ActiveMatch[]): Promise<void> {
  const { ctx, signal, report } = run;
  const channels = new Set<string>();
  for (const m of mine) for (const side of SIDES) for (const c of m.channels[side]) channels.add(c);
  report.channels += channels.size;
  const telemetry = await collectTelemetry(run.providers, [...channels], ctx.clock.now());
  phase(run, 'telemetryMs');
  ctx.trace?.('telemetry-collected', {});
  if (signal.aborted) return;

  const at = ctx.clock.now();
  const guarded = planBehindGuard(
    mine,
    telemetry,
    at,
    ctx.anomalyGuard,
    (m, t, found) => {
      const { policy, fallback } = policyOf(ctx, m.enforcementMode);
      if (fallback)
        run.logger.warn(
          { matchId: m.id, enforcementMode: m.enforcementMode, reason: 'UNKNOWN_ENFORCEMENT_MODE' },
          'match names a policy no longer configured; judged by default',
        );
      return planMatch(m, t, at, policy, ctx.settings.checkEveryMs, found);
    },
    run.guard,
  );
  run.guard = guarded.carry;
  reportAnomalies(run, guarded.anomalies);
  const { plans } = guarded;
  for (const p of plans) logReopened(p, run.logger);
  const { quiet, eventful } = splitPlans(plans);

  for (let i = 0; i < quiet.length; i += ctx.batchSize) {
    if (signal.aborted) return;
    await writeQuiet(run, quiet.slice(i, i + ctx.batchSize), at);
  }
  phase(run, 'batchMs');
  ctx.trace?.('batch-written', {});

  let next = 0;
  const worker = async () => {
    while (next < eventful.length && !signal.aborted) {
      const plan = eventful[next++] as MatchPlan;
      await commitMatch(ctx, plan, report, run.logger.child({ matchId: plan.match.id }));
    }
  };
  await Promise.all(Array.from({ length: Math.min(ctx.concurrency, eventful.length) }, worker));
  phase(run, 'eventfulMs');
}

/** Matches with no episode in play: state, samples worth keeping and checklist changes, one transaction per batch. */
async function writeQuiet(run: Run, plans: readonly MatchPlan[], at: number): Promise<void> {
  const sides: SideWrite[] = [];
  const samples: SampleRow[] = [];
  const checklists: ChecklistWrite[] = [];
  for (const p of plans) {
    for (const side of SIDES) {
      const s = p.sides[side];
      if (!s.changed) continue;
      sides.push({ matchId: p.match.id, side, expectedVersion: s.expectedVersion, grace: s.next });
      if (quietSampleWorthKeeping(s)) samples.push(sampleRow(p.match.id, s, null));
    }
    if (p.checklist) checklists.push({ matchId: p.match.id, fields: p.checklist });
  }
  const applied = await commitQuietBatch(run.ctx.db, { sides, samples, checklists }, at);
  const tally = { healthy: 0, violating: 0, unknown: 0 };
  for (const p of plans) {
    for (const side of SIDES) {
      const s = p.sides[side];
      if (!s.changed) continue;
      if (applied.has(p.match.id, side)) tally[s.check.outcome]++;
      else run.report.stale++;
    }
  }
  countSamples(run.ctx, run.report, tally);
}

/** The guard set a provider's readings aside: metered and alerted (docs/stream-health.md, "Systemic-anomaly guard"). */
function reportAnomalies(run: Run, anomalies: readonly ProviderAnomaly[]): void {
  run.report.anomalies.push(...anomalies);
  for (const a of anomalies) {
    run.ctx.metrics.streamAnomalies.inc({ provider: a.provider });
    run.logger.error(
      {
        reason: 'SYSTEMIC_TELEMETRY_ANOMALY',
        provider: a.provider,
        streams: a.streams,
        turnedViolating: a.turnedViolating,
        share: a.share,
        minShare: a.minShare,
        minStreams: a.minStreams,
      },
      "alert: a large share of one provider's streams turned violating at once; its readings are set aside this sweep (grace clocks paused)",
    );
  }
}

function logReopened(plan: MatchPlan, logger: Logger): void {
  for (const side of SIDES) {
    if (!plan.sides[side].reset) continue;
    const episodeId = plan.match.sides[side]?.grace.episode?.id;
    logger.warn(
      { matchId: plan.match.id, side, episodeId, reason: 'MATCH_REOPENED_AFTER_VERDICT' },
      'match is in progress again after a verdict; enforcing afresh',
    );
  }
}

/** Adds the time since the last mark to a phase (summed over the slices). */
function phase(run: Run, name: keyof SweepReport['phases']): void {
  const now = performance.now();
  run.report.phases[name] += Math.round(now - run.mark);
  run.mark = now;
}

async function finish(run: Run): Promise<SweepReport> {
  const { ctx, report, logger } = run;
  report.aborted = run.signal.aborted;
  report.durationMs = Math.round(performance.now() - run.started);
  if (run.options.matchId === undefined && !report.aborted) await recordSweepCompleted(ctx.kv, ctx.clock.now(), logger);
  const { matches, slices, swept, leasedElsewhere, samples, stale, warnings, durationMs, phases } = report;
  const summary = {
    matches,
    slices,
    swept,
    leasedElsewhere,
    samples,
    stale,
    warnings,
    verdicts: report.verdicts.length,
    durationMs,
    phases,
  };
  if (report.aborted) logger.warn({ ...summary, reason: 'SWEEP_ABORTED' }, 'stream sweep aborted; the next sweep completes the work');
  else logger.info(summary, 'stream sweep done');
  return report;
}
