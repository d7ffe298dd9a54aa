/**
 * The SQL of the match keys: the admin key's delivery row (one per match, the primary key; one key id, unique) and
 * the overlay keys (one per match and player). No secret is ever written here.
 */
import { sql } from 'kysely';
import type { Db } from '../infra/db/db.js';
import type { AdminKeyDelivery } from '../infra/db/schema.js';
import type { ClaimRequest } from './provisioning.repository.js';

/** A new delivery, due at once; false when the match already has one (a retried reservation). */
export async function insertDelivery(
  db: Db,
  d: { matchId: string; keyId: string | null; panelServerId: number; failureReason?: string; failureDetail?: string },
  now: number,
): Promise<boolean> {
  const at = new Date(now);
  const failed = d.keyId === null;
  const inserted = await db
    .insertInto('admin_key_deliveries')
    .values({
      match_id: d.matchId,
      key_id: d.keyId,
      panel_server_id: d.panelServerId,
      state: failed ? 'FAILED' : 'PENDING',
      next_at: failed ? null : at,
      failure_reason: d.failureReason ?? null,
      failure_status: null,
      failure_detail: d.failureDetail ?? null,
      delivered_at: null,
      revoked_at: null,
      lease_owner: null,
      lease_until: null,
      created_at: at,
      updated_at: at,
    })
    .onConflict((oc) => oc.column('match_id').doNothing())
    .returning('match_id')
    .executeTakeFirst();
  return inserted !== undefined;
}

export async function lockDelivery(db: Db, matchId: string): Promise<AdminKeyDelivery | undefined> {
  return db.selectFrom('admin_key_deliveries').selectAll().where('match_id', '=', matchId).forUpdate().executeTakeFirst();
}

/**
 * Claims deliveries (or revocations) that are due and not leased by a live instance; next_at is parked at the
 * lease's end until the work writes it, so work of a crashed instance is due again when its lease lapses.
 * A delivery waits for the provision's first panel poll (state past RESERVED): a server the panel does not know
 * fails the provision instead of costing a second request, and the key rides on a server known to exist.
 */
export async function claimDueDeliveries(db: Db, c: ClaimRequest): Promise<AdminKeyDelivery[]> {
  const now = new Date(c.now);
  const until = new Date(c.now + c.leaseMs);
  const claimed = await sql<AdminKeyDelivery>`
    UPDATE admin_key_deliveries SET lease_owner = ${c.instanceId}, lease_until = ${until}, next_at = ${until}
    WHERE match_id IN (
      SELECT match_id FROM admin_key_deliveries
      WHERE next_at <= ${now}
        AND (revoke_state = 'PENDING' OR (state = 'PENDING' AND EXISTS (
          SELECT 1 FROM provisions p WHERE p.match_id = admin_key_deliveries.match_id AND p.state <> 'RESERVED')))
        AND (lease_owner IS NULL OR lease_owner = ${c.instanceId} OR lease_until < ${now})
      ORDER BY next_at
      LIMIT ${c.limit}
      FOR UPDATE SKIP LOCKED)
    RETURNING *`.execute(db);
  return claimed.rows;
}

export interface DeliveryProgress {
  state: 'PENDING' | 'DELIVERED' | 'FAILED';
  attempts: number;
  nextAt: number | null;
  failure: { reason: string; status: number | null; detail: string | null } | null;
}

/** Records a delivery attempt and hands the lease back; only a delivery this instance still holds, still pending. */
export async function saveDeliveryProgress(
  db: Db,
  matchId: string,
  instanceId: string,
  p: DeliveryProgress,
  now: number,
): Promise<boolean> {
  const at = new Date(now);
  const updated = await db
    .updateTable('admin_key_deliveries')
    .set({
      state: p.state,
      attempts: p.attempts,
      next_at: p.nextAt === null ? null : new Date(p.nextAt),
      ...(p.failure
        ? { failure_reason: p.failure.reason, failure_status: p.failure.status, failure_detail: p.failure.detail }
        : { failure_reason: null, failure_status: null, failure_detail: null }),
      ...(p.state === 'DELIVERED' ? { delivered_at: at } : {}),
      lease_owner: null,
      lease_until: null,
      updated_at: at,
    })
    .where('match_id', '=', matchId)
    .where('state', '=', 'PENDING')
    .where('revoke_state', '=', 'NONE')
    .where('lease_owner', '=', instanceId)
    .returning('match_id')
    .executeTakeFirst();
  return updated !== undefined;
}

