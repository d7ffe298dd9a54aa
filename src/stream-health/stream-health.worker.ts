import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import { enqueueEvent } from '../infra/bus/outbox.js';
import type { TopicHandler } from '../infra/bus/consumer-runtime.js';
import { Topics } from '../events/topics.js';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import type { Metrics } from '../observability/metrics.js';
import { Leases } from '../scheduling/lease.js';
import type { TickContext } from '../scheduling/scheduled-tasks.service.js';
import { streamHealthCheckSchema, type StreamHealthCheck } from '../events/inbound.js';
import {
  advanceGrace,
  checklistFromChecks,
  checkSample,
  decideMatchVerdict,
  DEFAULT_FPS_TOLERANCE,
  emptySideGrace,
  episodeWindow,
  graceDeadline,
  resolveGraceOptions,
  verdictReason,
  verdictRule,
  type GraceEffect,
  type GraceEpisode,
  type MatchVerdict,
  type OverlayEvidence,
  type SampleCheck,
  type SampleOutcome,
  type Side,
  type SideGrace,
  type StreamChecklist,
} from './policy.js';
import {
  insertSamples,
  loadActiveMatches,
  readOverlayWindow,
  readSamples,
  SIDES,
  sideKey,
  upsertEpisode,
  writeChecklists,
  writeSides,
  type ActiveMatch,
  type ChecklistWrite,
  type OverlayWindow,
  type SampleRow,
  type SideWrite,
  type StoredSample,
} from './stream-health.repository.js';
import { collectTelemetry, composeSideSample, type ChannelTelemetry, type SideSample, type TelemetryProvider } from './telemetry.js';

export interface StreamHealthSettings {
  /** STREAM_MIN_FPS. */
  minFps: number;
  /** STREAM_MIN_BITRATE_KBPS. */
  minBitrateKbps: number;
  /** OFFLINE_GRACE_MS. */
  graceMs: number;
  /** STREAM_CHECK_EVERY_MS: the sweep cadence the grace clock assumes. */
  checkEveryMs: number;
  /** Per-match sweep lease in the key-value store (default max(2 × checkEveryMs, 10 s)); a crashed sweep frees its matches after it. */
  leaseMs?: number;
  /** Matches per batched write transaction (default 500). */
  batchSize?: number;
  /** Per-match transactions (episodes, verdicts) in flight at once (default 4). */
  concurrency?: number;
  /** The backup sweep runs only when no full sweep completed within this (default 1.5 × checkEveryMs). */
  backupStaleAfterMs?: number;
}

/** Points of a sweep a test can observe; throwing at `verdict-written` rolls the verdict back as a crash would. */
export type SweepTracePoint = 'leases-acquired' | 'telemetry-collected' | 'batch-written' | 'verdict-written' | 'match-committed';

export interface StreamHealthWorkerDeps {
  db: Kysely<Database>;
  kv: KeyValueStore;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  providers: TelemetryProvider[];
  settings: StreamHealthSettings;
  instanceId: string;
  /** Called after a transaction that wrote outbox rows commits (wakes the relay). */
  onOutboxWrite?: () => void;
  /** Fault-injection seam for tests; production leaves it unset. */
  trace?: (point: SweepTracePoint, detail: { matchId?: string }) => void;
}

export interface SweepOptions {
  /** Sweep one match (a `stream.health.check` with matchId); all active matches when absent. */
  matchId?: string;
  signal?: AbortSignal;
}

export interface VerdictSummary {
  matchId: string;
  side: Side;
  verdict: 'FORFEIT' | 'DISPUTE';
  reason: string;
  evidenceId: string;
  episodeId: string;
}

export interface SweepReport {
  scope: string;
  /** Active matches found. */
  matches: number;
  /** Matches this sweep held the lease of and evaluated. */
  swept: number;
  /** Matches skipped because another sweep (here or on another instance) holds their lease. */
  leasedElsewhere: number;
  /** Provider channels asked about (one batched collection per sweep). */
  channels: number;
  /** Samples applied per outcome (one per side). */
  samples: Record<SampleOutcome, number>;
  /** Sides whose write lost the version check to a concurrent sweep (their sample was dropped). */
  stale: number;
  warnings: number;
  verdicts: VerdictSummary[];
  aborted: boolean;
  durationMs: number;
  /** Wall time per step (ms): load the active matches, leases, provider collection, batched writes, per-match transactions. */
  phases: { loadMs: number; leasesMs: number; telemetryMs: number; batchMs: number; eventfulMs: number };
}

