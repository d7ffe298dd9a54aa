import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import { enqueueEvent } from '../infra/bus/outbox.js';
import type { OverlayViolationPayload } from '../events/outbound.js';
import { Topics } from '../events/topics.js';
import type { ReadinessSignals } from '../provisioning/readiness.port.js';
import type { VerifiedHook } from '../security/hook-verifier.js';
import { TERMINAL_STATUSES } from '../matches/match.schemas.js';
import { updateChecklist } from '../matches/match.repository.js';
import { HookCallRejected, readHookCall } from './hook-call.policy.js';
import { expireStaleOverlays, lockKeyAndReadLastSeq, matchStatus, storeOverlayCall } from './overlay-events.repository.js';

export type HookOutcome = 'applied' | 'violation';

/**
 * What an authenticated hook call means for the match: readiness signals for provisioning, overlay presence,
 * and gameplay evidence for stream-health verdicts. Every accepted overlay call is stored (request id unique).
 */
export class HookSignalsService {
  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      clock: Clock;
      logger: Logger;
      /** Provisioning's port: admin hook and overlay presence are readiness signals. */
      readiness: ReadinessSignals;
      onOutboxWrite: () => void;
    },
  ) {}

  /** @throws HookCallRejected when the body cannot be stored (NUL, a `seq` outside the column's range). */
  async apply(hook: VerifiedHook): Promise<HookOutcome> {
    const call = readHookCall(hook);
    if (!call.ok) throw new HookCallRejected(call.reason, call.field);
    const log = this.deps.logger.child({ requestId: hook.requestId, matchId: hook.matchId, keyId: hook.keyId, hookType: hook.type });
    if (hook.kind === 'admin') {
      const result = await this.deps.readiness.recordReadinessSignal(hook.matchId, { adminHooksOk: true });
      log.info({ readiness: result }, 'admin hook accepted');
      return 'applied';
    }
    return this.applyOverlay(hook, call.seq, log);
  }

  private async applyOverlay(hook: VerifiedHook, seq: number | null, log: Logger): Promise<HookOutcome> {
    const { db, clock } = this.deps;
    const now = clock.now();
    let readiness: string | undefined;
    const violation = await db.transaction().execute(async (trx) => {
      const status = await matchStatus(trx, hook.matchId);
      let reason: OverlayViolationPayload['reason'] | null = null;
      if (status === undefined) reason = 'MATCH_UNKNOWN';
      else if (TERMINAL_STATUSES.includes(status)) reason = 'MATCH_NOT_ACTIVE';
      else if (seq !== null) {
        const last = await lockKeyAndReadLastSeq(trx, hook.keyId);
        if (last !== null && seq <= last) reason = 'SEQUENCE_REGRESSION';
      }
      await storeOverlayCall(trx, {
        matchId: hook.matchId,
        requestId: hook.requestId,
        keyId: hook.keyId,
        // A call that violates the overlay rules is kept for review but never counts as evidence of play.
        type: reason ? `violation:${hook.type}` : hook.type,
        seq,
        body: hook.canonicalBody,
        receivedAt: now,
      });
      if (reason) {
        await enqueueEvent(trx, {
          topic: Topics.overlayViolation,
          matchId: hook.matchId,
          now,
          headers: { 'request-id': hook.requestId },
          payload: { reason, keyId: hook.keyId, hookType: hook.type, seq, requestId: hook.requestId },
        });
        // Presence still counts after a sequence regression (an agent that restarted its counter is still there);
        // for an unknown or finished match nothing applies.
        if (reason !== 'SEQUENCE_REGRESSION') return reason;
      }
      if (hook.type === 'overlay.disconnected') {
        await updateChecklist(trx, hook.matchId, { overlayConnected: false }, now);
      } else if (hook.type === 'overlay.connected' || hook.type === 'overlay.heartbeat') {
        // Presence and the readiness re-evaluation it may complete, in the same transaction as the stored call.
        readiness = await this.deps.readiness.recordReadinessSignal(hook.matchId, { overlayConnected: true, at: now }, trx);
      }
      return reason;
    });
    if (readiness === 'ready') this.deps.onOutboxWrite();
    if (violation) {
      this.deps.onOutboxWrite();
      log.warn({ reason: violation }, 'overlay violation');
      return 'violation';
    }
    log.info({ readiness }, 'overlay event accepted');
    return 'applied';
  }

  /** Marks overlays silent for longer than the heartbeat timeout as disconnected (provisioning monitor tick). */
  async expireStaleOverlays(heartbeatTimeoutMs: number): Promise<number> {
    const now = this.deps.clock.now();
    return expireStaleOverlays(this.deps.db, now, now - heartbeatTimeoutMs);
  }
}
