import type { Backoff } from './backoff.js';
import type { Clock } from './clock.js';

/**
 * Sleeps on a Clock that another caller can cut short: `wake()` ends the sleeps in progress, `close()` ends them
 * and every later one at once (a stopping loop never waits out a timer).
 */
export class WakeableSleep {
  private readonly sleeping = new Set<AbortController>();
  private closed = false;

  constructor(private readonly clock: Clock) {}

  /** Resolves after `ms` of the clock, or earlier when woken or closed. */
  async sleep(ms: number): Promise<void> {
    if (this.closed) return;
    // One controller per sleep, so no abort listener piles up on a shared signal.
    const wake = new AbortController();
    this.sleeping.add(wake);
    try {
      await this.clock.sleep(ms, wake.signal);
    } finally {
      this.sleeping.delete(wake);
    }
  }

  wake(): void {
    for (const sleeper of this.sleeping) sleeper.abort();
  }

  close(): void {
    this.closed = true;
    this.wake();
  }
}

export interface PollLoopOptions {
  clock: Clock;
  /** One pass over the due work; returns how much it did. Work done means the next pass starts at once. */
  pass(): Promise<number>;
  /** Pause after a pass that found nothing to do. */
  idleMs: number;
  /** Pause after the n-th failed pass in a row; without it a failed pass pauses `idleMs`. */
  retry?: Backoff;
  /** Told about each failed pass (the loop goes on); `failures` counts the failed passes in a row. */
  onError(error: unknown, failures: number): void;
}

/** The service's one poll loop: passes back to back while there is work, else sleeps until due or nudged. */
export class PollLoop {
  private running = false;
  private loop: Promise<void> | undefined;
  private sleeper: WakeableSleep;
  private failures = 0;
  /** A nudge that arrived during a pass: the next pass starts at once instead of after a pause. */
  private nudged = false;

  constructor(private readonly options: PollLoopOptions) {
    this.sleeper = new WakeableSleep(options.clock);
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.sleeper = new WakeableSleep(this.options.clock);
    this.loop = this.run();
  }

  /** Cuts the current pause short (for example after a transaction that made work due committed). */
  nudge(): void {
    this.nudged = true;
    this.sleeper.wake();
  }

  /** Ends the loop after the pass in progress; resolves once it has. */
  async stop(): Promise<void> {
    this.running = false;
    this.sleeper.close();
    await this.loop;
  }

  private async run(): Promise<void> {
    const { pass, idleMs, retry, onError } = this.options;
    while (this.running) {
      this.nudged = false;
      let worked = 0;
      try {
        worked = await pass();
        this.failures = 0;
      } catch (error) {
        this.failures++;
        onError(error, this.failures);
      }
      if (!this.running || ((worked > 0 || this.nudged) && this.failures === 0)) continue;
      await this.sleeper.sleep(this.failures > 0 && retry ? retry.delay(this.failures) : idleMs);
    }
  }
}
