import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../infra/clock.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { ScheduledTasksService, type ScheduledTask, type TickContext, type TickResult } from './scheduled-tasks.service.js';

const EVERY = 1_000;

/** Lets every promise chain the memory store and the scheduler started run to completion. */
async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((resolve) => setImmediate(resolve));
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe('ScheduledTasksService', () => {
  let clock: ManualClock;
  let kv: MemoryKeyValueStore;
  let logLines: Record<string, unknown>[];
  let services: { service: ScheduledTasksService; metrics: Metrics }[];

  beforeEach(() => {
    // Mid-tick 10: the first boundary after start is 11 000.
    clock = new ManualClock(10_500);
    kv = new MemoryKeyValueStore(clock);
    logLines = [];
    services = [];
  });

  function instance(
    instanceId: string,
    task: Partial<ScheduledTask> & Pick<ScheduledTask, 'run'>,
    options: { maxJitterMs?: number; random?: () => number; stopTimeoutMs?: number; headStartMs?: number } = {},
  ): ScheduledTasksService {
    const metrics = new Metrics();
    const logger = createLogger('debug', {}, { write: (line: string) => void logLines.push(JSON.parse(line)) });
    const service = new ScheduledTasksService({ kv, clock, logger, metrics, instanceId, maxJitterMs: 0, headStartMs: 0, ...options });
    service.register({ name: 'sweep', everyMs: EVERY, ...task });
    services.push({ service, metrics });
    return service;
  }

  async function count(result: TickResult): Promise<number> {
    let total = 0;
    for (const { metrics } of services) {
      for (const v of (await metrics.scheduledTicks.get()).values) if (v.labels.result === result) total += v.value;
    }
    return total;
  }

  async function ticks(n: number): Promise<void> {
    for (let i = 0; i < n; i++) {
      clock.advance(EVERY);
      await settle();
    }
  }

  async function start(...list: ScheduledTasksService[]): Promise<void> {
    for (const s of list) s.start();
    await settle();
  }

  it('two instances sharing one store run each tick exactly once', async () => {
    const runs: { id: string; tickAt: number }[] = [];
    const make = (id: string) => instance(id, { run: async ({ tickAt }) => void runs.push({ id, tickAt }) });
    await start(make('a'), make('b'));

    await ticks(10);

    expect(runs.map((r) => r.tickAt)).toEqual(Array.from({ length: 10 }, (_, i) => (11 + i) * EVERY));
    expect(await count('ran')).toBe(10);
    expect(await count('skipped_not_leader')).toBe(10);
  });

  it("gives the last tick's winner a head start, so one live instance keeps a task", async () => {
    const runs: string[] = [];
    const make = (id: string) => instance(id, { run: async () => void runs.push(id) }, { headStartMs: 200 });
    const b = make('b');
    await start(make('a'));
    await ticks(1);
    b.start();
    await settle();
    for (let i = 0; i < 6; i++) {
      clock.advance(EVERY / 2); // the boundary, then b's 200 ms handicap ends well before the next one
      await settle();
      clock.advance(EVERY / 2);
      await settle();
    }
    expect(runs).toEqual(Array(7).fill('a'));
    expect(await count('skipped_not_leader')).toBeGreaterThanOrEqual(5);
    expect(await kv.get('sched:last:sweep')).toBe('a');
  });

  it('claims the tick with SET NX PX 2·everyMs under sched:tick:<name>:<index>', async () => {
    const runs: number[] = [];
    await start(instance('a', { run: async ({ tickAt }) => void runs.push(tickAt) }));
    await ticks(1);
    expect(runs).toEqual([11_000]);
    expect(await kv.get('sched:tick:sweep:11')).toBe('a');
    expect(await kv.pttl('sched:tick:sweep:11')).toBe(2 * EVERY);
    expect(await kv.get('sched:running:sweep')).toBeNull();
  });

  it('waits for the jitter after the boundary before claiming', async () => {
    const runs: number[] = [];
    await start(instance('a', { run: async ({ tickAt }) => void runs.push(tickAt) }, { maxJitterMs: 250, random: () => 0.99 }));
    clock.set(11_000);
    await settle();
    expect(runs).toEqual([]);
    // Jitter is capped at everyMs / 10: floor(0.99 × 100) = 99 ms.
    clock.set(11_099);
    await settle();
    expect(runs).toEqual([11_000]);
  });

  it('does not stack an overrunning tick, on either instance, and resumes after it', async () => {
    const gate = deferred();
    const runs: number[] = [];
    const make = (id: string) =>
      instance(id, {
        run: async ({ tickAt }) => {
          runs.push(tickAt);
          if (tickAt === 11_000) await gate.promise;
        },
      });
    await start(make('a'), make('b'));

    // Three more ticks than the running lease's ttl (2 s) would last without renewal.
    await ticks(4);
    expect(runs).toEqual([11_000]);
    expect(await count('skipped_overrun')).toBe(6);
    expect(await kv.get('sched:running:sweep')).toMatch(/^[ab]:11$/);

    gate.resolve();
    await settle();
    expect(await count('ran')).toBe(1);
    expect(await kv.get('sched:running:sweep')).toBeNull();

    await ticks(1);
    expect(runs).toEqual([11_000, 15_000]);
  });

  it('a single instance never starts a second run of a task still running', async () => {
    const gate = deferred();
    let started = 0;
    await start(
      instance('a', {
        run: async () => {
          started++;
          await gate.promise;
        },
      }),
    );
    await ticks(3);
    expect(started).toBe(1);
    expect(await count('skipped_overrun')).toBe(2);
    expect(logLines.some((l) => l.reason === 'TICK_OVERRUN')).toBe(true);
    gate.resolve();
    await settle();
  });

  it('a throwing task is logged, counted and keeps being scheduled', async () => {
    let attempts = 0;
    await start(
      instance('a', {
        run: async () => {
          attempts++;
          throw new Error('backup sweep exploded');
        },
      }),
    );
    await ticks(5);
    expect(attempts).toBe(5);
    expect(await count('failed')).toBe(5);
    expect(await kv.get('sched:running:sweep')).toBeNull();
    const failures = logLines.filter((l) => l.reason === 'TASK_FAILED');
    expect(failures).toHaveLength(5);
    expect(failures[0]).toMatchObject({ task: 'sweep', level: 'error' });
  });

  it("exports each task's period, and its last successful run (the scheduler start until the first run)", async () => {
    let fail = false;
    await start(
      instance('a', {
        run: async () => {
          if (fail) throw new Error('no luck');
        },
      }),
    );
    const { metrics } = services[0]!;
    const lastSuccess = async () => (await metrics.scheduledLastSuccess.get()).values.find((v) => v.labels.task === 'sweep')?.value;
    expect((await metrics.scheduledPeriod.get()).values).toEqual([
      expect.objectContaining({ labels: { task: 'sweep' }, value: EVERY / 1_000 }),
    ]);
    expect(await lastSuccess()).toBe(10.5);
    await ticks(2);
    const ranAt = clock.now() / 1_000;
    expect(await lastSuccess()).toBe(ranAt);
    fail = true;
    await ticks(2);
    expect(await count('failed')).toBe(2);
    expect(await lastSuccess()).toBe(ranAt);
  });

  it('skips the tick without running the task while the store is unreachable, then recovers', async () => {
    let runs = 0;
    await start(instance('a', { run: async () => void runs++ }));
    kv.simulateOutage(true);
    await ticks(2);
    expect(runs).toBe(0);
    expect(await count('skipped_kv_unavailable')).toBe(2);
    expect(logLines.filter((l) => l.reason === 'KV_UNAVAILABLE')).toHaveLength(2);

    kv.simulateOutage(false);
    await ticks(1);
    expect(runs).toBe(1);
  });

  it('stop() waits for a running tick, aborting its signal first', async () => {
    const gate = deferred();
    let signal: AbortSignal | undefined;
    const service = instance('a', {
      run: async (tick: TickContext) => {
        signal = tick.signal;
        await gate.promise;
      },
    });
    await start(service);
    await ticks(1);
    expect(signal?.aborted).toBe(false);

    let stopped = false;
    const stopping = service.stop().then(() => (stopped = true));
    await settle();
    expect(stopped).toBe(false);
    expect(signal?.aborted).toBe(true);

    gate.resolve();
    await stopping;
    expect(await count('ran')).toBe(1);
    expect(await kv.get('sched:running:sweep')).toBeNull();
  });

  it('stop() gives up on a tick that outlives its bound', async () => {
    const service = instance('a', { run: () => new Promise<void>(() => {}) }, { stopTimeoutMs: 5_000 });
    await start(service);
    await ticks(1);

    let stopped = false;
    void service.stop().then(() => (stopped = true));
    clock.advance(4_999);
    await settle();
    expect(stopped).toBe(false);
    clock.advance(1);
    await settle();
    expect(stopped).toBe(true);
    expect(logLines.some((l) => l.reason === 'STOP_TIMEOUT')).toBe(true);
  });

  it('schedules nothing after stop()', async () => {
    let runs = 0;
    const service = instance('a', { run: async () => void runs++ });
    await start(service);
    await ticks(1);
    await service.stop();
    await ticks(3);
    expect(runs).toBe(1);
  });

  it('a crashed runner blocks the task only until its running lease expires', async () => {
    await kv.set('sched:running:sweep', 'dead:10', { px: 2 * EVERY });
    const runs: number[] = [];
    await start(instance('a', { run: async ({ tickAt }) => void runs.push(tickAt) }));
    await ticks(3);
    expect(runs).toEqual([12_000, 13_000]);
    expect(await count('skipped_overrun')).toBe(1);
  });

  it('signals the task when its running lease is lost', async () => {
    let signal: AbortSignal | undefined;
    const gate = deferred();
    await start(
      instance('a', {
        run: async (tick) => {
          signal = tick.signal;
          await gate.promise;
        },
      }),
    );
    await ticks(1);
    await kv.del('sched:running:sweep');
    await ticks(1);
    expect(signal?.aborted).toBe(true);
    expect(logLines.some((l) => l.reason === 'LEASE_LOST')).toBe(true);
    gate.resolve();
    await settle();
  });

  it('after a clock jump runs the latest tick once rather than a burst of missed ones', async () => {
    const runs: number[] = [];
    await start(instance('a', { run: async ({ tickAt }) => void runs.push(tickAt) }));
    clock.advance(5 * EVERY);
    await settle();
    expect(runs).toEqual([15_000]);
  });

  it('runs independent tasks on their own periods', async () => {
    const runs: string[] = [];
    const service = instance('a', { name: 'fast', run: async () => void runs.push('fast') });
    service.register({ name: 'slow', everyMs: 3 * EVERY, run: async () => void runs.push('slow') });
    await start(service);
    // Boundaries at 11..16 s; the slow task's at 12 s and 15 s.
    await ticks(6);
    expect(runs.filter((r) => r === 'fast')).toHaveLength(6);
    expect(runs.filter((r) => r === 'slow')).toHaveLength(2);
  });

  it('rejects a duplicate name or a bad period', () => {
    const service = instance('a', { run: async () => {} });
    expect(() => service.register({ name: 'sweep', everyMs: EVERY, run: async () => {} })).toThrow(/already registered/);
    expect(() => service.register({ name: 'other', everyMs: 0, run: async () => {} })).toThrow(RangeError);
  });
});
