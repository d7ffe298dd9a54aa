import { describe, expect, it } from 'vitest';
import { ManualClock } from './clock.js';

describe('ManualClock', () => {
  it('wakes sleepers only when advanced past their time', async () => {
    const clock = new ManualClock(1000);
    let woke = false;
    const p = clock.sleep(500).then(() => (woke = true));
    clock.advance(499);
    await Promise.resolve();
    expect(woke).toBe(false);
    clock.advance(1);
    await p;
    expect(woke).toBe(true);
    expect(clock.now()).toBe(1500);
  });
});
