/**
 * Provisioning's database I/O, and nothing else: the `provisions` row through its states, the fleet-wide claim
 * of due work (leases), lease hand-back, and the overdue/active queries of the deadline monitor.
 */
import { sql } from 'kysely';
import type { Db } from '../infra/db/db.js';
import type { CleanupState, NewProvision, Provision } from '../infra/db/schema.js';
import { ACTIVE_STATES, type FailureReason } from './policy.js';

/** Locks and returns the provision of a match (undefined when there is none). */
export async function lockProvision(db: Db, matchId: string): Promise<Provision | undefined> {
  return db.selectFrom('provisions').selectAll().where('match_id', '=', matchId).forUpdate().executeTakeFirst();
}

/** Locks and returns the provisions of these matches (absent ones are simply missing), in match_id order. */
export async function lockProvisions(db: Db, matchIds: readonly string[]): Promise<Map<string, Provision>> {
  if (matchIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('provisions')
    .selectAll()
    .where('match_id', 'in', [...matchIds])
    .orderBy('match_id')
    .forUpdate()
    .execute();
  return new Map(rows.map((r) => [r.match_id, r]));
}

const EMPTY_PROVISION = {
  reserved_event_id: null,
  reserved_at: null,
  deadline_at: null,
  next_poll_at: null,
  poll_failures: 0,
  last_panel_status: null,
  ready_at: null,
  failed_at: null,
  failure_reason: null,
  released_event_id: null,
  released_at: null,
  cleanup_state: 'NONE',
  cleanup_attempts: 0,
  cleanup_next_at: null,
  lease_owner: null,
  lease_until: null,
} as const;

export interface Reservation {
  matchId: string;
  panelServerId: number;
  eventId: string;
}

async function insertProvision(
  db: Db,
  r: Reservation,
  at: Date,
  fields: Pick<NewProvision, 'state'> & Partial<NewProvision>,
): Promise<void> {
  await db
    .insertInto('provisions')
    .values({ ...EMPTY_PROVISION, match_id: r.matchId, panel_server_id: r.panelServerId, updated_at: at, ...fields })
    .execute();
}

/** A new reservation, due for its first poll at once. */
export async function insertReserved(db: Db, r: Reservation, now: number, deadlineAt: number, firstPollAt = now): Promise<void> {
  const at = new Date(now);
  await insertProvision(db, r, at, {
    state: 'RESERVED',
    reserved_event_id: r.eventId,
    reserved_at: at,
    deadline_at: new Date(deadlineAt),
    next_poll_at: new Date(firstPollAt),
  });
}

/** New reservations in one statement (as insertReserved on each), all reserved at `now`. */
export async function insertReservedMany(
  db: Db,
  reservations: readonly Reservation[],
  now: number,
  deadlineAt: number,
  firstPollAt = now,
): Promise<void> {
  const at = new Date(now);
  for (let i = 0; i < reservations.length; i += INSERT_CHUNK) {
    await db
      .insertInto('provisions')
      .values(
        reservations.slice(i, i + INSERT_CHUNK).map((r) => ({
          ...EMPTY_PROVISION,
          match_id: r.matchId,
          panel_server_id: r.panelServerId,
          updated_at: at,
          state: 'RESERVED' as const,
          reserved_event_id: r.eventId,
          reserved_at: at,
          deadline_at: new Date(deadlineAt),
          next_poll_at: new Date(firstPollAt),
        })),
      )
      .execute();
  }
}

/** Rows per multi-row INSERT (20 columns each stays far below PostgreSQL's 65,535 bind parameters). */
const INSERT_CHUNK = 1_000;

/** A release that overtook its reservation: remembered as released, panel cleanup due now. */
export async function insertReleasedBeforeReserved(db: Db, r: Reservation, now: number): Promise<void> {
  const at = new Date(now);
  await insertProvision(db, r, at, {
    state: 'RELEASED',
    released_event_id: r.eventId,
    released_at: at,
    cleanup_state: 'PENDING',
    cleanup_next_at: at,
  });
}

/** Remembers the reservation of an already released server (so it is never provisioned). */
export async function rememberLateReservation(db: Db, matchId: string, eventId: string, now: number): Promise<void> {
  await db
    .updateTable('provisions')
    .set({ reserved_event_id: eventId, updated_at: new Date(now) })
    .where('match_id', '=', matchId)
    .execute();
}

/** Leaving the active states: no more polls, the lease handed back, and the panel cleanup that end needs. */
function endOfPolling(at: Date, cleanup: 'DONE' | 'PENDING') {
  return {
    next_poll_at: null,
    lease_owner: null,
    lease_until: null,
    cleanup_state: cleanup,
    cleanup_next_at: cleanup === 'DONE' ? null : at,
    updated_at: at,
  };
}

export async function markReleased(db: Db, matchId: string, eventId: string, cleanup: 'DONE' | 'PENDING', now: number): Promise<void> {
  const at = new Date(now);
  await db
    .updateTable('provisions')
    .set({ state: 'RELEASED', released_event_id: eventId, released_at: at, ...endOfPolling(at, cleanup) })
    .where('match_id', '=', matchId)
    .execute();
}

export interface ClaimRequest {
  instanceId: string;
  now: number;
  leaseMs: number;
  limit: number;
}

/**
 * Which rows each kind of work claims, in which order, and the column a claim parks at `lease_until` until the work
 * writes it. A kind may claim from several sets, one after the other (each a partial index read in order up to the
 * limit: a claim costs the same with 100 or 100,000 provisions due).
 */
const CLAIMS = {
  poll: {
    parked: 'next_poll_at',
    sets: [
      // A provision waiting for signals is polled once more at its deadline, so it times out without the monitor
      // (index provisions_waiting_deadline); then the due polls, most overdue first (index provisions_due).
      { due: (now: Date) => sql`state = 'WAITING_SIGNALS' AND deadline_at <= ${now}`, order: 'deadline_at' },
      { due: (now: Date) => sql`state IN ('RESERVED', 'INSTALLING') AND next_poll_at <= ${now}`, order: 'next_poll_at' },
    ],
  },
  cleanup: {
    parked: 'cleanup_next_at',
    sets: [{ due: (now: Date) => sql`cleanup_state = 'PENDING' AND cleanup_next_at <= ${now}`, order: 'cleanup_next_at' }],
  },
} as const;

/**
 * Claims up to `limit` provisions whose `kind` of work is due and that no live instance leases: they get this
 * instance's lease. Concurrent claimers skip each other's rows instead of waiting (SKIP LOCKED).
 */
export async function claimDue(db: Db, kind: keyof typeof CLAIMS, c: ClaimRequest): Promise<Provision[]> {
  const { parked, sets } = CLAIMS[kind];
  const now = new Date(c.now);
  const until = new Date(c.now + c.leaseMs);
  const claimed: Provision[] = [];
  for (const { due, order } of sets) {
    if (claimed.length >= c.limit) break;
    const rows = await sql<Provision>`
      UPDATE provisions SET lease_owner = ${c.instanceId}, lease_until = ${until}, ${sql.ref(parked)} = ${until}
      WHERE match_id IN (
        SELECT match_id FROM provisions
        WHERE ${due(now)}
          AND (lease_owner IS NULL OR lease_owner = ${c.instanceId} OR lease_until < ${now})
        ORDER BY ${sql.ref(order)}
        LIMIT ${c.limit - claimed.length}
        FOR UPDATE SKIP LOCKED)
      RETURNING *`.execute(db);
    claimed.push(...rows.rows);
  }
  return claimed;
}

/**
 * Claims up to `limit` installing provisions (due or not) that no live instance leases, for one coalesced panel
 * listing; their next_poll_at stays as it is, so if the listing fails the per-server poll finds them due.
 */
export async function claimWatched(db: Db, c: ClaimRequest): Promise<Provision[]> {
  const now = new Date(c.now);
  const claimed = await sql<Provision>`
    UPDATE provisions SET lease_owner = ${c.instanceId}, lease_until = ${new Date(c.now + c.leaseMs)}
    WHERE match_id IN (
      SELECT match_id FROM provisions
      WHERE state IN ('RESERVED', 'INSTALLING') AND next_poll_at IS NOT NULL AND deadline_at > ${now}
        AND (lease_owner IS NULL OR lease_owner = ${c.instanceId} OR lease_until < ${now})
      ORDER BY next_poll_at
      LIMIT ${c.limit}
      FOR UPDATE SKIP LOCKED)
    RETURNING *`.execute(db);
  return claimed.rows;
}

/** Gives back a listing pass's claims untouched (their next_poll_at was never parked). */
export async function releaseWatched(db: Db, instanceId: string, matchIds: readonly string[]): Promise<void> {
  if (matchIds.length === 0) return;
  await db
    .updateTable('provisions')
    .set({ lease_owner: null, lease_until: null })
    .where('lease_owner', '=', instanceId)
    .where('match_id', 'in', matchIds)
    .execute();
}

/**
 * Clears every lease `instanceId` holds; returns how many. A claim parks next_poll_at / cleanup_next_at at
 * lease_until until its work writes the real value; one left there (the pass failed) becomes due now.
 */
export async function releaseLeases(db: Db, instanceId: string, now: number): Promise<number> {
  const at = new Date(now);
  const result = await db
    .updateTable('provisions')
    .set({
      next_poll_at: sql<Date | null>`CASE WHEN next_poll_at = lease_until THEN ${at} ELSE next_poll_at END`,
      cleanup_next_at: sql<Date | null>`CASE WHEN cleanup_state = 'PENDING' AND cleanup_next_at = lease_until THEN ${at} ELSE cleanup_next_at END`,
      lease_owner: null,
      lease_until: null,
    })
    .where('lease_owner', '=', instanceId)
    .executeTakeFirst();
  return Number(result.numUpdatedRows);
}

export interface PollProgress {
  state: 'INSTALLING' | 'WAITING_SIGNALS';
  nextPollAt: number | null;
  pollFailures: number;
  panelStatus: string | null;
  /** Keeps the lease while this instance polls it next (it lapses by itself if the instance dies); null frees it. */
  leaseUntil: number | null;
}

export async function savePollProgress(db: Db, matchId: string, p: PollProgress, now: number): Promise<void> {
  await db
    .updateTable('provisions')
    .set({
      state: p.state,
      next_poll_at: p.nextPollAt === null ? null : new Date(p.nextPollAt),
      poll_failures: p.pollFailures,
      last_panel_status: p.panelStatus,
      lease_until: p.leaseUntil === null ? null : new Date(p.leaseUntil),
      ...(p.leaseUntil === null ? { lease_owner: null } : {}),
      updated_at: new Date(now),
    })
    .where('match_id', '=', matchId)
    .execute();
}

/**
 * Locks the given provisions that are still active and leased by `instanceId` (in match id order, so two
 * passes cannot deadlock). Read their signals with `signalsOf` AFTER this, in its own statement: a readiness
 * signal committed while we waited for a lock must be seen.
 */
export async function lockLeased(db: Db, instanceId: string, matchIds: readonly string[]): Promise<Provision[]> {
  if (matchIds.length === 0) return [];
  return db
    .selectFrom('provisions')
    .selectAll()
    .where('match_id', 'in', matchIds)
    .where('lease_owner', '=', instanceId)
    .where('state', 'in', ACTIVE_STATES)
    .orderBy('match_id')
    .forUpdate()
    .execute();
}

/** The readiness signals of many matches (checklist items and overlay requirement), one statement. */
export async function signalsOf(
  db: Db,
  matchIds: readonly string[],
): Promise<Map<string, { adminHooksOk: boolean; overlayConnected: boolean; overlayRequired: boolean }>> {
  const out = new Map<string, { adminHooksOk: boolean; overlayConnected: boolean; overlayRequired: boolean }>();
  if (matchIds.length === 0) return out;
  const rows = await db
    .selectFrom('provisions as p')
    .leftJoin('checklists as c', 'c.match_id', 'p.match_id')
    .leftJoin('matches as m', 'm.id', 'p.match_id')
    .select(['p.match_id', 'c.admin_hooks_ok', 'c.overlay_connected', 'm.overlay_required'])
    .where('p.match_id', 'in', matchIds)
    .execute();
  for (const r of rows) {
    out.set(r.match_id, {
      adminHooksOk: r.admin_hooks_ok ?? false,
      overlayConnected: r.overlay_connected ?? false,
      overlayRequired: r.overlay_required ?? false,
    });
  }
  return out;
}

/** A listed provision's poll progress (the `wait` step of the policy), written with many others at once. */
export interface ListedProgress {
  matchId: string;
  state: 'INSTALLING' | 'WAITING_SIGNALS';
  nextPollAt: number | null;
  pollFailures: number;
  panelStatus: string | null;
}

/**
 * `savePollProgress` for many provisions in one statement, leases handed back to the fleet (the next listing
 * answers for them). Call it under `lockLeased` of the same rows.
 */
export async function saveListedProgress(db: Db, rows: readonly ListedProgress[], now: number): Promise<void> {
  if (rows.length === 0) return;
  const input = rows.map((r) => ({
    match_id: r.matchId,
    state: r.state,
    next_poll_at: r.nextPollAt === null ? null : new Date(r.nextPollAt).toISOString(),
    poll_failures: r.pollFailures,
    status: r.panelStatus,
  }));
  await sql`
    UPDATE provisions AS p SET
      state = x.state, next_poll_at = x.next_poll_at, poll_failures = x.poll_failures, last_panel_status = x.status,
      lease_owner = NULL, lease_until = NULL, updated_at = ${new Date(now)}
    FROM jsonb_to_recordset(${JSON.stringify(input)}::jsonb)
      AS x(match_id text, state text, next_poll_at timestamptz, poll_failures integer, status text)
    WHERE p.match_id = x.match_id`.execute(db);
}

/** Ticks `serverInstalled` on many checklists at once (created when missing). */
export async function markServersInstalled(db: Db, matchIds: readonly string[], now: number): Promise<void> {
  if (matchIds.length === 0) return;
  await sql`
    INSERT INTO checklists (match_id, server_installed, updated_at)
    SELECT id, true, ${new Date(now)} FROM jsonb_array_elements_text(${JSON.stringify(matchIds)}::jsonb) AS x(id)
    ON CONFLICT (match_id) DO UPDATE SET server_installed = true, updated_at = EXCLUDED.updated_at`.execute(db);
}

/** Active → READY; false when the provision was no longer active (somebody else decided first). */
/** Marks the provisions READY in one statement; returns the match ids that were still active (now READY). */
export async function markReadyMany(db: Db, matchIds: readonly string[], now: number): Promise<Set<string>> {
  if (matchIds.length === 0) return new Set();
  const at = new Date(now);
  const updated = await db
    .updateTable('provisions')
    .set({ state: 'READY', ready_at: at, next_poll_at: null, lease_owner: null, lease_until: null, updated_at: at })
    .where('match_id', 'in', [...matchIds])
    .where('state', 'in', ACTIVE_STATES)
    .returning('match_id')
    .execute();
  return new Set(updated.map((r) => r.match_id));
}

/** Whether each match requires an overlay (overlayRequired for many; an unknown match requires none). */
export async function overlayRequiredMany(db: Db, matchIds: readonly string[]): Promise<Map<string, boolean>> {
  if (matchIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('matches')
    .select(['id', 'overlay_required'])
    .where('id', 'in', [...matchIds])
    .execute();
  return new Map(rows.map((r) => [r.id, r.overlay_required]));
}

/** Active → FAILED with the cleanup it needs; false when the provision was no longer active. */
export async function markFailed(
  db: Db,
  matchId: string,
  reason: FailureReason,
  cleanup: 'DONE' | 'PENDING',
  now: number,
): Promise<boolean> {
  const at = new Date(now);
  const updated = await db
    .updateTable('provisions')
    .set({ state: 'FAILED', failure_reason: reason, failed_at: at, ...endOfPolling(at, cleanup) })
    .where('match_id', '=', matchId)
    .where('state', 'in', ACTIVE_STATES)
    .returning('match_id')
    .executeTakeFirst();
  return updated !== undefined;
}

export interface CleanupOutcome {
  state: Exclude<CleanupState, 'NONE'>;
  attempts: number;
  nextAt: number | null;
}

/** Records a cleanup attempt and hands the lease back; only a still pending cleanup is updated. */
export async function saveCleanupOutcome(db: Db, matchId: string, o: CleanupOutcome, now: number): Promise<void> {
  await db
    .updateTable('provisions')
    .set({
      cleanup_state: o.state,
      cleanup_attempts: o.attempts,
      cleanup_next_at: o.nextAt === null ? null : new Date(o.nextAt),
      lease_owner: null,
      lease_until: null,
      updated_at: new Date(now),
    })
    .where('match_id', '=', matchId)
    .where('cleanup_state', '=', 'PENDING')
    .execute();
}

/** Match ids of active provisions at or past their deadline. */
export async function overdueMatchIds(db: Db, now: number): Promise<string[]> {
  const rows = await db
    .selectFrom('provisions')
    .select('match_id')
    .where('state', 'in', ACTIVE_STATES)
    .where('deadline_at', '<=', new Date(now))
    .execute();
  return rows.map((r) => r.match_id);
}

export async function countActive(db: Db): Promise<number> {
  const row = await db
    .selectFrom('provisions')
    .select(sql<number>`count(*)::int`.as('n'))
    .where('state', 'in', ACTIVE_STATES)
    .executeTakeFirst();
  return Number(row?.n ?? 0);
}

/** Whether the match requires an overlay; an unknown match has no requirement on record (the platform upserts first). */
export async function overlayRequired(db: Db, matchId: string): Promise<boolean> {
  const match = await db.selectFrom('matches').select(['overlay_required']).where('id', '=', matchId).executeTakeFirst();
  return match?.overlay_required ?? false;
}
