/**
 * The one retry delay of the service: capped exponential backoff, base·2^failures, with a jitter mode.
 * Randomness is injected (a number in [0, 1) for the pure function, a source for `Backoff`) so tests pin it.
 */

/** full: uniform in [0, ceiling); equal: uniform in [ceiling/2, ceiling); none: the ceiling itself. */
export type Jitter = 'full' | 'equal' | 'none';

export interface BackoffPolicy {
  readonly baseMs: number;
  readonly capMs: number;
  readonly jitter: Jitter;
}

/** 2^30 already exceeds any sensible cap; clamping keeps huge failure counts finite. */
const MAX_EXPONENT = 30;

/** min(cap, base·2^failures): the longest wait after `failures` (negative counts as 0). */
export function backoffCeiling(failures: number, policy: Pick<BackoffPolicy, 'baseMs' | 'capMs'>): number {
  const exponent = Math.min(Math.max(0, failures), MAX_EXPONENT);
  return Math.min(policy.capMs, policy.baseMs * 2 ** exponent);
}

/** The wait after `failures` consecutive failures; `random` is in [0, 1). */
export function backoffDelay(failures: number, policy: BackoffPolicy, random: number): number {
  const ceiling = backoffCeiling(failures, policy);
  switch (policy.jitter) {
    case 'full':
      return Math.floor(random * ceiling);
    case 'equal':
      return ceiling * (0.5 + random / 2);
    case 'none':
      return ceiling;
  }
}

/** A policy bound to a randomness source, for loops that draw one delay per failure. */
export class Backoff {
  constructor(
    readonly policy: BackoffPolicy,
    private readonly random: () => number = Math.random,
  ) {}

  delay(failures: number): number {
    return backoffDelay(failures, this.policy, this.policy.jitter === 'none' ? 0 : this.random());
  }
}
