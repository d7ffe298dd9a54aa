import { sql, type Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database, Provision } from '../infra/db/schema.js';
import { enqueueEvent, type Db } from '../infra/bus/outbox.js';
import type { EventContext, TopicHandler } from '../infra/bus/consumer-runtime.js';
import { Topics } from '../events/topics.js';
import type { Metrics } from '../observability/metrics.js';
import { cancelAndRefund, getChecklist, updateChecklist } from '../matches/match.repository.js';
import { serverReleasedSchema, serverReservedSchema, type ServerReleased, type ServerReserved } from '../events/inbound.js';
import type { PanelPort } from './panel.port.js';
import { ACTIVE_STATES, backoffDelay, decideAfterPoll, decideOnSignal, isPastDeadline, type Decision, type FailureReason, type ReadinessSignals } from './policy.js';

export interface ProvisionSettings {
  readyDeadlineMs: number;
  pollEveryMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  /** How long a claimed provision stays with this instance without being renewed. */
  leaseMs: number;
  /** Provisions polled concurrently by one instance (each still waits for a fleet-wide panel slot). */
  concurrency: number;
  cleanupMaxAttempts: number;
}

export const DEFAULT_PROVISION_SETTINGS: Omit<ProvisionSettings, 'readyDeadlineMs' | 'pollEveryMs'> = {
  backoffBaseMs: 500,
  backoffCapMs: 30_000,
  leaseMs: 20_000,
  concurrency: 8,
  cleanupMaxAttempts: 12,
};

export interface ServerProvisionWorkerDeps {
  db: Kysely<Database>;
  panel: PanelPort;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  instanceId: string;
  settings: ProvisionSettings;
  /** Called after a transaction that wrote outbox rows commits (wakes the relay). */
  onOutboxWrite?: () => void;
  random?: () => number;
}

export type ReadinessSignal = { adminHooksOk: true } | { overlayConnected: boolean; at: number };

/**
 * The seed's Server Provision Worker: turns `server.reserved` into `server.ready`, or into `server.failed`
 * plus a cancelled, refunded match; cleans the panel up after failures and on `server.released`.
 * Decisions come from policy.ts; this class fetches, persists and emits.
 */
export class ServerProvisionWorker {
  private running = false;
  private loop: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private readonly abort = new AbortController();
  private readonly random: () => number;

  constructor(private readonly deps: ServerProvisionWorkerDeps) {
    this.random = deps.random ?? Math.random;
  }

  // ---- input events -------------------------------------------------------------------------

  reservedHandler(): TopicHandler<ServerReserved> {
    return {
      topic: Topics.serverReserved,
      schema: serverReservedSchema,
      idempotencyKey: (eventId) => `wk:idemp:srv:reserved:${eventId}`,
      handle: (event, ctx) => this.onReserved(event, ctx),
      afterCommit: () => this.nudge(),
    };
  }

  releasedHandler(): TopicHandler<ServerReleased> {
    return {
      topic: Topics.serverReleased,
      schema: serverReleasedSchema,
      idempotencyKey: (eventId) => `wk:idemp:srv:released:${eventId}`,
      handle: (event, ctx) => this.onReleased(event, ctx),
      afterCommit: () => this.nudge(),
    };
  }

