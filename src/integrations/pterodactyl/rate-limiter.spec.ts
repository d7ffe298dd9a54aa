import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../infra/clock.js';
import { KvUnavailableError } from '../../infra/kv/kv-store.js';
import { MemoryKeyValueStore } from '../../infra/kv/memory-kv.js';
import { Metrics } from '../../observability/metrics.js';
import { maxInSlidingWindow } from '../../demo/simulated/pterodactyl-panel.js';
import { PanelRateLimiter, RateLimitDeadlineError, type PanelRateLimiterOptions, type SlotLane } from './rate-limiter.js';

/** Deterministic jitter. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

const flush = () => new Promise<void>((resolve) => setImmediate(resolve));

function setup(overrides: Partial<PanelRateLimiterOptions> = {}) {
  const clock = new ManualClock(1_700_000_000_123);
  const store = new MemoryKeyValueStore(clock);
  const make = (instanceId: string, extra: Partial<PanelRateLimiterOptions> = {}) =>
    new PanelRateLimiter({ store, clock, budget: 240, instanceId, random: seeded(instanceId.length * 7919), ...overrides, ...extra });
  return { clock, store, make };
}

describe('PanelRateLimiter: configuration', () => {
  it('spaces the fleet at 90 % of the budget by default; the boundary slot still fits', () => {
    const { make } = setup();
    const limiter = make('a');
    expect(limiter.slotsPerWindow).toBe(216);
    expect(limiter.intervalMs).toBe(278);
    expect(limiter.slotsPerWindow + 1).toBeLessThanOrEqual(240);
    expect(make('b', { budget: 2, safetyMargin: 1 }).slotsPerWindow).toBe(1);
    expect(make('c', { budget: 10, safetyMargin: 1 }).slotsPerWindow).toBe(9);
  });

  it('rejects budgets and margins that cannot be honoured', () => {
    const { make } = setup();
    expect(() => make('a', { budget: 1 })).toThrow(RangeError);
    expect(() => make('a', { budget: 2.5 })).toThrow(RangeError);
    expect(() => make('a', { safetyMargin: 0 })).toThrow(RangeError);
    expect(() => make('a', { safetyMargin: 1.1 })).toThrow(RangeError);
    expect(() => make('a', { windowMs: 0 })).toThrow(RangeError);
  });
});

describe('PanelRateLimiter: the fleet-wide guarantee', () => {
  it('N concurrent acquirers on 3 instances never exceed the budget in any sliding 60 s window', async () => {
    const { clock, make } = setup();
    const instances = [make('i-1'), make('i-22'), make('i-333')];
    const granted: number[] = [];
    const until = clock.now() + 4 * 60_000;
    let stop = false;
    const workers = Array.from({ length: 30 }, async (_, n) => {
      const limiter = instances[n % instances.length] as PanelRateLimiter;
      while (!stop) {
        await limiter.acquire();
        if (!stop) granted.push(clock.now());
      }
    });
    while (clock.now() < until) {
      clock.advance(7);
      await flush();
    }
    stop = true;
    let finished = false;
    const all = Promise.all(workers).then(() => (finished = true));
    while (!finished) {
      clock.advance(50);
      await flush();
    }
    await all;

    const limiter = instances[0] as PanelRateLimiter;
    const worst = maxInSlidingWindow(granted, 60_000);
    expect(worst).toBeLessThanOrEqual(240);
    expect(worst).toBeLessThanOrEqual(limiter.slotsPerWindow + 1);
    // Not trivially safe: the fleet actually uses (almost) all the slots it has.
    expect(worst).toBeGreaterThanOrEqual(limiter.slotsPerWindow - 2);
    expect(granted.length).toBeGreaterThanOrEqual(4 * (limiter.slotsPerWindow - 2));
    // At most one grant per slot.
    const slots = granted.map((t) => Math.floor(t / limiter.intervalMs));
    expect(new Set(slots).size).toBe(slots.length);
  });

  it('a burst from an idle fleet is spread out, not sent at once', async () => {
    const { clock, make } = setup({ budget: 60 });
    const limiter = make('a');
    const granted: number[] = [];
    const all = Promise.all(Array.from({ length: 10 }, () => limiter.acquire().then(() => granted.push(clock.now()))));
    for (let i = 0; i < 2_000 && granted.length < 10; i++) {
      clock.advance(10);
      await flush();
    }
    await all;
    const sorted = granted.sort((a, b) => a - b);
    const span = (sorted.at(-1) as number) - (sorted[0] as number);
    expect(span).toBeGreaterThanOrEqual(8 * limiter.intervalMs);
    expect(maxInSlidingWindow(granted, limiter.intervalMs)).toBeLessThanOrEqual(2);
  });
});

describe('PanelRateLimiter: pauses and deadlines', () => {
  it('a pause set by one instance holds back every instance until it ends', async () => {
    const { clock, make } = setup();
    const a = make('a');
    const b = make('b');
    const start = clock.now();
    await a.pauseFor(23_000);
    expect(await b.pausedUntil()).toBe(start + 23_000);
    let done = false;
    const waiting = b.acquire().then(() => (done = true));
    for (let t = 0; t < 22_990; t += 10) {
      clock.advance(10);
      await flush();
    }
    expect(done).toBe(false);
    for (let t = 0; t < 400 && !done; t += 10) {
      clock.advance(10);
      await flush();
    }
    await waiting;
    expect(clock.now()).toBeGreaterThanOrEqual(start + 23_000);
  });

  it('keeps the later of two pauses; the pause key expires on its own', async () => {
    const { clock, store, make } = setup();
    const a = make('a');
    const b = make('b');
    await a.pauseFor(30_000);
    await b.pauseFor(5_000);
    expect(await store.get('rl:ptero:pause-until')).toBe(String(clock.now() + 30_000));
    clock.advance(30_000);
    expect(await store.get('rl:ptero:pause-until')).toBeNull();
    await a.pauseUntil(clock.now() - 1); // in the past: nothing to do
    expect(await store.get('rl:ptero:pause-until')).toBeNull();
  });

  it('X-RateLimit-Remaining 0 pauses the fleet briefly; any other value does nothing', async () => {
    const { clock, make } = setup();
    const a = make('a');
    await a.observeRemaining(3);
    expect(await a.pausedUntil()).toBe(0);
    await a.observeRemaining(0);
    expect(await make('b').pausedUntil()).toBe(clock.now() + 2_000);
  });

  it('throws RateLimitDeadlineError at once instead of waiting past the deadline', async () => {
    const { clock, make } = setup();
    const a = make('a');
    await a.pauseFor(10_000);
    const now = clock.now();
    const error = await a.acquire({ deadline: now + 5_000 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(RateLimitDeadlineError);
    expect((error as RateLimitDeadlineError).reason).toBe('RATE_LIMIT_DEADLINE');
    expect((error as RateLimitDeadlineError).nextAttemptAt).toBeGreaterThanOrEqual(now + 10_000);
    expect(clock.now()).toBe(now);
    await expect(a.acquire({ maxWaitMs: 1_000 })).rejects.toBeInstanceOf(RateLimitDeadlineError);
  });

  it('a taken slot with a deadline inside the same slot fails; the next slot is granted when the deadline allows', async () => {
    const { clock, make } = setup({ maxJitterMs: 0 });
    const a = make('a');
    await a.acquire();
    await expect(a.acquire({ maxWaitMs: 0 })).rejects.toBeInstanceOf(RateLimitDeadlineError);
    const next = a.acquire({ maxWaitMs: a.intervalMs });
    clock.advance(a.intervalMs);
    await expect(next).resolves.toBeGreaterThan(0);
  });

  it('honours an abort signal while waiting', async () => {
    const { clock, make } = setup();
    const a = make('a');
    await a.pauseFor(60_000);
    const controller = new AbortController();
    const waiting = a.acquire({ signal: controller.signal });
    controller.abort(new Error('shutting down'));
    await expect(waiting).rejects.toThrow('shutting down');
    expect(clock.now()).toBeGreaterThan(0);
  });

  it('records the wait in the metrics histogram', async () => {
    const metrics = new Metrics();
    const { make } = setup({ metrics });
    await make('a').acquire();
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/flock_pterodactyl_rate_limit_wait_seconds_count 1/);
  });

  it('propagates a store outage (the caller decides; nothing is sent unguarded)', async () => {
    const { store, make } = setup();
    store.simulateOutage(true);
    await expect(make('a').acquire()).rejects.toBeInstanceOf(KvUnavailableError);
  });
});

describe('PanelRateLimiter: one contender per instance, slots shared between lanes', () => {
  /** Counts the slot claims an instance sends to the shared store. */
  function countingSetup() {
    const { clock, store, make } = setup({ maxJitterMs: 0 });
    let slotClaims = 0;
    const set = store.set.bind(store);
    store.set = (key, value, options) => {
      if (key.includes(':slot:')) slotClaims++;
      return set(key, value, options);
    };
    return { clock, make, claims: () => slotClaims };
  }

  async function advanceUntil(clock: ManualClock, done: () => boolean, stepMs = 10, maxSteps = 5_000) {
    for (let i = 0; i < maxSteps && !done(); i++) {
      clock.advance(stepMs);
      await flush();
    }
  }

  it('serves the listing lane first, then the other lanes in turn, first come first served within a lane', async () => {
    const { clock, make } = countingSetup();
    const limiter = make('a');
    const order: string[] = [];
    const track = (label: string, lane: SlotLane) => limiter.acquire({ lane }).then(() => order.push(label));
    const queued = [
      ...['d1', 'd2', 'd3', 'd4'].map((l) => track(l, 'delivery')),
      track('c1', 'cleanup'),
      track('c2', 'cleanup'),
      track('x1', 'detection'),
      track('x2', 'detection'),
    ];
    await flush(); // x1 takes the first slot
    queued.push(track('p1', 'listing'), track('p2', 'listing'));
    await advanceUntil(clock, () => order.length === queued.length);
    await Promise.all(queued);
    expect(order).toEqual(['x1', 'p1', 'p2', 'd1', 'c1', 'x2', 'd2', 'c2', 'd3', 'd4']);
  });

  it('a request queued behind a burst in another lane waits at most one slot per other lane, and no lane starves', async () => {
    const { clock, make } = countingSetup();
    const limiter = make('a');
    const order: string[] = [];
    const burst = Array.from({ length: 30 }, (_, n) => limiter.acquire({ lane: 'delivery' }).then(() => order.push(`d${n}`)));
    await flush();
    await advanceUntil(clock, () => order.length >= 5);
    const polls = Array.from({ length: 30 }, (_, n) => limiter.acquire({ lane: 'detection' }).then(() => order.push(`x${n}`)));
    const at = order.length;
    await advanceUntil(clock, () => order.length === 60);
    await Promise.all([...burst, ...polls]);
    // The first poll goes at once or after one delivery; from then on the two lanes alternate while both wait.
    expect(order.slice(at, at + 2)).toContain('x0');
    const window = order.slice(at, at + 40);
    expect(window.filter((l) => l.startsWith('x'))).toHaveLength(20);
    expect(window.filter((l) => l.startsWith('d'))).toHaveLength(20);
  });

  it('sends one slot claim per slot however many requests wait, and grants one request per slot', async () => {
    const { clock, make, claims } = countingSetup();
    const limiter = make('a');
    const granted: number[] = [];
    const all = Promise.all(Array.from({ length: 200 }, () => limiter.acquire().then(() => granted.push(clock.now()))));
    await advanceUntil(clock, () => granted.length === 200, 25, 20_000);
    await all;
    const slots = new Set(granted.map((t) => Math.floor(t / limiter.intervalMs)));
    expect(slots.size).toBe(200);
    // One claim per slot the instance tried (it wins every one when alone), not one per waiter per slot.
    expect(claims()).toBe(200);
  });

  it('a waiter queued while the loop sleeps out a pause fails at once when its deadline is before the pause ends', async () => {
    const { clock, make } = countingSetup();
    const limiter = make('a');
    await limiter.pauseFor(30_000);
    const patient = limiter.acquire();
    await flush(); // the loop now sleeps until the pause ends
    const start = clock.now();
    const hurried = await limiter.acquire({ maxWaitMs: 5_000 }).catch((e: unknown) => e);
    expect(hurried).toBeInstanceOf(RateLimitDeadlineError);
    expect(clock.now()).toBe(start);
    await advanceUntil(clock, () => clock.now() >= start + 30_100, 100);
    await expect(patient).resolves.toBeGreaterThanOrEqual(30_000);
  });

  it('the loop stops when its last waiter aborts, and starts again for the next one', async () => {
    const { clock, make } = countingSetup();
    const limiter = make('a');
    await limiter.pauseFor(10_000);
    const controller = new AbortController();
    const aborted = limiter.acquire({ signal: controller.signal });
    await flush();
    controller.abort(new Error('stopping'));
    await expect(aborted).rejects.toThrow('stopping');
    clock.advance(10_100);
    await flush();
    let granted = false;
    const next = limiter.acquire({ lane: 'cleanup' }).then(() => (granted = true));
    await advanceUntil(clock, () => granted);
    await next;
    expect(granted).toBe(true);
  });

  it('a store outage fails every queued waiter, not only the first', async () => {
    const { store, make } = setup();
    const limiter = make('a');
    store.simulateOutage(true);
    const results = await Promise.allSettled([
      limiter.acquire(),
      limiter.acquire({ lane: 'delivery' }),
      limiter.acquire({ lane: 'cleanup' }),
    ]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected', 'rejected']);
    for (const r of results) expect((r as PromiseRejectedResult).reason).toBeInstanceOf(KvUnavailableError);
  });
});
