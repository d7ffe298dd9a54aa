import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { dependencyOutage } from '../faults/outage.js';

/**
 * Runs the start-up step that first needs the database (the migrations) and, while the database is unreachable
 * (an outage, not a wrong statement), tries again with backoff for up to `waitMs`: a restart during a database
 * outage waits for it instead of exiting at once (a supervisor restarting it in a loop). Anything else, or an
 * outage longer than `waitMs`, is thrown (the process exits non-zero with the reason). `waitMs` 0: no wait.
 */
export async function untilDatabaseAnswers<T>(step: () => Promise<T>, options: { waitMs: number; logger: Logger }): Promise<T> {
  const started = Date.now();
  let delayMs = 250;
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      const waited = Date.now() - started;
      if (dependencyOutage(error) !== 'database' || waited + delayMs > options.waitMs) {
        if (dependencyOutage(error) === 'database') {
          throw new Error(`database unreachable at start for ${Math.round(waited / 1000)} s (DB_STARTUP_WAIT_MS=${options.waitMs})`, {
            cause: error,
          });
        }
        throw error;
      }
      options.logger.warn(
        { err: error, reason: 'DATABASE_UNAVAILABLE_AT_START', attempt, waitedMs: waited, retryInMs: delayMs },
        'database unreachable at start; waiting for it',
      );
      await sleep(delayMs);
      delayMs = Math.min(5_000, delayMs * 2);
    }
  }
}