/** Last completed full sweep (clock ms), read by the backup sweep. Losing it costs one extra backup sweep. */
export const LAST_SWEEP_KEY = 'str:sweep:last-completed';
export const LEASE_PREFIX = 'str:lease:';
export const graceKey = (matchId: string, side: Side) => `str:grace:${matchId}:${side}`;

const EVIDENCE_SAMPLE_LIMIT = 500;
const EVIDENCE_OVERLAY_LIMIT = 200;

interface SidePlan {
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

interface MatchPlan {
  readonly match: ActiveMatch;
  readonly sides: Record<Side, SidePlan>;
  readonly checklist: StreamChecklist | null;
  readonly at: number;
}

class StaleStateError extends Error {
  readonly reason = 'STALE_STATE';
}
class AlreadyEnforcedError extends Error {
  readonly reason = 'ALREADY_ENFORCED';
}

/**
 * The seed's Stream Health Worker: every sweep checks both players' streams of each active VERIFIED_STREAM
 * match and applies the pure policy (policy.ts); this class fetches, persists and emits.
 *
 * - One batched telemetry collection per sweep for every channel of every swept match.
 * - Grace state per side lives in PostgreSQL (`stream_sides`, optimistic version), mirrored for operators at
 *   `str:grace:<matchId>:<side>` in the key-value store; the mirror is never read for a decision.
 * - Matches without an open or changing episode are written in batches; a match whose episode opens, runs,
 *   closes or expires is written in its own transaction together with its events (warn, verdict), so state and
 *   effects commit or vanish together, and a crash at any point leaves the next sweep to redo the work.
 * - Exactly once per episode: `str:lease:<matchId>` keeps two sweeps off one match, the version check drops
 *   a sample written concurrently anyway, the match status guard serializes verdicts, `enforcements.episode_id`
 *   is unique and every event has a dedupe key.
 */
export class StreamHealthWorker {
  private readonly leases: Leases;
  private readonly abort = new AbortController();
  /** Sweeps in flight in this process, by scope: a second call for the same scope joins the running one. */
  private readonly inflight = new Map<string, Promise<SweepReport>>();
  private readonly background = new Set<Promise<unknown>>();
  private readonly graceOptions;
  private readonly leaseMs: number;
  private readonly batchSize: number;
  private readonly concurrency: number;
  private readonly backupStaleAfterMs: number;
  private stopped = false;

  constructor(private readonly deps: StreamHealthWorkerDeps) {
    const s = deps.settings;
    this.leases = new Leases(deps.kv, LEASE_PREFIX);
    this.graceOptions = resolveGraceOptions({ graceMs: s.graceMs, checkEveryMs: s.checkEveryMs });
    this.leaseMs = s.leaseMs ?? Math.max(2 * s.checkEveryMs, 10_000);
    this.batchSize = Math.max(1, s.batchSize ?? 500);
    this.concurrency = Math.max(1, s.concurrency ?? 4);
    this.backupStaleAfterMs = s.backupStaleAfterMs ?? Math.round(1.5 * s.checkEveryMs);
  }

  // ---- input events ---------------------------------------------------------------------------

  /**
   * `stream.health.check`: the consumer's transaction only claims the event id (processed_events); the sweep
   * runs after the commit, outside any transaction. A crash between the commit and the sweep loses nothing that
   * matters: the next scheduled sweep (every STREAM_CHECK_EVERY_MS, backed up every minute) checks the match.
   */
  checkHandler(): TopicHandler<StreamHealthCheck> {
    return {
      topic: Topics.streamHealthCheck,
      schema: streamHealthCheckSchema,
      idempotencyKey: (eventId) => `wk:idemp:str:check:${eventId}`,
      handle: async (event, { logger }) => {
        logger.info({ scope: event.matchId ?? 'all' }, 'stream health check claimed; sweeping after commit');
      },
      afterCommit: (event) => {
        this.track(
          this.sweep(event.matchId === undefined ? {} : { matchId: event.matchId }).catch((err: unknown) =>
            this.deps.logger.error({ err, eventId: event.eventId, reason: 'CHECK_SWEEP_FAILED' }, 'stream health check sweep failed; the next scheduled sweep covers it'),
          ),
        );
      },
    };
  }

