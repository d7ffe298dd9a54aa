import type { Kysely } from 'kysely';
import type { Config } from '../config/config.js';
import type { Database } from '../infra/db/schema.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { deleteExpiredBatch, RETENTION_TABLES, type RetentionTable } from './retention.repository.js';

export { RETENTION_TABLES, type RetentionTable };

/** How long each kind of row is kept, in ms. Evidence, enforcements, episodes, matches and the ledger are kept. */
export type RetentionWindows = Readonly<Record<RetentionTable, number>>;

export function retentionWindowsFromConfig(
  config: Pick<
    Config,
    | 'RETENTION_PROCESSED_EVENTS_MS'
    | 'RETENTION_OUTBOX_MS'
    | 'RETENTION_OVERLAY_EVENTS_MS'
    | 'RETENTION_STREAM_SAMPLES_MS'
    | 'RETENTION_DEAD_LETTERS_MS'
  >,
): RetentionWindows {
  return {
    processed_events: config.RETENTION_PROCESSED_EVENTS_MS,
    outbox: config.RETENTION_OUTBOX_MS,
    overlay_events: config.RETENTION_OVERLAY_EVENTS_MS,
    stream_samples: config.RETENTION_STREAM_SAMPLES_MS,
    dead_letters: config.RETENTION_DEAD_LETTERS_MS,
  };
}

/** Rows older than these instants may go (each table's own rules about what is still needed apply on top). */
export function retentionCutoffs(now: number, windows: RetentionWindows): Record<RetentionTable, Date> {
  return Object.fromEntries(RETENTION_TABLES.map((table) => [table, new Date(now - windows[table])])) as Record<RetentionTable, Date>;
}

export interface RetentionRun {
  db: Kysely<Database>;
  now: number;
  windows: RetentionWindows;
  /** Rows per DELETE statement: each is a short transaction of its own. */
  batchSize: number;
  /** Statements per table per run; the rest waits for the next tick, so one run stays short. */
  maxBatches: number;
  signal?: AbortSignal;
  metrics?: Pick<Metrics, 'retentionDeleted'>;
  logger?: Logger;
}

/** Deletes expired rows table by table in bounded batches; returns how many went from each. */
export async function runRetention(run: RetentionRun): Promise<Record<RetentionTable, number>> {
  const cutoffs = retentionCutoffs(run.now, run.windows);
  const deleted = Object.fromEntries(RETENTION_TABLES.map((t) => [t, 0])) as Record<RetentionTable, number>;
  for (const table of RETENTION_TABLES) {
    for (let batch = 0; batch < run.maxBatches && !run.signal?.aborted; batch++) {
      const n = await deleteExpiredBatch(run.db, table, cutoffs[table], run.batchSize);
      deleted[table] += n;
      run.metrics?.retentionDeleted.inc({ table }, n);
      if (n < run.batchSize) break;
    }
  }
  const total = Object.values(deleted).reduce((a, b) => a + b, 0);
  if (total > 0) run.logger?.info({ deleted }, 'retention: expired rows deleted');
  return deleted;
}
