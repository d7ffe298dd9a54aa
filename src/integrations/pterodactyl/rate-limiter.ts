import type { Clock } from '../../infra/clock.js';
import type { KeyValueStore } from '../../infra/kv/kv-store.js';
import type { Metrics } from '../../observability/metrics.js';

/**
 * The fleet-wide budget for the panel's application API, shared by every instance through the key-value port.
 *
 * The panel counts requests per key owner in a fixed window that starts at its first hit (pterodactyl-api.md
 * §4.4), so the start of its window is unknowable: the fleet must keep EVERY sliding window under the budget.
 * Slot spacing does that. Time is cut into slots of `intervalMs = ceil(windowMs / slotsPerWindow)`; a request may
 * go out only after winning its slot with `SET <prefix>:slot:<n> NX`. Any window of `windowMs` overlaps at most
 * `slotsPerWindow + 1` slots, and `slotsPerWindow = floor(budget · safetyMargin)` (at most budget − 1), so the
 * remaining ~10 % absorbs network latency between winning a slot and reaching the panel, and clock skew between
 * instances (about `(budget − slotsPerWindow − 1) · intervalMs` of both together: ≈ 6 s at 240/min).
 *
 * A 429 (or a response saying no budget remains) sets `<prefix>:pause-until`, which every acquire respects.
 *
 * Inside one instance, waiters queue in lanes: ONE loop contends for the fleet's slots (one `SET NX` per slot and
 * instance, however many requests wait) and hands each slot it wins to a lane, first come first served within a
 * lane. The `listing` lane goes first whenever it has a waiter: a listing is a short burst of pages that must all
 * have their slots by one deadline, and the poller already holds listings and their confirming GETs to half the
 * budget (its quiet period, provisioning/poller.ts `holdListing`), so they cannot starve the rest. The other lanes
 * take turns, so a waiter at the head of its lane is served after at most one waiter of each other turn-taking lane
 * (and any listing pages): a burst of 200 key deliveries does not hold up a confirming GET, and when per-server
 * polling fills the budget the deliveries still get their share (docs/panel.md, "Request lanes"). Across instances
 * every instance contends equally.
 */
export interface PanelRateLimiterOptions {
  store: KeyValueStore;
  clock: Clock;
  /** Requests the panel allows per window and key owner: PTERO_RATE_LIMIT_PER_MIN (≥ 2). */
  budget: number;
  /** The panel's window; 60 s on Pterodactyl (configurable only so tests can run short windows). */
  windowMs?: number;
  /** Fraction of the budget the fleet may use (default 0.9). */
  safetyMargin?: number;
  /** Key prefix; instances that share one panel key owner must share it. Default `rl:ptero`. */
  keyPrefix?: string;
  /** Written as the slot value, for debugging who took a slot. */
  instanceId?: string;
  /** Upper bound of the random delay added after a slot boundary so contenders do not stampede (default ≤ 50 ms). */
  maxJitterMs?: number;
  /** How long the fleet pauses when the panel reports `X-RateLimit-Remaining: 0` (default windowMs / 30). */
  exhaustedPauseMs?: number;
  random?: () => number;
  metrics?: Pick<Metrics, 'panelRateLimitWaitSeconds'>;
}

/**
 * The lanes an instance's slots are shared between: listing pages (`listing`, always first), then in turn single
 * reads for readiness (`detection`), admin key deliveries (`delivery`) and deletes (`cleanup`); panel.adapter.ts
 * says which request takes which.
 */
export const SLOT_LANES = ['listing', 'detection', 'delivery', 'cleanup'] as const;
/** The index of the lane served before the others take turns. */
const FIRST_LANE = 0;
export type SlotLane = (typeof SLOT_LANES)[number];

export interface AcquireOptions {
  /** Default `detection`. */
  lane?: SlotLane;
  /** Absolute time on the limiter's clock after which waiting is pointless; a slot later than this throws. */
  deadline?: number;
  /** Relative alternative to `deadline`; the earlier of the two applies. */
  maxWaitMs?: number;
  signal?: AbortSignal;
}

interface Waiter {
  started: number;
  deadline: number;
  resolve: (waitedMs: number) => void;
  reject: (error: unknown) => void;
  /** Detaches the waiter's abort listener. */
  detach: () => void;
}

/** Thrown by `acquire` when no slot can be had before the caller's deadline. */
export class RateLimitDeadlineError extends Error {
  readonly reason = 'RATE_LIMIT_DEADLINE';
  constructor(
    readonly deadline: number,
    /** When the next attempt would have been made. */
    readonly nextAttemptAt: number,
  ) {
    super(`no panel request slot before the deadline (next attempt in ${Math.max(0, nextAttemptAt - deadline)} ms past it)`);
    this.name = 'RateLimitDeadlineError';
  }
}