  // ---- scheduled sweeps -------------------------------------------------------------------------

  /** The 30 s sweep (ScheduledTasksService runs it once per tick across the fleet, never stacked). */
  async primaryTick(tick: TickContext): Promise<void> {
    await this.sweep({ signal: tick.signal });
  }

  /**
   * The 1-minute backup: sweeps only when no full sweep completed within `backupStaleAfterMs` (a stalled or
   * crashed primary), so a healthy primary is never doubled. Returns whether it swept.
   */
  async backupTick(tick: TickContext): Promise<boolean> {
    const now = this.deps.clock.now();
    let last: number | null = null;
    try {
      const raw = await this.deps.kv.get(LAST_SWEEP_KEY);
      last = raw === null ? null : Number(raw);
    } catch (err) {
      this.deps.logger.warn({ err, reason: 'KV_UNAVAILABLE' }, 'last sweep time unknown; backup sweep runs');
    }
    if (last !== null && Number.isFinite(last) && now - last < this.backupStaleAfterMs) {
      this.deps.logger.debug({ lastCompletedAgoMs: now - last }, 'primary sweep is current; backup not needed');
      return false;
    }
    this.deps.logger.warn(
      { reason: 'PRIMARY_SWEEP_STALE', lastCompletedAt: last === null ? null : new Date(last).toISOString() },
      'no recent stream sweep; the backup sweep runs',
    );
    await this.sweep({ signal: tick.signal });
    return true;
  }

  // ---- the sweep ------------------------------------------------------------------------------

  /** Checks every active match (or one). Concurrent calls for the same scope in this process share one run. */
  sweep(options: SweepOptions = {}): Promise<SweepReport> {
    const scope = options.matchId ?? '*';
    const running = this.inflight.get(scope);
    if (running) {
      this.deps.logger.debug({ scope }, 'a sweep of this scope is already running here; joining it');
      return running;
    }
    const run = this.runSweep(options).finally(() => this.inflight.delete(scope));
    this.inflight.set(scope, run);
    return run;
  }

