import type { OnApplicationBootstrap, OnApplicationShutdown } from '@nestjs/common';
import type { Clock } from '../infra/clock.js';
import { WakeableSleep } from '../infra/poll-loop.js';
import { KvUnavailableError, type KeyValueStore } from '../infra/kv/kv-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { Leases } from './lease.js';

export interface TickContext {
  /** The tick's nominal time: tick index × everyMs (the same on every instance). */
  tickAt: number;
  /** Aborted when the service stops or this instance loses the running lease; long tasks should watch it. */
  signal: AbortSignal;
}

export interface ScheduledTask {
  /** Unique per service; part of the Redis keys and the metric label. */
  name: string;
  /** Period in ms; ticks fall on multiples of it since the epoch, so every instance agrees on them. */
  everyMs: number;
  run: (tick: TickContext) => Promise<void>;
}

export type TickResult = 'ran' | 'skipped_not_leader' | 'skipped_overrun' | 'failed' | 'skipped_kv_unavailable';

export interface ScheduledTasksServiceOptions {
  kv: KeyValueStore;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Distinguishes this process in the tick claims and running leases. */
  instanceId: string;
  /** Upper bound of the random delay after a tick boundary (capped at everyMs / 10). Default 250 ms. */
  maxJitterMs?: number;
  /** Source of the jitter, in [0, 1). Default Math.random. */
  random?: () => number;
  /** Head start of the last tick's winner (others wait this long before claiming). Default min(everyMs/5, 1 s). */
  headStartMs?: number;
  /** How long stop() waits for running ticks before giving up on them. Default 10 s. */
  stopTimeoutMs?: number;
}

export const TICK_KEY_PREFIX = 'sched:tick:';
/** Who ran a task's last tick; the others give it a head start on the next one. */
export const LAST_WINNER_PREFIX = 'sched:last:';
const MAX_HANDICAP_MS = 1_000;
export const RUNNING_KEY_PREFIX = 'sched:running:';

/** A crashed runner blocks its task for at most this long (or two periods, whichever is longer). */
const MIN_RUNNING_LEASE_MS = 1_000;

interface TaskEntry {
  task: ScheduledTask;
  /** True from the start of a tick's coordination until its run has finished: one tick at a time per task. */
  active: boolean;
  /** Aborts the run in progress (on stop). */
  run?: AbortController;
}

/**
 * The cron side: each registered task runs once per tick across all instances.
 *
 * - Tick index = floor(now / everyMs). Every instance wakes just after the boundary (plus a small random jitter
 *   so they do not hit Redis at the same microsecond) and tries `SET sched:tick:<name>:<index> <instanceId>
 *   NX PX 2·everyMs`; only the winner runs the tick.
 * - Overruns never stack: the runner holds `sched:running:<name>` (renewed while it runs, released after), so
 *   a winner that finds it taken skips the tick (`skipped_overrun`); an instance never starts a second run of a
 *   task it is still running. Missed ticks are not caught up: after a long run the schedule resumes at the next
 *   boundary.
 * - A failing run is logged and counted (`failed`); the schedule goes on.
 * - Redis unreachable: the tick is skipped and logged (`skipped_kv_unavailable`). Running without coordination
 *   could run a task on every instance at once, and the scheduled tasks (sweeps, monitors) are safe to delay by
 *   a tick but not necessarily safe to run concurrently, so we fail closed.
 */
export class ScheduledTasksService implements OnApplicationBootstrap, OnApplicationShutdown {
  private readonly kv: KeyValueStore;
  private readonly clock: Clock;
  private readonly logger: Logger;
  private readonly metrics: Metrics;
  private readonly instanceId: string;
  private readonly maxJitterMs: number;
  private readonly random: () => number;
  private readonly stopTimeoutMs: number;
  private readonly leases: Leases;

  private readonly tasks = new Map<string, TaskEntry>();
  private state: 'idle' | 'started' | 'stopped' = 'idle';
  /** Loops and ticks in flight, awaited by stop(). */
  private readonly inflight = new Set<Promise<void>>();
  /** Sleeps of the schedule loops, woken by stop(). */
  private readonly sleeper: WakeableSleep;
  private stopping?: Promise<void>;

  private readonly headStartMs: number | undefined;

