import { describe, expect, it } from 'vitest';
import {
  cleanupAfterFailure,
  cleanupAfterRelease,
  decideAfterPoll,
  decideCleanup,
  decideOnSignal,
  missingSignals,
  type PanelObservation,
  type ProvisionSnapshot,
} from './policy.js';

const settings = { pollEveryMs: 4000, backoffBaseMs: 500, backoffCapMs: 30_000 };
const now = 1_000_000;
const installing: ProvisionSnapshot = { state: 'INSTALLING', deadlineAt: now + 200_000, pollFailures: 0 };
const allSignals = { adminHooksOk: true, overlayConnected: true, overlayRequired: true };
const noSignals = { adminHooksOk: false, overlayConnected: false, overlayRequired: true };
const installed: PanelObservation = { kind: 'install', state: 'installed', status: null };

describe('missingSignals', () => {
  it.each([
    [true, { adminHooksOk: true, overlayConnected: false, overlayRequired: false }, []],
    [true, { adminHooksOk: true, overlayConnected: false, overlayRequired: true }, ['overlayConnected']],
    [false, { adminHooksOk: true, overlayConnected: true, overlayRequired: true }, ['serverInstalled']],
    [true, { adminHooksOk: false, overlayConnected: true, overlayRequired: true }, ['adminHooksOk']],
    [
      false,
      { adminHooksOk: false, overlayConnected: false, overlayRequired: true },
      ['serverInstalled', 'adminHooksOk', 'overlayConnected'],
    ],
  ])('installed=%s %o → %o', (inst, signals, expected) => {
    expect(missingSignals(inst, signals)).toEqual(expected);
  });
});

describe('decideAfterPoll', () => {
  it('installed with every signal → ready', () => {
    expect(decideAfterPoll(installing, installed, allSignals, now, settings, 0.5)).toEqual({ kind: 'ready' });
  });

  it('installed without signals → waits for signals and stops polling the panel', () => {
    expect(decideAfterPoll(installing, installed, noSignals, now, settings, 0.5)).toEqual({
      kind: 'wait',
      state: 'WAITING_SIGNALS',
      nextPollAt: null,
      pollFailures: 0,
      serverInstalled: true,
    });
  });

  it('overlay not required → admin hook alone completes readiness', () => {
    const d = decideAfterPoll(
      installing,
      installed,
      { adminHooksOk: true, overlayConnected: false, overlayRequired: false },
      now,
      settings,
      0.5,
    );
    expect(d.kind).toBe('ready');
  });

  it('pending and indeterminate keep polling every POLL_EVERY_MS', () => {
    for (const state of ['pending', 'indeterminate'] as const) {
      const d = decideAfterPoll(installing, { kind: 'install', state, status: 'installing' }, allSignals, now, settings, 0.5);
      expect(d).toMatchObject({ kind: 'wait', state: 'INSTALLING', nextPollAt: now + 4000 });
    }
  });

  it('install failed → INSTALL_FAILED at once', () => {
    const d = decideAfterPoll(installing, { kind: 'install', state: 'failed', status: 'install_failed' }, allSignals, now, settings, 0.5);
    expect(d).toMatchObject({ kind: 'fail', reason: 'INSTALL_FAILED' });
  });

  it('404 → PANEL_NOT_FOUND; non-retryable error → PANEL_ERROR', () => {
    expect(decideAfterPoll(installing, { kind: 'not_found' }, allSignals, now, settings, 0.5)).toMatchObject({
      kind: 'fail',
      reason: 'PANEL_NOT_FOUND',
    });
    expect(
      decideAfterPoll(installing, { kind: 'error', retryable: false, reason: 'HTTP_403' }, allSignals, now, settings, 0.5),
    ).toMatchObject({
      kind: 'fail',
      reason: 'PANEL_ERROR',
      detail: 'HTTP_403',
    });
  });

  it('retryable errors back off with growing ceilings, honour Retry-After, never past the deadline', () => {
    const d1 = decideAfterPoll(installing, { kind: 'error', retryable: true, reason: 'HTTP_500' }, allSignals, now, settings, 0.999);
    expect(d1).toMatchObject({ kind: 'wait', pollFailures: 1 });
    if (d1.kind !== 'wait') throw new Error('expected wait');
    expect(d1.nextPollAt! - now).toBeLessThanOrEqual(1000);
    const d2 = decideAfterPoll(
      { ...installing, pollFailures: 5 },
      { kind: 'error', retryable: true, reason: 'HTTP_500' },
      allSignals,
      now,
      settings,
      0.999,
    );
    if (d2.kind !== 'wait') throw new Error('expected wait');
    expect(d2.nextPollAt! - now).toBeGreaterThan(16_000);
    const d3 = decideAfterPoll(
      installing,
      { kind: 'error', retryable: true, reason: 'HTTP_429', retryAfterMs: 23_000 },
      allSignals,
      now,
      settings,
      0,
    );
    if (d3.kind !== 'wait') throw new Error('expected wait');
    expect(d3.nextPollAt).toBe(now + 23_000);
    const nearDeadline = { ...installing, deadlineAt: now + 1000 };
    const d4 = decideAfterPoll(
      nearDeadline,
      { kind: 'error', retryable: true, reason: 'HTTP_429', retryAfterMs: 60_000 },
      allSignals,
      now,
      settings,
      0,
    );
    if (d4.kind !== 'wait') throw new Error('expected wait');
    expect(d4.nextPollAt).toBe(now + 1000);
  });

  it('at or past the deadline → TIMEOUT whatever the panel says', () => {
    const late = { ...installing, deadlineAt: now };
    expect(decideAfterPoll(late, installed, allSignals, now, settings, 0.5)).toMatchObject({ kind: 'fail', reason: 'TIMEOUT' });
  });
});

