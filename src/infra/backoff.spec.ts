import { describe, expect, it } from 'vitest';
import { Backoff, backoffCeiling, backoffDelay, type BackoffPolicy } from './backoff.js';

const full: BackoffPolicy = { baseMs: 500, capMs: 30_000, jitter: 'full' };

describe('backoffCeiling', () => {
  it('doubles from the base per failure and stops at the cap', () => {
    expect(backoffCeiling(0, full)).toBe(500);
    expect(backoffCeiling(1, full)).toBe(1000);
    expect(backoffCeiling(3, full)).toBe(4000);
    expect(backoffCeiling(6, full)).toBe(30_000);
  });

  it('treats negative counts as none and stays finite for huge ones', () => {
    expect(backoffCeiling(-3, full)).toBe(500);
    expect(backoffCeiling(10_000, { baseMs: 1, capMs: Number.POSITIVE_INFINITY })).toBe(2 ** 30);
  });
});

describe('backoffDelay', () => {
  it('full jitter is uniform below min(cap, base·2^n)', () => {
    expect(backoffDelay(0, full, 0.999)).toBeLessThan(500);
    expect(backoffDelay(3, full, 0.999)).toBeLessThan(4000);
    expect(backoffDelay(3, full, 0.999)).toBeGreaterThan(3900);
    expect(backoffDelay(20, full, 0.999)).toBeLessThan(30_000);
    expect(backoffDelay(20, full, 0)).toBe(0);
    expect(backoffDelay(2, full, 0.5)).toBe(1000);
  });

  it('equal jitter keeps at least half the ceiling', () => {
    const equal: BackoffPolicy = { baseMs: 100, capMs: 5_000, jitter: 'equal' };
    expect(backoffDelay(1, equal, 0)).toBe(100);
    expect(backoffDelay(1, equal, 0.5)).toBe(150);
    expect(backoffDelay(1, equal, 0.999)).toBeLessThan(200);
    expect(backoffDelay(10, equal, 0)).toBe(2_500);
  });

  it('no jitter is the ceiling whatever the random number', () => {
    const none: BackoffPolicy = { baseMs: 200, capMs: 5_000, jitter: 'none' };
    expect(backoffDelay(1, none, 0.7)).toBe(400);
    expect(backoffDelay(5, none, 0)).toBe(5_000);
  });
});

describe('Backoff', () => {
  it('draws one number from the injected source per jittered delay', () => {
    const draws = [0.25, 0.75];
    const backoff = new Backoff(full, () => draws.shift() ?? Number.NaN);
    expect(backoff.delay(1)).toBe(250);
    expect(backoff.delay(1)).toBe(750);
    expect(draws).toEqual([]);
  });

  it('does not consume randomness when the policy has no jitter', () => {
    let drawn = 0;
    const backoff = new Backoff({ baseMs: 200, capMs: 5_000, jitter: 'none' }, () => {
      drawn++;
      return 0.5;
    });
    expect(backoff.delay(2)).toBe(800);
    expect(drawn).toBe(0);
  });
});