  private async onReserved(event: ServerReserved, { trx, now, logger }: EventContext): Promise<void> {
    const existing = await trx.selectFrom('provisions').selectAll().where('match_id', '=', event.matchId).forUpdate().executeTakeFirst();
    if (existing) {
      if (existing.state === 'RELEASED' && existing.reserved_event_id === null) {
        // server.released overtook server.reserved: remember the reservation, never provision it.
        await trx
          .updateTable('provisions')
          .set({ reserved_event_id: event.eventId, updated_at: new Date(now) })
          .where('match_id', '=', event.matchId)
          .execute();
        logger.warn({ reason: 'RELEASED_BEFORE_RESERVED', panelServerId: event.panelServerId }, 'reservation arrived after its release; not provisioning');
        return;
      }
      logger.warn(
        { reason: 'ALREADY_RESERVED', state: existing.state, previousEventId: existing.reserved_event_id, panelServerId: event.panelServerId },
        'match already has a reservation; ignoring this one',
      );
      return;
    }
    const at = new Date(now);
    await trx
      .insertInto('provisions')
      .values({
        match_id: event.matchId,
        panel_server_id: event.panelServerId,
        state: 'RESERVED',
        reserved_event_id: event.eventId,
        reserved_at: at,
        deadline_at: new Date(now + this.deps.settings.readyDeadlineMs),
        next_poll_at: at,
        poll_failures: 0,
        last_panel_status: null,
        ready_at: null,
        failed_at: null,
        failure_reason: null,
        released_event_id: null,
        released_at: null,
        cleanup_state: 'NONE',
        cleanup_attempts: 0,
        cleanup_next_at: null,
        lease_owner: null,
        lease_until: null,
        updated_at: at,
      })
      .execute();
    await updateChecklist(trx, event.matchId, { serverInstalled: false }, now);
    logger.info({ panelServerId: event.panelServerId, deadlineAt: new Date(now + this.deps.settings.readyDeadlineMs).toISOString() }, 'server reserved; provisioning');
  }

  private async onReleased(event: ServerReleased, { trx, now, logger }: EventContext): Promise<void> {
    const at = new Date(now);
    const existing = await trx.selectFrom('provisions').selectAll().where('match_id', '=', event.matchId).forUpdate().executeTakeFirst();
    if (!existing) {
      await trx
        .insertInto('provisions')
        .values({
          match_id: event.matchId,
          panel_server_id: event.panelServerId,
          state: 'RELEASED',
          reserved_event_id: null,
          reserved_at: null,
          deadline_at: null,
          next_poll_at: null,
          poll_failures: 0,
          last_panel_status: null,
          ready_at: null,
          failed_at: null,
          failure_reason: null,
          released_event_id: event.eventId,
          released_at: at,
          cleanup_state: 'PENDING',
          cleanup_attempts: 0,
          cleanup_next_at: at,
          lease_owner: null,
          lease_until: null,
          updated_at: at,
        })
        .execute();
      logger.warn({ reason: 'RELEASED_BEFORE_RESERVED', panelServerId: event.panelServerId }, 'release arrived before its reservation; remembered');
      this.deps.metrics.provisionOutcomes.inc({ outcome: 'released', reason: 'before_reserved' });
      return;
    }
    if (existing.state === 'RELEASED') {
      logger.info('server already released');
      return;
    }
    await trx
      .updateTable('provisions')
      .set({
        state: 'RELEASED',
        released_event_id: event.eventId,
        released_at: at,
        next_poll_at: null,
        lease_owner: null,
        lease_until: null,
        cleanup_state: existing.cleanup_state === 'DONE' ? 'DONE' : 'PENDING',
        cleanup_next_at: existing.cleanup_state === 'DONE' ? null : at,
        updated_at: at,
      })
      .where('match_id', '=', event.matchId)
      .execute();
    this.deps.metrics.provisionOutcomes.inc({ outcome: 'released', reason: existing.state.toLowerCase() });
    logger.info({ previousState: existing.state, panelServerId: existing.panel_server_id }, 'server released; cleaning up');
  }

  // ---- readiness signals (hook calls) ---------------------------------------------------------

