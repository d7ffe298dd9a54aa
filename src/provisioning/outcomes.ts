import type { Logger } from 'pino';
import { enqueueEvent, enqueueEvents } from '../infra/bus/outbox.js';
import type { Db } from '../infra/db/db.js';
import { Topics } from '../events/topics.js';
import type { Checklist, Provision } from '../infra/db/schema.js';
import { cancelAndRefund, getChecklist } from '../matches/match.repository.js';
import { cleanupAfterFailure, type FailureReason } from './policy.js';
import type { MatchKeyLifecycle } from './match-keys.js';
import { markFailed, markReadyMany } from './provisioning.repository.js';
import type { ProvisioningDeps } from './settings.js';

/**
 * The two ends of a provision, each once: `server.ready`, or `server.failed` with the match cancelled and
 * refunded. Both return true when they wrote outbox rows (the caller wakes the relay after commit).
 */
export class ProvisionOutcomes {
  constructor(
    private readonly deps: Pick<ProvisioningDeps, 'metrics'>,
    private readonly keys?: MatchKeyLifecycle,
  ) {}

  async ready(trx: Db, provision: Provision, now: number, logger: Logger): Promise<boolean> {
    const checklist = await getChecklist(trx, provision.match_id);
    return this.readyMany(trx, [{ provision, logger }], new Map(checklist ? [[provision.match_id, checklist]] : []), now);
  }

  /**
   * `ready` for many provisions in a few statements: one UPDATE, one multi-row outbox INSERT. `checklists` are the
   * matches' checklists as they stand in this transaction. Returns true when it wrote outbox rows.
   */
  async readyMany(
    trx: Db,
    items: readonly { provision: Provision; logger: Logger }[],
    checklists: ReadonlyMap<string, Checklist>,
    now: number,
  ): Promise<boolean> {
    const marked = await markReadyMany(
      trx,
      items.map((i) => i.provision.match_id),
      now,
    );
    const done = items.filter((i) => marked.has(i.provision.match_id));
    if (done.length === 0) return false;
    const emitted = await enqueueEvents(
      trx,
      done.map(({ provision }) => {
        const checklist = checklists.get(provision.match_id);
        return {
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
        };
      }),
    );
    await this.keys?.onReadyMany(
      trx,
      done.map(({ provision, logger }) => ({ matchId: provision.match_id, logger })),
      now,
    );
    done.forEach(({ provision, logger }, i) => {
      const seconds = provision.reserved_at ? (now - provision.reserved_at.getTime()) / 1000 : 0;
      this.deps.metrics.provisionOutcomes.inc({ outcome: 'ready', reason: '' });
      this.deps.metrics.provisionReadySeconds.observe(seconds);
      logger.info({ eventId: emitted[i]?.eventId, readyAfterSeconds: seconds }, 'server ready');
    });
    return true;
  }

  /** Fails the provision: server.failed, match cancelled, every player refunded once, panel cleanup queued. */
  async fail(trx: Db, provision: Provision, reason: FailureReason, detail: string, now: number, logger: Logger): Promise<boolean> {
    if (!(await markFailed(trx, provision.match_id, reason, cleanupAfterFailure(reason), now))) return false;
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
    await this.keys?.onEnded(trx, provision.match_id, now, logger);
    this.deps.metrics.provisionOutcomes.inc({ outcome: 'failed', reason });
    for (const refund of refunds) this.deps.metrics.refunds.inc({ currency: refund.currency });
    logger.warn({ reason, detail, refunds: refunds.length, eventId: failed?.eventId }, 'provisioning failed; match cancelled and refunded');
    return true;
  }
}
