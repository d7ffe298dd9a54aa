import { KvUnavailableError } from '../infra/kv/kv-store.js';

export type Dependency = 'database' | 'redis';

/** Socket-level failures: the peer is down, unreachable or went away. */
const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EPIPE']);
/** node-postgres' own words when a connection is lost or cannot be had. */
const PG_MESSAGES = [
  'Connection terminated',
  'timeout exceeded when trying to connect',
  'Client has encountered a connection error',
  'Cannot use a pool after calling end on the pool',
  'Client was closed and is not queryable',
];

/** SQLSTATE class 08 (connection exception), 53 (insufficient resources), 57P01-57P03 (server shutting down). */
function isPgOutageCode(code: string): boolean {
  return /^08[0-9A-Z]{3}$/.test(code) || /^53[0-9A-Z]{3}$/.test(code) || ['57P01', '57P02', '57P03'].includes(code);
}

/**
 * Which dependency an error says is unreachable, or null when it is something else (a bug, bad data).
 * Looks through `cause` chains and AggregateErrors (Node reports one per address tried).
 */
export function dependencyOutage(error: unknown, depth = 0): Dependency | null {
  if (depth > 5 || error === null || typeof error !== 'object') return null;
  if (error instanceof KvUnavailableError) return 'redis';
  const { code, message, cause, errors } = error as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && (NETWORK_CODES.has(code) || isPgOutageCode(code))) return 'database';
  if (typeof message === 'string' && PG_MESSAGES.some((m) => message.includes(m))) return 'database';
  if (Array.isArray(errors)) {
    for (const inner of errors) {
      const found = dependencyOutage(inner, depth + 1);
      if (found) return found;
    }
  }
  return dependencyOutage(cause, depth + 1);
}
