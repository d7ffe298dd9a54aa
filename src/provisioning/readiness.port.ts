import type { Db } from '../infra/db/db.js';

/** A readiness signal other than the panel's: the admin hook answered, or the overlay's presence changed. */
export type ReadinessSignal = { adminHooksOk: true } | { overlayConnected: boolean; at: number };

export type ReadinessVerdict = 'ready' | 'waiting' | 'not_applicable' | 'timed_out';

/**
 * How hook signals reach provisioning (provisioning owns this port; matches' hook handling calls it).
 * `db` is the caller's transaction when the signal must commit together with the caller's own writes.
 */
export interface ReadinessSignals {
  recordReadinessSignal(matchId: string, signal: ReadinessSignal, db?: Db): Promise<ReadinessVerdict>;
}
