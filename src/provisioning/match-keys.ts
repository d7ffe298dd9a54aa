import type { Logger } from 'pino';
import type { Db } from '../infra/db/db.js';
import type { AdminKeyDelivery } from '../infra/db/schema.js';
import { adminKeyVariables, decideDelivery, type AdminKeySettings } from './admin-key.policy.js';
import {
  claimDueDeliveries,
  insertDelivery,
  insertOverlayKeys,
  lockDelivery,
  markRevoked,
  matchPlayersMany,
  overlayKeyIds,
  queueRevocation,
  releaseDeliveryLeases,
  retryRevocation,
  saveDeliveryProgress,
} from './admin-key.repository.js';
import type { VariableUpdateResult } from './panel.port.js';
import type { MatchKeys } from './match-keys.port.js';
import type { ProvisioningDeps } from './settings.js';

/** Share of the row's lease one delivery attempt may spend waiting for panel slots (the lease must outlive it). */
const DELIVERY_LEASE_SHARE = 0.75;
/** A revocation the cache did not take is tried again this much later. */
const REVOKE_RETRY_MS = 2_000;

/**
 * The match keys' lifecycle (docs/security.md): the admin key issued with the reservation and delivered to the
 * game server as startup variables through the panel (retried, keyed, recorded when the panel refuses), overlay
 * keys per player when the server goes ready, and every key of the match revoked when it is released or cancelled.
 * Issuing and queueing happen inside the caller's transaction; panel calls and cache updates in `workDue`.
 */
export class MatchKeyLifecycle {
  constructor(
    private readonly deps: ProvisioningDeps,
    private readonly keys: MatchKeys,
    private readonly settings: AdminKeySettings,
  ) {}

  /** With the reservation: the match's admin key (once: the delivery row's primary key) and its delivery, due now. */
  async onReserved(trx: Db, matchId: string, panelServerId: number, now: number, logger: Logger): Promise<void> {
    if (!this.deps.panel.updateVariables) return;
    const issued = await this.keys.issue(trx, matchId, 'admin', now);
    if (!issued) {
      await insertDelivery(
        trx,
        { matchId, keyId: null, panelServerId, failureReason: 'NO_MASTER_SECRET', failureDetail: 'ADMIN_HOOK_SECRET is not configured' },
        now,
      );
      logger.warn({ reason: 'NO_MASTER_SECRET' }, 'no admin key issued: ADMIN_HOOK_SECRET is not configured');
      return;
    }
    // The transaction holds the event's processed_events claim and runs only for a match without a provision, so a
    // second delivery row cannot normally arise; if one exists the primary key refuses it and the key just issued
    // is revoked at once (one admin key per match).
    if (!(await insertDelivery(trx, { matchId, keyId: issued.keyId, panelServerId }, now))) {
      await this.keys.revokeIn(trx, [issued.keyId], now);
      logger.warn({ reason: 'ADMIN_KEY_EXISTS', keyId: issued.keyId }, 'match already has an admin key; the new one is revoked');
      return;
    }
    logger.info({ keyId: issued.keyId }, 'admin key issued; delivering it through the panel');
  }

  /**
   * With server.ready, for the matches that went ready in one transaction: one overlay key per player (never put into
   * events; the platform fetches them). One read of their players, one insert of the key records, one of the overlay
   * keys (a player who already has a key keeps it; the new one is revoked at once).
   */
  async onReadyMany(trx: Db, matches: readonly { matchId: string; logger: Logger }[], now: number): Promise<void> {
    const players = await matchPlayersMany(
      trx,
      matches.map((m) => m.matchId),
    );
    const wanted = matches.flatMap(({ matchId }) =>
      (players.get(matchId) ?? []).map((player, index) => ({ matchId, player, at: now + index })),
    );
    if (wanted.length === 0) return;
    const keys = await this.keys.issueMany(
      trx,
      wanted.map(({ matchId, at }) => ({ matchId, kind: 'overlay' as const, at })),
    );
    if (!keys) {
      for (const { logger } of matches)
        logger.warn({ reason: 'NO_MASTER_SECRET' }, 'no overlay keys issued: OVERLAY_MASTER_SECRET is not configured');
      return;
    }
    const recorded = await insertOverlayKeys(
      trx,
      wanted.map(({ matchId, player }, i) => ({ matchId, playerId: player.player_id, side: player.side, keyId: keys[i]!.keyId })),
      now,
    );
    const unused = keys.filter((k) => !recorded.has(k.keyId)).map((k) => k.keyId);
    if (unused.length > 0) await this.keys.revokeIn(trx, unused, now);
    const issuedPer = new Map<string, number>();
    wanted.forEach(({ matchId }, i) => {
      if (recorded.has(keys[i]!.keyId)) issuedPer.set(matchId, (issuedPer.get(matchId) ?? 0) + 1);
    });
    for (const { matchId, logger } of matches) {
      const issued = issuedPer.get(matchId) ?? 0;
      if (issued > 0) logger.info({ overlayKeys: issued }, 'overlay keys issued');
    }
  }

