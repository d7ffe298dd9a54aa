import { KvUnavailableError } from '../kv/kv-store.js';

/** How long callers are told to wait (Retry-After, seconds) when a dependency is out. */
export const OUTAGE_RETRY_AFTER_S = 2;

/** SQLSTATE classes and codes that mean "the database cannot serve now", not "this statement is wrong". */
const PG_OUTAGE_CODE = /^(08|53|57P0)|^57014$/;
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
/** node-postgres reports a lost or never-made connection, and its own client-side timeouts, by message only. */
const PG_DRIVER_MESSAGES =
  /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client has encountered a connection error|Cannot use a pool after calling end)/;

/**
 * True when `err` says a dependency (PostgreSQL, Redis) is unreachable, overloaded or timed out: the caller should
 * get 503 with Retry-After and try again, never a 500. Looks through `cause` chains.
 */
export function isDependencyOutage(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof KvUnavailableError) return true;
    if (typeof e !== 'object') return false;
    const { code, message } = e as { code?: unknown; message?: unknown };
    if (typeof code === 'string' && (PG_OUTAGE_CODE.test(code) || SOCKET_CODES.has(code))) return true;
    if (typeof message === 'string' && PG_DRIVER_MESSAGES.test(message)) return true;
  }
  return false;
}
