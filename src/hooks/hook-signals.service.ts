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
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import { expireStaleOverlays, matchStatus, storedLastSeq, storeOverlayCall } from './overlay-events.repository.js';
import type { PresenceBuffer } from './presence-buffer.js';

export type HookOutcome = 'applied' | 'violation';

/** Key-value keys of the overlay path (the adapter adds the configured prefix). */
export const overlayKeys = {
  /** Per overlay key: the highest `seq` it has sent that was not a violation (the sequence check's high-water mark). */
  seq: (keyId: string) => `overlay:seq:${keyId}`,
  /** Per match: set while the checklist is known to say `overlayConnected` (heartbeats may then be coalesced). */
  presence: (matchId: string) => `overlay:presence:${matchId}`,
};

/** The sequence high-water mark outlives any overlay key (6 h by default); refreshed by every call that raises it. */
const SEQ_MARK_TTL_MS = 24 * 60 * 60 * 1000;

type SeqCheck = { readonly ok: true; readonly raised?: { readonly to: number; readonly previous: number | null } } | { readonly ok: false };

/**
 * What an authenticated hook call means for the match: readiness signals for provisioning, overlay presence,
 * and gameplay evidence for stream-health verdicts. Every accepted overlay call is stored (request id unique).
 *
 * Two paths (docs/security.md, "Overlay presence"): a heartbeat of an overlay already known connected, in order and
 * for an active match, is presence only and is coalesced (PresenceBuffer, persisted once per tick); every other call
 * (gameplay evidence, connect/disconnect, violations, the first heartbeat after silence) is stored in its own
 * transaction before the 202. The per-key sequence check is the key-value store's atomic high-water mark on both.
 */
export class HookSignalsService {
  constructor(
    private readonly deps: {
      db: Kysely<Database>;
      kv: KeyValueStore;
      clock: Clock;
      logger: Logger;
      /** Provisioning's port: admin hook and overlay presence are readiness signals. */
      readiness: ReadinessSignals;
      onOutboxWrite: () => void;
      presence: PresenceBuffer;
      /** How long a known presence lets heartbeats be coalesced without a new one (below the heartbeat timeout). */
      presenceTtlMs: number;
    },
  ) {}

  /** @throws HookCallRejected when the body cannot be stored (NUL, a `seq` outside the column's range). */
  async apply(hook: VerifiedHook): Promise<HookOutcome> {
    const call = readHookCall(hook);
    if (!call.ok) throw new HookCallRejected(call.reason, call.field);
    if (hook.kind === 'admin') {
      const result = await this.deps.readiness.recordReadinessSignal(hook.matchId, { adminHooksOk: true });
      this.log(hook).info({ readiness: result }, 'admin hook accepted');
      return 'applied';
    }
    if (hook.type === 'overlay.heartbeat') return this.coalesceHeartbeat(hook, call.seq);
    return this.applyOverlay(hook, call.seq);
  }

  /** Persists the coalesced presence waiting in memory (tests, shutdown and the stale-overlay sweep call it). */
  flushPresence(): Promise<number> {
    return this.deps.presence.flush();
  }

  /** Coalesced heartbeats accepted and not yet persisted (kept across failed flushes). */
  get presencePending(): number {
    return this.deps.presence.pending;
  }

  /** Flushes what is left and stops taking heartbeats into the buffer (shutdown, after the HTTP server closed). */
  stopPresence(): Promise<void> {
    return this.deps.presence.stop();
  }

  private log(hook: VerifiedHook): Logger {
    return this.deps.logger.child({ requestId: hook.requestId, matchId: hook.matchId, keyId: hook.keyId, hookType: hook.type });
  }

  /**
   * The heartbeat of an overlay known connected (its presence key is live: refreshed here), of an active match, in
   * order: presence only, no transaction. Anything else takes the direct path, with the status and check found here.
   */
  private async coalesceHeartbeat(hook: VerifiedHook, seq: number | null): Promise<HookOutcome> {
    const { kv, clock, presence, presenceTtlMs } = this.deps;
    // One round trip: the match's status, the presence key (refreshed) and the sequence check go out together.
    const [statusRead, presentRead, checkRead] = await Promise.allSettled([
      matchStatus(this.deps.db, hook.matchId),
      kv.pexpire(overlayKeys.presence(hook.matchId), presenceTtlMs),
      seq === null ? ({ ok: true } as SeqCheck) : this.checkSeq(hook.keyId, seq),
    ]);
    const failed = [statusRead, presentRead, checkRead].find((r) => r.status === 'rejected');
    if (failed) {
      // The call fails (503) and its nonce is given back: a mark it raised must go back too, or the identical
      // retry would be taken for a sequence regression.
      if (checkRead.status === 'fulfilled') await this.undoSeq(hook.keyId, checkRead.value);
      throw failed.reason;
    }
    const status = (statusRead as PromiseFulfilledResult<string | undefined>).value;
    const present = (presentRead as PromiseFulfilledResult<boolean>).value;
    const check = (checkRead as PromiseFulfilledResult<SeqCheck>).value;
    if (status === undefined || TERMINAL_STATUSES.includes(status)) {
      // A violation that is not about the sequence: the mark must not have moved for it.
      await this.undoSeq(hook.keyId, check);
      return this.applyOverlay(hook, seq, { status, check: { ok: true } });
    }
    if (present && check.ok) {
      const now = clock.now();
      const row = {
        matchId: hook.matchId,
        requestId: hook.requestId,
        keyId: hook.keyId,
        type: hook.type,
        seq,
        body: hook.canonicalBody,
        receivedAt: now,
      };
      if (presence.offer(row)) return 'applied';
    }
    // Not known connected, out of sequence, or the buffer is full: the direct path, with what was found out here.
    return this.applyOverlay(hook, seq, { status, check });
  }

