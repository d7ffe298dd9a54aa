import { sql } from 'kysely';
import type { Db } from '../infra/db/db.js';
import type { Checklist, StreamSidesTable, StreamWaiverRecord } from '../infra/db/schema.js';
import { adminKeyView } from './admin-key-view.js';
import { graceDeadline, type GraceEpisode } from '../stream-health/policy.js';
import {
  TERMINAL_STATUSES,
  type ChecklistView,
  type MatchView,
  type Side,
  type StreamSideView,
  type UpsertMatch,
} from './match.schemas.js';

/** An update that would rewrite money already taken or undo a cancellation (answered 409). */
export class MatchConflictError extends Error {
  constructor(
    readonly reason: 'MATCH_CANCELLED' | 'SEAT_TAKEN' | 'ENTRY_FEE_FIXED',
    message: string,
  ) {
    super(message);
    this.name = 'MatchConflictError';
  }
}

/**
 * Creates or updates a match, its players and checklist; records each player's entry fee once. Once fees are
 * recorded a seat's player and the fee are fixed (refunds follow the ledger), and a cancelled match is final.
 */
export async function upsertMatch(
  db: Db,
  id: string,
  input: UpsertMatch,
  now: number,
  waiver: StreamWaiverRecord | null = null,
): Promise<{ created: boolean }> {
  const at = new Date(now);
  const streamWaiver = waiver === null ? null : JSON.stringify(waiver);
  const existing = await db
    .selectFrom('matches')
    .select(['id', 'status', 'entry_fee_cents', 'currency'])
    .where('id', '=', id)
    .forUpdate()
    .executeTakeFirst();
  if (existing) {
    if (existing.status === 'CANCELLED')
      throw new MatchConflictError('MATCH_CANCELLED', `match ${id} was cancelled (and refunded); it cannot change`);
    const fees = await db
      .selectFrom('ledger_entries')
      .select('player_id')
      .where('match_id', '=', id)
      .where('kind', '=', 'ENTRY_FEE')
      .execute();
    if (fees.length > 0) {
      if (existing.entry_fee_cents !== input.entryFee.amountCents || existing.currency !== input.entryFee.currency) {
        throw new MatchConflictError('ENTRY_FEE_FIXED', `match ${id}: entry fees are already recorded; the fee cannot change`);
      }
      const seats = await db.selectFrom('match_players').select(['side', 'player_id']).where('match_id', '=', id).execute();
      for (const seat of seats) {
        const next = input.players.find((p) => p.side === seat.side);
        if (next && next.playerId !== seat.player_id) {
          throw new MatchConflictError(
            'SEAT_TAKEN',
            `match ${id}: ${seat.side} already paid as ${seat.player_id}; a seat cannot change hands`,
          );
        }
      }
    }
    await db
      .updateTable('matches')
      .set({
        mode: input.mode,
        status: input.status ?? existing.status,
        entry_fee_cents: input.entryFee.amountCents,
        currency: input.entryFee.currency,
        overlay_required: input.overlayRequired,
        stream_waiver: streamWaiver,
        enforcement_mode: input.enforcementMode ?? 'default',
        updated_at: at,
      })
      .where('id', '=', id)
      .execute();
  } else {
    await db
      .insertInto('matches')
      .values({
        id,
        mode: input.mode,
        status: input.status ?? 'SCHEDULED',
        entry_fee_cents: input.entryFee.amountCents,
        currency: input.entryFee.currency,
        overlay_required: input.overlayRequired,
        stream_waiver: streamWaiver,
        enforcement_mode: input.enforcementMode ?? 'default',
        created_at: at,
        updated_at: at,
      })
      .execute();
  }
  for (const player of input.players) {
    await db
      .insertInto('match_players')
      .values({ match_id: id, side: player.side, player_id: player.playerId, stream_channels: JSON.stringify(player.streamChannels) })
      .onConflict((oc) =>
        oc
          .columns(['match_id', 'side'])
          .doUpdateSet({ player_id: player.playerId, stream_channels: JSON.stringify(player.streamChannels) }),
      )
      .execute();
    if (input.entryFee.amountCents > 0) {
      // The first recorded fee stands: a later edit never rewrites money already taken.
      await db
        .insertInto('ledger_entries')
        .values({
          match_id: id,
          player_id: player.playerId,
          kind: 'ENTRY_FEE',
          amount_cents: input.entryFee.amountCents,
          currency: input.entryFee.currency,
          reason: 'entry fee',
          event_id: null,
          created_at: at,
        })
        .onConflict((oc) => oc.constraint('ledger_once_per_player').doNothing())
        .execute();
    }
  }
  await ensureChecklist(db, id, now);
  return { created: !existing };
}