  /** Aborts running sweeps between steps and waits for them (and for check-triggered sweeps). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.abort.abort(new Error('stream health worker stopping'));
    await Promise.allSettled([...this.inflight.values(), ...this.background]);
  }

  private async runSweep(options: SweepOptions): Promise<SweepReport> {
    const { db, clock, logger: root, providers, instanceId } = this.deps;
    const started = performance.now();
    const signal = options.signal ? AbortSignal.any([this.abort.signal, options.signal]) : this.abort.signal;
    const scope = options.matchId ?? 'all';
    const logger = root.child({ sweep: scope });
    const report: SweepReport = {
      scope,
      matches: 0,
      swept: 0,
      leasedElsewhere: 0,
      channels: 0,
      samples: { healthy: 0, violating: 0, unknown: 0 },
      stale: 0,
      warnings: 0,
      verdicts: [],
      aborted: false,
      durationMs: 0,
      phases: { loadMs: 0, leasesMs: 0, telemetryMs: 0, batchMs: 0, eventfulMs: 0 },
    };
    let mark = started;
    const phase = (name: keyof SweepReport['phases']) => {
      const now = performance.now();
      report.phases[name] = Math.round(now - mark);
      mark = now;
    };
    if (this.stopped) return { ...report, aborted: true };

    const active = await loadActiveMatches(db, options.matchId);
    report.matches = active.length;
    phase('loadMs');
    if (options.matchId !== undefined && active.length === 0) {
      logger.info({ reason: 'MATCH_NOT_ACTIVE' }, 'match is not an active VERIFIED_STREAM match; nothing to check');
    }

    const owner = `${instanceId}:${randomUUID()}`;
    const held = await this.acquireLeases(active.map((m) => m.id), owner, logger);
    phase('leasesMs');
    try {
      const mine = active.filter((m) => held.has(m.id));
      report.leasedElsewhere = active.length - mine.length;
      report.swept = mine.length;
      this.deps.trace?.('leases-acquired', {});
      if (signal.aborted || mine.length === 0) return this.finish(report, started, signal, options, logger);

      const channels = new Set<string>();
      for (const m of mine) for (const side of SIDES) for (const c of m.channels[side]) channels.add(c);
      report.channels = channels.size;
      const telemetry = await collectTelemetry(providers, [...channels], clock.now());
      phase('telemetryMs');
      this.deps.trace?.('telemetry-collected', {});
      if (signal.aborted) return this.finish(report, started, signal, options, logger);

      const at = clock.now();
      const plans = mine.map((m) => this.plan(m, telemetry, at, logger));
      const quiet: MatchPlan[] = [];
      const eventful: MatchPlan[] = [];
      for (const p of plans) {
        if (!p.sides.p1.changed && !p.sides.p2.changed) continue;
        const open = SIDES.some((s) => p.sides[s].next.episode?.state === 'open');
        const effects = SIDES.some((s) => p.sides[s].effects.length > 0);
        (open || effects ? eventful : quiet).push(p);
      }

      for (let i = 0; i < quiet.length; i += this.batchSize) {
        if (signal.aborted) return this.finish(report, started, signal, options, logger);
        await this.writeBatch(quiet.slice(i, i + this.batchSize), at, report);
      }
      phase('batchMs');
      this.deps.trace?.('batch-written', {});

      let next = 0;
      const worker = async () => {
        while (next < eventful.length && !signal.aborted) {
          const plan = eventful[next++] as MatchPlan;
          await this.commitMatch(plan, report, logger.child({ matchId: plan.match.id }));
        }
      };
      await Promise.all(Array.from({ length: Math.min(this.concurrency, eventful.length) }, worker));
      phase('eventfulMs');
      return this.finish(report, started, signal, options, logger);
    } finally {
      await this.releaseLeases([...held.keys()], owner, held, logger);
    }
  }

  private async finish(report: SweepReport, started: number, signal: AbortSignal, options: SweepOptions, logger: Logger): Promise<SweepReport> {
    report.aborted = signal.aborted;
    report.durationMs = Math.round(performance.now() - started);
    if (options.matchId === undefined && !report.aborted) {
      try {
        await this.deps.kv.set(LAST_SWEEP_KEY, String(this.deps.clock.now()), { px: 24 * 3600_000 });
      } catch (err) {
        logger.warn({ err, reason: 'KV_UNAVAILABLE' }, 'could not record the sweep completion; the backup sweep may run once more');
      }
    }
    const summary = {
      matches: report.matches,
      swept: report.swept,
      leasedElsewhere: report.leasedElsewhere,
      samples: report.samples,
      stale: report.stale,
      warnings: report.warnings,
      verdicts: report.verdicts.length,
      durationMs: report.durationMs,
      phases: report.phases,
    };
    if (report.aborted) logger.warn({ ...summary, reason: 'SWEEP_ABORTED' }, 'stream sweep aborted; the next sweep completes the work');
    else logger.info(summary, 'stream sweep done');
    return report;
  }

  /** Composes, checks and advances both sides of one match (pure, in memory). */
  private plan(match: ActiveMatch, telemetry: ReadonlyMap<string, ChannelTelemetry>, at: number, logger: Logger): MatchPlan {
    const { settings } = this.deps;
    const sides = {} as Record<Side, SidePlan>;
    for (const side of SIDES) {
      const stored = match.sides[side];
      let prev = stored?.grace ?? emptySideGrace(match.id, side);
      const reset = prev.episode?.state === 'verdict';
      if (reset) {
        // Verdicts change the match status in the same transaction, so an active match with one was re-opened.
        logger.warn({ matchId: match.id, side, episodeId: prev.episode?.id, reason: 'MATCH_REOPENED_AFTER_VERDICT' }, 'match is in progress again after a verdict; enforcing afresh');
        prev = emptySideGrace(match.id, side);
      }
      const sample: SideSample = composeSideSample(match.channels[side], telemetry, at);
      const check = checkSample(sample, { matchId: match.id, minFps: settings.minFps, minBitrateKbps: settings.minBitrateKbps });
      const advanced = advanceGrace(prev, check, at, this.graceOptions);
      sides[side] = {
        side,
        expectedVersion: stored?.version ?? 0,
        prev,
        sample,
        check,
        next: advanced.grace,
        effects: advanced.effects,
        changed: reset || advanced.grace !== prev,
        reset,
      };
    }
    return { match, sides, checklist: checklistChange(match, sides), at };
  }

  // ---- quiet matches: batched -------------------------------------------------------------------

