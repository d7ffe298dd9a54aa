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
