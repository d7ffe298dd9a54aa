/**
 * Pure provisioning decisions: readiness, the state machine after each panel observation, backoff and
 * deadlines. Plain data in, a decision out; the worker only fetches, calls these, and persists the verdict.
 */
import { backoffDelay, type BackoffPolicy } from '../infra/backoff.js';
import type { CleanupState, ProvisionState } from '../infra/db/schema.js';

export type FailureReason = 'TIMEOUT' | 'INSTALL_FAILED' | 'PANEL_NOT_FOUND' | 'PANEL_ERROR';

export type InstallState = 'installed' | 'pending' | 'failed' | 'indeterminate';

/** What one panel poll told us. */
export type PanelObservation =
  | { kind: 'install'; state: InstallState; status: string | null | undefined }
  | { kind: 'not_found' }
  | { kind: 'error'; retryable: true; reason: string; retryAfterMs?: number }
  | { kind: 'error'; retryable: false; reason: string };

/** What one attempt to delete the server on the panel told us. */
export type CleanupResult = { kind: 'deleted' } | { kind: 'already_gone' } | { kind: 'error'; retryable: boolean; reason: string };

/** The readiness signals other than the panel (admin hook, overlay), as recorded on the checklist. */
export interface SignalState {
  adminHooksOk: boolean;
  overlayConnected: boolean;
  overlayRequired: boolean;
}

export interface ProvisionSnapshot {
  state: ProvisionState;
  deadlineAt: number;
  pollFailures: number;
}

export interface PollSettings {
  pollEveryMs: number;
  backoffBaseMs: number;
  backoffCapMs: number;
}

export type Decision =
  | { kind: 'ready' }
  | { kind: 'fail'; reason: FailureReason; detail: string }
  | { kind: 'wait'; state: 'INSTALLING' | 'WAITING_SIGNALS'; nextPollAt: number | null; pollFailures: number; serverInstalled: boolean };

export const ACTIVE_STATES: readonly ProvisionState[] = ['RESERVED', 'INSTALLING', 'WAITING_SIGNALS'];

export function isActive(state: ProvisionState): boolean {
  return ACTIVE_STATES.includes(state);
}

/** Readiness = installed AND admin hooks OK AND (overlay connected when the match requires an overlay). */
export function missingSignals(installed: boolean, signals: SignalState): string[] {
  const missing: string[] = [];
  if (!installed) missing.push('serverInstalled');
  if (!signals.adminHooksOk) missing.push('adminHooksOk');
  if (signals.overlayRequired && !signals.overlayConnected) missing.push('overlayConnected');
  return missing;
}

/** Never schedule work past the deadline: the deadline sweep owns what happens then. */
export function clampToDeadline(at: number, deadlineAt: number): number {
  return Math.min(at, deadlineAt);
}

export function isPastDeadline(now: number, deadlineAt: number): boolean {
  return now >= deadlineAt;
}

/** The state machine step after one panel observation. */
export function decideAfterPoll(
  provision: ProvisionSnapshot,
  observation: PanelObservation,
  signals: SignalState,
  now: number,
  settings: PollSettings,
  random: number,
): Decision {
  if (isPastDeadline(now, provision.deadlineAt)) {
    return { kind: 'fail', reason: 'TIMEOUT', detail: 'readiness deadline passed' };
  }
  switch (observation.kind) {
    case 'not_found':
      return { kind: 'fail', reason: 'PANEL_NOT_FOUND', detail: 'the panel does not know this server' };
    case 'error': {
      if (!observation.retryable) return { kind: 'fail', reason: 'PANEL_ERROR', detail: observation.reason };
      const failures = provision.pollFailures + 1;
      const jittered = backoffDelay(failures, { baseMs: settings.backoffBaseMs, capMs: settings.backoffCapMs, jitter: 'full' }, random);
      const wait = Math.max(jittered, observation.retryAfterMs ?? 0, 250);
      return {
        kind: 'wait',
        state: provision.state === 'WAITING_SIGNALS' ? 'WAITING_SIGNALS' : 'INSTALLING',
        nextPollAt: clampToDeadline(now + wait, provision.deadlineAt),
        pollFailures: failures,
        serverInstalled: provision.state === 'WAITING_SIGNALS',
      };
    }
    case 'install': {
      if (observation.state === 'failed') {
        return { kind: 'fail', reason: 'INSTALL_FAILED', detail: `panel status ${String(observation.status)}` };
      }
      if (observation.state === 'installed') {
        if (missingSignals(true, signals).length === 0) return { kind: 'ready' };
        // Installed: the panel has nothing more to say; the remaining signals arrive as hook calls.
        return { kind: 'wait', state: 'WAITING_SIGNALS', nextPollAt: null, pollFailures: 0, serverInstalled: true };
      }
      // pending or indeterminate (suspended, unknown status): keep polling until the deadline.
      return {
        kind: 'wait',
        state: 'INSTALLING',
        nextPollAt: clampToDeadline(now + settings.pollEveryMs, provision.deadlineAt),
        pollFailures: 0,
        serverInstalled: false,
      };
    }
  }
}

/** Called when a readiness signal arrives: ready now, or still waiting. */
export function decideOnSignal(
  state: ProvisionState,
  serverInstalled: boolean,
  signals: SignalState,
): 'ready' | 'waiting' | 'not_applicable' {
  if (state !== 'WAITING_SIGNALS' && state !== 'INSTALLING' && state !== 'RESERVED') return 'not_applicable';
  return missingSignals(serverInstalled, signals).length === 0 ? 'ready' : 'waiting';
}

export interface CleanupSettings {
  cleanupMaxAttempts: number;
}

/** Panel cleanup backoff: 2 s base, 5 min cap, full jitter, never sooner than 1 s. */
const CLEANUP_BACKOFF: BackoffPolicy = { baseMs: 2000, capMs: 300_000, jitter: 'full' };
const CLEANUP_FLOOR_MS = 1000;

export type CleanupDecision = { state: 'DONE'; nextAt: null } | { state: 'GAVE_UP'; nextAt: null } | { state: 'PENDING'; nextAt: number };

/** After one cleanup attempt (`attempts` counts it): done, retry later with backoff, or give up for a human. */
export function decideCleanup(
  result: CleanupResult,
  attempts: number,
  now: number,
  settings: CleanupSettings,
  random: number,
): CleanupDecision {
  if (result.kind !== 'error') return { state: 'DONE', nextAt: null };
  if (!result.retryable || attempts >= settings.cleanupMaxAttempts) return { state: 'GAVE_UP', nextAt: null };
  const wait = Math.max(CLEANUP_FLOOR_MS, backoffDelay(attempts, CLEANUP_BACKOFF, random));
  return { state: 'PENDING', nextAt: now + wait };
}

/** A failed provision queues a panel cleanup, unless the panel does not know the server (nothing to delete). */
export function cleanupAfterFailure(reason: FailureReason): 'DONE' | 'PENDING' {
  return reason === 'PANEL_NOT_FOUND' ? 'DONE' : 'PENDING';
}

/** A released server is cleaned up unless a cleanup already finished. */
export function cleanupAfterRelease(current: CleanupState): 'DONE' | 'PENDING' {
  return current === 'DONE' ? 'DONE' : 'PENDING';
}
