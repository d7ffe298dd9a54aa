import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import { isDependencyOutage } from '../infra/faults/outage.js';
import { type OverlayCallRow, storeOverlayCalls, touchOverlayPresence } from './overlay-events.repository.js';

export interface PresenceBufferOptions {
  db: Kysely<Database>;
  clock: Clock;
  logger: Logger;
  /** Wall time between flushes (I/O batching, not a domain deadline). */
  flushEveryMs: number;
  /** Rows held at most; when full, `offer` refuses and the call takes the direct (transactional) path. */
  maxRows: number;
  /** Rows per flush transaction (one multi-row INSERT); a fuller buffer flushes again at once. */
  batchRows?: number;
}

/**
 * Coalesced overlay presence: accepted heartbeats of overlays already known to be connected wait here and are
 * persisted together, once per tick, in one transaction (one multi-row INSERT into overlay_events and one UPDATE
 * moving each match's `overlay_last_seen_at` forward). A heartbeat is presence, never gameplay evidence: losing the
 * last tick's rows in a crash costs nothing the next heartbeat does not restore (docs/security.md, "Overlay presence").
 * Bounded: a full buffer refuses, and a failed flush keeps its rows for the next tick.
 */
export class PresenceBuffer {
  private rows: OverlayCallRow[] = [];
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<number> | undefined;
  private stopped = false;
  private failing = false;
  private readonly batchRows: number;

  constructor(private readonly options: PresenceBufferOptions) {
    this.batchRows = Math.max(1, options.batchRows ?? 2_000);
  }

  get pending(): number {
    return this.rows.length;
  }

  /** Takes the row when there is room; false means the caller must persist it itself. */
  offer(row: OverlayCallRow): boolean {
    if (this.stopped || this.rows.length >= this.options.maxRows) return false;
    this.rows.push(row);
    this.schedule();
    return true;
  }

  /** The highest `seq` a key has waiting here (the store's floor must count rows not yet in PostgreSQL). */
  pendingMaxSeq(keyId: string): number | null {
    let max: number | null = null;
    for (const row of this.rows) if (row.keyId === keyId && row.seq !== null && (max === null || row.seq > max)) max = row.seq;
    return max;
  }

  /** Persists everything waiting now (in batches); resolves with how many rows were stored. Throws when a batch fails. */
  async flush(): Promise<number> {
    while (this.flushing) await this.flushing.catch(() => undefined);
    const run = this.drain();
    this.flushing = run;
    try {
      return await run;
    } finally {
      this.flushing = undefined;
    }
  }

  /**
   * Flushes what is left and takes no more rows (shutdown: after the HTTP server closed). The rows live in this
   * process only: if this last flush fails they go with it (logged with their number, then the error is rethrown).
   * They are presence only; the overlay's next heartbeat, at whichever instance, restores it.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    try {
      await this.flush();
    } catch (error) {
      this.options.logger.error(
        { err: error, dropped: this.rows.length },
        'overlay presence not persisted at shutdown: held heartbeats dropped (presence only; the next heartbeat restores it)',
      );
      throw error;
    }
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flush().then(
        () => {
          if (this.failing) this.options.logger.info('overlay presence flush recovered');
          this.failing = false;
        },
        (error: unknown) => {
          if (!this.failing || !isDependencyOutage(error)) {
            this.options.logger.warn(
              { err: error, pending: this.rows.length },
              'overlay presence flush failed; rows kept for the next tick',
            );
          }
          this.failing = true;
        },
      );
      if (this.rows.length > 0) this.schedule();
    }, this.options.flushEveryMs);
    this.timer.unref();
  }

  private async drain(): Promise<number> {
    let stored = 0;
    while (this.rows.length > 0) {
      const batch = this.rows.slice(0, this.batchRows);
      const lastSeen = new Map<string, number>();
      for (const row of batch) if ((lastSeen.get(row.matchId) ?? -Infinity) < row.receivedAt) lastSeen.set(row.matchId, row.receivedAt);
      const now = this.options.clock.now();
      await this.options.db.transaction().execute(async (trx) => {
        await storeOverlayCalls(trx, batch);
        await touchOverlayPresence(trx, lastSeen, now);
      });
      // Rows offered meanwhile were appended behind the batch.
      this.rows.splice(0, batch.length);
      stored += batch.length;
    }
    return stored;
  }
}
