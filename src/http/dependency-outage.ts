import { isTransientInfrastructureError } from '../infra/bus/consumer-runtime.js';
import { KvUnavailableError } from '../infra/kv/kv-store.js';

export type Dependency = 'database' | 'redis';

/** pg-pool's words when no connection could be had within connectionTimeoutMillis (no code attached). */
const POOL_TIMEOUT = 'timeout exceeded when trying to connect';

/**
 * Which dependency an error says is unreachable (or busy: retry later), or null when it is something else.
 * The database test is the consumer's own (`isTransientInfrastructureError`), plus the errors of AggregateErrors
 * (Node reports one per address tried) and pg-pool's connect timeout.
 */
export function dependencyOutage(error: unknown, depth = 0): Dependency | null {
  if (depth > 5 || error === null || typeof error !== 'object') return null;
  if (error instanceof KvUnavailableError) return 'redis';
  if (isTransientInfrastructureError(error)) return 'database';
  const { message, cause, errors } = error as { message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof message === 'string' && message.includes(POOL_TIMEOUT)) return 'database';
  for (const inner of Array.isArray(errors) ? errors : []) {
    const found = dependencyOutage(inner, depth + 1);
    if (found) return found;
  }
  return dependencyOutage(cause, depth + 1);
}
