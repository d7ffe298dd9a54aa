import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import { enqueueEvent } from '../infra/bus/outbox.js';
import { Topics } from '../events/topics.js';
import type { ReplayDetectedEvent, ReplaySummaryEvent, SecurityEventSink, VerificationFailedEvent } from './hook-verifier.js';

/**
 * Publishes the verifier's security events (`hmac.verification.failed`, `replay.attack.detected`) through the
 * outbox. The verifier already limits how many it reports per address and key id; nothing secret is in them.
 */
export class OutboxSecurityEventSink implements SecurityEventSink {
  private windowStart = 0;
  private inWindow = 0;
  private droppedInWindow = 0;

  /**
   * `maxFailureEventsPerMin` caps `hmac.verification.failed` events per instance: the verifier limits them per
   * address and key id, but an attacker rotating addresses must not turn refused requests into unbounded writes.
   * Refusals past the cap are still counted in `flock_hmac_verifications_total` and answered as usual.
   */
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly onWrite: () => void,
    private readonly maxFailureEventsPerMin = 300,
  ) {}

  private admit(): boolean {
    const now = this.clock.now();
    if (now - this.windowStart >= 60_000) {
      if (this.droppedInWindow > 0) {
        this.logger.warn(
          { reason: 'SECURITY_EVENTS_CAPPED', dropped: this.droppedInWindow },
          'hmac.verification.failed events were capped in the last window',
        );
      }
      this.windowStart = now;
      this.inWindow = 0;
      this.droppedInWindow = 0;
    }
    if (this.inWindow >= this.maxFailureEventsPerMin) {
      this.droppedInWindow++;
      return false;
    }
    this.inWindow++;
    return true;
  }

  async onVerificationFailed(event: VerificationFailedEvent): Promise<void> {
    if (!this.admit()) return;
    await enqueueEvent(this.db, {
      topic: Topics.hmacVerificationFailed,
      matchId: event.matchId ?? 'unknown',
      now: this.clock.now(),
      headers: { 'request-id': event.requestId },
      payload: {
        reason: event.reason,
        status: event.status,
        ...(event.detail ? { detail: event.detail } : {}),
        keyId: event.keyId ?? null,
        route: event.route,
        remoteAddress: event.remoteAddress,
        requestId: event.requestId,
      },
    });
    this.onWrite();
  }

  async onReplayDetected(event: ReplayDetectedEvent): Promise<void> {
    await enqueueEvent(this.db, {
      topic: Topics.replayAttackDetected,
      matchId: event.matchId,
      now: this.clock.now(),
      headers: { 'request-id': event.requestId },
      // One event per replayed nonce: a flood of the same replay is one incident.
      dedupeKey: `replay:${event.keyId}:${event.nonce}`,
      payload: {
        keyId: event.keyId,
        hookType: event.type,
        signedTs: event.ts,
        route: event.route,
        remoteAddress: event.remoteAddress,
        requestId: event.requestId,
      },
    });
    this.logger.warn(
      { reason: 'REPLAY', keyId: event.keyId, matchId: event.matchId, requestId: event.requestId, remoteAddress: event.remoteAddress },
      'replayed hook request refused',
    );
    this.onWrite();
  }

  /** Replays answered 429 past the failure budget: one event per key and summary, never capped. */
  async onReplaysSummarized(summary: ReplaySummaryEvent): Promise<void> {
    await enqueueEvent(this.db, {
      topic: Topics.replayAttackDetected,
      matchId: summary.matchId,
      now: this.clock.now(),
      dedupeKey: `replay-summary:${summary.keyId}:${summary.firstAt}`,
      payload: {
        keyId: summary.keyId,
        summary: true,
        count: summary.count,
        firstAt: new Date(summary.firstAt).toISOString(),
        lastAt: new Date(summary.lastAt).toISOString(),
        route: summary.route,
        remoteAddresses: summary.remoteAddresses,
      },
    });
    this.onWrite();
  }
}
