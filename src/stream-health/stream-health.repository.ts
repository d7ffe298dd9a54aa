/**
 * The StreamHealthWorker's database I/O, and nothing else: active matches, the persisted grace state per side,
 * stored samples, overlay evidence, and the batched writes of a sweep. Sets of rows travel as one JSON parameter
 * (`jsonb_to_recordset`), so a sweep of 50k matches is a handful of statements, on pg and PGlite alike.
 */
import { sql, type Kysely } from 'kysely';
import type { Db } from '../infra/db/db.js';
import type { Database } from '../infra/db/schema.js';
import { emptySideGrace, type Side, type SideGrace, type StreamChecklist } from './policy.js';

export const SIDES = ['p1', 'p2'] as const satisfies readonly Side[];

/** The stream items of a match checklist as stored. */
export type StoredStreamChecklist = Required<StreamChecklist>;

export interface StoredSide {
  readonly version: number;
  readonly grace: SideGrace;
}

/** One active match as a sweep sees it (see `loadActiveMatches` for what "active" means). */
export interface ActiveMatch {
  readonly id: string;
  readonly overlayRequired: boolean;
  /** Names the enforcement policy that judges the match (see enforcement-policy.ts). */
  readonly enforcementMode: string;
  readonly channels: Record<Side, string[]>;
  readonly checklist: StoredStreamChecklist | null;
  readonly sides: Partial<Record<Side, StoredSide>>;
}

/** A match's columns and its checklist's (`matches as m` left-joined with `checklists as c`). */
const MATCH_AND_CHECKLIST = [
  'm.id',
  'm.overlay_required',
  'm.enforcement_mode',
  'c.match_id as checklist_id',
  'c.p1_stream_live',
  'c.p2_stream_live',
  'c.titles_contain_match_id',
  'c.bitrate_ok',
  'c.fps_ok',
] as const;

/**
 * Active = `mode = 'VERIFIED_STREAM' AND status = 'IN_PROGRESS'`. A scheduled, completed, cancelled, forfeited
 * or disputed match is not enforced (the platform moves a match to IN_PROGRESS when play starts).
 * Two statements for any number of matches: matches with players and checklist, then their side states. A full
 * sweep reads them a slice at a time instead (loadActiveMatchSlice).
 */
export async function loadActiveMatches(db: Db, matchId?: string): Promise<ActiveMatch[]> {
  let matchesQuery = db
    .selectFrom('matches as m')
    .leftJoin('match_players as p', 'p.match_id', 'm.id')
    .leftJoin('checklists as c', 'c.match_id', 'm.id')
    .select([...MATCH_AND_CHECKLIST, 'p.side', 'p.stream_channels'])
    .where('m.mode', '=', 'VERIFIED_STREAM')
    .where('m.status', '=', 'IN_PROGRESS');
  let sidesQuery = db
    .selectFrom('stream_sides as s')
    .innerJoin('matches as m', 'm.id', 's.match_id')
    .select(['s.match_id', 's.side', 's.version', 's.grace'])
    .where('m.mode', '=', 'VERIFIED_STREAM')
    .where('m.status', '=', 'IN_PROGRESS');
  if (matchId !== undefined) {
    matchesQuery = matchesQuery.where('m.id', '=', matchId);
    sidesQuery = sidesQuery.where('m.id', '=', matchId);
  }
  const rows = await matchesQuery.execute();
  const sideRows = await sidesQuery.execute();

  const byId = new Map<string, MutableMatch>();
  for (const row of rows) {
    let match = byId.get(row.id);
    if (!match) {
      match = newMatch(row.id, row.overlay_required, row.enforcement_mode);
      match.checklist = row.checklist_id === null ? null : storedChecklist(row);
      byId.set(row.id, match);
    }
    setChannels(match, row.side, row.stream_channels);
  }
  for (const row of sideRows) setSide(byId.get(row.match_id), row);
  return [...byId.values()];
}

/**
 * One slice of a full sweep: the next `limit` active matches after `afterId` in the database's id order (the
 * partial index `matches_active_verified_stream` walks them), with their players, checklists and side states.
 * Three statements a slice: the matches with their checklists (a one-to-one join on the checklist's primary key),
 * then the players and the side states, each a lookup by match id without a join, so the planner cannot pick a
 * nested loop over a bloated `stream_sides` on a bad row estimate. `next` is the following slice's cursor, null
 * after the last slice.
 */
