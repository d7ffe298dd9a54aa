import type { EventContext } from '../infra/bus/consumer-runtime.js';
import type { Provision } from '../infra/db/schema.js';
import type { ServerReleased } from '../events/inbound.js';
import type { MatchKeyLifecycle } from './match-keys.js';
import { cleanupAfterRelease, decideCleanup, type CleanupResult } from './policy.js';
import { claimDue, insertReleasedBeforeReserved, lockProvision, markReleased, saveCleanupOutcome } from './provisioning.repository.js';
import type { ProvisioningDeps } from './settings.js';

/** How long one cleanup attempt may wait for panel slots and answers. */
const CLEANUP_BUDGET_MS = 60_000;

/** `server.released` and the panel cleanup it (or a failure) queues: delete the server, retry, or give up loudly. */
export class PanelCleanup {
  constructor(
    private readonly deps: ProvisioningDeps,
    private readonly keys?: MatchKeyLifecycle,
  ) {}

  async onReleased(event: ServerReleased, { trx, now, logger }: EventContext): Promise<void> {
    const existing = await lockProvision(trx, event.matchId);
    if (!existing) {
      await insertReleasedBeforeReserved(trx, event, now);
      logger.warn(
        { reason: 'RELEASED_BEFORE_RESERVED', panelServerId: event.panelServerId },
        'release arrived before its reservation; remembered',
      );
      this.deps.metrics.provisionOutcomes.inc({ outcome: 'released', reason: 'before_reserved' });
      return;
    }
    if (existing.state === 'RELEASED') {
      logger.info('server already released');
      return;
    }
    await markReleased(trx, event.matchId, event.eventId, cleanupAfterRelease(existing.cleanup_state), now);
    await this.keys?.onEnded(trx, event.matchId, now, logger);
    this.deps.metrics.provisionOutcomes.inc({ outcome: 'released', reason: existing.state.toLowerCase() });
    logger.info({ previousState: existing.state, panelServerId: existing.panel_server_id }, 'server released; cleaning up');
  }

  /** Claims provisions whose cleanup is due (and not leased by a live instance) and cleans them up. */
  async cleanupDue(): Promise<number> {
    const { db, clock, instanceId, settings } = this.deps;
    const claimed = await claimDue(db, 'cleanup', { instanceId, now: clock.now(), leaseMs: settings.leaseMs, limit: settings.concurrency });
    await Promise.all(claimed.map((p) => this.cleanupOne(p)));
    return claimed.length;
  }

  private async cleanupOne(provision: Provision): Promise<void> {
    const { db, clock, settings } = this.deps;
    const logger = this.deps.logger.child({ matchId: provision.match_id, panelServerId: provision.panel_server_id });
    const result = await this.remove(provision.panel_server_id, clock.now() + CLEANUP_BUDGET_MS);
    const now = clock.now();
    const attempts = provision.cleanup_attempts + 1;
    const decision = decideCleanup(result, attempts, now, settings, this.deps.random());
    await saveCleanupOutcome(db, provision.match_id, { ...decision, attempts }, now);
    const cause = result.kind === 'error' ? result.reason : undefined;
    if (decision.state === 'DONE') logger.info({ result: result.kind }, 'panel server removed');
    else if (decision.state === 'GAVE_UP')
      logger.error({ reason: 'CLEANUP_GAVE_UP', attempts, cause }, 'panel cleanup gave up; remove the server by hand');
    else logger.warn({ reason: cause, attempts, nextAt: new Date(decision.nextAt).toISOString() }, 'panel cleanup failed; will retry');
  }

  private async remove(panelServerId: number, budget: number): Promise<CleanupResult> {
    const result = await this.deps.panel.remove(panelServerId, budget);
    if (result.kind !== 'error' || !result.retryable) return result;
    // The delete may have happened behind a timeout or a 5xx: ask the panel before trying again.
    const seen = await this.deps.panel.observe(panelServerId, budget);
    return seen.kind === 'not_found' ? { kind: 'already_gone' } : result;
  }
}