export async function ensureChecklist(db: Db, matchId: string, now: number): Promise<void> {
  await db
    .insertInto('checklists')
    .values({ match_id: matchId, updated_at: new Date(now) })
    .onConflict((oc) => oc.column('match_id').doNothing())
    .execute();
}

export type ChecklistField = keyof ChecklistView;

const CHECKLIST_COLUMNS: Record<ChecklistField, keyof Checklist> = {
  serverInstalled: 'server_installed',
  adminHooksOk: 'admin_hooks_ok',
  overlayConnected: 'overlay_connected',
  p1StreamLive: 'p1_stream_live',
  p2StreamLive: 'p2_stream_live',
  titlesContainMatchId: 'titles_contain_match_id',
  bitrateOk: 'bitrate_ok',
  fpsOk: 'fps_ok',
};

/** Sets checklist fields (creating the row if a signal arrives before the match is known). */
export async function updateChecklist(
  db: Db,
  matchId: string,
  fields: Partial<ChecklistView> & { overlayLastSeenAt?: number | null },
  now: number,
): Promise<Checklist> {
  await ensureChecklist(db, matchId, now);
  const set: Record<string, unknown> = { updated_at: new Date(now) };
  for (const [field, value] of Object.entries(fields)) {
    if (field === 'overlayLastSeenAt') set.overlay_last_seen_at = value === null ? null : new Date(value as number);
    else set[CHECKLIST_COLUMNS[field as ChecklistField]] = value;
  }
  return db.updateTable('checklists').set(set).where('match_id', '=', matchId).returningAll().executeTakeFirstOrThrow();
}

/**
 * updateChecklist for many matches with the same boolean fields, in one statement (an upsert: a missing checklist
 * is created with these fields set). Returns the updated rows.
 */
export async function updateChecklists(
  db: Db,
  matchIds: readonly string[],
  fields: Partial<ChecklistView>,
  now: number,
): Promise<Checklist[]> {
  if (matchIds.length === 0) return [];
  const at = new Date(now);
  const set: Record<string, unknown> = {};
  for (const [field, value] of Object.entries(fields)) set[CHECKLIST_COLUMNS[field as ChecklistField]] = value;
  const rows: Checklist[] = [];
  for (let i = 0; i < matchIds.length; i += 5_000) {
    const chunk = [...new Set(matchIds.slice(i, i + 5_000))];
    rows.push(
      ...(await db
        .insertInto('checklists')
        .values(chunk.map((matchId) => ({ match_id: matchId, updated_at: at, ...set })))
        .onConflict((oc) =>
          oc.column('match_id').doUpdateSet((eb) => {
            const update: Record<string, unknown> = { updated_at: eb.ref('excluded.updated_at') };
            for (const column of Object.keys(set)) update[column] = eb.ref(`excluded.${column}` as 'excluded.updated_at');
            return update;
          }),
        )
        .returningAll()
        .execute()),
    );
  }
  return rows;
}

export async function getChecklist(db: Db, matchId: string, forUpdate = false): Promise<Checklist | undefined> {
  let q = db.selectFrom('checklists').selectAll().where('match_id', '=', matchId);
  if (forUpdate) q = q.forUpdate();
  return q.executeTakeFirst();
}

