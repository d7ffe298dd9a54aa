import { sql } from 'kysely';
import type { Db } from '../infra/db/db.js';

/** An accepted overlay call as stored for review and as gameplay evidence (request id unique). */
export interface OverlayCallRow {
  matchId: string;
  requestId: string;
  keyId: string;
  /** `violation:<type>` for a call that broke the overlay rules: kept for review, never evidence of play. */
  type: string;
  seq: number | null;
  body: string;
  receivedAt: number;
}

export async function matchStatus(db: Db, matchId: string): Promise<string | undefined> {
  const row = await db.selectFrom('matches').select(['status']).where('id', '=', matchId).executeTakeFirst();
  return row?.status;
}

/**
 * The highest sequence number a key has sent that was not itself a violation, as stored: the floor that seeds the
 * key's high-water mark in the key-value store when the store holds none (first call, or after a store restart).
 */
export async function storedLastSeq(db: Db, keyId: string): Promise<number | null> {
  const last = await db
    .selectFrom('overlay_events')
    .select(sql<number | null>`max(seq)`.as('seq'))
    .where('key_id', '=', keyId)
    // A bogus sequence number that was itself a violation must not poison every later call.
    .where('type', 'not like', 'violation:%')
    .executeTakeFirst();
  return last?.seq === null || last?.seq === undefined ? null : Number(last.seq);
}

export async function storeOverlayCall(trx: Db, call: OverlayCallRow): Promise<void> {
  await storeOverlayCalls(trx, [call]);
}

/** Stores a batch of coalesced presence calls in one statement (request ids unique: a row flushed twice is kept once). */
export async function storeOverlayCalls(trx: Db, calls: readonly OverlayCallRow[]): Promise<void> {
  if (calls.length === 0) return;
  await trx
    .insertInto('overlay_events')
    .values(
      calls.map((call) => ({
        match_id: call.matchId,
        request_id: call.requestId,
        key_id: call.keyId,
        type: call.type,
        seq: call.seq,
        body: call.body,
        received_at: new Date(call.receivedAt),
      })),
    )
    .onConflict((oc) => oc.column('request_id').doNothing())
    .execute();
}

/**
 * Moves `overlay_last_seen_at` forward to the latest coalesced heartbeat of each match, only where the checklist
 * still says the overlay is connected (a disconnect or an expiry since then wins: presence is set again only by a
 * call on the direct path). Never moves it back.
 */
export async function touchOverlayPresence(trx: Db, lastSeen: ReadonlyMap<string, number>, now: number): Promise<void> {
  if (lastSeen.size === 0) return;
  const ids = [...lastSeen.keys()];
  const seen = ids.map((id) => new Date(lastSeen.get(id) as number).toISOString());
  await sql`UPDATE checklists c
    SET overlay_last_seen_at = GREATEST(c.overlay_last_seen_at, v.seen), updated_at = ${new Date(now)}
    FROM unnest(${ids}::text[], ${seen}::timestamptz[]) AS v(match_id, seen)
    WHERE c.match_id = v.match_id AND c.overlay_connected`.execute(trx);
}

/** Marks overlays silent since before `silentSince` as disconnected; returns how many. */
export async function expireStaleOverlays(db: Db, now: number, silentSince: number): Promise<number> {
  const result = await db
    .updateTable('checklists')
    .set({ overlay_connected: false, updated_at: new Date(now) })
    .where('overlay_connected', '=', true)
    .where('overlay_last_seen_at', '<', new Date(silentSince))
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}
