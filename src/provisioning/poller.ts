import type { Logger } from 'pino';
import type { Db } from '../infra/db/db.js';
import type { Provision } from '../infra/db/schema.js';
import { updateChecklist } from '../matches/match.repository.js';
import type { ProvisionOutcomes } from './outcomes.js';
import { decideAfterPoll, isActive, type Decision, type PanelObservation } from './policy.js';
import { claimDue, lockProvision, savePollProgress } from './provisioning.repository.js';
import { signalStateOf } from './readiness.js';
import type { ProvisioningDeps } from './settings.js';

/** Polls the panel for due provisions and persists what the policy decides after each observation. */
export class ProvisionPoller {
  constructor(
    private readonly deps: ProvisioningDeps,
    private readonly outcomes: ProvisionOutcomes,
  ) {}

  /** Claims provisions whose poll is due (and not leased by a live instance) and polls them. */
  async pollDue(): Promise<number> {
    const { db, clock, instanceId, settings } = this.deps;
    const claimed = await claimDue(db, 'poll', { instanceId, now: clock.now(), leaseMs: settings.leaseMs, limit: settings.concurrency });
    await Promise.all(claimed.map((p) => this.pollOne(p)));
    return claimed.length;
  }

  private async pollOne(claimed: Provision): Promise<void> {
    const { db, clock, panel, logger: root } = this.deps;
    const logger = root.child({ matchId: claimed.match_id, panelServerId: claimed.panel_server_id });
    const deadlineAt = claimed.deadline_at!.getTime();
    // At or past the deadline the panel has nothing to say that could change the outcome.
    const observation = clock.now() >= deadlineAt ? null : await panel.observe(claimed.panel_server_id, deadlineAt);
    const wroteOutbox = await db.transaction().execute(async (trx) => {
      const provision = await lockProvision(trx, claimed.match_id);
      if (!provision || !isActive(provision.state) || provision.lease_owner !== this.deps.instanceId) return false;
      const now = clock.now();
      logObservation(observation, logger);
      return this.apply(
        trx,
        provision,
        await this.decide(trx, provision, observation, deadlineAt, now),
        now,
        logger,
        panelStatusOf(observation),
      );
    });
    if (wroteOutbox) this.deps.onOutboxWrite?.();
  }

  private async decide(
    trx: Db,
    provision: Provision,
    observation: PanelObservation | null,
    deadlineAt: number,
    now: number,
  ): Promise<Decision> {
    if (observation === null) return { kind: 'fail', reason: 'TIMEOUT', detail: 'readiness deadline passed' };
    const snapshot = { state: provision.state, deadlineAt, pollFailures: provision.poll_failures };
    return decideAfterPoll(
      snapshot,
      observation,
      await signalStateOf(trx, provision.match_id),
      now,
      this.deps.settings,
      this.deps.random(),
    );
  }

  /** Persists a policy decision; returns true when it wrote outbox rows. */
  private async apply(
    trx: Db,
    provision: Provision,
    decision: Decision,
    now: number,
    logger: Logger,
    panelStatus: string | null,
  ): Promise<boolean> {
    switch (decision.kind) {
      case 'ready':
        await updateChecklist(trx, provision.match_id, { serverInstalled: true }, now);
        return this.outcomes.ready(trx, provision, now, logger);
      case 'fail':
        return this.outcomes.fail(trx, provision, decision.reason, decision.detail, now, logger);
      case 'wait':
        if (decision.serverInstalled) await updateChecklist(trx, provision.match_id, { serverInstalled: true }, now);
        await savePollProgress(
          trx,
          provision.match_id,
          {
            state: decision.state,
            nextPollAt: decision.nextPollAt,
            pollFailures: decision.pollFailures,
            panelStatus,
            leaseUntil: now + this.deps.settings.leaseMs,
          },
          now,
        );
        if (decision.state !== provision.state) logger.info({ from: provision.state, to: decision.state }, 'provisioning state changed');
        return false;
    }
  }
}

function panelStatusOf(observation: PanelObservation | null): string | null {
  return observation?.kind === 'install' ? String(observation.status ?? 'null') : (observation?.kind ?? null);
}

function logObservation(observation: PanelObservation | null, logger: Logger): void {
  if (observation?.kind === 'install' && observation.state === 'indeterminate') {
    logger.warn(
      { status: observation.status, reason: 'PANEL_STATUS_INDETERMINATE' },
      'panel reports a status that hides the install outcome',
    );
  }
  if (observation?.kind === 'error') logger.warn({ reason: observation.reason, retryable: observation.retryable }, 'panel poll failed');
}
