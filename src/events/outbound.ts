import type { EnvelopeField } from './envelope.js';
import type { InputEvent, ServerReleased, ServerReserved, StreamHealthCheck } from './inbound.js';
import type { Topics } from './topics.js';

/**
 * One payload type per topic: the fields beside the envelope (docs/events.md). `enqueueEvent` takes
 * `EventPayloads[topic]`, so the compiler checks every emitted event against its topic's contract.
 */

export type PlayerSide = 'p1' | 'p2';
export type ProvisionFailureReason = 'TIMEOUT' | 'INSTALL_FAILED' | 'PANEL_NOT_FOUND' | 'PANEL_ERROR';
export type StreamViolationReason = 'STREAM_OFFLINE' | 'TITLE_MISSING_MATCH_ID' | 'FPS_BELOW_MIN' | 'BITRATE_BELOW_MIN';
export type VerdictReason = StreamViolationReason | 'BOTH_SIDES_VIOLATING';
export type CheckOutcome = 'ok' | 'violation' | 'unknown';

export interface ServerReadyPayload {
  panelServerId: number;
  reservedEventId: string | null;
  readyAt: string;
  checklist: { serverInstalled: boolean; adminHooksOk: boolean; overlayConnected: boolean };
}

export interface ServerFailedPayload {
  panelServerId: number;
  reason: ProvisionFailureReason;
  detail: string;
  reservedEventId: string | null;
}

export interface RefundPayload {
  playerId: string;
  amountCents: number;
  currency: string;
}

export interface MatchCancelledPayload {
  reason: 'SERVER_FAILED';
  failureReason: ProvisionFailureReason;
  serverFailedEventId: string | null;
  refunds: RefundPayload[];
}

export interface StreamHealthWarnPayload {
  side: PlayerSide;
  episodeId: string;
  reason: StreamViolationReason;
  violations: readonly StreamViolationReason[];
  checks: { live: CheckOutcome; title: CheckOutcome; fps: CheckOutcome; bitrate: CheckOutcome };
  openedAt: string;
  graceMs: number;
  graceDeadlineAt: string;
}

/** `match.forfeit` and `match.dispute` share one shape. */
export interface VerdictPayload {
  side: PlayerSide;
  reason: VerdictReason;
  evidenceId: string;
  episodeId: string;
  episodeIds: readonly string[];
  verdict: 'FORFEIT' | 'DISPUTE';
  rule:
    | 'BOTH_SIDES_VIOLATING_DISPUTE'
    | 'GRACE_EXPIRED_WITH_GAMEPLAY_FORFEIT'
    | 'GRACE_EXPIRED_WITHOUT_GAMEPLAY_DISPUTE'
    | 'GRACE_EXPIRED_POLICY_DISPUTE';
  /** The enforcement policy that judged the match (its enforcementMode). */
  policy: string;
  gameplayProgressEvents: number;
  decidedAt: string;
}

export interface OverlayViolationPayload {
  reason: 'MATCH_UNKNOWN' | 'MATCH_NOT_ACTIVE' | 'SEQUENCE_REGRESSION';
  keyId: string;
  hookType: string;
  seq: number | null;
  requestId: string;
}

export interface HmacVerificationFailedPayload {
  reason: string;
  status: number;
  detail?: string;
  keyId: string | null;
  route: string;
  remoteAddress: string;
  requestId: string;
}

/** One replayed request, or (`summary: true`) the replays of one key that arrived past the failure budget. */
export type ReplayAttackDetectedPayload =
  | {
      keyId: string;
      hookType: string;
      signedTs: number;
      route: string;
      remoteAddress: string;
      requestId: string;
    }
  | {
      keyId: string;
      summary: true;
      count: number;
      firstAt: string;
      lastAt: string;
      route: string;
      remoteAddresses: readonly string[];
    };

export interface DeadLetterPayload {
  deadLetterId: string;
  sourceTopic: string;
  partition: number;
  offset: string;
  sourceEventId: string | null;
  reason: string;
  detail: string;
  raw: string;
  rawTruncated: boolean;
}

/** An input event's own fields (replayed through the internal API): what its schema holds beside the envelope. */
type InputPayload<E extends InputEvent> = Omit<E, EnvelopeField>;

export interface EventPayloads {
  [Topics.serverReserved]: InputPayload<ServerReserved>;
  [Topics.serverReleased]: InputPayload<ServerReleased>;
  [Topics.streamHealthCheck]: InputPayload<StreamHealthCheck>;
  [Topics.serverReady]: ServerReadyPayload;
  [Topics.serverFailed]: ServerFailedPayload;
  [Topics.matchCancelled]: MatchCancelledPayload;
  [Topics.streamHealthWarn]: StreamHealthWarnPayload;
  [Topics.matchForfeit]: VerdictPayload;
  [Topics.matchDispute]: VerdictPayload;
  [Topics.overlayViolation]: OverlayViolationPayload;
  [Topics.hmacVerificationFailed]: HmacVerificationFailedPayload;
  [Topics.replayAttackDetected]: ReplayAttackDetectedPayload;
  [Topics.deadLetter]: DeadLetterPayload;
}

export type EventTopic = keyof EventPayloads;