  /** Matches with no episode in play: state, samples worth keeping and checklist changes, one transaction per batch. */
  private async writeBatch(plans: readonly MatchPlan[], at: number, report: SweepReport): Promise<void> {
    const writes: SideWrite[] = [];
    const samples: SampleRow[] = [];
    const checklists: ChecklistWrite[] = [];
    for (const p of plans) {
      for (const side of SIDES) {
        const s = p.sides[side];
        if (!s.changed) continue;
        writes.push({ matchId: p.match.id, side, expectedVersion: s.expectedVersion, grace: s.next });
        // Outside episodes only the start of a blind spell is kept (healthy samples are metrics only: at 50k
        // matches one row per side per sweep would be ~290 M rows a day).
        if (s.check.outcome === 'unknown' && s.prev.lastSampleOutcome !== 'unknown') samples.push(sampleRow(p.match.id, s, null));
      }
    }
    const applied = await this.deps.db.transaction().execute(async (trx) => {
      const ok = await writeSides(trx, writes, at);
      await insertSamples(
        trx,
        samples.filter((s) => ok.has(sideKey(s.matchId, s.side))),
      );
      for (const p of plans) {
        if (p.checklist && SIDES.some((s) => ok.has(sideKey(p.match.id, s)))) checklists.push({ matchId: p.match.id, fields: p.checklist });
      }
      await writeChecklists(trx, checklists, at);
      return ok;
    });
    for (const p of plans) {
      for (const side of SIDES) {
        const s = p.sides[side];
        if (!s.changed) continue;
        if (applied.has(sideKey(p.match.id, side))) this.countSample(s.check.outcome, report);
        else report.stale++;
      }
    }
  }

  // ---- eventful matches: one transaction each ---------------------------------------------------