/** The checklists of these matches (absent ones are missing from the map). */
export async function getChecklists(db: Db, matchIds: readonly string[]): Promise<Map<string, Checklist>> {
  if (matchIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('checklists')
    .selectAll()
    .where('match_id', 'in', [...matchIds])
    .execute();
  return new Map(rows.map((r) => [r.match_id, r]));
}

export function checklistView(row: Checklist | undefined): ChecklistView {
  return {
    serverInstalled: row?.server_installed ?? false,
    adminHooksOk: row?.admin_hooks_ok ?? false,
    overlayConnected: row?.overlay_connected ?? false,
    p1StreamLive: row?.p1_stream_live ?? false,
    p2StreamLive: row?.p2_stream_live ?? false,
    titlesContainMatchId: row?.titles_contain_match_id ?? false,
    bitrateOk: row?.bitrate_ok ?? false,
    fpsOk: row?.fps_ok ?? false,
  };
}

export interface RefundRecord {
  playerId: string;
  amountCents: number;
  currency: string;
}

/**
 * Refunds every player's entry fee, at most once per player per match (ledger unique constraint), and marks
 * the match CANCELLED. Returns all refunds of the match, including ones written earlier.
 */
export async function cancelAndRefund(db: Db, matchId: string, reason: string, eventId: string, now: number): Promise<RefundRecord[]> {
  const at = new Date(now);
  const match = await db.selectFrom('matches').select(['status']).where('id', '=', matchId).forUpdate().executeTakeFirst();
  if (match && !TERMINAL_STATUSES.includes(match.status)) {
    await db.updateTable('matches').set({ status: 'CANCELLED', updated_at: at }).where('id', '=', matchId).execute();
  }
  const fees = await db.selectFrom('ledger_entries').selectAll().where('match_id', '=', matchId).where('kind', '=', 'ENTRY_FEE').execute();
  for (const fee of fees) {
    await db
      .insertInto('ledger_entries')
      .values({
        match_id: matchId,
        player_id: fee.player_id,
        kind: 'REFUND',
        amount_cents: fee.amount_cents,
        currency: fee.currency,
        reason,
        event_id: eventId,
        created_at: at,
      })
      .onConflict((oc) => oc.constraint('ledger_once_per_player').doNothing())
      .execute();
  }
  const refunds = await db
    .selectFrom('ledger_entries')
    .select(['player_id', 'amount_cents', 'currency'])
    .where('match_id', '=', matchId)
    .where('kind', '=', 'REFUND')
    .orderBy('player_id')
    .execute();
  return refunds.map((r) => ({ playerId: r.player_id, amountCents: r.amount_cents, currency: r.currency }));
}

/** The grace (ms) of an enforcement mode's policy, or undefined for a mode no longer configured. */
export type GraceOf = (enforcementMode: string) => number | undefined;

/** The match view of the internal API (SPEC §5), or undefined for an unknown id. */
export async function getMatchView(db: Db, id: string, graceOf: GraceOf = () => undefined): Promise<MatchView | undefined> {
  const match = await db.selectFrom('matches').selectAll().where('id', '=', id).executeTakeFirst();
  const provision = await db.selectFrom('provisions').selectAll().where('match_id', '=', id).executeTakeFirst();
  if (!match && !provision) return undefined;
  const [players, checklist, ledger, enforcement, evidence, sides, adminKey] = await Promise.all([
    db.selectFrom('match_players').selectAll().where('match_id', '=', id).orderBy('side').execute(),
    getChecklist(db, id),
    db.selectFrom('ledger_entries').selectAll().where('match_id', '=', id).where('kind', '=', 'REFUND').orderBy('player_id').execute(),
    db.selectFrom('enforcements').selectAll().where('match_id', '=', id).orderBy('created_at').execute(),
    db.selectFrom('evidence').selectAll().where('match_id', '=', id).orderBy('created_at').execute(),
    db
      .selectFrom('stream_sides')
      .select(['side', 'grace', 'last_sample_at', 'last_outcome'])
      .where('match_id', '=', id)
      .orderBy('side')
      .execute(),
    db.selectFrom('admin_key_deliveries').selectAll().where('match_id', '=', id).executeTakeFirst(),
  ]);
  const graceMs = graceOf(match?.enforcement_mode ?? 'default') ?? null;
  const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
  return {
    id,
    mode: match?.mode ?? 'UNKNOWN',
    status: match?.status ?? 'UNKNOWN',
    entryFee: { amountCents: match?.entry_fee_cents ?? 0, currency: match?.currency ?? 'USD' },
    overlayRequired: match?.overlay_required ?? false,
    enforcementMode: match?.enforcement_mode ?? 'default',
    players: players.map((p) => ({ side: p.side, playerId: p.player_id, streamChannels: p.stream_channels as string[] })),
    streamWaiver: match?.stream_waiver ?? null,
    checklist: checklistView(checklist),
    provisioning: provision
      ? {
          state: provision.state,
          panelServerId: provision.panel_server_id,
          deadlineAt: iso(provision.deadline_at),
          readyAt: iso(provision.ready_at),
          failureReason: provision.failure_reason,
          releasedAt: iso(provision.released_at),
          cleanup: provision.cleanup_state,
          adminKey: adminKey ? adminKeyView(adminKey, { state: provision.state, deadlineAt: provision.deadline_at }) : null,
        }
      : null,
    refunds: ledger.map((r) => ({
      playerId: r.player_id,
      amountCents: r.amount_cents,
      currency: r.currency,
      reason: r.reason,
      at: r.created_at.toISOString(),
    })),
    streamHealth: sides.map((row) => streamSideView(row, graceMs)),
    enforcement: enforcement.map((e) => ({
      side: e.side,
      verdict: e.verdict,
      reason: e.reason,
      evidenceId: e.evidence_id,
      at: e.created_at.toISOString(),
    })),
    evidence: evidence.map((e) => ({
      id: e.id,
      side: e.side as Side | null,
      episodeId: e.episode_id,
      kind: e.kind,
      bundle: e.bundle,
      at: e.created_at.toISOString(),
    })),
  };
}

type StoredSideRow = Pick<StreamSidesTable, 'side' | 'last_outcome'> & { grace: unknown; last_sample_at: Date | null };

/** A persisted side state as the match view shows it; an episode that is not the policy's shape is left out. */
export function streamSideView(row: StoredSideRow, graceMs: number | null): StreamSideView {
  const iso = (ms: number | null | undefined) => (typeof ms === 'number' && Number.isFinite(ms) ? new Date(ms).toISOString() : null);
  const stored = (row.grace as { episode?: unknown } | null)?.episode;
  const ep = isEpisode(stored) ? stored : null;
  return {
    side: row.side,
    graceMs,
    lastSampleAt: row.last_sample_at ? row.last_sample_at.toISOString() : null,
    lastOutcome: row.last_outcome,
    episode: ep
      ? {
          id: ep.id,
          state: ep.state,
          openedAt: iso(ep.openedAt) as string,
          anchorAt: iso(ep.anchorAt) as string,
          elapsedMs: ep.elapsedMs,
          pausedMs: ep.pausedMs,
          violations: [...ep.violations],
          graceDeadlineAt: graceMs === null ? null : iso(graceDeadline(ep, graceMs)),
          closedAt: iso(ep.closedAt),
          verdictAt: iso(ep.verdictAt),
        }
      : null,
  };
}

function isEpisode(value: unknown): value is GraceEpisode {
  if (!value || typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  return (
    typeof e.id === 'string' &&
    typeof e.state === 'string' &&
    ['openedAt', 'anchorAt', 'elapsedMs', 'pausedMs'].every((k) => typeof e[k] === 'number' && Number.isFinite(e[k])) &&
    Array.isArray(e.violations)
  );
}

/** Ledger balance per player (entry fees minus refunds), for audits and tests. */
export async function ledgerBalances(db: Db, matchId: string): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('ledger_entries')
    .select(['player_id', sql<number>`sum(case when kind = 'ENTRY_FEE' then amount_cents else -amount_cents end)::int`.as('balance')])
    .where('match_id', '=', matchId)
    .groupBy('player_id')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.player_id, Number(r.balance)]));
}

