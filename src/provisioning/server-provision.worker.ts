import type { BatchContext, BatchItem, EventContext, TopicHandler } from '../infra/bus/consumer-runtime.js';
import type { Db } from '../infra/db/db.js';
import { PollLoop } from '../infra/poll-loop.js';
import { Topics } from '../events/topics.js';
import { updateChecklist, updateChecklists } from '../matches/match.repository.js';
import { PanelCleanup } from './cleanup.js';
import { DeadlineMonitor } from './deadline-monitor.js';
import { serverReleasedSchema, serverReservedSchema, type ServerReleased, type ServerReserved } from '../events/inbound.js';
import { MatchKeyLifecycle } from './match-keys.js';
import { ProvisionOutcomes } from './outcomes.js';
import { ProvisionPoller } from './poller.js';
import {
  insertReserved,
  insertReservedMany,
  lockProvision,
  lockProvisions,
  releaseLeases,
  rememberLateReservation,
  type Reservation,
} from './provisioning.repository.js';
import type { Provision } from '../infra/db/schema.js';
import { ReadinessRecorder } from './readiness.js';
import type { ReadinessSignal, ReadinessSignals, ReadinessVerdict } from './readiness.port.js';
import type { ProvisioningDeps, ServerProvisionWorkerDeps } from './settings.js';

export { DEFAULT_PROVISION_SETTINGS, type ProvisionSettings, type ServerProvisionWorkerDeps } from './settings.js';
export type { ReadinessSignal } from './readiness.port.js';

/**
 * The seed's Server Provision Worker: turns `server.reserved` into `server.ready`, or into `server.failed`
 * plus a cancelled, refunded match; cleans the panel up after failures and on `server.released`.
 * Orchestration only: the poll loop and the input handlers; decisions come from policy.ts, SQL from the repository.
 */
export class ServerProvisionWorker implements ReadinessSignals {
  private readonly loop: PollLoop;
  /** Admin key deliveries and key revocations: their own loop, so a delivery waiting for panel slots never holds up polls. */
  private readonly keysLoop: PollLoop | undefined;
  private readonly deps: ProvisioningDeps;
  private readonly poller: ProvisionPoller;
  private readonly cleanup: PanelCleanup;
  private readonly readiness: ReadinessRecorder;
  private readonly monitor: DeadlineMonitor;
  private readonly keys: MatchKeyLifecycle | undefined;

  constructor(deps: ServerProvisionWorkerDeps) {
    this.deps = { ...deps, random: deps.random ?? Math.random };
    if (deps.keys && !deps.adminKey) throw new Error('ServerProvisionWorker: keys need adminKey settings');
    this.keys = deps.keys && deps.adminKey ? new MatchKeyLifecycle(this.deps, deps.keys, deps.adminKey) : undefined;
    const outcomes = new ProvisionOutcomes(this.deps, this.keys);
    this.poller = new ProvisionPoller(this.deps, outcomes);
    this.cleanup = new PanelCleanup(this.deps, this.keys);
    this.readiness = new ReadinessRecorder(this.deps, outcomes);
    this.monitor = new DeadlineMonitor(this.deps, outcomes);
    this.loop = new PollLoop({
      clock: deps.clock,
      idleMs: 500,
      pass: async () => (await this.pollDue()) + (await this.cleanupDue()),
      onError: (error) => deps.logger.error({ err: error, reason: 'PROVISION_LOOP_FAILED' }, 'provisioning pass failed'),
    });
    this.keysLoop = this.keys
      ? new PollLoop({
          clock: deps.clock,
          idleMs: 500,
          pass: () => this.keysDue(),
          onError: (error) => deps.logger.error({ err: error, reason: 'MATCH_KEYS_LOOP_FAILED' }, 'match keys pass failed'),
        })
      : undefined;
  }

  // ---- input events -------------------------------------------------------------------------

  reservedHandler(): TopicHandler<ServerReserved> {
    return {
      topic: Topics.serverReserved,
      schema: serverReservedSchema,
      idempotencyKey: (eventId) => `wk:idemp:srv:reserved:${eventId}`,
      handle: (event, ctx) => this.onReserved(event, ctx),
      handleMany: (items, ctx) => this.onReservedMany(items, ctx),
      afterCommit: () => this.nudge(),
    };
  }

  releasedHandler(): TopicHandler<ServerReleased> {
    return {
      topic: Topics.serverReleased,
      schema: serverReleasedSchema,
      idempotencyKey: (eventId) => `wk:idemp:srv:released:${eventId}`,
      handle: (event, ctx) => this.cleanup.onReleased(event, ctx),
      afterCommit: () => this.nudge(),
    };
  }

  private async onReserved(event: ServerReserved, { trx, now, logger }: EventContext): Promise<void> {
    const existing = await lockProvision(trx, event.matchId);
    if (existing?.state === 'RELEASED' && existing.reserved_event_id === null) {
      // server.released overtook server.reserved: remember the reservation, never provision it.
      await rememberLateReservation(trx, event.matchId, event.eventId, now);
      logger.warn(
        { reason: 'RELEASED_BEFORE_RESERVED', panelServerId: event.panelServerId },
        'reservation arrived after its release; not provisioning',
      );
      return;
    }
    if (existing) {
      logger.warn(
        {
          reason: 'ALREADY_RESERVED',
          state: existing.state,
          previousEventId: existing.reserved_event_id,
          panelServerId: event.panelServerId,
        },
        'match already has a reservation; ignoring this one',
      );
      return;
    }
    const deadlineAt = now + this.deps.settings.readyDeadlineMs;
    // With coalesced polling the next listing answers first; the per-server poll is the fallback.
    await insertReserved(trx, event, now, deadlineAt, now + (this.deps.listing?.fallbackMs ?? 0));
    await updateChecklist(trx, event.matchId, { serverInstalled: false }, now);
    await this.keys?.onReserved(trx, event.matchId, event.panelServerId, now, logger);
    logger.info({ panelServerId: event.panelServerId, deadlineAt: new Date(deadlineAt).toISOString() }, 'server reserved; provisioning');
  }

