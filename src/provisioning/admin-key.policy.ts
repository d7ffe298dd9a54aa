/**
 * Pure decisions of the admin key's delivery to the game server (docs/security.md "Admin key lifecycle"): after one
 * attempt to set the startup variables, delivered, try again later, or failed for good (recorded, with why).
 */
import { backoffDelay, type BackoffPolicy } from '../infra/backoff.js';
import type { VariableUpdateResult } from './panel.port.js';

export interface AdminKeySettings {
  /** The egg variable the admin plugin reads its key id from (ADMIN_KEY_ID_VARIABLE). */
  idVariable: string;
  /** The egg variable the admin plugin reads its key's secret from (ADMIN_KEY_SECRET_VARIABLE). */
  secretVariable: string;
  /** Attempts before a retryable failure is final (ADMIN_KEY_DELIVERY_MAX_ATTEMPTS). */
  maxAttempts: number;
}

/** Delivery backoff: 1 s base, 30 s cap, full jitter, never sooner than 250 ms (or the panel's Retry-After). */
const DELIVERY_BACKOFF: BackoffPolicy = { baseMs: 1000, capMs: 30_000, jitter: 'full' };
const DELIVERY_FLOOR_MS = 250;

export type DeliveryDecision =
  | { state: 'DELIVERED' }
  | { state: 'PENDING'; nextAt: number; failure: DeliveryFailure }
  | { state: 'FAILED'; failure: DeliveryFailure };

export interface DeliveryFailure {
  reason: string;
  status: number | null;
  detail: string | null;
}

/** After one delivery attempt (`attempts` counts it). A panel that refuses (403, 422, 404 …) is final at once. */
export function decideDelivery(
  result: VariableUpdateResult,
  attempts: number,
  now: number,
  settings: Pick<AdminKeySettings, 'maxAttempts'>,
  random: number,
): DeliveryDecision {
  if (result.kind === 'updated') return { state: 'DELIVERED' };
  const failure: DeliveryFailure = { reason: result.reason, status: result.status ?? null, detail: result.detail ?? null };
  if (!result.retryable || attempts >= settings.maxAttempts) return { state: 'FAILED', failure };
  const wait = Math.max(DELIVERY_FLOOR_MS, backoffDelay(attempts, DELIVERY_BACKOFF, random), result.retryAfterMs ?? 0);
  return { state: 'PENDING', nextAt: now + wait, failure };
}

/** The startup variables that carry the key to the game server. */
export function adminKeyVariables(settings: Pick<AdminKeySettings, 'idVariable' | 'secretVariable'>, keyId: string, secret: string) {
  return { [settings.idVariable]: keyId, [settings.secretVariable]: secret };
}
