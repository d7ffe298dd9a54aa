import type { TopicHandler } from '../infra/bus/consumer-runtime.js';
import { Topics } from '../events/topics.js';
import type { TickContext } from '../scheduling/scheduled-tasks.service.js';
import { backupSweepDue, lastSweepCompletedAt } from './backup-sweep.js';
import { streamHealthCheckSchema, type StreamHealthCheck } from '../events/inbound.js';
import {
  emptyReport,
  sweepContext,
  type StreamHealthWorkerDeps,
  type SweepContext,
  type SweepOptions,
  type SweepReport,
} from './sweep-context.js';
import { MatchLeases } from './sweep-leases.js';
import { runSweep } from './sweep.js';

export { LAST_SWEEP_KEY } from './backup-sweep.js';
export { graceKey } from './grace-mirror.js';
export { LEASE_PREFIX } from './sweep-leases.js';
export type {
  StreamHealthSettings,
  StreamHealthWorkerDeps,
  SweepOptions,
  SweepReport,
  SweepTracePoint,
  VerdictSummary,
} from './sweep-context.js';

/**
 * The seed's Stream Health Worker: every sweep checks both players' streams of each active VERIFIED_STREAM
 * match and applies the pure policy (policy.ts); this class only schedules, joins and stops sweeps.
 *
 * - Sweeps in slices of STREAM_SWEEP_SLICE matches, one batched telemetry collection per slice (a listing provider
 *   lists once per sweep) (sweep.ts).
 * - Grace state per side lives in PostgreSQL (`stream_sides`, optimistic version), mirrored for operators at
 *   `str:grace:<matchId>:<side>` in the key-value store (grace-mirror.ts); the mirror is never read for a decision.
 * - Matches without an open or changing episode are written in batches; a match whose episode opens, runs,
 *   closes or expires is written in its own transaction together with its events (verdict-commit.ts), so state
 *   and effects commit or vanish together, and a crash at any point leaves the next sweep to redo the work.
 * - Exactly once per episode: `str:lease:<matchId>` keeps two sweeps off one match, the version check drops
 *   a sample written concurrently anyway, the match status guard serializes verdicts, `enforcements.episode_id`
 *   is unique and every event has a dedupe key (verdict.repository.ts).
 */
export class StreamHealthWorker {
  private readonly ctx: SweepContext;
  private readonly leases: MatchLeases;
  private readonly abort = new AbortController();
  /** Sweeps in flight in this process, by scope: a second call for the same scope joins the running one. */
  private readonly inflight = new Map<string, Promise<SweepReport>>();
  private readonly background = new Set<Promise<unknown>>();
  private stopped = false;

  constructor(deps: StreamHealthWorkerDeps) {
    this.ctx = sweepContext(deps);
    this.leases = new MatchLeases(deps.kv, this.ctx.leaseMs);
  }

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
            this.ctx.logger.error(
              { err, eventId: event.eventId, reason: 'CHECK_SWEEP_FAILED' },
              'stream health check sweep failed; the next scheduled sweep covers it',
            ),
          ),
        );
      },
    };
  }

  /** The 30 s sweep (ScheduledTasksService runs it once per tick across the fleet, never stacked). */
  async primaryTick(tick: TickContext): Promise<void> {
    await this.sweep({ signal: tick.signal });
  }

  /** The 1-minute backup (backup-sweep.ts): sweeps only when the primary is stale. Returns whether it swept. */
  async backupTick(tick: TickContext): Promise<boolean> {
    const { clock, kv, logger } = this.ctx;
    const now = clock.now();
    const last = await lastSweepCompletedAt(kv, logger);
    if (!backupSweepDue(last, now, this.ctx.backupStaleAfterMs)) {
      logger.debug({ lastCompletedAgoMs: now - (last as number) }, 'primary sweep is current; backup not needed');
      return false;
    }
    const lastCompletedAt = last !== null && Number.isFinite(last) ? new Date(last).toISOString() : null;
    logger.warn({ reason: 'PRIMARY_SWEEP_STALE', lastCompletedAt }, 'no recent stream sweep; the backup sweep runs');
    await this.sweep({ signal: tick.signal });
    return true;
  }

  /** Checks every active match (or one). Concurrent calls for the same scope in this process share one run. */
  sweep(options: SweepOptions = {}): Promise<SweepReport> {
    const scope = options.matchId ?? '*';
    const running = this.inflight.get(scope);
    if (running) {
      this.ctx.logger.debug({ scope }, 'a sweep of this scope is already running here; joining it');
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
    if (this.stopped) return { ...emptyReport(options.matchId ?? 'all'), aborted: true };
    const signal = options.signal ? AbortSignal.any([this.abort.signal, options.signal]) : this.abort.signal;
    return runSweep(this.ctx, this.leases, options, signal);
  }

  private track(work: Promise<unknown>): void {
    this.background.add(work);
    void work.finally(() => this.background.delete(work));
  }
}
