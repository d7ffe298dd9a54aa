import type { ProvisionOutcomes } from './outcomes.js';
import { isActive } from './policy.js';
import { countActive, lockProvision, overdueMatchIds } from './provisioning.repository.js';
import type { ProvisioningDeps } from './settings.js';

/** The deadline monitor (a scheduled task, once across the fleet): fails every active provision past its deadline. */
export class DeadlineMonitor {
  constructor(
    private readonly deps: ProvisioningDeps,
    private readonly outcomes: ProvisionOutcomes,
  ) {}

  /** Returns how many provisions it failed; also refreshes the active-provisions gauge. */
  async sweep(): Promise<number> {
    const { db, clock, logger, settings } = this.deps;
    const now = clock.now();
    let failed = 0;
    for (const matchId of await overdueMatchIds(db, now)) {
      const wrote = await db.transaction().execute(async (trx) => {
        const provision = await lockProvision(trx, matchId);
        if (!provision || !isActive(provision.state)) return false;
        const detail = `not ready within ${settings.readyDeadlineMs} ms (last panel status ${provision.last_panel_status ?? 'none'})`;
        return this.outcomes.fail(trx, provision, 'TIMEOUT', detail, now, logger.child({ matchId }));
      });
      if (wrote) failed++;
    }
    if (failed > 0) this.deps.onOutboxWrite?.();
    this.deps.metrics.provisionsActive.set(await countActive(db));
    return failed;
  }
}
