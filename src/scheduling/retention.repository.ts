import { type Kysely, sql } from 'kysely';
import type { Database } from '../infra/db/schema.js';

export const RETENTION_TABLES = ['processed_events', 'outbox', 'overlay_events', 'stream_samples', 'dead_letters'] as const;
export type RetentionTable = (typeof RETENTION_TABLES)[number];

/**
 * Deletes up to `limit` rows of `table` older than `cutoff` that nothing needs any more; returns how many.
 * - outbox: published rows only (unpublished ones are events still to send).
 * - overlay_events, stream_samples: never of a match with an open grace episode (its verdict will read them);
 *   a verdict's own copy lives in its evidence bundle, which is never deleted.
 */
export async function deleteExpiredBatch(db: Kysely<Database>, table: RetentionTable, cutoff: Date, limit: number): Promise<number> {
  const result = await expiredBatchStatement(table, cutoff, limit).execute(db);
  return Number(result.numAffectedRows ?? 0n);
}

function expiredBatchStatement(table: RetentionTable, cutoff: Date, limit: number) {
  switch (table) {
    case 'processed_events':
      return sql`DELETE FROM processed_events WHERE (consumer, event_id) IN (
        SELECT consumer, event_id FROM processed_events WHERE processed_at < ${cutoff} LIMIT ${limit})`;
    case 'outbox':
      return sql`DELETE FROM outbox WHERE seq IN (
        SELECT seq FROM outbox WHERE published_at IS NOT NULL AND published_at < ${cutoff} ORDER BY seq LIMIT ${limit})`;
    case 'overlay_events':
      return sql`DELETE FROM overlay_events WHERE id IN (
        SELECT o.id FROM overlay_events o WHERE o.received_at < ${cutoff}
          AND NOT EXISTS (SELECT 1 FROM grace_episodes g WHERE g.match_id = o.match_id AND g.state = 'open')
        ORDER BY o.id LIMIT ${limit})`;
    case 'stream_samples':
      return sql`DELETE FROM stream_samples WHERE id IN (
        SELECT s.id FROM stream_samples s WHERE s.observed_at < ${cutoff}
          AND NOT EXISTS (SELECT 1 FROM grace_episodes g WHERE g.match_id = s.match_id AND g.state = 'open')
        ORDER BY s.id LIMIT ${limit})`;
    case 'dead_letters':
      return sql`DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE created_at < ${cutoff} LIMIT ${limit})`;
  }
}