  /**
   * onReserved for a batch, with the same outcome as applying it event by event: one lock of the matches' provisions,
   * the decisions in memory (a later reservation of the same match sees the earlier one), then one multi-row insert
   * and one checklist upsert.
   */
  private async onReservedMany(items: readonly BatchItem<ServerReserved>[], { trx, now }: BatchContext): Promise<void> {
    const known: Map<string, Pick<Provision, 'state' | 'reserved_event_id'>> = await lockProvisions(trx, [
      ...new Set(items.map((i) => i.event.matchId)),
    ]);
    const deadlineAt = now + this.deps.settings.readyDeadlineMs;
    const fresh: Reservation[] = [];
    const late: ServerReserved[] = [];
    for (const { event, logger } of items) {
      const existing = known.get(event.matchId);
      if (existing?.state === 'RELEASED' && existing.reserved_event_id === null) {
        late.push(event);
        known.set(event.matchId, { state: existing.state, reserved_event_id: event.eventId });
        logger.warn(
          { reason: 'RELEASED_BEFORE_RESERVED', panelServerId: event.panelServerId },
          'reservation arrived after its release; not provisioning',
        );
      } else if (existing) {
        logger.warn(
          {
            reason: 'ALREADY_RESERVED',
            state: existing.state,
            previousEventId: existing.reserved_event_id,
            panelServerId: event.panelServerId,
          },
          'match already has a reservation; ignoring this one',
        );
      } else {
        fresh.push(event);
        known.set(event.matchId, { state: 'RESERVED', reserved_event_id: event.eventId });
        logger.info(
          { panelServerId: event.panelServerId, deadlineAt: new Date(deadlineAt).toISOString() },
          'server reserved; provisioning',
        );
      }
    }
    for (const event of late) await rememberLateReservation(trx, event.matchId, event.eventId, now);
    await insertReservedMany(trx, fresh, now, deadlineAt, now + (this.deps.listing?.fallbackMs ?? 0));
    await updateChecklists(
      trx,
      fresh.map((r) => r.matchId),
      { serverInstalled: false },
      now,
    );
    if (this.keys) {
      const byMatch = new Map(items.map((i) => [i.event.eventId, i.logger]));
      for (const r of fresh) await this.keys.onReserved(trx, r.matchId, r.panelServerId, now, byMatch.get(r.eventId)!);
    }
  }

  // ---- readiness signals (hook calls, through the ReadinessSignals port) ------------------------

  /** Records a readiness signal on the checklist and re-evaluates readiness at once. */
  recordReadinessSignal(matchId: string, signal: ReadinessSignal, db?: Db): Promise<ReadinessVerdict> {
    return this.readiness.recordReadinessSignal(matchId, signal, db);
  }

  // ---- polling --------------------------------------------------------------------------------

  start(): void {
    this.loop.start();
    this.keysLoop?.start();
  }

  /**
   * Graceful stop: waits for the current pass, then hands this instance's leases back so another instance takes
   * its provisions over at once. A crashed instance never gets here; its leases lapse after `leaseMs`.
   */
  async stop(): Promise<void> {
    await Promise.all([this.loop.stop(), this.keysLoop?.stop()]);
    const { db, clock, instanceId, logger } = this.deps;
    try {
      const released = (await releaseLeases(db, instanceId, clock.now())) + ((await this.keys?.releaseLeases()) ?? 0);
      if (released > 0) logger.info({ released }, 'provisioning leases released');
    } catch (error) {
      logger.warn({ err: error, reason: 'LEASE_RELEASE_FAILED' }, 'could not release provisioning leases; they lapse by themselves');
    }
  }

  nudge(): void {
    this.loop.nudge();
    this.keysLoop?.nudge();
  }

  /**
   * Claims provisions whose poll is due (and not leased by a live instance) and polls them: `pollPasses` passes
   * side by side, each with its own claim (a claim parks what it takes, so no two passes hold the same provision).
   */
  async pollDue(): Promise<number> {
    const passes = Math.max(1, this.deps.settings.pollPasses ?? 1);
    if (passes === 1) return this.poller.pollDue();
    const polled = await Promise.allSettled(Array.from({ length: passes }, () => this.poller.pollDue()));
    const failed = polled.find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
    return polled.reduce((sum, r) => sum + (r.status === 'fulfilled' ? r.value : 0), 0);
  }

  /** The panel-listing task's tick: one coalesced listing for every installing provision. */
  pollListed(): Promise<number> {
    return this.poller.pollListed();
  }

  /** Claims due admin key deliveries and key revocations and does them (docs/security.md). */
  keysDue(): Promise<number> {
    return this.keys?.workDue() ?? Promise.resolve(0);
  }

  /** Claims provisions whose panel cleanup is due and cleans them up. */
  cleanupDue(): Promise<number> {
    return this.cleanup.cleanupDue();
  }

  /** The deadline monitor's tick (scheduled, once across the fleet); returns how many provisions it failed. */
  sweepDeadlines(): Promise<number> {
    return this.monitor.sweep();
  }
}