  private async commitMatch(plan: MatchPlan, report: SweepReport, logger: Logger): Promise<void> {
    const { db, metrics } = this.deps;
    const matchId = plan.match.id;
    const at = plan.at;
    const sides = plan.sides;

    // Reads for a verdict happen before the transaction: never query `db` while one is open (PGlite has one connection).
    let verdict: MatchVerdict | null = null;
    let bundle: Record<string, unknown> | null = null;
    let overlayBySide: Partial<Record<Side, OverlayWindow>> = {};
    if (SIDES.some((s) => sides[s].effects.some((e) => e.kind === 'grace-expired'))) {
      const overlay = {} as Record<Side, OverlayEvidence>;
      for (const side of SIDES) {
        const episode = sides[side].next.episode;
        if (episode?.state === 'verdict') {
          const window = episodeWindow(episode);
          const seen = await readOverlayWindow(db, matchId, window.from, window.to, EVIDENCE_OVERLAY_LIMIT);
          overlayBySide[side] = seen;
          overlay[side] = { gameplayProgressDuringEpisode: seen.gameplayProgress > 0 };
        } else {
          overlay[side] = { gameplayProgressDuringEpisode: false };
        }
      }
      verdict = decideMatchVerdict({ p1: { episode: sides.p1.next.episode, overlay: overlay.p1 }, p2: { episode: sides.p2.next.episode, overlay: overlay.p2 } });
      if (verdict) {
        // Every episode the verdict settles becomes final, so none can produce a second verdict.
        for (const side of SIDES) {
          const ep = sides[side].next.episode;
          if (ep && verdict.episodeIds.includes(ep.id) && ep.state !== 'verdict') {
            sides[side].next = { ...sides[side].next, episode: { ...ep, state: 'verdict', verdictAt: at } };
          }
        }
        for (const side of SIDES) {
          const ep = sides[side].next.episode;
          if (ep && verdict.episodeIds.includes(ep.id) && !overlayBySide[side]) {
            const w = episodeWindow(ep);
            overlayBySide[side] = await readOverlayWindow(db, matchId, w.from, w.to, EVIDENCE_OVERLAY_LIMIT);
          }
        }
        bundle = await this.evidenceBundle(plan, verdict, overlayBySide);
      }
    }

    const writes: SideWrite[] = [];
    const samples: SampleRow[] = [];
    for (const side of SIDES) {
      const s = sides[side];
      if (!s.changed) continue;
      writes.push({ matchId, side, expectedVersion: s.expectedVersion, grace: s.next });
      samples.push(sampleRow(matchId, s, episodeOfSample(s)));
    }
    const warned: GraceEpisode[] = [];
    let issued: VerdictSummary | null = null;
    let skipped: string | null = null;
    try {
      await db.transaction().execute(async (trx) => {
        const ok = await writeSides(trx, writes, at);
        if (ok.size !== writes.length) throw new StaleStateError('another sweep moved this match on');
        await insertSamples(trx, samples);
        for (const side of SIDES) {
          const s = sides[side];
          const ep = s.next.episode;
          if (ep && (ep.state === 'open' || s.effects.length > 0 || verdict?.episodeIds.includes(ep.id))) {
            await upsertEpisode(trx, ep, { ...ep, graceDeadlineAt: graceDeadline(ep, this.graceOptions.graceMs) }, at);
          }
          for (const effect of s.effects) {
            if (effect.kind !== 'episode-opened') continue;
            await enqueueEvent(trx, {
              topic: Topics.streamHealthWarn,
              matchId,
              now: at,
              dedupeKey: `stream.health.warn:${effect.episode.id}`,
              payload: {
                side,
                episodeId: effect.episode.id,
                reason: verdictReason(effect.episode),
                violations: effect.episode.violations,
                checks: checksOf(s.check),
                openedAt: iso(effect.episode.openedAt),
                graceMs: this.graceOptions.graceMs,
                graceDeadlineAt: iso(graceDeadline(effect.episode, this.graceOptions.graceMs)),
              },
            });
            warned.push(effect.episode);
          }
        }
        if (plan.checklist) await writeChecklists(trx, [{ matchId, fields: plan.checklist }], at);

        if (verdict && bundle) {
          const status = verdict.verdict === 'FORFEIT' ? 'FORFEITED' : 'DISPUTED';
          const moved = await trx
            .updateTable('matches')
            .set({ status, updated_at: new Date(at) })
            .where('id', '=', matchId)
            .where('mode', '=', 'VERIFIED_STREAM')
            .where('status', '=', 'IN_PROGRESS')
            .returning('id')
            .executeTakeFirst();
          if (!moved) {
            skipped = 'MATCH_NOT_IN_PROGRESS';
            return;
          }
          const primary = primaryEpisode(sides, verdict);
          const evidenceId = randomUUID();
          await trx
            .insertInto('evidence')
            .values({ id: evidenceId, match_id: matchId, side: verdict.side, episode_id: primary.id, kind: 'stream-health-verdict', bundle: JSON.stringify(bundle), created_at: new Date(at) })
            .execute();
          const enforced = await trx
            .insertInto('enforcements')
            .values({ id: randomUUID(), match_id: matchId, side: verdict.side, episode_id: primary.id, verdict: verdict.verdict, reason: verdict.reason, evidence_id: evidenceId, created_at: new Date(at) })
            .onConflict((oc) => oc.column('episode_id').doNothing())
            .returning('id')
            .executeTakeFirst();
          if (!enforced) throw new AlreadyEnforcedError(`episode ${primary.id} already has a verdict`);
          await enqueueEvent(trx, {
            topic: verdict.verdict === 'FORFEIT' ? Topics.matchForfeit : Topics.matchDispute,
            matchId,
            now: at,
            dedupeKey: `stream.verdict:${primary.id}`,
            payload: {
              side: verdict.side,
              reason: verdict.reason,
              evidenceId,
              episodeId: primary.id,
              episodeIds: verdict.episodeIds,
              verdict: verdict.verdict,
              rule: verdictRule(verdict),
              gameplayProgressEvents: overlayBySide[verdict.side]?.gameplayProgress ?? 0,
              decidedAt: iso(at),
            },
          });
          issued = { matchId, side: verdict.side, verdict: verdict.verdict, reason: verdict.reason, evidenceId, episodeId: primary.id };
          this.deps.trace?.('verdict-written', { matchId });
        }
      });
    } catch (err) {
      if (err instanceof StaleStateError) {
        report.stale += writes.length;
        logger.info({ reason: err.reason }, 'match was swept concurrently; this sample is dropped');
        return;
      }
      if (err instanceof AlreadyEnforcedError) {
        logger.warn({ reason: err.reason }, err.message);
        return;
      }
      logger.error({ err, reason: 'MATCH_COMMIT_FAILED' }, 'could not persist this match; the next sweep retries');
      return;
    }

    for (const side of SIDES) if (sides[side].changed) this.countSample(sides[side].check.outcome, report);
    for (const episode of warned) {
      report.warnings++;
      logger.warn({ side: episode.side, episodeId: episode.id, violations: episode.violations, reason: verdictReason(episode) }, 'stream violation: grace episode opened');
    }
    for (const side of SIDES) {
      for (const effect of sides[side].effects) {
        if (effect.kind === 'episode-closed') logger.info({ side, episodeId: effect.episode.id, reason: 'STREAM_RECOVERED' }, 'stream recovered: grace episode closed');
      }
    }
    if ((skipped as string | null) !== null) logger.warn({ reason: skipped }, 'grace expired but the match left IN_PROGRESS meanwhile; no verdict');
    const done = issued as VerdictSummary | null;
    if (done) {
      report.verdicts.push(done);
      metrics.streamVerdicts.inc({ verdict: done.verdict, reason: done.reason });
      logger.warn({ side: done.side, verdict: done.verdict, reason: done.reason, evidenceId: done.evidenceId, episodeId: done.episodeId }, 'stream verdict issued');
    }
    if (warned.length > 0 || done) this.deps.onOutboxWrite?.();
    this.deps.trace?.('match-committed', { matchId });
    await this.mirrorGrace(plan, logger);
  }

