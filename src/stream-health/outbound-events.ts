/** The events stream health emits, written into the outbox inside the caller's transaction: the feature's only enqueueEvent calls. */
import type { StreamHealthWarnPayload, VerdictPayload } from '../events/outbound.js';
import { Topics } from '../events/topics.js';
import { enqueueEvent } from '../infra/bus/outbox.js';
import type { Db } from '../infra/db/db.js';

/** `stream.health.warn`: a side's grace episode opened (once per episode). */
export type StreamWarning = StreamHealthWarnPayload;

export async function enqueueStreamWarning(db: Db, matchId: string, at: number, warning: StreamWarning): Promise<void> {
  await enqueueEvent(db, {
    topic: Topics.streamHealthWarn,
    matchId,
    now: at,
    dedupeKey: `stream.health.warn:${warning.episodeId}`,
    payload: warning,
  });
}

/** `match.forfeit` / `match.dispute`: a verdict on the match (once per episode named); the evidence id and time come with the write. */
export type StreamVerdictEvent = Omit<VerdictPayload, 'evidenceId' | 'decidedAt'>;

export async function enqueueStreamVerdict(db: Db, matchId: string, at: number, v: StreamVerdictEvent, evidenceId: string): Promise<void> {
  await enqueueEvent(db, {
    topic: v.verdict === 'FORFEIT' ? Topics.matchForfeit : Topics.matchDispute,
    matchId,
    now: at,
    dedupeKey: `stream.verdict:${v.episodeId}`,
    payload: {
      side: v.side,
      reason: v.reason,
      evidenceId,
      episodeId: v.episodeId,
      episodeIds: v.episodeIds,
      verdict: v.verdict,
      rule: v.rule,
      policy: v.policy,
      gameplayProgressEvents: v.gameplayProgressEvents,
      decidedAt: new Date(at).toISOString(),
    },
  });
}