export class PanelRateLimiter {
  readonly intervalMs: number;
  readonly slotsPerWindow: number;
  readonly windowMs: number;
  readonly budget: number;
  private readonly store: KeyValueStore;
  private readonly clock: Clock;
  private readonly prefix: string;
  private readonly instanceId: string;
  private readonly maxJitterMs: number;
  private readonly exhaustedPauseMs: number;
  private readonly slotTtlMs: number;
  private readonly random: () => number;
  private readonly metrics: PanelRateLimiterOptions['metrics'];
  /** The latest pause this instance knows of, so a lost write race in the store cannot shorten it locally. */
  private localPauseUntil = 0;
  /** This instance's waiters: one FIFO queue per lane (SLOT_LANES order). */
  private readonly lanes: Waiter[][] = SLOT_LANES.map(() => []);
  /** Of the lanes that take turns, the one served last; the next turn goes to the next one (cyclically) with a waiter. */
  private lastTurn = SLOT_LANES.length - 1;
  private pumping = false;
  /** When the contending loop next tries the store: after a slot (won or lost), the next slot's boundary. */
  private nextAttemptAt = 0;
  /** Wakes the loop's sleep early when no waiter is left (so an idle instance holds no timer). */
  private pumpWake: AbortController | null = null;
  /** Until when the loop sleeps (valid while `pumpWake` is set). */
  private sleepingUntil = 0;

  constructor(options: PanelRateLimiterOptions) {
    const { budget } = options;
    const windowMs = options.windowMs ?? 60_000;
    const margin = options.safetyMargin ?? 0.9;
    if (!Number.isInteger(budget) || budget < 2) throw new RangeError('rate limiter budget must be an integer ≥ 2');
    if (!(margin > 0 && margin <= 1)) throw new RangeError('safetyMargin must be in (0, 1]');
    if (!(windowMs > 0)) throw new RangeError('windowMs must be positive');
    this.budget = budget;
    this.windowMs = windowMs;
    // The +1 boundary slot must still fit inside the budget.
    this.slotsPerWindow = Math.max(1, Math.min(Math.floor(budget * margin), budget - 1));
    this.intervalMs = Math.ceil(windowMs / this.slotsPerWindow);
    this.store = options.store;
    this.clock = options.clock;
    this.prefix = options.keyPrefix ?? 'rl:ptero';
    this.instanceId = options.instanceId ?? 'worker';
    this.maxJitterMs = Math.max(0, Math.floor(options.maxJitterMs ?? Math.min(50, this.intervalMs / 4)));
    this.exhaustedPauseMs = Math.max(1, Math.ceil(options.exhaustedPauseMs ?? windowMs / 30));
    // Long enough that a skewed instance cannot re-win an expired slot it still considers current.
    this.slotTtlMs = Math.max(2 * this.intervalMs, 10_000);
    this.random = options.random ?? Math.random;
    this.metrics = options.metrics;
  }