  /** The evidence a human reviews: episodes, their samples, overlay events, thresholds and the rule applied. */
  private async evidenceBundle(plan: MatchPlan, verdict: MatchVerdict, overlay: Partial<Record<Side, OverlayWindow>>): Promise<Record<string, unknown>> {
    const { db, settings } = this.deps;
    const episodes: GraceEpisode[] = [];
    const samples: Record<string, StoredSample[]> = {};
    for (const side of SIDES) {
      const s = plan.sides[side];
      const ep = s.next.episode;
      if (!ep || !verdict.episodeIds.includes(ep.id)) continue;
      episodes.push(ep);
      const stored = await readSamples(db, plan.match.id, side, ep.anchorAt, plan.at - 1, EVIDENCE_SAMPLE_LIMIT - 1);
      const current = sampleRow(plan.match.id, s, ep.id);
      samples[side] = [...stored, { side, episodeId: ep.id, outcome: current.outcome, observedAt: iso(current.observedAt), sample: current.sample }];
    }
    const primary = primaryEpisode(plan.sides, verdict);
    const rule = verdictRule(verdict);
    const explanation =
      rule === 'BOTH_SIDES_VIOLATING_DISPUTE'
        ? 'both sides were violating when the first grace ran out: one dispute for the match, never a forfeit'
        : rule === 'GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT'
          ? `the side violated for more than ${settings.graceMs} ms of known time while the overlay reported gameplay progress`
          : `the side violated for more than ${settings.graceMs} ms of known time and the overlay showed no gameplay progress (or none was reported)`;
    return {
      version: 1,
      kind: 'stream-health-verdict',
      matchId: plan.match.id,
      side: verdict.side,
      verdict: verdict.verdict,
      reason: verdict.reason,
      rule,
      explanation,
      decidedAt: iso(plan.at),
      episodeId: primary.id,
      episodes: episodes.map((e) => ({ ...e, graceDeadlineAt: iso(graceDeadline(e, settings.graceMs)), window: mapWindow(episodeWindow(e)) })),
      thresholds: {
        minFps: settings.minFps,
        fpsTolerance: DEFAULT_FPS_TOLERANCE,
        minBitrateKbps: settings.minBitrateKbps,
        graceMs: this.graceOptions.graceMs,
        checkEveryMs: this.graceOptions.checkEveryMs,
        recoveryMs: this.graceOptions.recoveryMs,
        maxGapMs: this.graceOptions.maxGapMs,
        titleRule: `#${plan.match.id} or [${plan.match.id}]`,
      },
      samples,
      overlay: Object.fromEntries(
        Object.entries(overlay).map(([side, w]) => [side, { gameplayProgressEvents: w.gameplayProgress, eventsInWindow: w.total, events: w.events }]),
      ),
      overlayRequired: plan.match.overlayRequired,
    };
  }

