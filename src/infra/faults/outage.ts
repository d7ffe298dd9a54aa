import { KvUnavailableError } from '../kv/kv-store.js';

/** How long callers are told to wait (Retry-After, seconds) when a dependency is out. */
export const OUTAGE_RETRY_AFTER_S = 2;

export type Dependency = 'database' | 'redis';

/** SQLSTATE classes and codes that mean "the database cannot serve now", not "this statement is wrong". */
const PG_OUTAGE_CODE = /^(08|53|57P)|^57014$/;
/** Serialization failure and deadlock: the statement was fine, a retry succeeds. */
const PG_RETRY_CODE = /^(40001|40P01)$/;
/** Socket errors of the pg driver or any other client. */
const SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNABORTED',
]);
/** node-postgres and the embedded pool report a lost or never-made connection, and their own timeouts, by message only. */
const DRIVER_MESSAGES =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Cannot use a pool after calling end|connection timeout|not released in time/i;

/**
 * Which dependency an error says is unreachable, overloaded or timed out (the caller should get 503 with
 * Retry-After, a consumer should retry), or null when it is something else. Looks through `cause` chains and the
 * errors of an AggregateError (Node reports one per address tried).
 */
export function dependencyOutage(err: unknown, depth = 0): Dependency | null {
  if (depth > 5 || err === null || typeof err !== 'object') return null;
  if (err instanceof KvUnavailableError) return 'redis';
  const { code, message, cause, errors } = err as { code?: unknown; message?: unknown; cause?: unknown; errors?: unknown };
  if (typeof code === 'string' && (PG_OUTAGE_CODE.test(code) || SOCKET_CODES.has(code))) return 'database';
  if (typeof message === 'string' && DRIVER_MESSAGES.test(message)) return 'database';
  for (const inner of Array.isArray(errors) ? errors : []) {
    const found = dependencyOutage(inner, depth + 1);
    if (found) return found;
  }
  return dependencyOutage(cause, depth + 1);
}

export function isDependencyOutage(err: unknown): boolean {
  return dependencyOutage(err) !== null;
}

/** An outage, or a serialization failure / deadlock: retry the work, never dead-letter it. */
export function isTransientInfrastructureError(err: unknown): boolean {
  if (isDependencyOutage(err)) return true;
  for (let e = err, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && PG_RETRY_CODE.test(code)) return true;
  }
  return false;
}