  /** Records a readiness signal on the checklist and re-evaluates readiness at once. */
  async recordReadinessSignal(matchId: string, signal: ReadinessSignal, db: Db = this.deps.db): Promise<'ready' | 'waiting' | 'not_applicable' | 'timed_out'> {
    const now = this.deps.clock.now();
    const run = async (trx: Db) => {
      const fields =
        'adminHooksOk' in signal
          ? { adminHooksOk: true }
          : { overlayConnected: signal.overlayConnected, overlayLastSeenAt: signal.overlayConnected ? signal.at : null };
      const provision = await trx.selectFrom('provisions').selectAll().where('match_id', '=', matchId).forUpdate().executeTakeFirst();
      const checklist = await updateChecklist(trx, matchId, fields, now);
      // Past provisioning (the usual case for heartbeats) there is nothing to re-evaluate.
      if (!provision || !ACTIVE_STATES.includes(provision.state)) return 'not_applicable' as const;
      // A signal after the deadline is too late: the reservation times out, it never becomes ready.
      if (provision.deadline_at && isPastDeadline(now, provision.deadline_at.getTime())) {
        await this.fail(trx, provision, 'TIMEOUT', 'readiness signal arrived after the deadline', now, this.deps.logger.child({ matchId }));
        return 'timed_out' as const;
      }
      const signals = await this.signalsOf(trx, matchId, checklist);
      const verdict = decideOnSignal(provision.state, checklist.server_installed && provision.state === 'WAITING_SIGNALS', signals);
      if (verdict === 'ready') await this.markReady(trx, provision, now, this.deps.logger.child({ matchId }));
      return verdict;
    };
    const result = db === this.deps.db ? await this.deps.db.transaction().execute(run) : await run(db);
    if (result === 'ready' || result === 'timed_out') this.deps.onOutboxWrite?.();
    return result;
  }

  private async signalsOf(db: Db, matchId: string, checklist?: { admin_hooks_ok: boolean; overlay_connected: boolean }): Promise<ReadinessSignals> {
    const row = checklist ?? (await getChecklist(db, matchId));
    const match = await db.selectFrom('matches').select(['overlay_required']).where('id', '=', matchId).executeTakeFirst();
    return {
      adminHooksOk: row?.admin_hooks_ok ?? false,
      overlayConnected: row?.overlay_connected ?? false,
      // An unknown match has no overlay requirement on record; the platform upserts matches before reserving.
      overlayRequired: match?.overlay_required ?? false,
    };
  }