  /** `str:grace:<matchId>:<side>` for operators (`redis-cli keys "str:grace:*"`): set while an episode is open. */
  private async mirrorGrace(plan: MatchPlan, logger: Logger): Promise<void> {
    for (const side of SIDES) {
      const s = plan.sides[side];
      const ep = s.next.episode;
      try {
        if (ep?.state === 'open') {
          const value = { episodeId: ep.id, openedAt: iso(ep.openedAt), anchorAt: iso(ep.anchorAt), graceDeadlineAt: iso(graceDeadline(ep, this.graceOptions.graceMs)), elapsedMs: ep.elapsedMs, pausedMs: ep.pausedMs, violations: ep.violations };
          await this.deps.kv.set(graceKey(plan.match.id, side), JSON.stringify(value), { px: this.graceOptions.graceMs + 10 * this.graceOptions.checkEveryMs });
        } else if (s.prev.episode?.state === 'open' || s.reset) {
          await this.deps.kv.del(graceKey(plan.match.id, side));
        }
      } catch (err) {
        logger.debug({ err, reason: 'KV_UNAVAILABLE' }, 'grace mirror not updated (PostgreSQL stays authoritative)');
      }
    }
  }

  // ---- leases ---------------------------------------------------------------------------------

  /**
   * Takes `str:lease:<matchId>` for each match, 1000 at a time. Without the key-value store the sweep goes on
   * for all matches: the version check and the database constraints still make every effect happen once.
   */
  private async acquireLeases(ids: readonly string[], owner: string, logger: Logger): Promise<Map<string, boolean>> {
    const held = new Map<string, boolean>();
    let kvDown = false;
    for (let i = 0; i < ids.length; i += 1000) {
      const chunk = ids.slice(i, i + 1000);
      await Promise.all(
        chunk.map(async (id) => {
          if (kvDown) return void held.set(id, false);
          try {
            if (await this.leases.tryAcquire(id, owner, this.leaseMs)) held.set(id, true);
          } catch {
            kvDown = true;
            held.set(id, false);
          }
        }),
      );
    }
    if (kvDown) {
      logger.warn({ reason: 'KV_UNAVAILABLE' }, 'match leases unavailable; sweeping on the database guarantees alone');
      for (const id of ids) if (!held.has(id)) held.set(id, false);
    }
    return held;
  }

  private async releaseLeases(ids: readonly string[], owner: string, held: Map<string, boolean>, logger: Logger): Promise<void> {
    const taken = ids.filter((id) => held.get(id) === true);
    for (let i = 0; i < taken.length; i += 1000) {
      await Promise.all(
        taken.slice(i, i + 1000).map((id) =>
          this.leases.release(id, owner).catch((err: unknown) => logger.debug({ err, matchId: id, reason: 'LEASE_RELEASE_FAILED' }, 'lease expires on its own')),
        ),
      );
    }
  }

  private countSample(outcome: SampleOutcome, report: SweepReport): void {
    report.samples[outcome]++;
    this.deps.metrics.streamSamples.inc({ outcome });
  }

  private track(work: Promise<unknown>): void {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }
}

// ─── helpers (pure) ──────────────────────────────────────────────────────────────────────────────────────────

/**
 * The checklist's stream items from this sweep's checks, or null when nothing changes. An item whose check
 * was unknown keeps its stored value: the checklist shows what we last knew, never a guess.
 */
function checklistChange(match: ActiveMatch, sides: Record<Side, SidePlan>): StreamChecklist | null {
  const wanted = checklistFromChecks(sides.p1.check, sides.p2.check);
  const stored = match.checklist;
  const change: StreamChecklist = {};
  for (const [k, v] of Object.entries(wanted) as [keyof StreamChecklist, boolean | undefined][]) {
    if (v === undefined) continue;
    if (!stored || stored[k] !== v) change[k] = v;
  }
  return Object.keys(change).length > 0 ? change : null;
}

/** The episode a sample belongs to: the open one, or the one it just closed or settled. */
function episodeOfSample(s: SidePlan): string | null {
  const ep = s.next.episode;
  if (!ep) return null;
  if (ep.state === 'open' || s.effects.length > 0 || ep.verdictAt === s.next.lastSampleAt) return ep.id;
  return null;
}

function primaryEpisode(sides: Record<Side, SidePlan>, verdict: MatchVerdict): GraceEpisode {
  const ep = sides[verdict.side].next.episode;
  if (!ep || !verdict.episodeIds.includes(ep.id)) throw new Error(`verdict for ${verdict.side} without its episode`);
  return ep;
}

function checksOf(check: SampleCheck) {
  return { live: check.live, title: check.title, fps: check.fps, bitrate: check.bitrate };
}

function sampleRow(matchId: string, s: SidePlan, episodeId: string | null): SampleRow {
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

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function mapWindow(w: { from: number; to: number }) {
  return { from: iso(w.from), to: iso(w.to) };
}
