import type { Logger } from 'pino';
import type { Db } from '../infra/db/db.js';
import type { Provision } from '../infra/db/schema.js';
import { isTransientInfrastructureError } from '../infra/faults/outage.js';
import { getChecklists, updateChecklist, updateChecklists } from '../matches/match.repository.js';
import type { ProvisionOutcomes } from './outcomes.js';
import { decideAfterPoll, isActive, type Decision, type PanelObservation, type SignalState } from './policy.js';
import {
  claimDue,
  claimWatched,
  lockLeased,
  lockProvision,
  lockProvisions,
  markServersInstalled,
  overlayRequiredMany,
  releaseWatched,
  saveListedProgress,
  savePollProgress,
  signalsOf,
  type ListedProgress,
} from './provisioning.repository.js';
import { signalStateOf } from './readiness.js';
import { LISTING_PAGE_SIZE } from './panel.port.js';
import type { ListingSettings, ProvisioningDeps } from './settings.js';

/** Fleet-wide: while this key lives, no instance lists (the last listing's share of the panel budget). */
export const LISTING_QUIET_KEY = 'prov:listing:quiet';

/**
 * Fleet-wide: while this key lives, listings are answering (set after each listing that read the panel, for the
 * fallback time), so per-server polling stays off. Its GETs would only compete with the listing's pages for the
 * fleet's request slots, and lose the listing its slots at large fleets.
 */
export const LISTING_HEALTHY_KEY = 'prov:listing:healthy';

/** How an observation reached us: its own GET, or a coalesced listing (then the listing schedules the next look). */
type Via = { listed: false } | { listed: true; fallbackMs: number };

/** Polls the panel for due provisions and persists what the policy decides after each observation. */
export class ProvisionPoller {
  /** Until then this instance does not list: the panel answered the listing in a way retrying will not fix. */
  private listingUnusableUntil = 0;
  /** How long this instance's last listing pass took (listing plus writes). */
  private lastPassMs = 0;

  constructor(
    private readonly deps: ProvisioningDeps,
    private readonly outcomes: ProvisionOutcomes,
  ) {}

  /**
   * Claims up to `claimLimit` provisions whose poll is due (and not leased by a live instance) and polls them,
   * `concurrency` at a time; each group's outcomes are written in one transaction.
   */
  async pollDue(): Promise<number> {
    const { db, clock, instanceId, settings } = this.deps;
    if (await this.listingsHealthy()) return 0;
    const claimed = await claimDue(db, 'poll', {
      instanceId,
      now: clock.now(),
      leaseMs: settings.leaseMs,
      limit: Math.max(settings.concurrency, settings.claimLimit ?? settings.concurrency),
    });
    await this.pollGroups(claimed, { listed: false });
    return claimed.length;
  }

  /**
   * The listing task's tick (once per tick across the fleet): one coalesced listing answers for every installing
   * provision; a watched server the listing did not show gets a single confirming GET. Returns how many it answered.
   */
  async pollListed(): Promise<number> {
    const { db, clock, instanceId, settings, panel, listing, logger } = this.deps;
    if (!listing || !panel.observeMany || clock.now() < this.listingUnusableUntil) return 0;
    if ((await listing.kv.get(LISTING_QUIET_KEY)) !== null) return 0;
    const now = clock.now();
    const claimed = await claimWatched(db, { instanceId, now, leaseMs: settings.leaseMs, limit: listing.maxWatched });
    if (claimed.length === 0) return 0;
    const result = await panel.observeMany(
      claimed.map((p) => p.panel_server_id),
      listingDeadline(now, claimed.length, listing),
    );
    if (result.kind !== 'listed') {
      await releaseWatched(
        db,
        instanceId,
        claimed.map((p) => p.match_id),
      );
      if (result.kind === 'unusable') {
        this.listingUnusableUntil = clock.now() + listing.unusableCooldownMs;
        await listing.kv.del(LISTING_HEALTHY_KEY).catch(() => undefined);
      }
      logger.warn(
        { reason: result.reason, outcome: result.kind, watched: claimed.length },
        'panel listing failed; per-server polling covers it',
      );
      await this.holdListing(result.requests);
      return 0;
    }
    const absent = claimed.filter((p) => !result.seen.has(p.panel_server_id)).length;
    const quietMs = await this.holdListing(result.requests + absent);
    // The next listing comes after the quiet period (or the tick) plus a pass: the own poll waits three of those,
    // so per-server polling stays off while listings are healthy, however long a pass takes at this fleet size.
    const passMs = Math.max(this.lastPassMs, clock.now() - now);
    const via: Via = { listed: true, fallbackMs: Math.max(listing.fallbackMs, 3 * (Math.max(quietMs, listing.everyMs) + passMs)) };
    await listing.kv.set(LISTING_HEALTHY_KEY, instanceId, { px: via.fallbackMs }).catch(() => undefined);
    // What the listing showed: one transaction, its waits in one statement. The absent: a confirming GET each.
    const rest = await this.saveListed(claimed, result.seen, via);
    await this.pollGroups(rest, via, result.seen);
    this.lastPassMs = clock.now() - now;
    return claimed.length;
  }

