import type { AdminKeyDelivery } from '../infra/db/schema.js';

/** The admin key of a match as the match view shows it (never its secret). */
export interface AdminKeyView {
  keyId: string | null;
  /** PENDING (being delivered), DELIVERED, FAILED (will not arrive), CANCELLED (the match ended first). */
  delivery: string;
  attempts: number;
  deliveredAt: string | null;
  revoked: boolean;
  lastFailure: { reason: string; status: number | null; detail: string | null } | null;
  /** Set while the admin hook cannot arrive: why, in words, and what happens next. Null otherwise. */
  adminHookBlocked: string | null;
}

/** Pure: the admin key part of the match view, from its delivery row and the provision's state and deadline. */
export function adminKeyView(row: AdminKeyDelivery, provision: { state: string; deadlineAt: Date | null }): AdminKeyView {
  const failure =
    row.failure_reason === null ? null : { reason: row.failure_reason, status: row.failure_status, detail: row.failure_detail };
  return {
    keyId: row.key_id,
    delivery: row.state,
    attempts: row.attempts,
    deliveredAt: row.delivered_at ? row.delivered_at.toISOString() : null,
    revoked: row.revoke_state !== 'NONE',
    lastFailure: failure,
    adminHookBlocked: row.state === 'FAILED' && failure ? blockedBecause(row, failure, provision) : null,
  };
}

function blockedBecause(
  row: AdminKeyDelivery,
  failure: NonNullable<AdminKeyView['lastFailure']>,
  provision: { state: string; deadlineAt: Date | null },
): string {
  const active = ['RESERVED', 'INSTALLING', 'WAITING_SIGNALS'].includes(provision.state);
  const next = active
    ? provision.deadlineAt
      ? ` — unless the admin hook is signed another way, provisioning fails (TIMEOUT) at ${provision.deadlineAt.toISOString()} and the match is cancelled and refunded`
      : ''
    : '';
  if (failure.reason === 'NO_MASTER_SECRET') {
    return `no admin key was issued: ADMIN_HOOK_SECRET is not configured, so the game server's admin plugin has no key to sign its hook${next}`;
  }
  const http = failure.status === null ? '' : ` HTTP ${failure.status}`;
  const detail = failure.detail ? `: ${failure.detail}` : '';
  const what =
    failure.reason === 'VARIABLE_NOT_IN_EGG'
      ? `the panel accepted the startup update of server ${row.panel_server_id} but did not store the key`
      : `the panel refused the startup-variables update of server ${row.panel_server_id} after ${row.attempts} attempt${row.attempts === 1 ? '' : 's'}`;
  return `admin key ${row.key_id ?? '?'} cannot reach the game server: ${what} (${failure.reason}${http}${detail}), so the admin plugin cannot sign its hook${next}`;
}