  /** The match ended (released or cancelled): every key of the match is revoked in this transaction; the cache follows. */
  async onEnded(trx: Db, matchId: string, now: number, logger: Logger): Promise<boolean> {
    const lock = await lockDelivery(trx, matchId);
    if (lock?.revoke_state !== 'NONE') return false;
    const adminKeyId = await queueRevocation(trx, matchId, now);
    const keyIds = [...(adminKeyId ? [adminKeyId] : []), ...(await overlayKeyIds(trx, matchId))];
    await this.keys.revokeIn(trx, keyIds, now);
    logger.info({ keyIds }, 'match keys revoked');
    return true;
  }

  /** Claims due deliveries and revocations (not leased by a live instance) and does them; returns how many. */
  async workDue(): Promise<number> {
    const { db, clock, instanceId, settings } = this.deps;
    const claimed = await claimDueDeliveries(db, { instanceId, now: clock.now(), leaseMs: settings.leaseMs, limit: settings.concurrency });
    await Promise.all(claimed.map((d) => (d.revoke_state === 'PENDING' ? this.revokeOne(d) : this.deliverOne(d))));
    return claimed.length;
  }

  async releaseLeases(): Promise<number> {
    return releaseDeliveryLeases(this.deps.db, this.deps.instanceId, this.deps.clock.now());
  }

  private async deliverOne(delivery: AdminKeyDelivery): Promise<void> {
    const { db, clock, instanceId, panel, metrics } = this.deps;
    const logger = this.deps.logger.child({ matchId: delivery.match_id, panelServerId: delivery.panel_server_id, keyId: delivery.key_id });
    const secret = delivery.key_id === null ? null : this.keys.secretOf(delivery.key_id);
    const result: VariableUpdateResult =
      secret === null || delivery.key_id === null || !panel.updateVariables
        ? { kind: 'error', retryable: false, reason: 'NO_MASTER_SECRET', detail: 'ADMIN_HOOK_SECRET is not configured' }
        : await panel.updateVariables(
            delivery.panel_server_id,
            adminKeyVariables(this.settings, delivery.key_id, secret),
            clock.now() + Math.floor(this.deps.settings.leaseMs * DELIVERY_LEASE_SHARE),
          );
    const now = clock.now();
    const attempts = delivery.attempts + 1;
    const decision = decideDelivery(result, attempts, now, this.settings, this.deps.random());
    const saved = await db.transaction().execute(async (trx) => {
      await lockDelivery(trx, delivery.match_id);
      return saveDeliveryProgress(
        trx,
        delivery.match_id,
        instanceId,
        {
          state: decision.state,
          attempts,
          nextAt: decision.state === 'PENDING' ? decision.nextAt : null,
          failure: decision.state === 'DELIVERED' ? null : decision.failure,
        },
        now,
      );
    });
    if (!saved) return; // the match ended meanwhile: its revocation decides
    metrics.adminKeyDeliveries.inc({
      outcome: decision.state.toLowerCase(),
      reason: decision.state === 'DELIVERED' ? '' : decision.failure.reason,
    });
    if (decision.state === 'DELIVERED') logger.info({ attempts }, 'admin key delivered to the game server through the panel');
    else if (decision.state === 'FAILED')
      logger.error(
        { reason: 'ADMIN_KEY_UNDELIVERABLE', cause: decision.failure.reason, status: decision.failure.status, attempts },
        'the panel refused the admin key; the admin hook cannot arrive',
      );
    else
      logger.warn(
        { reason: decision.failure.reason, status: decision.failure.status, attempts, nextAt: new Date(decision.nextAt).toISOString() },
        'admin key delivery failed; will retry',
      );
  }

  private async revokeOne(delivery: AdminKeyDelivery): Promise<void> {
    const { db, clock } = this.deps;
    const logger = this.deps.logger.child({ matchId: delivery.match_id });
    try {
      const keyIds = [...(delivery.key_id ? [delivery.key_id] : []), ...(await overlayKeyIds(db, delivery.match_id))];
      for (const keyId of keyIds) await this.keys.revoke(keyId);
      await markRevoked(db, delivery.match_id, clock.now());
    } catch (error) {
      logger.warn({ err: error, reason: 'REVOKE_CACHE_FAILED' }, 'could not tell the key cache about a revocation; will retry');
      await retryRevocation(db, delivery.match_id, clock.now() + REVOKE_RETRY_MS, clock.now());
    }
  }
}
