import { describe, expect, it } from 'vitest';
import { pollPlan } from './provisioning.wiring.js';

describe('pollPlan: how much one instance polls at once, from the panel budget', () => {
  it('a stock panel (240/min, 20 s lease): one pass of 40', () => {
    expect(pollPlan(240, 60_000)).toEqual({ claimLimit: 40, pollPasses: 1 });
  });
  it('a tiny budget never claims fewer than the polling concurrency', () => {
    expect(pollPlan(6, 60_000)).toEqual({ claimLimit: 8, pollPasses: 1 });
  });
  it('passes grow with what fits in a lease, 200 each, at most 4', () => {
    expect(pollPlan(2_400, 60_000)).toEqual({ claimLimit: 200, pollPasses: 2 });
    expect(pollPlan(12_000, 60_000)).toEqual({ claimLimit: 200, pollPasses: 4 });
    expect(pollPlan(600, 2_000)).toEqual({ claimLimit: 200, pollPasses: 4 });
  });
});
