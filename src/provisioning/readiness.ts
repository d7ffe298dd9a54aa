import type { Db } from '../infra/db/db.js';
import { getChecklist, updateChecklist } from '../matches/match.repository.js';
import type { ProvisionOutcomes } from './outcomes.js';
import { decideOnSignal, isActive, isPastDeadline, type SignalState } from './policy.js';
import { lockProvision, overlayRequired } from './provisioning.repository.js';
import type { ReadinessSignal, ReadinessSignals, ReadinessVerdict } from './readiness.port.js';
import type { ProvisioningDeps } from './settings.js';

/** The readiness signals of a match as the policy reads them (checklist items and the overlay requirement). */
export async function signalStateOf(
  db: Db,
  matchId: string,
  checklist?: { admin_hooks_ok: boolean; overlay_connected: boolean },
): Promise<SignalState> {
  const row = checklist ?? (await getChecklist(db, matchId));
  return {
    adminHooksOk: row?.admin_hooks_ok ?? false,
    overlayConnected: row?.overlay_connected ?? false,
    overlayRequired: await overlayRequired(db, matchId),
  };
}

/** Records each readiness signal on the checklist and re-evaluates readiness at once. */
export class ReadinessRecorder implements ReadinessSignals {
  constructor(
    private readonly deps: ProvisioningDeps,
    private readonly outcomes: ProvisionOutcomes,
  ) {}

  async recordReadinessSignal(matchId: string, signal: ReadinessSignal, db: Db = this.deps.db): Promise<ReadinessVerdict> {
    const run = (trx: Db) => this.record(trx, matchId, signal);
    const result = db === this.deps.db ? await this.deps.db.transaction().execute(run) : await run(db);
    if (result === 'ready' || result === 'timed_out') this.deps.onOutboxWrite?.();
    return result;
  }

  private async record(trx: Db, matchId: string, signal: ReadinessSignal): Promise<ReadinessVerdict> {
    const now = this.deps.clock.now();
    const fields =
      'adminHooksOk' in signal
        ? { adminHooksOk: true }
        : { overlayConnected: signal.overlayConnected, overlayLastSeenAt: signal.overlayConnected ? signal.at : null };
    const provision = await lockProvision(trx, matchId);
    const checklist = await updateChecklist(trx, matchId, fields, now);
    // Past provisioning (the usual case for heartbeats) there is nothing to re-evaluate.
    if (!provision || !isActive(provision.state)) return 'not_applicable';
    const logger = this.deps.logger.child({ matchId });
    // A signal after the deadline is too late: the reservation times out, it never becomes ready.
    if (provision.deadline_at && isPastDeadline(now, provision.deadline_at.getTime())) {
      await this.outcomes.fail(trx, provision, 'TIMEOUT', 'readiness signal arrived after the deadline', now, logger);
      return 'timed_out';
    }
    const signals = await signalStateOf(trx, matchId, checklist);
    const verdict = decideOnSignal(provision.state, checklist.server_installed && provision.state === 'WAITING_SIGNALS', signals);
    if (verdict === 'ready') await this.outcomes.ready(trx, provision, now, logger);
    return verdict;
  }
}
