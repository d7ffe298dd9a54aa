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
 * Serializes one key's calls for the rest of the transaction (two concurrent calls must not both pass against the
 * same max) and reads the highest sequence number it has sent that was not itself a violation.
 */
export async function lockKeyAndReadLastSeq(trx: Db, keyId: string): Promise<number | null> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${keyId}, 0))`.execute(trx);
  const last = await trx
    .selectFrom('overlay_events')
    .select(sql<number | null>`max(seq)`.as('seq'))
    .where('key_id', '=', keyId)
    // A bogus sequence number that was itself a violation must not poison every later call.
    .where('type', 'not like', 'violation:%')
    .executeTakeFirst();
  return last?.seq === null || last?.seq === undefined ? null : Number(last.seq);
}

export async function storeOverlayCall(trx: Db, call: OverlayCallRow): Promise<void> {
  await trx
    .insertInto('overlay_events')
    .values({
      match_id: call.matchId,
      request_id: call.requestId,
      key_id: call.keyId,
      type: call.type,
      seq: call.seq,
      body: call.body,
      received_at: new Date(call.receivedAt),
    })
    .onConflict((oc) => oc.column('request_id').doNothing())
    .execute();
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