export async function loadActiveMatchSlice(
  db: Db,
  afterId: string | null,
  limit: number,
): Promise<{ readonly matches: ActiveMatch[]; readonly next: string | null }> {
  // The checklist rides along (one row per match, joined on its primary key).
  let matchesQuery = db
    .selectFrom('matches as m')
    .leftJoin('checklists as c', 'c.match_id', 'm.id')
    .select(MATCH_AND_CHECKLIST)
    .where('m.mode', '=', 'VERIFIED_STREAM')
    .where('m.status', '=', 'IN_PROGRESS')
    .orderBy('m.id')
    .limit(limit);
  if (afterId !== null) matchesQuery = matchesQuery.where('m.id', '>', afterId);
  const rows = await matchesQuery.execute();
  if (rows.length === 0) return { matches: [], next: null };
  const ids = rows.map((r) => r.id);
  const players = await db
    .selectFrom('match_players')
    .select(['match_id', 'side', 'stream_channels'])
    .where('match_id', 'in', ids)
    .execute();
  const sideRows = await db
    .selectFrom('stream_sides')
    .select(['match_id', 'side', 'version', 'grace'])
    .where('match_id', 'in', ids)
    .execute();

  const byId = new Map<string, MutableMatch>();
  const matches: MutableMatch[] = [];
  for (const row of rows) {
    const match = newMatch(row.id, row.overlay_required, row.enforcement_mode);
    match.checklist = row.checklist_id === null ? null : storedChecklist(row);
    byId.set(row.id, match);
    matches.push(match);
  }
  for (const row of players) {
    const match = byId.get(row.match_id);
    if (match) setChannels(match, row.side, row.stream_channels);
  }
  for (const row of sideRows) setSide(byId.get(row.match_id), row);
  return { matches, next: rows.length >= limit ? (ids.at(-1) ?? null) : null };
}

type MutableMatch = { -readonly [K in keyof ActiveMatch]: ActiveMatch[K] };

function newMatch(id: string, overlayRequired: boolean, enforcementMode: string): MutableMatch {
  return { id, overlayRequired, enforcementMode, channels: { p1: [], p2: [] }, checklist: null, sides: {} };
}

function setChannels(match: MutableMatch, side: string | null, channels: unknown): void {
  if (side !== 'p1' && side !== 'p2') return;
  match.channels[side] = Array.isArray(channels) ? channels.filter((c): c is string => typeof c === 'string') : [];
}

function setSide(match: MutableMatch | undefined, row: { match_id: string; side: string; version: number; grace: unknown }): void {
  if (!match || (row.side !== 'p1' && row.side !== 'p2')) return;
  match.sides[row.side] = { version: row.version, grace: parseGrace(row.grace, row.match_id, row.side) };
}

type ChecklistRow = Record<'p1_stream_live' | 'p2_stream_live' | 'titles_contain_match_id' | 'bitrate_ok' | 'fps_ok', boolean | null>;

function storedChecklist(row: ChecklistRow): StoredStreamChecklist {
  return {
    p1StreamLive: row.p1_stream_live ?? false,
    p2StreamLive: row.p2_stream_live ?? false,
    titlesContainMatchId: row.titles_contain_match_id ?? false,
    bitrateOk: row.bitrate_ok ?? false,
    fpsOk: row.fps_ok ?? false,
  };
}

/** Our own JSON; a row that is not a SideGrace (hand-edited, say) restarts from an empty state rather than crash a sweep. */
function parseGrace(value: unknown, matchId: string, side: Side): SideGrace {
  const g = value as Partial<SideGrace> | null;
  if (!g || typeof g !== 'object' || g.matchId !== matchId || g.side !== side || !('episode' in g)) return emptySideGrace(matchId, side);
  return g as SideGrace;
}

// ─── writes ──────────────────────────────────────────────────────────────────────────────────────────────────

/** A side's new grace state, applied only if the row is still at `expectedVersion` (0 = no row yet). */
export interface SideWrite {
  readonly matchId: string;
  readonly side: Side;
  readonly expectedVersion: number;
  readonly grace: SideGrace;
}

export interface SampleRow {
  readonly matchId: string;
  readonly side: Side;
  readonly episodeId: string | null;
  readonly outcome: string;
  readonly sample: Record<string, unknown>;
  readonly observedAt: number;
}

export interface ChecklistWrite {
  readonly matchId: string;
  readonly fields: StreamChecklist;
}

const key = (matchId: string, side: string) => `${matchId}\u0000${side}`;

/** Which side writes of a statement applied: all but the stale ones. */
export class AppliedSides {
  constructor(
    /** Writes asked for. */
    readonly written: number,
    /** `key(matchId, side)` of the writes that lost the version check. */
    private readonly stale: ReadonlySet<string>,
  ) {}

  /** Writes that applied. */
  get size(): number {
    return this.written - this.stale.size;
  }

  /** Whether this side's write applied (only sides that were written may be asked about). */
  has(matchId: string, side: Side): boolean {
    return this.stale.size === 0 || !this.stale.has(key(matchId, side));
  }
}

/**
 * Writes side states with the optimistic version check. A row another sweep moved on since we read it is left
 * alone: that sweep's sample stands, ours is dropped. The statement answers with the stale writes only (none,
 * as a rule), so a batch of 1,000 sides reads no rows back.
 */
