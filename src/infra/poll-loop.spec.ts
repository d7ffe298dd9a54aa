import { describe, expect, it } from 'vitest';
import { Backoff } from './backoff.js';
import { ManualClock } from './clock.js';
import { PollLoop, WakeableSleep } from './poll-loop.js';

/** Lets pending promise callbacks run (the loop awaits between passes). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe('WakeableSleep', () => {
  it('ends on the clock, on wake(), and at once after close()', async () => {
    const clock = new ManualClock();
    const sleeper = new WakeableSleep(clock);
    let done = 0;
    void sleeper.sleep(1_000).then(() => done++);
    clock.advance(999);
    await settle();
    expect(done).toBe(0);
    clock.advance(1);
    await settle();
    expect(done).toBe(1);

    void sleeper.sleep(60_000).then(() => done++);
    sleeper.wake();
    await settle();
    expect(done).toBe(2);

    sleeper.close();
    await sleeper.sleep(60_000);
    expect(clock.now()).toBe(Date.UTC(2026, 0, 1) + 1_000);
  });
});

describe('PollLoop', () => {
  it('runs passes back to back while they find work, then idles until due or nudged', async () => {
    const clock = new ManualClock();
    const work = [2, 1, 0, 0, 0];
    let passes = 0;
    const pass = async () => {
      passes++;
      return work.shift() ?? 0;
    };
    const loop = new PollLoop({ clock, idleMs: 500, pass, onError: () => undefined });
    loop.start();
    await settle();
    expect(passes).toBe(3); // 2, 1, then 0 → sleeping
    clock.advance(499);
    await settle();
    expect(passes).toBe(3);
    clock.advance(1);
    await settle();
    expect(passes).toBe(4);
    loop.nudge();
    await settle();
    expect(passes).toBe(5);
    await loop.stop();
    clock.advance(10_000);
    await settle();
    expect(passes).toBe(5);
  });

  it('a nudge during a pass that found nothing starts the next pass at once (the work it announces is not left to the pause)', async () => {
    const clock = new ManualClock();
    let passes = 0;
    let release!: () => void;
    const loop = new PollLoop({
      clock,
      idleMs: 60_000,
      pass: () => {
        passes++;
        return passes === 1 ? new Promise<number>((resolve) => (release = () => resolve(0))) : Promise.resolve(0);
      },
      onError: () => undefined,
    });
    loop.start();
    await settle();
    loop.nudge(); // while the first pass is still reading
    release();
    await settle();
    expect(passes).toBe(2);
    await settle();
    expect(passes).toBe(2); // then it pauses again
    await loop.stop();
  });

  it('reports each failed pass with the count in a row and backs off by it', async () => {
    const clock = new ManualClock();
    const failures: number[] = [];
    let passes = 0;
    const loop = new PollLoop({
      clock,
      idleMs: 50,
      retry: new Backoff({ baseMs: 100, capMs: 1_000, jitter: 'none' }),
      pass: async () => {
        passes++;
        if (passes <= 2) throw new Error('database down');
        return 0;
      },
      onError: (_error, n) => failures.push(n),
    });
    loop.start();
    await settle();
    expect(failures).toEqual([1]);
    clock.advance(199); // 100·2^1
    await settle();
    expect(passes).toBe(1);
    clock.advance(1);
    await settle();
    expect(failures).toEqual([1, 2]);
    clock.advance(400); // 100·2^2
    await settle();
    expect(passes).toBe(3);
    clock.advance(50); // success resets: idle pause again
    await settle();
    expect(passes).toBe(4);
    expect(failures).toEqual([1, 2]);
    await loop.stop();
  });

  it('stop() waits for the pass in progress and cuts the pause short', async () => {
    const clock = new ManualClock();
    let release!: () => void;
    let finished = false;
    const loop = new PollLoop({
      clock,
      idleMs: 60_000,
      pass: () =>
        new Promise<number>((resolve) => {
          release = () => {
            finished = true;
            resolve(0);
          };
        }),
      onError: () => undefined,
    });
    loop.start();
    await settle();
    const stopped = loop.stop();
    let stopDone = false;
    void stopped.then(() => (stopDone = true));
    await settle();
    expect(stopDone).toBe(false);
    release();
    await stopped;
    expect(finished).toBe(true);
  });
});
