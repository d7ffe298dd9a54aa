/**
 * The backup-sweep rule: the 1-minute backup sweeps only when no full sweep completed recently (a stalled or
 * crashed primary), so a healthy primary is never doubled. The last completion time lives in the key-value store.
 */
import type { Logger } from 'pino';
import type { KeyValueStore } from '../infra/kv/kv-store.js';

/** Last completed full sweep (clock ms), read by the backup sweep. Losing it costs one extra backup sweep. */
export const LAST_SWEEP_KEY = 'str:sweep:last-completed';

/** Whether the backup must sweep: the last full sweep is unknown, unreadable or older than `staleAfterMs`. */
export function backupSweepDue(lastCompletedAt: number | null, now: number, staleAfterMs: number): boolean {
  return lastCompletedAt === null || !Number.isFinite(lastCompletedAt) || now - lastCompletedAt >= staleAfterMs;
}

/** The last full sweep's completion time, or null when unknown (the store down counts as unknown). */
export async function lastSweepCompletedAt(kv: KeyValueStore, logger: Logger): Promise<number | null> {
  try {
    const raw = await kv.get(LAST_SWEEP_KEY);
    return raw === null ? null : Number(raw);
  } catch (err) {
    logger.warn({ err, reason: 'KV_UNAVAILABLE' }, 'last sweep time unknown; backup sweep runs');
    return null;
  }
}

export async function recordSweepCompleted(kv: KeyValueStore, at: number, logger: Logger): Promise<void> {
  try {
    await kv.set(LAST_SWEEP_KEY, String(at), { px: 24 * 3600_000 });
  } catch (err) {
    logger.warn({ err, reason: 'KV_UNAVAILABLE' }, 'could not record the sweep completion; the backup sweep may run once more');
  }
}