  constructor(options: ScheduledTasksServiceOptions) {
    this.kv = options.kv;
    this.clock = options.clock;
    this.logger = options.logger.child({ component: 'scheduled-tasks', instanceId: options.instanceId });
    this.metrics = options.metrics;
    this.instanceId = options.instanceId;
    this.maxJitterMs = options.maxJitterMs ?? 250;
    this.random = options.random ?? Math.random;
    this.stopTimeoutMs = options.stopTimeoutMs ?? 10_000;
    this.headStartMs = options.headStartMs;
    this.leases = new Leases(this.kv, RUNNING_KEY_PREFIX);
    this.sleeper = new WakeableSleep(this.clock);
  }

  /** Adds a task; registered after start() it is scheduled from the next boundary on. */
  register(task: ScheduledTask): void {
    if (this.state === 'stopped') throw new Error(`cannot register task ${task.name}: scheduler stopped`);
    if (this.tasks.has(task.name)) throw new Error(`scheduled task ${task.name} is already registered`);
    if (!Number.isSafeInteger(task.everyMs) || task.everyMs <= 0) {
      throw new RangeError(`scheduled task ${task.name}: everyMs must be a positive integer, got ${task.everyMs}`);
    }
    const entry: TaskEntry = { task, active: false };
    this.tasks.set(task.name, entry);
    this.metrics.scheduledPeriod.set({ task: task.name }, task.everyMs / 1_000);
    if (this.state === 'started') this.startLoop(entry);
  }

  start(): void {
    if (this.state !== 'idle') return;
    this.state = 'started';
    for (const entry of this.tasks.values()) this.startLoop(entry);
    this.logger.info({ tasks: [...this.tasks.keys()] }, 'scheduled tasks started');
  }

  /** Stops scheduling, aborts running ticks' signals and waits for them, at most stopTimeoutMs. */
  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const wasStarted = this.state === 'started';
    this.state = 'stopped';
    if (!wasStarted) return;
    this.sleeper.close();
    for (const entry of this.tasks.values()) entry.run?.abort(new Error('scheduler stopping'));

