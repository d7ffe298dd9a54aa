import { describe, expect, it } from 'vitest';
import { adminKeyVariables, decideDelivery } from './admin-key.policy.js';

const NOW = 1_000_000;
const settings = { maxAttempts: 4 };

describe('decideDelivery', () => {
  it('updated → DELIVERED', () => {
    expect(decideDelivery({ kind: 'updated' }, 1, NOW, settings, 0.5)).toEqual({ state: 'DELIVERED' });
  });

  it.each([
    ['FORBIDDEN', 403],
    ['BAD_REQUEST', 422],
    ['NOT_FOUND', 404],
    ['VARIABLE_NOT_IN_EGG', 200],
  ])('a refusal that retrying cannot fix (%s) is FAILED at the first attempt, with what the panel said', (reason, status) => {
    const decision = decideDelivery({ kind: 'error', retryable: false, reason, status, detail: 'why' }, 1, NOW, settings, 0.5);
    expect(decision).toEqual({ state: 'FAILED', failure: { reason, status, detail: 'why' } });
  });

  it('a retryable failure waits with backoff (full jitter, floor 250 ms) and keeps the failure for the view', () => {
    const low = decideDelivery({ kind: 'error', retryable: true, reason: 'SERVER_ERROR', status: 500 }, 1, NOW, settings, 0);
    expect(low).toEqual({ state: 'PENDING', nextAt: NOW + 250, failure: { reason: 'SERVER_ERROR', status: 500, detail: null } });
    const high = decideDelivery({ kind: 'error', retryable: true, reason: 'SERVER_ERROR', status: 500 }, 3, NOW, settings, 0.999);
    expect(high.state).toBe('PENDING');
    expect(high.state === 'PENDING' && high.nextAt - NOW).toBeGreaterThan(7_000); // 1 s · 2³ ceiling
    expect(high.state === 'PENDING' && high.nextAt - NOW).toBeLessThan(8_000);
  });

  it("honours the panel's Retry-After when it is longer than the backoff", () => {
    const decision = decideDelivery(
      { kind: 'error', retryable: true, reason: 'RATE_LIMITED', status: 429, retryAfterMs: 23_000 },
      1,
      NOW,
      settings,
      0.1,
    );
    expect(decision).toMatchObject({ state: 'PENDING', nextAt: NOW + 23_000 });
  });

  it('a retryable failure at the last attempt is FAILED', () => {
    const result = { kind: 'error', retryable: true, reason: 'TIMEOUT' } as const;
    expect(decideDelivery(result, 3, NOW, settings, 0.5).state).toBe('PENDING');
    expect(decideDelivery(result, 4, NOW, settings, 0.5)).toEqual({
      state: 'FAILED',
      failure: { reason: 'TIMEOUT', status: null, detail: null },
    });
  });
});

describe('adminKeyVariables', () => {
  it('names the configured variables', () => {
    expect(adminKeyVariables({ idVariable: 'A_ID', secretVariable: 'A_SECRET' }, 'adm_m_1700000000000', 's3cr3t')).toEqual({
      A_ID: 'adm_m_1700000000000',
      A_SECRET: 's3cr3t',
    });
  });
});