export async function writeSides(db: Db, writes: readonly SideWrite[], now: number): Promise<AppliedSides> {
  if (writes.length === 0) return new AppliedSides(0, new Set());
  const input = writes.map((w) => ({
    match_id: w.matchId,
    side: w.side,
    version: w.expectedVersion + 1,
    grace: w.grace,
    last_sample_ms: w.grace.lastSampleAt,
    last_outcome: w.grace.lastSampleOutcome,
  }));
  const result = await sql<{ match_id: string; side: string }>`
    WITH x AS MATERIALIZED (
      SELECT * FROM jsonb_to_recordset(${JSON.stringify(input)}::jsonb)
        AS x(match_id text, side text, version integer, grace jsonb, last_sample_ms bigint, last_outcome text)
    ), written AS (
      INSERT INTO stream_sides (match_id, side, version, grace, last_sample_at, last_outcome, updated_at)
      SELECT x.match_id, x.side, x.version, x.grace,
        timestamptz 'epoch' + x.last_sample_ms * interval '1 millisecond', x.last_outcome, ${new Date(now)}
      FROM x
      ON CONFLICT (match_id, side) DO UPDATE SET
        version = EXCLUDED.version, grace = EXCLUDED.grace, last_sample_at = EXCLUDED.last_sample_at,
        last_outcome = EXCLUDED.last_outcome, updated_at = EXCLUDED.updated_at
      WHERE stream_sides.version = EXCLUDED.version - 1
      RETURNING match_id, side
    )
    SELECT x.match_id, x.side FROM x
    WHERE NOT EXISTS (SELECT 1 FROM written w WHERE w.match_id = x.match_id AND w.side = x.side)`.execute(db);
  return new AppliedSides(writes.length, new Set(result.rows.map((r) => key(r.match_id, r.side))));
}

export async function insertSamples(db: Db, samples: readonly SampleRow[]): Promise<void> {
  if (samples.length === 0) return;
  const input = samples.map((s) => ({
    match_id: s.matchId,
    side: s.side,
    episode_id: s.episodeId,
    outcome: s.outcome,
    sample: s.sample,
    observed_at: new Date(s.observedAt).toISOString(),
  }));
  await sql`
    INSERT INTO stream_samples (match_id, side, episode_id, outcome, sample, observed_at)
    SELECT x.match_id, x.side, x.episode_id, x.outcome, x.sample, x.observed_at
    FROM jsonb_to_recordset(${JSON.stringify(input)}::jsonb)
      AS x(match_id text, side text, episode_id text, outcome text, sample jsonb, observed_at timestamptz)`.execute(db);
}

/** A batch of quiet matches' writes; samples and checklist changes apply only with their side's state. */
export interface QuietBatch {
  readonly sides: readonly SideWrite[];
  readonly samples: readonly SampleRow[];
  readonly checklists: readonly ChecklistWrite[];
}

/** One transaction for the batch; returns which sides' states applied (see `writeSides`). */
export async function commitQuietBatch(db: Kysely<Database>, batch: QuietBatch, now: number): Promise<AppliedSides> {
  return db.transaction().execute(async (trx) => {
    const ok = await writeSides(trx, batch.sides, now);
    await insertSamples(
      trx,
      batch.samples.filter((s) => ok.has(s.matchId, s.side)),
    );
    // A checklist change applies with its match's state: when at least one of its written sides applied.
    const withState = ok.size === ok.written ? null : new Set(batch.sides.filter((w) => ok.has(w.matchId, w.side)).map((w) => w.matchId));
    const applied = (matchId: string) => withState === null || withState.has(matchId);
    await writeChecklists(
      trx,
      batch.checklists.filter((c) => applied(c.matchId)),
      now,
    );
    return ok;
  });
}

/** Sets the given stream checklist items; an item left out (unknown this sweep) keeps its stored value. */
export async function writeChecklists(db: Db, writes: readonly ChecklistWrite[], now: number): Promise<void> {
  if (writes.length === 0) return;
  const input = writes.map((w) => ({
    match_id: w.matchId,
    p1: w.fields.p1StreamLive ?? null,
    p2: w.fields.p2StreamLive ?? null,
    titles: w.fields.titlesContainMatchId ?? null,
    bitrate: w.fields.bitrateOk ?? null,
    fps: w.fields.fpsOk ?? null,
  }));
  const json = JSON.stringify(input);
  await sql`
    INSERT INTO checklists (match_id, updated_at)
    SELECT x.match_id, ${new Date(now)} FROM jsonb_to_recordset(${json}::jsonb) AS x(match_id text)
    ON CONFLICT (match_id) DO NOTHING`.execute(db);
  await sql`
    UPDATE checklists AS c SET
      p1_stream_live = COALESCE(x.p1, c.p1_stream_live),
      p2_stream_live = COALESCE(x.p2, c.p2_stream_live),
      titles_contain_match_id = COALESCE(x.titles, c.titles_contain_match_id),
      bitrate_ok = COALESCE(x.bitrate, c.bitrate_ok),
      fps_ok = COALESCE(x.fps, c.fps_ok),
      updated_at = ${new Date(now)}
    FROM jsonb_to_recordset(${json}::jsonb) AS x(match_id text, p1 boolean, p2 boolean, titles boolean, bitrate boolean, fps boolean)
    WHERE c.match_id = x.match_id`.execute(db);
}
