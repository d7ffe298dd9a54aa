import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import { enqueueEvent } from '../infra/bus/outbox.js';
import { Topics } from '../infra/bus/topics.js';
import type { ReplayDetectedEvent, SecurityEventSink, VerificationFailedEvent } from './hook-verifier.js';

/**
 * Publishes the verifier's security events (`hmac.verification.failed`, `replay.attack.detected`) through the
 * outbox. The verifier already limits how many it reports per address and key id; nothing secret is in them.
 */
export class OutboxSecurityEventSink implements SecurityEventSink {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly clock: Clock,
    private readonly logger: Logger,
    private readonly onWrite: () => void,
  ) {}

  async onVerificationFailed(event: VerificationFailedEvent): Promise<void> {
    await enqueueEvent(this.db, {
      topic: Topics.hmacVerificationFailed,
      matchId: event.matchId ?? 'unknown',
      now: this.clock.now(),
      headers: { 'request-id': event.requestId },
      fields: {
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
      fields: {
        keyId: event.keyId,
        hookType: event.type,
        signedTs: event.ts,
        route: event.route,
        remoteAddress: event.remoteAddress,
        requestId: event.requestId,
      },
    });
    this.logger.warn({ reason: 'REPLAY', keyId: event.keyId, matchId: event.matchId, requestId: event.requestId, remoteAddress: event.remoteAddress }, 'replayed hook request refused');
    this.onWrite();
  }
}
