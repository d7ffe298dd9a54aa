/**
 * Verdict I/O: the reads its evidence needs (stored samples, overlay events), and the eventful match's unit of
 * work: side states, samples, episodes, warnings, checklist and, when due, the verdict (match status, evidence,
 * enforcement, event) commit or vanish together in one transaction.
 */
import { randomUUID } from 'node:crypto';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Db } from '../infra/db/db.js';
import type { Database } from '../infra/db/schema.js';
import type { EvidenceBundle, EvidenceSample } from './evidence-policy.js';
import { enqueueStreamVerdict, enqueueStreamWarning, type StreamVerdictEvent, type StreamWarning } from './outbound-events.js';
import type { GraceEpisode, Side, StreamChecklist } from './policy.js';
import { insertSamples, writeChecklists, writeSides, type SampleRow, type SideWrite } from './stream-health.repository.js';

export interface EpisodeWrite {
  readonly episode: GraceEpisode;
  /** Stored beside the episode for operators. */
  readonly graceDeadlineAt: number;
}

export interface VerdictWrite extends StreamVerdictEvent {
  readonly bundle: EvidenceBundle;
}

export interface MatchCommit {
  readonly matchId: string;
  readonly at: number;
  /** Applied all or nothing: a side another sweep moved on makes the whole commit stale. */
  readonly sides: readonly SideWrite[];
  readonly samples: readonly SampleRow[];
  readonly episodes: readonly EpisodeWrite[];
  readonly warnings: readonly StreamWarning[];
  readonly checklist: StreamChecklist | null;
  readonly verdict: VerdictWrite | null;
}

export type MatchCommitResult =
  /** Everything written; `evidenceId` of the verdict, if one was due. */
  | { readonly outcome: 'committed'; readonly evidenceId: string | null }
  /** The state was written but the match left IN_PROGRESS meanwhile: no verdict. */
  | { readonly outcome: 'verdict-skipped'; readonly reason: 'MATCH_NOT_IN_PROGRESS' }
  /** Rolled back: another sweep moved a side on since it was read. */
  | { readonly outcome: 'stale'; readonly reason: 'STALE_STATE' }
  /** Rolled back: the episode already has its verdict. */
  | { readonly outcome: 'already-enforced'; readonly reason: 'ALREADY_ENFORCED'; readonly message: string };

class Rollback extends Error {
  constructor(readonly result: MatchCommitResult) {
    super(result.outcome);
  }
}

/** `verdictWritten` runs inside the transaction after the verdict's writes (a test seam: throwing rolls everything back). */
export async function commitMatchState(db: Kysely<Database>, commit: MatchCommit, verdictWritten?: () => void): Promise<MatchCommitResult> {
  const { matchId, at } = commit;
  try {
    return await db.transaction().execute(async (trx): Promise<MatchCommitResult> => {
      const ok = await writeSides(trx, commit.sides, at);
      if (ok.size !== commit.sides.length) throw new Rollback({ outcome: 'stale', reason: 'STALE_STATE' });
      await insertSamples(trx, commit.samples);
      for (const e of commit.episodes) await upsertEpisode(trx, e, at);
      for (const w of commit.warnings) await enqueueStreamWarning(trx, matchId, at, w);
      if (commit.checklist) await writeChecklists(trx, [{ matchId, fields: commit.checklist }], at);
      if (!commit.verdict) return { outcome: 'committed', evidenceId: null };
      const evidenceId = await writeVerdict(trx, matchId, at, commit.verdict);
      if (evidenceId === null) return { outcome: 'verdict-skipped', reason: 'MATCH_NOT_IN_PROGRESS' };
      verdictWritten?.();
      return { outcome: 'committed', evidenceId };
    });
  } catch (err) {
    if (err instanceof Rollback) return err.result;
    throw err;
  }
}

/**
 * Moves the match to FORFEITED/DISPUTED (only from IN_PROGRESS: the guard that serializes verdicts), stores the
 * evidence, the enforcement (unique per episode) and the event. Null when the match is no longer in progress.
 */