describe('decideOnSignal', () => {
  it('a signal completes readiness only once the server is installed', () => {
    expect(decideOnSignal('WAITING_SIGNALS', true, allSignals)).toBe('ready');
    expect(decideOnSignal('INSTALLING', false, allSignals)).toBe('waiting');
    expect(decideOnSignal('WAITING_SIGNALS', true, { ...allSignals, adminHooksOk: false })).toBe('waiting');
    expect(decideOnSignal('READY', true, allSignals)).toBe('not_applicable');
    expect(decideOnSignal('FAILED', true, allSignals)).toBe('not_applicable');
    expect(decideOnSignal('RELEASED', true, allSignals)).toBe('not_applicable');
  });
});

describe('decideCleanup', () => {
  const cleanup = { cleanupMaxAttempts: 12 };
  const retryable = { kind: 'error', retryable: true, reason: 'PANEL_5XX' } as const;

  it('a deleted or already gone server is done', () => {
    expect(decideCleanup({ kind: 'deleted' }, 1, now, cleanup, 0.5)).toEqual({ state: 'DONE', nextAt: null });
    expect(decideCleanup({ kind: 'already_gone' }, 12, now, cleanup, 0.5)).toEqual({ state: 'DONE', nextAt: null });
  });

  it('a retryable error retries with jittered backoff, never sooner than 1 s and never later than 5 min', () => {
    expect(decideCleanup(retryable, 1, now, cleanup, 0)).toEqual({ state: 'PENDING', nextAt: now + 1000 });
    expect(decideCleanup(retryable, 2, now, cleanup, 0.5)).toEqual({ state: 'PENDING', nextAt: now + 4000 }); // 0.5 × 2000·2²
    expect(decideCleanup(retryable, 11, now, cleanup, 0.999)).toEqual({ state: 'PENDING', nextAt: now + 299_700 });
  });

  it('gives up on a permanent error, or once the attempts are used up', () => {
    expect(decideCleanup({ kind: 'error', retryable: false, reason: 'PANEL_FORBIDDEN' }, 1, now, cleanup, 0.5)).toEqual({
      state: 'GAVE_UP',
      nextAt: null,
    });
    expect(decideCleanup(retryable, 12, now, cleanup, 0.5)).toEqual({ state: 'GAVE_UP', nextAt: null });
    expect(decideCleanup(retryable, 11, now, cleanup, 0.5).state).toBe('PENDING');
  });
});

describe('cleanup after failure or release', () => {
  it('a failure queues a cleanup unless the panel does not know the server', () => {
    expect(cleanupAfterFailure('PANEL_NOT_FOUND')).toBe('DONE');
    for (const reason of ['TIMEOUT', 'INSTALL_FAILED', 'PANEL_ERROR'] as const) expect(cleanupAfterFailure(reason)).toBe('PENDING');
  });

  it('a release queues a cleanup unless one already finished', () => {
    expect(cleanupAfterRelease('DONE')).toBe('DONE');
    for (const state of ['NONE', 'PENDING', 'GAVE_UP'] as const) expect(cleanupAfterRelease(state)).toBe('PENDING');
  });
});