export interface MatchFilter {
  /** Any of these match statuses. */
  statuses?: string[];
  /** Any of these provisioning states. */
  provisioning?: string[];
  /** Matches with an enforcement verdict (`any`) or without one (`none`). */
  enforcement?: 'any' | 'none';
  limit: number;
  /** The id of the last match of the previous page. */
  after?: string;
}

/** One page of match ids in id order, filtered; the caller builds each view. */
export async function listMatchIds(db: Db, filter: MatchFilter): Promise<{ ids: string[]; nextAfter: string | null }> {
  let q = db.selectFrom('matches as m').leftJoin('provisions as p', 'p.match_id', 'm.id').select('m.id');
  if (filter.statuses?.length) q = q.where('m.status', 'in', filter.statuses);
  if (filter.provisioning?.length) q = q.where('p.state', 'in', filter.provisioning as never[]);
  if (filter.enforcement) {
    q = q.where((eb) => {
      const has = eb.exists(eb.selectFrom('enforcements as e').select('e.id').whereRef('e.match_id', '=', 'm.id'));
      return filter.enforcement === 'any' ? has : eb.not(has);
    });
  }
  if (filter.after !== undefined) q = q.where('m.id', '>', filter.after);
  const rows = await q
    .orderBy('m.id')
    .limit(filter.limit + 1)
    .execute();
  const ids = rows.slice(0, filter.limit).map((r) => r.id);
  return { ids, nextAfter: rows.length > filter.limit ? (ids.at(-1) ?? null) : null };
}
