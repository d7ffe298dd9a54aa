/**
 * The key-value port (Redis semantics). Two adapters: ioredis and an in-process store.
 * Every method is atomic on its own; keys are plain strings (the adapter adds any configured prefix).
 */
export interface SetOptions {
  /** Only set when the key does not exist (Redis NX). */
  nx?: boolean;
  /** Expire after this many milliseconds (Redis PX). */
  px?: number;
}

/** What {@link KeyValueStore.raiseHighWater} did. */
export type HighWaterResult =
  /** The mark now holds the value; `previous` is what it held (null: nothing), for {@link KeyValueStore.restoreHighWater}. */
  | { readonly outcome: 'raised'; readonly previous: number | null }
  /** The value is not above the mark (left unchanged). */
  | { readonly outcome: 'stale'; readonly current: number }
  /** No mark is held and the caller gave no floor: read the floor from the durable record and call again with it. */
  | { readonly outcome: 'unknown' };

export interface KeyValueStore {
  get(key: string): Promise<string | null>;
  /** Returns true when the value was written (false only when `nx` and the key existed). */
  set(key: string, value: string, options?: SetOptions): Promise<boolean>;
  /** Deletes keys; returns how many existed. */
  del(...keys: string[]): Promise<number>;
  /** Atomic increment by `by` (default 1); a missing key counts from 0. Returns the new value. */
  incr(key: string, by?: number): Promise<number>;
  /** Sets a time to live in ms on an existing key; returns false when the key does not exist. */
  pexpire(key: string, ms: number): Promise<boolean>;
  /** Remaining time to live in ms: -2 when the key does not exist, -1 when it has no expiry. */
  pttl(key: string): Promise<number>;
  /** Deletes the key only when its value equals `expected` (compare-and-delete, for leases). */
  delIfEquals(key: string, expected: string): Promise<boolean>;
  /** Extends the ttl only when the value equals `expected` (lease renewal). */
  pexpireIfEquals(key: string, expected: string, ms: number): Promise<boolean>;
  /**
   * `set(key, value, { nx: true, px })` for many keys in one round trip (leases of a whole sweep); one boolean
   * per key, in order: true when written. Each key is atomic on its own, not the set.
   */
  setManyNx(keys: readonly string[], value: string, px: number): Promise<boolean[]>;
  /** `delIfEquals` for many keys in one round trip; returns how many were deleted. */
  delManyIfEquals(keys: readonly string[], expected: string): Promise<number>;
  /**
   * An integer high-water mark, checked and raised atomically (exact under concurrency: of calls with the same value
   * exactly one raises it). When the key holds a lower integer, or nothing and `floor` is null or lower, it is set to
   * `value` with time to live `ttlMs`. When the key is missing and `floor` is undefined, nothing changes and the
   * answer is `unknown`; a missing key that is at or above a given `floor` is set to `floor` (later calls need no
   * seed) and the answer is `stale`.
   */
  raiseHighWater(key: string, value: number, ttlMs: number, floor?: number | null): Promise<HighWaterResult>;
  /**
   * Undoes a raise whose effect failed: only when the mark still holds `raisedTo`, it goes back to `previous`
   * (deleted when null), keeping its time to live. Returns whether it did.
   */
  restoreHighWater(key: string, raisedTo: number, previous: number | null): Promise<boolean>;
  /** Round trip to the store; throws when it is unreachable. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export const KV_STORE = Symbol('KeyValueStore');

/** Thrown by adapters when the store cannot be reached (callers that must fail closed look for it). */
export class KvUnavailableError extends Error {
  readonly reason = 'KV_UNAVAILABLE';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KvUnavailableError';
  }
}
