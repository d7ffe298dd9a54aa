import { describe, expect, it } from 'vitest';
import type { AdminKeyDelivery } from '../infra/db/schema.js';
import { adminKeyView } from './admin-key-view.js';

const deadline = new Date(Date.UTC(2026, 10, 30, 9, 0, 0));

function row(overrides: Partial<AdminKeyDelivery>): AdminKeyDelivery {
  return {
    match_id: 'm-1',
    key_id: 'adm_m-1_1764490000000',
    panel_server_id: 57,
    state: 'PENDING',
    attempts: 0,
    next_at: null,
    failure_reason: null,
    failure_status: null,
    failure_detail: null,
    delivered_at: null,
    revoke_state: 'NONE',
    revoked_at: null,
    lease_owner: null,
    lease_until: null,
    created_at: deadline,
    updated_at: deadline,
    ...overrides,
  };
}

describe('adminKeyView', () => {
  it('a delivered key: nothing blocks the hook', () => {
    const view = adminKeyView(row({ state: 'DELIVERED', attempts: 1, delivered_at: deadline }), {
      state: 'INSTALLING',
      deadlineAt: deadline,
    });
    expect(view).toMatchObject({ keyId: 'adm_m-1_1764490000000', delivery: 'DELIVERED', adminHookBlocked: null, revoked: false });
  });

  it('a retry in progress shows the last failure but does not call the hook blocked yet', () => {
    const view = adminKeyView(row({ attempts: 2, failure_reason: 'SERVER_ERROR', failure_status: 500 }), {
      state: 'INSTALLING',
      deadlineAt: deadline,
    });
    expect(view.lastFailure).toEqual({ reason: 'SERVER_ERROR', status: 500, detail: null });
    expect(view.adminHookBlocked).toBeNull();
  });

  it('a refused update: says which server, what the panel answered, and that the deadline will cancel the match', () => {
    const view = adminKeyView(
      row({
        state: 'FAILED',
        attempts: 1,
        failure_reason: 'FORBIDDEN',
        failure_status: 403,
        failure_detail: 'This action is unauthorized.',
      }),
      { state: 'WAITING_SIGNALS', deadlineAt: deadline },
    );
    expect(view.adminHookBlocked).toBe(
      'admin key adm_m-1_1764490000000 cannot reach the game server: the panel refused the startup-variables update of server 57 after 1 attempt (FORBIDDEN HTTP 403: This action is unauthorized.), so the admin plugin cannot sign its hook — unless the admin hook is signed another way, provisioning fails (TIMEOUT) at 2026-11-30T09:00:00.000Z and the match is cancelled and refunded',
    );
  });

  it('an egg without the variable, and a missing master secret, are told apart', () => {
    const egg = adminKeyView(row({ state: 'FAILED', attempts: 1, failure_reason: 'VARIABLE_NOT_IN_EGG', failure_status: 200 }), {
      state: 'INSTALLING',
      deadlineAt: deadline,
    });
    expect(egg.adminHookBlocked).toContain('accepted the startup update of server 57 but did not store the key');
    const noSecret = adminKeyView(row({ key_id: null, state: 'FAILED', failure_reason: 'NO_MASTER_SECRET' }), {
      state: 'INSTALLING',
      deadlineAt: deadline,
    });
    expect(noSecret.adminHookBlocked).toContain('ADMIN_HOOK_SECRET is not configured');
  });

  it('after the provision ended, the reason stays but no deadline is promised', () => {
    const view = adminKeyView(
      row({ state: 'FAILED', attempts: 3, failure_reason: 'SERVER_ERROR', failure_status: 500, revoke_state: 'DONE' }),
      {
        state: 'FAILED',
        deadlineAt: deadline,
      },
    );
    expect(view.revoked).toBe(true);
    expect(view.adminHookBlocked).toContain('after 3 attempts (SERVER_ERROR HTTP 500)');
    expect(view.adminHookBlocked).not.toContain('TIMEOUT');
  });
});