  // ---- polling --------------------------------------------------------------------------------

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.run();
  }

  /**
   * Graceful stop: waits for the current pass, then hands this instance's leases back so another instance takes
   * its provisions over at once. A crashed instance never gets here; its leases lapse after `leaseMs`.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.abort.abort();
    this.wake?.();
    await this.loop;
    try {
      const released = await this.releaseLeases();
      if (released > 0) this.deps.logger.info({ released }, 'provisioning leases released');
    } catch (error) {
      this.deps.logger.warn({ err: error, reason: 'LEASE_RELEASE_FAILED' }, 'could not release provisioning leases; they lapse by themselves');
    }
  }

  /** Clears every lease this instance holds; returns how many. Only call it when this instance no longer polls. */
  private async releaseLeases(): Promise<number> {
    const { db, clock, instanceId } = this.deps;
    const now = new Date(clock.now());
    // A claim parks next_poll_at / cleanup_next_at at lease_until until its poll or cleanup writes the real
    // value; one left there (the pass failed) is due now, not after the lease would have lapsed.
    const result = await db
      .updateTable('provisions')
      .set({
        next_poll_at: sql<Date | null>`CASE WHEN next_poll_at = lease_until THEN ${now} ELSE next_poll_at END`,
        cleanup_next_at: sql<Date | null>`CASE WHEN cleanup_state = 'PENDING' AND cleanup_next_at = lease_until THEN ${now} ELSE cleanup_next_at END`,
        lease_owner: null,
        lease_until: null,
      })
      .where('lease_owner', '=', instanceId)
      .executeTakeFirst();
    return Number(result.numUpdatedRows);
  }

  nudge(): void {
    this.wake?.();
  }

  private async run(): Promise<void> {
    const { clock, logger } = this.deps;
    while (this.running) {
      let worked = 0;
      try {
        worked += await this.pollDue();
        worked += await this.cleanupDue();
      } catch (error) {
        logger.error({ err: error, reason: 'PROVISION_LOOP_FAILED' }, 'provisioning pass failed');
      }
      if (worked > 0 || !this.running) continue;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        void clock.sleep(500, this.abort.signal).then(resolve);
      });
      this.wake = undefined;
    }
  }

  /** Claims provisions whose poll is due (and not leased by a live instance) and polls them. */
  async pollDue(): Promise<number> {
    const { db, clock, instanceId, settings } = this.deps;
    const now = clock.now();
    const until = new Date(now + settings.leaseMs);
    const claimed = await sql<Provision>`
      UPDATE provisions SET lease_owner = ${instanceId}, lease_until = ${until}, next_poll_at = ${until}
      WHERE match_id IN (
        SELECT match_id FROM provisions
        WHERE ((state IN ('RESERVED', 'INSTALLING') AND next_poll_at <= ${new Date(now)})
               OR (state = 'WAITING_SIGNALS' AND deadline_at <= ${new Date(now)}))
          AND (lease_owner IS NULL OR lease_owner = ${instanceId} OR lease_until < ${new Date(now)})
        ORDER BY next_poll_at
        LIMIT ${settings.concurrency}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(db);
    await Promise.all(claimed.rows.map((p) => this.pollOne(p)));
    return claimed.rows.length;
  }

  private async pollOne(claimed: Provision): Promise<void> {
    const { db, clock, panel, logger: root } = this.deps;
    const logger = root.child({ matchId: claimed.match_id, panelServerId: claimed.panel_server_id });
    const deadlineAt = claimed.deadline_at!.getTime();
    const observation = clock.now() >= deadlineAt ? null : await panel.observe(claimed.panel_server_id, deadlineAt);
    const wroteOutbox = await db.transaction().execute(async (trx) => {
      const provision = await trx.selectFrom('provisions').selectAll().where('match_id', '=', claimed.match_id).forUpdate().executeTakeFirst();
      if (!provision || !ACTIVE_STATES.includes(provision.state) || provision.lease_owner !== this.deps.instanceId) {
        return false;
      }
      const now = clock.now();
      const decision: Decision =
        observation === null
          ? { kind: 'fail', reason: 'TIMEOUT', detail: 'readiness deadline passed' }
          : decideAfterPoll(
              { state: provision.state, deadlineAt, pollFailures: provision.poll_failures },
              observation,
              await this.signalsOf(trx, provision.match_id),
              now,
              this.deps.settings,
              this.random(),
            );
      const panelStatus = observation?.kind === 'install' ? String(observation.status ?? 'null') : observation?.kind ?? null;
      if (observation?.kind === 'install' && observation.state === 'indeterminate') {
        logger.warn({ status: observation.status, reason: 'PANEL_STATUS_INDETERMINATE' }, 'panel reports a status that hides the install outcome');
      }
      if (observation?.kind === 'error') logger.warn({ reason: observation.reason, retryable: observation.retryable }, 'panel poll failed');
      return this.apply(trx, provision, decision, now, logger, panelStatus);
    });
    if (wroteOutbox) this.deps.onOutboxWrite?.();
  }

  /** Persists a policy decision; returns true when it wrote outbox rows. */
  private async apply(trx: Db, provision: Provision, decision: Decision, now: number, logger: Logger, panelStatus: string | null): Promise<boolean> {
    switch (decision.kind) {
      case 'ready':
        await updateChecklist(trx, provision.match_id, { serverInstalled: true }, now);
        return this.markReady(trx, provision, now, logger);
      case 'fail':
        return this.fail(trx, provision, decision.reason, decision.detail, now, logger);
      case 'wait':
        if (decision.serverInstalled) await updateChecklist(trx, provision.match_id, { serverInstalled: true }, now);
        await trx
          .updateTable('provisions')
          .set({
            state: decision.state,
            next_poll_at: decision.nextPollAt === null ? null : new Date(decision.nextPollAt),
            poll_failures: decision.pollFailures,
            last_panel_status: panelStatus,
            // Keep the lease while we poll it next; it lapses by itself if this instance dies.
            lease_until: new Date(now + this.deps.settings.leaseMs),
            updated_at: new Date(now),
          })
          .where('match_id', '=', provision.match_id)
          .execute();
        if (decision.state !== provision.state) logger.info({ from: provision.state, to: decision.state }, 'provisioning state changed');
        return false;
    }
  }

  private async markReady(trx: Db, provision: Provision, now: number, logger: Logger): Promise<boolean> {
    const updated = await trx
      .updateTable('provisions')
      .set({ state: 'READY', ready_at: new Date(now), next_poll_at: null, lease_owner: null, lease_until: null, updated_at: new Date(now) })
      .where('match_id', '=', provision.match_id)
      .where('state', 'in', ACTIVE_STATES)
      .returning('match_id')
      .executeTakeFirst();
    if (!updated) return false;
    const checklist = await getChecklist(trx, provision.match_id);
    const emitted = await enqueueEvent(trx, {
      topic: Topics.serverReady,
      matchId: provision.match_id,
      now,
      dedupeKey: `server.ready:${provision.match_id}`,
      payload: {
        panelServerId: provision.panel_server_id,
        reservedEventId: provision.reserved_event_id,
        readyAt: new Date(now).toISOString(),
        checklist: {
          serverInstalled: true,
          adminHooksOk: checklist?.admin_hooks_ok ?? false,
          overlayConnected: checklist?.overlay_connected ?? false,
        },
      },
    });
    const seconds = provision.reserved_at ? (now - provision.reserved_at.getTime()) / 1000 : 0;
    this.deps.metrics.provisionOutcomes.inc({ outcome: 'ready', reason: '' });
    this.deps.metrics.provisionReadySeconds.observe(seconds);
    logger.info({ eventId: emitted?.eventId, readyAfterSeconds: seconds }, 'server ready');
    return true;
  }

  /** Fails the provision: server.failed, match cancelled, every player refunded once, panel cleanup queued. */
  private async fail(trx: Db, provision: Provision, reason: FailureReason, detail: string, now: number, logger: Logger): Promise<boolean> {
    const at = new Date(now);
    const updated = await trx
      .updateTable('provisions')
      .set({
        state: 'FAILED',
        failure_reason: reason,
        failed_at: at,
        next_poll_at: null,
        lease_owner: null,
        lease_until: null,
        cleanup_state: reason === 'PANEL_NOT_FOUND' ? 'DONE' : 'PENDING',
        cleanup_next_at: reason === 'PANEL_NOT_FOUND' ? null : at,
        updated_at: at,
      })
      .where('match_id', '=', provision.match_id)
      .where('state', 'in', ACTIVE_STATES)
      .returning('match_id')
      .executeTakeFirst();
    if (!updated) return false;
    const failed = await enqueueEvent(trx, {
      topic: Topics.serverFailed,
      matchId: provision.match_id,
      now,
      dedupeKey: `server.failed:${provision.match_id}`,
      payload: { panelServerId: provision.panel_server_id, reason, detail, reservedEventId: provision.reserved_event_id },
    });
    const refunds = await cancelAndRefund(trx, provision.match_id, `server.failed:${reason}`, failed?.eventId ?? provision.match_id, now);
    await enqueueEvent(trx, {
      topic: Topics.matchCancelled,
      matchId: provision.match_id,
      now,
      dedupeKey: `match.cancelled:${provision.match_id}`,
      payload: { reason: 'SERVER_FAILED', failureReason: reason, serverFailedEventId: failed?.eventId ?? null, refunds },
    });
    this.deps.metrics.provisionOutcomes.inc({ outcome: 'failed', reason });
    for (const refund of refunds) this.deps.metrics.refunds.inc({ currency: refund.currency });
    logger.warn({ reason, detail, refunds: refunds.length, eventId: failed?.eventId }, 'provisioning failed; match cancelled and refunded');
    return true;
  }

  // ---- deadline monitor (ScheduledTasksService, every 10 s, once across the fleet) --------------

  /** Fails every active provision past its deadline. Returns how many it failed. */
  async sweepDeadlines(): Promise<number> {
    const { db, clock, logger } = this.deps;
    const now = clock.now();
    const overdue = await db
      .selectFrom('provisions')
      .select('match_id')
      .where('state', 'in', ACTIVE_STATES)
      .where('deadline_at', '<=', new Date(now))
      .execute();
    let failed = 0;
    for (const { match_id } of overdue) {
      const wrote = await db.transaction().execute(async (trx) => {
        const provision = await trx.selectFrom('provisions').selectAll().where('match_id', '=', match_id).forUpdate().executeTakeFirst();
        if (!provision || !ACTIVE_STATES.includes(provision.state)) return false;
        return this.fail(trx, provision, 'TIMEOUT', `not ready within ${this.deps.settings.readyDeadlineMs} ms (last panel status ${provision.last_panel_status ?? 'none'})`, now, logger.child({ matchId: match_id }));
      });
      if (wrote) failed++;
    }
    if (failed > 0) this.deps.onOutboxWrite?.();
    const active = await db
      .selectFrom('provisions')
      .select(sql<number>`count(*)::int`.as('n'))
      .where('state', 'in', ACTIVE_STATES)
      .executeTakeFirst();
    this.deps.metrics.provisionsActive.set(Number(active?.n ?? 0));
    return failed;
  }

  // ---- panel cleanup --------------------------------------------------------------------------

  async cleanupDue(): Promise<number> {
    const { db, clock, instanceId, settings } = this.deps;
    const now = clock.now();
    const until = new Date(now + settings.leaseMs);
    const claimed = await sql<Provision>`
      UPDATE provisions SET lease_owner = ${instanceId}, lease_until = ${until}, cleanup_next_at = ${until}
      WHERE match_id IN (
        SELECT match_id FROM provisions
        WHERE cleanup_state = 'PENDING' AND cleanup_next_at <= ${new Date(now)}
          AND (lease_owner IS NULL OR lease_owner = ${instanceId} OR lease_until < ${new Date(now)})
        ORDER BY cleanup_next_at
        LIMIT ${settings.concurrency}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(db);
    await Promise.all(claimed.rows.map((p) => this.cleanupOne(p)));
    return claimed.rows.length;
  }

  private async cleanupOne(provision: Provision): Promise<void> {
    const { db, clock, panel, settings } = this.deps;
    const logger = this.deps.logger.child({ matchId: provision.match_id, panelServerId: provision.panel_server_id });
    const budget = clock.now() + 60_000;
    let result = await panel.remove(provision.panel_server_id, budget);
    if (result.kind === 'error' && result.retryable) {
      // The delete may have happened behind a timeout or a 5xx: ask the panel before trying again.
      const seen = await panel.observe(provision.panel_server_id, budget);
      if (seen.kind === 'not_found') result = { kind: 'already_gone' };
    }
    const now = clock.now();
    const attempts = provision.cleanup_attempts + 1;
    let state: 'DONE' | 'PENDING' | 'GAVE_UP';
    if (result.kind !== 'error') state = 'DONE';
    else if (!result.retryable || attempts >= settings.cleanupMaxAttempts) state = 'GAVE_UP';
    else state = 'PENDING';
    const nextAt = state === 'PENDING' ? new Date(now + Math.max(1000, backoffDelay(attempts, 2000, 300_000, this.random()))) : null;
    await db
      .updateTable('provisions')
      .set({ cleanup_state: state, cleanup_attempts: attempts, cleanup_next_at: nextAt, lease_owner: null, lease_until: null, updated_at: new Date(now) })
      .where('match_id', '=', provision.match_id)
      .where('cleanup_state', '=', 'PENDING')
      .execute();
    if (state === 'DONE') logger.info({ result: result.kind }, 'panel server removed');
    else if (state === 'GAVE_UP') logger.error({ reason: 'CLEANUP_GAVE_UP', attempts, cause: result.kind === 'error' ? result.reason : undefined }, 'panel cleanup gave up; remove the server by hand');
    else logger.warn({ reason: result.kind === 'error' ? result.reason : undefined, attempts, nextAt: nextAt?.toISOString() }, 'panel cleanup failed; will retry');
  }
}