  /**
   * Every claim the listing showed (installing, installed, failed) in one transaction: lock them, read their
   * signals, apply the policy to each, write the `wait` steps (nearly all of them) in one statement and the
   * outcomes (ready, failed) one by one. Returns the claims the listing did not show (they need a confirming GET).
   */
  private async saveListed(claimed: readonly Provision[], seen: ReadonlyMap<number, PanelObservation>, via: Via): Promise<Provision[]> {
    const { db, clock, instanceId, logger } = this.deps;
    const rest = claimed.filter((p) => seen.get(p.panel_server_id)?.kind !== 'install');
    const listed = claimed.filter((p) => seen.get(p.panel_server_id)?.kind === 'install');
    if (listed.length === 0) return rest;
    const wroteOutbox = await db.transaction().execute(async (trx) => {
      const locked = await lockLeased(
        trx,
        instanceId,
        listed.map((p) => p.match_id),
      );
      const signals = await signalsOf(
        trx,
        locked.map((p) => p.match_id),
      );
      const now = clock.now();
      const progress: ListedProgress[] = [];
      const installed: string[] = [];
      const moved = new Map<string, number>();
      let outbox = false;
      for (const provision of locked) {
        const observation = seen.get(provision.panel_server_id) ?? null;
        const deadlineAt = provision.deadline_at!.getTime();
        const log = logger.child({ matchId: provision.match_id, panelServerId: provision.panel_server_id });
        logObservation(observation, log);
        const decision = rescheduleListed(
          observation === null || now >= deadlineAt
            ? { kind: 'fail', reason: 'TIMEOUT', detail: 'readiness deadline passed' }
            : decideAfterPoll(
                { state: provision.state, deadlineAt, pollFailures: provision.poll_failures },
                observation,
                signals.get(provision.match_id) ?? { adminHooksOk: false, overlayConnected: false, overlayRequired: false },
                now,
                this.deps.settings,
                this.deps.random(),
              ),
          observation,
          via,
          now,
          deadlineAt,
        );
        if (decision.kind !== 'wait') {
          outbox = (await this.apply(trx, provision, decision, now, log, panelStatusOf(observation), via)) || outbox;
          continue;
        }
        const { state, nextPollAt, pollFailures } = decision;
        progress.push({ matchId: provision.match_id, state, nextPollAt, pollFailures, panelStatus: panelStatusOf(observation) });
        if (decision.serverInstalled) installed.push(provision.match_id);
        if (state !== provision.state) moved.set(`${provision.state}→${state}`, (moved.get(`${provision.state}→${state}`) ?? 0) + 1);
      }
      await markServersInstalled(trx, installed, now);
      await saveListedProgress(trx, progress, now);
      for (const [change, provisions] of moved) logger.info({ change, provisions }, 'provisioning state changed');
      return outbox;
    });
    if (wroteOutbox) this.deps.onOutboxWrite?.();
    return rest;
  }

  /** Whether a listing answered within the fallback time (then the listings cover every installing provision). */
  private async listingsHealthy(): Promise<boolean> {
    const { listing, clock } = this.deps;
    if (!listing || clock.now() < this.listingUnusableUntil) return false;
    try {
      return (await listing.kv.get(LISTING_HEALTHY_KEY)) !== null;
    } catch {
      return false; // no key-value store: per-server polling, as without listings
    }
  }