  /**
   * The direct path: the call and its effects in one transaction before the 202. `known`: the match's status and
   * the sequence check, already taken by the caller (a heartbeat that could not be coalesced).
   */
  private async applyOverlay(
    hook: VerifiedHook,
    seq: number | null,
    known?: { status: string | undefined; check: SeqCheck },
  ): Promise<HookOutcome> {
    const { db, clock } = this.deps;
    const log = this.log(hook);
    const now = clock.now();
    const status = known ? known.status : await matchStatus(db, hook.matchId);
    let reason: OverlayViolationPayload['reason'] | null = null;
    let check: SeqCheck = { ok: true };
    if (status === undefined) reason = 'MATCH_UNKNOWN';
    else if (TERMINAL_STATUSES.includes(status)) reason = 'MATCH_NOT_ACTIVE';
    else if (seq !== null) {
      check = known ? known.check : await this.checkSeq(hook.keyId, seq);
      if (!check.ok) reason = 'SEQUENCE_REGRESSION';
    }
    let readiness: string | undefined;
    try {
      await db.transaction().execute(async (trx) => {
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
          if (reason !== 'SEQUENCE_REGRESSION') return;
        }
        if (hook.type === 'overlay.disconnected') {
          await updateChecklist(trx, hook.matchId, { overlayConnected: false }, now);
        } else if (hook.type === 'overlay.connected' || hook.type === 'overlay.heartbeat') {
          // Presence and the readiness re-evaluation it may complete, in the same transaction as the stored call.
          readiness = await this.deps.readiness.recordReadinessSignal(hook.matchId, { overlayConnected: true, at: now }, trx);
        }
      });
    } catch (error) {
      // The effect failed: the caller's identical retry must not be taken for a sequence regression.
      await this.undoSeq(hook.keyId, check);
      throw error;
    }
    await this.notePresence(hook, reason, log);
    if (readiness === 'ready') this.deps.onOutboxWrite();
    if (reason) {
      this.deps.onOutboxWrite();
      log.warn({ reason }, 'overlay violation');
      return 'violation';
    }
    log.info({ readiness }, 'overlay event accepted');
    return 'applied';
  }

  /** After a committed presence change: the key-value presence key follows the checklist (best effort: it only enables coalescing). */
  private async notePresence(hook: VerifiedHook, reason: OverlayViolationPayload['reason'] | null, log: Logger): Promise<void> {
    if (reason !== null && reason !== 'SEQUENCE_REGRESSION') return;
    const key = overlayKeys.presence(hook.matchId);
    try {
      if (hook.type === 'overlay.disconnected') await this.deps.kv.del(key);
      else if (hook.type === 'overlay.connected' || hook.type === 'overlay.heartbeat')
        await this.deps.kv.set(key, '1', { px: this.deps.presenceTtlMs });
    } catch (error) {
      log.warn({ err: error }, 'overlay presence key not updated; the next heartbeat takes the direct path');
    }
  }

  /** The per-key sequence check: atomically raises the key's high-water mark, seeded from PostgreSQL when unknown. */
  private async checkSeq(keyId: string, seq: number): Promise<SeqCheck> {
    const key = overlayKeys.seq(keyId);
    let result = await this.deps.kv.raiseHighWater(key, seq, SEQ_MARK_TTL_MS);
    if (result.outcome === 'unknown') {
      // Held rows first, then PostgreSQL: a flush removes rows only after its commit, so a row committed between
      // the two reads is still counted by one of them (the other order would miss it and seed the mark too low).
      const pending = this.deps.presence.pendingMaxSeq(keyId);
      const stored = await storedLastSeq(this.deps.db, keyId);
      const floor = stored === null ? pending : pending === null ? stored : Math.max(stored, pending);
      result = await this.deps.kv.raiseHighWater(key, seq, SEQ_MARK_TTL_MS, floor);
    }
    if (result.outcome === 'raised') return { ok: true, raised: { to: seq, previous: result.previous } };
    return { ok: false };
  }

  private async undoSeq(keyId: string, check: SeqCheck): Promise<void> {
    if (!check.ok || !check.raised) return;
    try {
      await this.deps.kv.restoreHighWater(overlayKeys.seq(keyId), check.raised.to, check.raised.previous);
    } catch (error) {
      this.deps.logger.warn(
        { err: error, keyId },
        'sequence mark not restored after a failed call; its retry may be reported as a regression',
      );
    }
  }

  /** Marks overlays silent for longer than the heartbeat timeout as disconnected (provisioning monitor tick). */
  async expireStaleOverlays(heartbeatTimeoutMs: number): Promise<number> {
    // Coalesced heartbeats first: an overlay that kept beating must not be expired for want of a flush.
    await this.deps.presence.flush();
    const now = this.deps.clock.now();
    return expireStaleOverlays(this.deps.db, now, now - heartbeatTimeoutMs);
  }
}