    const settled = Promise.allSettled([...this.inflight]).then(() => true);
    const bound = new AbortController();
    const timedOut = this.clock.sleep(this.stopTimeoutMs, bound.signal).then(() => false);
    const finished = await Promise.race([settled, timedOut]);
    bound.abort();
    if (finished) {
      this.logger.info('scheduled tasks stopped');
    } else {
      const running = [...this.tasks.values()].filter((e) => e.active).map((e) => e.task.name);
      this.logger.warn({ running, stopTimeoutMs: this.stopTimeoutMs, reason: 'STOP_TIMEOUT' }, 'stopped without waiting for running ticks');
    }
  }

  onApplicationBootstrap(): void {
    this.start();
  }

  async onApplicationShutdown(): Promise<void> {
    await this.stop();
  }

  private startLoop(entry: TaskEntry): void {
    // The stalled-task alert measures from here until the first run: a fresh instance gets its periods to run.
    this.metrics.scheduledLastSuccess.set({ task: entry.task.name }, this.clock.now() / 1_000);
    this.track(this.loop(entry));
  }

  /** Sleeps to each tick boundary (plus jitter) and hands the tick over without waiting for it. */
  private async loop(entry: TaskEntry): Promise<void> {
    const { everyMs } = entry.task;
    // The tick in progress at start is left alone: another instance may have run it already.
    let lastIndex = Math.floor(this.clock.now() / everyMs);
    while (this.state === 'started') {
      const now = this.clock.now();
      const next = Math.max(Math.floor(now / everyMs), lastIndex) + 1;
      await this.sleeper.sleep(next * everyMs - now + this.jitter(everyMs));
      if (this.state !== 'started') return;
      // A timer may fire a hair early (then it is still tick `next`) or the clock may have jumped (then skip ahead).
      lastIndex = Math.max(next, Math.floor(this.clock.now() / everyMs));
      this.track(this.tick(entry, lastIndex));
    }
  }

  private async tick(entry: TaskEntry, index: number): Promise<void> {
    const { name } = entry.task;
    if (entry.active) {
      this.logger.warn({ task: name, tick: index, reason: 'TICK_OVERRUN' }, 'previous tick still running here; skipping');
      return this.record(name, 'skipped_overrun');
    }
    entry.active = true;
    try {
      await this.coordinateAndRun(entry, index);
    } finally {
      entry.active = false;
    }
  }

  private async coordinateAndRun(entry: TaskEntry, index: number): Promise<void> {
    const { name, everyMs } = entry.task;
    const log = { task: name, tick: index };
    const owner = `${this.instanceId}:${index}`;
    const leaseMs = Math.max(2 * everyMs, MIN_RUNNING_LEASE_MS);

    try {
      // Sticky leadership: whoever ran the last tick gets a head start on this one, so in-process state of a task
      // (such as the ingest provider's frame history for FPS) stays with one instance while it lives.
      const last = await this.kv.get(`${LAST_WINNER_PREFIX}${name}`);
      if (last !== null && last !== this.instanceId) {
        const handicap = this.headStartMs ?? Math.min(Math.floor(everyMs / 5), MAX_HANDICAP_MS);
        if (handicap > 0) {
          await this.sleeper.sleep(handicap);
          if (this.state !== 'started') return;
        }
      }
      const won = await this.kv.set(`${TICK_KEY_PREFIX}${name}:${index}`, this.instanceId, { nx: true, px: 2 * everyMs });
      if (won) await this.kv.set(`${LAST_WINNER_PREFIX}${name}`, this.instanceId, { px: 3 * everyMs });
      if (!won) {
        this.logger.debug(log, 'tick claimed by another instance');
        return this.record(name, 'skipped_not_leader');
      }
      if (!(await this.leases.tryAcquire(name, owner, leaseMs))) {
        const holder = await this.leases.holder(name).catch(() => null);
        this.logger.warn({ ...log, holder, reason: 'TICK_OVERRUN' }, 'previous tick still running elsewhere; skipping');
        return this.record(name, 'skipped_overrun');
      }
    } catch (err) {
      if (err instanceof KvUnavailableError) {
        this.logger.warn({ ...log, err, reason: err.reason }, 'key-value store unreachable; tick skipped (no run without coordination)');
        return this.record(name, 'skipped_kv_unavailable');
      }
      this.logger.error({ ...log, err, reason: 'TICK_COORDINATION_FAILED' }, 'tick coordination failed; tick skipped');
      return this.record(name, 'failed');
    }

    const run = new AbortController();
    entry.run = run;
    if (this.state !== 'started') run.abort(new Error('scheduler stopping'));
    const renewal = new AbortController();
    const renewing = this.keepLease(name, owner, leaseMs, renewal.signal, run);
    const startedAt = this.clock.now();
    let result: TickResult = 'ran';
    try {
      await entry.task.run({ tickAt: index * everyMs, signal: run.signal });
      this.metrics.scheduledLastSuccess.set({ task: name }, this.clock.now() / 1_000);
      this.logger.debug({ ...log, ms: this.clock.now() - startedAt }, 'tick ran');
    } catch (err) {
      result = 'failed';
      this.logger.error({ ...log, err, reason: 'TASK_FAILED' }, 'scheduled task failed; the schedule continues');
    } finally {
      renewal.abort();
      await renewing;
      entry.run = undefined;
      this.metrics.scheduledTickSeconds.observe({ task: name }, (this.clock.now() - startedAt) / 1_000);
      try {
        await this.leases.release(name, owner);
      } catch (err) {
        this.logger.warn({ ...log, err, reason: 'LEASE_RELEASE_FAILED' }, 'could not release the running lease; it expires on its own');
      }
    }
    this.record(name, result);
  }

  /** Renews the running lease every third of its ttl; a lease taken over aborts the run's signal. */
  private async keepLease(name: string, owner: string, leaseMs: number, done: AbortSignal, run: AbortController): Promise<void> {
    const every = Math.max(1, Math.floor(leaseMs / 3));
    for (;;) {
      await this.clock.sleep(every, done);
      if (done.aborted) return;
      try {
        if (!(await this.leases.renew(name, owner, leaseMs))) {
          this.logger.warn({ task: name, owner, reason: 'LEASE_LOST' }, 'running lease lost; signalling the task to stop');
          run.abort(new Error('running lease lost'));
          return;
        }
      } catch (err) {
        // The lease still has up to two thirds of its ttl; the next renewal may get through.
        this.logger.warn({ task: name, err, reason: 'LEASE_RENEW_FAILED' }, 'could not renew the running lease');
      }
    }
  }

  private record(task: string, result: TickResult): void {
    this.metrics.scheduledTicks.inc({ task, result });
  }

  private jitter(everyMs: number): number {
    const max = Math.min(this.maxJitterMs, Math.floor(everyMs / 10));
    return Math.floor(this.random() * max);
  }

  private track(work: Promise<void>): void {
    const tracked = work.catch((err: unknown) => this.logger.error({ err }, 'scheduler bug: unexpected error'));
    this.inflight.add(tracked);
    void tracked.finally(() => this.inflight.delete(tracked));
  }
}