  /**
   * Observes the claimed provisions, `concurrency` panel requests at a time, and meanwhile writes the outcomes
   * observed so far, each lot in ONE transaction (a few statements for the lot): a fast panel gives few large lots,
   * a slow one small, timely lots. A failed observation or lot does not stop the others; the first error is rethrown
   * at the end (the poll loop logs it).
   */
  private async pollGroups(claimed: readonly Provision[], via: Via, seen?: ReadonlyMap<number, PanelObservation>): Promise<void> {
    let failure: { error: unknown } | undefined;
    const observed: Observed[] = [];
    let next = 0;
    let finished = 0;
    let wake: (() => void) | undefined;
    const observer = async () => {
      while (next < claimed.length) {
        const provision = claimed[next++]!;
        try {
          const observation = await this.observe(provision, provision.deadline_at!.getTime(), via, seen?.get(provision.panel_server_id));
          observed.push({ claimed: provision, observation });
        } catch (error) {
          failure ??= { error };
        } finally {
          finished++;
          wake?.();
        }
      }
    };
    const observers = Promise.all(Array.from({ length: Math.min(Math.max(1, this.deps.settings.concurrency), claimed.length) }, observer));
    for (;;) {
      if (observed.length === 0) {
        if (finished === claimed.length) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      try {
        await this.writeLot(observed.splice(0), via);
      } catch (error) {
        failure ??= { error };
      }
    }
    await observers;
    if (failure) throw failure.error;
  }

  /**
   * One lot of outcomes in one transaction. If it fails for anything but an outage, each provision of the lot is
   * written on its own, so one bad provision never holds the others back.
   */
  private async writeLot(lot: readonly Observed[], via: Via): Promise<void> {
    const { db, logger } = this.deps;
    let wroteOutbox = false;
    try {
      wroteOutbox = await db.transaction().execute((trx) => this.applyGroup(trx, lot, via));
    } catch (error) {
      if (lot.length <= 1 || isTransientInfrastructureError(error)) throw error;
      logger.warn({ err: error, size: lot.length }, 'writing a lot of poll outcomes failed; writing each on its own');
      const each = await Promise.allSettled(lot.map((o) => this.applyOne(o.claimed, o.observation, via)));
      if (each.some((r) => r.status === 'fulfilled' && r.value)) this.deps.onOutboxWrite?.();
      const failed = each.find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
      return;
    }
    if (wroteOutbox) this.deps.onOutboxWrite?.();
  }

  /** One group's outcomes in `trx`: one lock, one read of the signals, per-provision writes except `ready` (bulk). */
  private async applyGroup(trx: Db, observed: readonly Observed[], via: Via): Promise<boolean> {
    if (observed.length === 0) return false;
    const { clock, instanceId } = this.deps;
    const locked = await lockProvisions(
      trx,
      observed.map((o) => o.claimed.match_id),
    );
    const live = observed.flatMap((o) => {
      const provision = locked.get(o.claimed.match_id);
      return provision && isActive(provision.state) && provision.lease_owner === instanceId ? [{ ...o, provision }] : [];
    });
    if (live.length === 0) return false;
    const ids = live.map((o) => o.provision.match_id);
    const checklists = await getChecklists(trx, ids);
    const overlay = await overlayRequiredMany(trx, ids);
    const now = clock.now();
    let wroteOutbox = false;
    const ready: { provision: Provision; logger: Logger }[] = [];
    for (const { claimed, provision, observation } of live) {
      const logger = this.loggerFor(claimed);
      const deadlineAt = claimed.deadline_at!.getTime();
      logObservation(observation, logger);
      const checklist = checklists.get(provision.match_id);
      const signals: SignalState = {
        adminHooksOk: checklist?.admin_hooks_ok ?? false,
        overlayConnected: checklist?.overlay_connected ?? false,
        overlayRequired: overlay.get(provision.match_id) ?? false,
      };
      const decision = rescheduleListed(
        this.decideWith(provision, observation, signals, deadlineAt, now),
        observation,
        via,
        now,
        deadlineAt,
      );
      if (decision.kind === 'ready') ready.push({ provision, logger });
      else if (await this.apply(trx, provision, decision, now, logger, panelStatusOf(observation), via)) wroteOutbox = true;
    }
    if (ready.length > 0) {
      const rows = await updateChecklists(
        trx,
        ready.map((r) => r.provision.match_id),
        { serverInstalled: true },
        now,
      );
      if (await this.outcomes.readyMany(trx, ready, new Map(rows.map((r) => [r.match_id, r])), now)) wroteOutbox = true;
    }
    return wroteOutbox;
  }

  private loggerFor(claimed: Provision): Logger {
    return this.deps.logger.child({ matchId: claimed.match_id, panelServerId: claimed.panel_server_id });
  }

  /** Keeps the fleet from listing again until these requests fit in the listing's share of the budget. */
  private async holdListing(requests: number): Promise<number> {
    const listing = this.deps.listing!;
    const quietMs = Math.ceil((requests * listing.windowMs) / (listing.budget * listing.budgetShare));
    if (quietMs > 0) await listing.kv.set(LISTING_QUIET_KEY, this.deps.instanceId, { px: quietMs });
    return quietMs;
  }

  /** One provision's outcome in its own transaction (the fallback when its group's transaction failed). */
  private async applyOne(claimed: Provision, observation: PanelObservation | null, via: Via): Promise<boolean> {
    const { db, clock } = this.deps;
    const logger = this.loggerFor(claimed);
    const deadlineAt = claimed.deadline_at!.getTime();
    return db.transaction().execute(async (trx) => {
      const provision = await lockProvision(trx, claimed.match_id);
      if (!provision || !isActive(provision.state) || provision.lease_owner !== this.deps.instanceId) return false;
      const now = clock.now();
      logObservation(observation, logger);
      return this.apply(
        trx,
        provision,
        rescheduleListed(await this.decide(trx, provision, observation, deadlineAt, now), observation, via, now, deadlineAt),
        now,
        logger,
        panelStatusOf(observation),
        via,
      );
    });
  }

  private async observe(claimed: Provision, deadlineAt: number, via: Via, listed?: PanelObservation): Promise<PanelObservation | null> {
    // At or past the deadline the panel has nothing to say that could change the outcome.
    if (this.deps.clock.now() >= deadlineAt) return null;
    if (listed) return listed;
    const observation = await this.deps.panel.observe(claimed.panel_server_id, deadlineAt);
    // Not in the listing and 404 on its GET: one look is not enough to cancel on (a listing that shifted, a
    // panel mid-restore); poll again on its own, where a second 404 is the panel's answer.
    if (via.listed && observation.kind === 'not_found') return { kind: 'error', retryable: true, reason: 'NOT_FOUND_UNCONFIRMED' };
    return observation;
  }

  private async decide(
    trx: Db,
    provision: Provision,
    observation: PanelObservation | null,
    deadlineAt: number,
    now: number,
  ): Promise<Decision> {
    return this.decideWith(
      provision,
      observation,
      observation === null ? null : await signalStateOf(trx, provision.match_id),
      deadlineAt,
      now,
    );
  }

  private decideWith(
    provision: Provision,
    observation: PanelObservation | null,
    signals: SignalState | null,
    deadlineAt: number,
    now: number,
  ): Decision {
    if (observation === null || signals === null) return { kind: 'fail', reason: 'TIMEOUT', detail: 'readiness deadline passed' };
    const snapshot = { state: provision.state, deadlineAt, pollFailures: provision.poll_failures };
    return decideAfterPoll(snapshot, observation, signals, now, this.deps.settings, this.deps.random());
  }

  /** Persists a policy decision; returns true when it wrote outbox rows. */
  private async apply(
    trx: Db,
    provision: Provision,
    decision: Decision,
    now: number,
    logger: Logger,
    panelStatus: string | null,
    via: Via,
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
            // A listed provision goes back to the fleet: whichever instance lists next answers for it.
            leaseUntil: via.listed ? null : now + this.deps.settings.leaseMs,
          },
          now,
        );
        if (decision.state !== provision.state) logger.info({ from: provision.state, to: decision.state }, 'provisioning state changed');
        return false;
    }
  }
}

/**
 * By when a listing's last page must have its fleet-wide slot. The limiter spaces requests about windowMs / budget
 * apart (a little more: its safety margin), so a listing of N pages needs N spacings however idle the panel is:
 * a tick's wait plus two spacings per page it will likely read. A listing that cannot make that is stale anyway
 * (the next tick tries again); a bare tick would fail every listing past ~7 pages at 240/min (1,000 installs).
 */
export function listingDeadline(now: number, watched: number, listing: Pick<ListingSettings, 'everyMs' | 'windowMs' | 'budget'>): number {
  const pages = Math.ceil(watched / LISTING_PAGE_SIZE) + 1;
  return now + listing.everyMs + Math.ceil((2 * pages * listing.windowMs) / listing.budget);
}

/** A listed server still installing is looked at by the next listing; its own poll waits as the fallback. */
function rescheduleListed(decision: Decision, observation: PanelObservation | null, via: Via, now: number, deadlineAt: number): Decision {
  if (!via.listed || decision.kind !== 'wait' || decision.nextPollAt === null || observation?.kind !== 'install') return decision;
  return { ...decision, nextPollAt: Math.min(now + via.fallbackMs, deadlineAt) };
}

interface Observed {
  claimed: Provision;
  observation: PanelObservation | null;
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