async function writeVerdict(trx: Transaction<Database>, matchId: string, at: number, v: VerdictWrite): Promise<string | null> {
  const moved = await trx
    .updateTable('matches')
    .set({ status: v.verdict === 'FORFEIT' ? 'FORFEITED' : 'DISPUTED', updated_at: new Date(at) })
    .where('id', '=', matchId)
    .where('mode', '=', 'VERIFIED_STREAM')
    .where('status', '=', 'IN_PROGRESS')
    .returning('id')
    .executeTakeFirst();
  if (!moved) return null;
  const evidenceId = randomUUID();
  await trx
    .insertInto('evidence')
    .values({
      id: evidenceId,
      match_id: matchId,
      side: v.side,
      episode_id: v.episodeId,
      kind: 'stream-health-verdict',
      bundle: JSON.stringify(v.bundle),
      created_at: new Date(at),
    })
    .execute();
  const enforced = await trx
    .insertInto('enforcements')
    .values({
      id: randomUUID(),
      match_id: matchId,
      side: v.side,
      episode_id: v.episodeId,
      verdict: v.verdict,
      reason: v.reason,
      evidence_id: evidenceId,
      created_at: new Date(at),
    })
    .onConflict((oc) => oc.column('episode_id').doNothing())
    .returning('id')
    .executeTakeFirst();
  if (!enforced)
    throw new Rollback({
      outcome: 'already-enforced',
      reason: 'ALREADY_ENFORCED',
      message: `episode ${v.episodeId} already has a verdict`,
    });
  await enqueueStreamVerdict(trx, matchId, at, v, evidenceId);
  return evidenceId;
}

/** Records an episode (opened, still open, closed or settled by a verdict) for operators and evidence. */
async function upsertEpisode(trx: Transaction<Database>, { episode, graceDeadlineAt }: EpisodeWrite, now: number): Promise<void> {
  const data = JSON.stringify({ ...episode, graceDeadlineAt });
  const closedAt = episode.closedAt === null ? null : new Date(episode.closedAt);
  await trx
    .insertInto('grace_episodes')
    .values({
      id: episode.id,
      match_id: episode.matchId,
      side: episode.side,
      state: episode.state,
      opened_at: new Date(episode.openedAt),
      closed_at: closedAt,
      data,
      updated_at: new Date(now),
    })
    .onConflict((oc) => oc.column('id').doUpdateSet({ state: episode.state, closed_at: closedAt, data, updated_at: new Date(now) }))
    .execute();
}

// ─── evidence reads (outside any transaction) ────────────────────────────────────────────────────────────────

/** Stored samples of one side in [from, to], oldest first, at most `limit` (the newest ones win when cut). */
export async function readSamples(db: Db, matchId: string, side: Side, from: number, to: number, limit: number): Promise<EvidenceSample[]> {
  const rows = await db
    .selectFrom('stream_samples')
    .select(['side', 'episode_id', 'outcome', 'observed_at', 'sample'])
    .where('match_id', '=', matchId)
    .where('side', '=', side)
    .where('observed_at', '>=', new Date(from))
    .where('observed_at', '<=', new Date(to))
    .orderBy('observed_at', 'desc')
    .orderBy('id', 'desc')
    .limit(limit)
    .execute();
  return rows.reverse().map((r) => ({
    side: r.side,
    episodeId: r.episode_id,
    outcome: r.outcome,
    observedAt: r.observed_at.toISOString(),
    sample: r.sample,
  }));
}

export const GAMEPLAY_PROGRESS = 'gameplay.progress';

export interface OverlayWindow {
  /** `gameplay.progress` events accepted in the window (violating calls are stored as `violation:…` and never count). */
  readonly gameplayProgress: number;
  /** Any accepted overlay events in the window. */
  readonly total: number;
  /** The window's events, oldest first, at most `limit`. */
  readonly events: readonly { requestId: string; keyId: string; type: string; seq: number | null; receivedAt: string; body: unknown }[];
}

export async function readOverlayWindow(db: Db, matchId: string, from: number, to: number, limit: number): Promise<OverlayWindow> {
  const counts = await db
    .selectFrom('overlay_events')
    .select([sql<number>`count(*) filter (where type = ${GAMEPLAY_PROGRESS})::int`.as('progress'), sql<number>`count(*)::int`.as('total')])
    .where('match_id', '=', matchId)
    .where('received_at', '>=', new Date(from))
    .where('received_at', '<=', new Date(to))
    .executeTakeFirst();
  const events = await db
    .selectFrom('overlay_events')
    .select(['request_id', 'key_id', 'type', 'seq', 'received_at', 'body'])
    .where('match_id', '=', matchId)
    .where('received_at', '>=', new Date(from))
    .where('received_at', '<=', new Date(to))
    .orderBy('received_at')
    .orderBy('id')
    .limit(limit)
    .execute();
  return {
    gameplayProgress: Number(counts?.progress ?? 0),
    total: Number(counts?.total ?? 0),
    events: events.map((e) => ({
      requestId: e.request_id,
      keyId: e.key_id,
      type: e.type,
      seq: e.seq,
      receivedAt: e.received_at.toISOString(),
      body: e.body,
    })),
  };
}