  /** Waits for a fleet-wide request slot. Resolves with the time waited, in ms of the limiter's clock. */
  acquire(options: AcquireOptions = {}): Promise<number> {
    const started = this.clock.now();
    const deadline = Math.min(
      options.deadline ?? Number.POSITIVE_INFINITY,
      options.maxWaitMs === undefined ? Number.POSITIVE_INFINITY : started + options.maxWaitMs,
    );
    const { signal } = options;
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise<number>((resolve, reject) => {
      const onAbort = () => {
        this.remove(waiter);
        reject(signal?.reason);
      };
      const lane = this.lanes[SLOT_LANES.indexOf(options.lane ?? 'detection')];
      if (lane === undefined) throw new RangeError(`unknown slot lane ${String(options.lane)}`);
      const waiter: Waiter = {
        started,
        deadline,
        resolve,
        reject,
        detach: () => signal?.removeEventListener('abort', onAbort),
      };
      // The loop may be asleep until a pause or the next slot (every waiter already queued can wait that long): a
      // deadline before that fails now, as before queueing.
      if (this.pumping && this.pumpWake !== null && this.sleepingUntil > deadline) {
        reject(new RateLimitDeadlineError(deadline, this.sleepingUntil));
        return;
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      lane.push(waiter);
      if (!this.pumping) void this.pump();
    });
  }

  /**
   * The contending loop: runs while this instance has waiters. A store failure fails every waiter (the caller
   * decides; nothing is sent unguarded).
   */
  private async pump(): Promise<void> {
    this.pumping = true;
    try {
      while (this.waiting() > 0) {
        const pausedUntil = await this.pausedUntil();
        const now = this.clock.now();
        if (pausedUntil > now) {
          await this.sleepUntil(pausedUntil + this.jitter());
          continue;
        }
        if (this.nextAttemptAt > now) {
          await this.sleepUntil(this.nextAttemptAt);
          continue;
        }
        const slot = Math.floor(now / this.intervalMs);
        const won = await this.store.set(`${this.prefix}:slot:${slot}`, this.instanceId, { nx: true, px: this.slotTtlMs });
        // Won or lost, this slot is spent for this instance.
        this.nextAttemptAt = (slot + 1) * this.intervalMs + this.jitter();
        if (won) {
          const waiter = this.nextInTurn();
          if (waiter) this.grant(waiter);
        }
      }
    } catch (error) {
      for (const lane of this.lanes) {
        for (const waiter of lane.splice(0)) {
          waiter.detach();
          waiter.reject(error);
        }
      }
    } finally {
      this.pumping = false;
      this.pumpWake = null;
    }
  }

  /** Fails, at once, every waiter whose deadline comes before `at`; then sleeps until `at` (or no waiter is left). */
  private async sleepUntil(at: number): Promise<void> {
    this.expireBefore(at);
    if (this.waiting() === 0) return;
    this.pumpWake = new AbortController();
    this.sleepingUntil = at;
    await this.clock.sleep(Math.max(0, Math.ceil(at - this.clock.now())), this.pumpWake.signal);
    this.pumpWake = null;
  }

  private expireBefore(at: number): void {
    for (const lane of this.lanes) {
      for (let i = lane.length - 1; i >= 0; i--) {
        const waiter = lane[i] as Waiter;
        if (at > waiter.deadline) {
          lane.splice(i, 1);
          waiter.detach();
          waiter.reject(new RateLimitDeadlineError(waiter.deadline, at));
        }
      }
    }
    // Nobody left to wait for: the loop's sleep (up to a whole pause) must not hold the process open.
    if (this.waiting() === 0) this.pumpWake?.abort();
  }

  private waiting(): number {
    let n = 0;
    for (const lane of this.lanes) n += lane.length;
    return n;
  }

  /** The first listing waiter, else the first waiter of the next lane in turn that has one. */
  private nextInTurn(): Waiter | undefined {
    const first = (this.lanes[FIRST_LANE] as Waiter[]).shift();
    if (first) return first;
    const turns = this.lanes.length - 1;
    for (let step = 1; step <= turns; step++) {
      const index = FIRST_LANE + 1 + ((this.lastTurn - FIRST_LANE - 1 + step) % turns);
      const waiter = (this.lanes[index] as Waiter[]).shift();
      if (waiter) {
        this.lastTurn = index;
        return waiter;
      }
    }
    return undefined;
  }

  private remove(waiter: Waiter): void {
    for (const lane of this.lanes) {
      const i = lane.indexOf(waiter);
      if (i >= 0) lane.splice(i, 1);
    }
    if (this.waiting() === 0) this.pumpWake?.abort();
  }

  private grant(waiter: Waiter): void {
    waiter.detach();
    const waited = this.clock.now() - waiter.started;
    this.metrics?.panelRateLimitWaitSeconds.observe(waited / 1000);
    waiter.resolve(waited);
  }

  /** Pauses the whole fleet until `untilMs` (epoch ms on the limiter's clock); a later existing pause is kept. */
  async pauseUntil(untilMs: number): Promise<void> {
    const until = Math.ceil(untilMs);
    if (until > this.localPauseUntil) this.localPauseUntil = until;
    const key = `${this.prefix}:pause-until`;
    // The port has no atomic "set if greater": re-check after writing so a racing shorter pause cannot win for long.
    for (let attempt = 0; attempt < 3; attempt++) {
      const ttl = until - this.clock.now();
      if (ttl <= 0) return;
      const current = parsePause(await this.store.get(key));
      if (current >= until) return;
      await this.store.set(key, String(until), { px: ttl });
    }
  }

  /** Pauses the whole fleet for `ms` from now (a 429's Retry-After). */
  async pauseFor(ms: number): Promise<void> {
    await this.pauseUntil(this.clock.now() + Math.max(0, ms));
  }

  /** Feeds back `X-RateLimit-Remaining` from a panel response; 0 means the next request would be throttled. */
  async observeRemaining(remaining: number): Promise<void> {
    if (Number.isFinite(remaining) && remaining <= 0) {
      await this.pauseUntil(this.clock.now() + this.exhaustedPauseMs);
    }
  }

  /** The end of the current fleet-wide pause (epoch ms), or 0 when there is none. */
  async pausedUntil(): Promise<number> {
    const shared = parsePause(await this.store.get(`${this.prefix}:pause-until`));
    return Math.max(shared, this.localPauseUntil);
  }

  private jitter(): number {
    return this.maxJitterMs === 0 ? 0 : Math.floor(this.random() * this.maxJitterMs);
  }
}

function parsePause(raw: string | null): number {
  const value = raw === null ? 0 : Number(raw);
  return Number.isFinite(value) ? value : 0;
}