/**
 * The match ended (released, or cancelled by a failed provision): a delivery still pending is cancelled, and the
 * revocation is queued (due now). Returns the key id to revoke, or null when there is none or it was queued before.
 */
export async function queueRevocation(db: Db, matchId: string, now: number): Promise<string | null> {
  const at = new Date(now);
  const row = await db
    .updateTable('admin_key_deliveries')
    .set({
      state: sql`CASE WHEN state = 'PENDING' THEN 'CANCELLED' ELSE state END`,
      revoke_state: 'PENDING',
      next_at: at,
      updated_at: at,
    })
    .where('match_id', '=', matchId)
    .where('revoke_state', '=', 'NONE')
    .returning('key_id')
    .executeTakeFirst();
  return row?.key_id ?? null;
}

/** The revocation reached the shared cache. */
export async function markRevoked(db: Db, matchId: string, now: number): Promise<void> {
  const at = new Date(now);
  await db
    .updateTable('admin_key_deliveries')
    .set({ revoke_state: 'DONE', revoked_at: at, next_at: null, lease_owner: null, lease_until: null, updated_at: at })
    .where('match_id', '=', matchId)
    .where('revoke_state', '=', 'PENDING')
    .execute();
}

/** A revocation that could not reach the cache yet: due again at `nextAt`. */
export async function retryRevocation(db: Db, matchId: string, nextAt: number, now: number): Promise<void> {
  await db
    .updateTable('admin_key_deliveries')
    .set({ next_at: new Date(nextAt), lease_owner: null, lease_until: null, updated_at: new Date(now) })
    .where('match_id', '=', matchId)
    .where('revoke_state', '=', 'PENDING')
    .execute();
}

/** Clears this instance's delivery leases (graceful stop); parked work becomes due now. */
export async function releaseDeliveryLeases(db: Db, instanceId: string, now: number): Promise<number> {
  const at = new Date(now);
  const result = await db
    .updateTable('admin_key_deliveries')
    .set({
      next_at: sql<Date | null>`CASE WHEN next_at = lease_until THEN ${at} ELSE next_at END`,
      lease_owner: null,
      lease_until: null,
    })
    .where('lease_owner', '=', instanceId)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** The players of many matches, by match id, each list ordered by side. */
export async function matchPlayersMany(
  db: Db,
  matchIds: readonly string[],
): Promise<Map<string, { side: 'p1' | 'p2'; player_id: string }[]>> {
  const byMatch = new Map<string, { side: 'p1' | 'p2'; player_id: string }[]>();
  if (matchIds.length === 0) return byMatch;
  const rows = await db
    .selectFrom('match_players')
    .select(['match_id', 'side', 'player_id'])
    .where('match_id', 'in', [...matchIds])
    .orderBy('match_id')
    .orderBy('side')
    .execute();
  for (const { match_id, side, player_id } of rows) {
    const list = byMatch.get(match_id) ?? [];
    list.push({ side, player_id });
    byMatch.set(match_id, list);
  }
  return byMatch;
}

/** Records many overlay keys in one statement; the key ids recorded (a player who already has one keeps it). */
export async function insertOverlayKeys(
  db: Db,
  keys: readonly { matchId: string; playerId: string; side: 'p1' | 'p2'; keyId: string }[],
  now: number,
): Promise<Set<string>> {
  if (keys.length === 0) return new Set();
  const inserted = await db
    .insertInto('overlay_keys')
    .values(keys.map((k) => ({ match_id: k.matchId, player_id: k.playerId, side: k.side, key_id: k.keyId, issued_at: new Date(now) })))
    .onConflict((oc) => oc.columns(['match_id', 'player_id']).doNothing())
    .returning('key_id')
    .execute();
  return new Set(inserted.map((r) => r.key_id));
}

export async function overlayKeyIds(db: Db, matchId: string): Promise<string[]> {
  const rows = await db.selectFrom('overlay_keys').select('key_id').where('match_id', '=', matchId).execute();
  return rows.map((r) => r.key_id);
}
