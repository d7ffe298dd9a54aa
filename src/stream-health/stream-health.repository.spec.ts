/**
 * The sweep's batched writes on the embedded PGlite: the version check, the stale-only answer of `writeSides`,
 * and what a quiet batch keeps or drops with a stale side.
 */
import { sql } from 'kysely';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { upsertMatch } from '../matches/match.repository.js';
import { emptySideGrace, type Side, type SideGrace } from './policy.js';
import { commitQuietBatch, writeSides, type SideWrite } from './stream-health.repository.js';

/** Opening and migrating an embedded PGlite takes over 10 s on a loaded machine: a margin, not a bound. */
const HOOK_MS = 60_000;
const T = Date.UTC(2026, 0, 1, 12, 0, 0, 123);

let database: DatabaseHandle;

beforeEach(async () => {
  database = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(database.db);
  for (const id of ['m-1', 'm-2'])
    await upsertMatch(
      database.db,
      id,
      {
        mode: 'VERIFIED_STREAM',
        status: 'IN_PROGRESS',
        entryFee: { amountCents: 0, currency: 'USD' },
        overlayRequired: false,
        players: [
          { side: 'p1', playerId: 'alice', streamChannels: [] },
          { side: 'p2', playerId: 'bob', streamChannels: [] },
        ],
      },
      T,
    );
}, HOOK_MS);
afterEach(async () => {
  await database.close();
}, HOOK_MS);

function grace(matchId: string, side: Side, at: number): SideGrace {
  return { ...emptySideGrace(matchId, side), lastSampleAt: at, lastSampleOutcome: 'healthy', lastHealthyAt: at };
}
const write = (matchId: string, side: Side, expectedVersion: number, at = T): SideWrite => ({
  matchId,
  side,
  expectedVersion,
  grace: grace(matchId, side, at),
});

async function sides() {
  const { rows } = await sql<{ match_id: string; side: string; version: number; last_sample_at: Date; last_outcome: string }>`
    SELECT match_id, side, version, last_sample_at, last_outcome FROM stream_sides ORDER BY match_id, side`.execute(database.db);
  return rows;
}

describe('writeSides', () => {
  it('applies new rows and next versions, answers the stale writes only, and stores the sample time to the millisecond', async () => {
    const first = await writeSides(database.db, [write('m-1', 'p1', 0), write('m-1', 'p2', 0)], T);
    expect(first.size).toBe(2);
    expect(first.has('m-1', 'p1') && first.has('m-1', 'p2')).toBe(true);

    // p1 moves on to version 2; a second writer still expecting version 0 (p1) loses, version 1 (p2) wins.
    const next = await writeSides(database.db, [write('m-1', 'p1', 1, T + 30_000)], T + 30_000);
    expect(next.size).toBe(1);
    const racing = await writeSides(database.db, [write('m-1', 'p1', 0, T + 31_000), write('m-1', 'p2', 1, T + 31_000)], T + 31_000);
    expect(racing.written).toBe(2);
    expect(racing.size).toBe(1);
    expect(racing.has('m-1', 'p1')).toBe(false);
    expect(racing.has('m-1', 'p2')).toBe(true);

    const rows = await sides();
    expect(rows.map((r) => [r.side, r.version, r.last_outcome])).toEqual([
      ['p1', 2, 'healthy'],
      ['p2', 2, 'healthy'],
    ]);
    expect(rows.map((r) => new Date(r.last_sample_at).getTime())).toEqual([T + 30_000, T + 31_000]);
  });

  it('writes nothing for an empty batch', async () => {
    const none = await writeSides(database.db, [], T);
    expect(none.size).toBe(0);
    expect(await sides()).toEqual([]);
  });
});

describe('commitQuietBatch', () => {
  it('drops the samples of stale sides and the checklist of a match none of whose sides applied; keeps the rest', async () => {
    await writeSides(database.db, [write('m-2', 'p1', 0), write('m-2', 'p2', 0)], T);
    const sample = (matchId: string, side: Side) => ({
      matchId,
      side,
      episodeId: null,
      outcome: 'unknown',
      sample: { reason: 'test' },
      observedAt: T + 30_000,
    });
    const applied = await commitQuietBatch(
      database.db,
      {
        // m-1 is new (applies); both of m-2's writes expect version 0 but the rows are at 1 (stale).
        sides: [write('m-1', 'p1', 0), write('m-1', 'p2', 0), write('m-2', 'p1', 0), write('m-2', 'p2', 0)],
        samples: [sample('m-1', 'p1'), sample('m-2', 'p1')],
        checklists: [
          { matchId: 'm-1', fields: { p1StreamLive: true, fpsOk: true } },
          { matchId: 'm-2', fields: { p1StreamLive: true } },
        ],
      },
      T + 30_000,
    );
    expect(applied.size).toBe(2);
    expect(applied.has('m-1', 'p1') && applied.has('m-1', 'p2')).toBe(true);
    expect(applied.has('m-2', 'p1') || applied.has('m-2', 'p2')).toBe(false);
    const samples = await sql<{ match_id: string }>`SELECT match_id FROM stream_samples`.execute(database.db);
    expect(samples.rows.map((r) => r.match_id)).toEqual(['m-1']);
    const checklists = await sql<{ match_id: string; p1_stream_live: boolean | null; fps_ok: boolean | null }>`
      SELECT match_id, p1_stream_live, fps_ok FROM checklists ORDER BY match_id`.execute(database.db);
    expect(checklists.rows.find((r) => r.match_id === 'm-1')).toMatchObject({ p1_stream_live: true, fps_ok: true });
    expect(checklists.rows.find((r) => r.match_id === 'm-2')?.p1_stream_live ?? null).not.toBe(true);
  });
});
