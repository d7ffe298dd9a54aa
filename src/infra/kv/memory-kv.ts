import type { Clock } from '../clock.js';
import { KvUnavailableError, type HighWaterResult, type KeyValueStore, type SetOptions } from './kv-store.js';

interface Entry {
  value: string;
  /** Absolute expiry on the injected clock, or null for no expiry. */
  expiresAt: number | null;
}

/** Redis's own wording, so callers (and tests) see the same error from either adapter. */
const NOT_AN_INTEGER = 'ERR value is not an integer or out of range';
const OVERFLOW = 'ERR increment or decrement would overflow';
const INTEGER = /^-?(0|[1-9]\d*)$/;

/** A sweep of expired keys runs at most this often (on writes) so a steady trickle of writes stays cheap. */
const SWEEP_INTERVAL_MS = 1_000;
/** Writes also trigger a sweep once they match the keys left by the last one: the map at most doubles, each write pays O(1). */
const SWEEP_MIN_WRITES = 64;

/**
 * The embedded key-value store: Redis semantics (NX, PX, INCRBY, PTTL, compare-and-set) in process memory.
 * Expiry is measured on the injected clock: keys expire lazily when read and are swept on writes, so memory
 * stays bounded without a timer. No method awaits between its read and its write, so each one is atomic.
 */
export class MemoryKeyValueStore implements KeyValueStore {
  private readonly entries = new Map<string, Entry>();
  private closed = false;
  private outage = false;
  private lastSweepAt: number;
  private writesSinceSweep = 0;
  private keysAfterSweep = 0;

  constructor(private readonly clock: Clock) {
    this.lastSweepAt = clock.now();
  }

  async get(key: string): Promise<string | null> {
    this.assertAvailable();
    return this.live(key)?.value ?? null;
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    this.assertAvailable();
    const ttl = options.px === undefined ? null : integerMs(options.px);
    if (ttl !== null && ttl <= 0) throw new Error("ERR invalid expire time in 'set' command");
    if (options.nx && this.live(key)) return false;
    this.entries.set(key, { value, expiresAt: ttl === null ? null : this.clock.now() + ttl });
    this.afterWrite();
    return true;
  }

  async del(...keys: string[]): Promise<number> {
    this.assertAvailable();
    let removed = 0;
    for (const key of keys) {
      if (this.live(key)) {
        this.entries.delete(key);
        removed++;
      }
    }
    return removed;
  }

  async incr(key: string, by = 1): Promise<number> {
    this.assertAvailable();
    if (!Number.isSafeInteger(by)) throw new Error(NOT_AN_INTEGER);
    const entry = this.live(key);
    let current = 0;
    if (entry) {
      if (!INTEGER.test(entry.value)) throw new Error(NOT_AN_INTEGER);
      current = Number(entry.value);
      if (!Number.isSafeInteger(current)) throw new Error(NOT_AN_INTEGER);
    }
    const next = current + by;
    if (!Number.isSafeInteger(next)) throw new Error(OVERFLOW);
    // Like INCRBY, the key keeps whatever time to live it had.
    this.entries.set(key, { value: String(next), expiresAt: entry?.expiresAt ?? null });
    this.afterWrite();
    return next;
  }

  async pexpire(key: string, ms: number): Promise<boolean> {
    this.assertAvailable();
    const ttl = integerMs(ms);
    const entry = this.live(key);
    if (!entry) return false;
    this.applyTtl(key, entry, ttl);
    return true;
  }

  async pttl(key: string): Promise<number> {
    this.assertAvailable();
    const entry = this.live(key);
    if (!entry) return -2;
    if (entry.expiresAt === null) return -1;
    return entry.expiresAt - this.clock.now();
  }

  async delIfEquals(key: string, expected: string): Promise<boolean> {
    this.assertAvailable();
    const entry = this.live(key);
    if (!entry || entry.value !== expected) return false;
    this.entries.delete(key);
    return true;
  }

  async setManyNx(keys: readonly string[], value: string, px: number): Promise<boolean[]> {
    this.assertAvailable();
    const out: boolean[] = [];
    for (const key of keys) out.push(await this.set(key, value, { nx: true, px }));
    return out;
  }

  async delManyIfEquals(keys: readonly string[], expected: string): Promise<number> {
    this.assertAvailable();
    let deleted = 0;
    for (const key of keys) if (await this.delIfEquals(key, expected)) deleted++;
    return deleted;
  }

  async pexpireIfEquals(key: string, expected: string, ms: number): Promise<boolean> {
    this.assertAvailable();
    const ttl = integerMs(ms);
    const entry = this.live(key);
    if (!entry || entry.value !== expected) return false;
    this.applyTtl(key, entry, ttl);
    return true;
  }

  async raiseHighWater(key: string, value: number, ttlMs: number, floor?: number | null): Promise<HighWaterResult> {
    this.assertAvailable();
    const ttl = integerMs(ttlMs);
    if (!Number.isSafeInteger(value) || (floor !== undefined && floor !== null && !Number.isSafeInteger(floor)))
      throw new Error(NOT_AN_INTEGER);
    const entry = this.live(key);
    let current: number | null;
    if (entry) {
      if (!INTEGER.test(entry.value)) throw new Error(NOT_AN_INTEGER);
      current = Number(entry.value);
    } else {
      if (floor === undefined) return { outcome: 'unknown' };
      current = floor;
    }
    if (current !== null && value <= current) {
      if (!entry) this.entries.set(key, { value: String(current), expiresAt: this.clock.now() + ttl });
      return { outcome: 'stale', current };
    }
    this.entries.set(key, { value: String(value), expiresAt: this.clock.now() + ttl });
    this.afterWrite();
    return { outcome: 'raised', previous: current };
  }

  async restoreHighWater(key: string, raisedTo: number, previous: number | null): Promise<boolean> {
    this.assertAvailable();
    const entry = this.live(key);
    if (!entry || entry.value !== String(raisedTo)) return false;
    if (previous === null) this.entries.delete(key);
    else entry.value = String(previous);
    return true;
  }

  async ping(): Promise<void> {
    this.assertAvailable();
  }

  async close(): Promise<void> {
    this.closed = true;
    this.entries.clear();
  }

  /** Test hook: while on, every call throws KvUnavailableError, as if Redis were down. */
  simulateOutage(on: boolean): void {
    this.outage = on;
  }

  /** Keys held in memory, expired-but-not-yet-swept ones included (for tests of the sweep). */
  get size(): number {
    return this.entries.size;
  }

  private assertAvailable(): void {
    if (this.closed) throw new KvUnavailableError('memory key-value store is closed');
    if (this.outage) throw new KvUnavailableError('memory key-value store: simulated outage');
  }

  /** The entry when it exists and has not expired; an expired one is dropped on the spot (lazy expiry). */
  private live(key: string): Entry | undefined {
    const entry = this.entries.get(key);
    if (!entry) return undefined;
    if (entry.expiresAt !== null && entry.expiresAt <= this.clock.now()) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** Redis deletes a key given a non-positive ttl instead of keeping it expired. */
  private applyTtl(key: string, entry: Entry, ttl: number): void {
    if (ttl <= 0) this.entries.delete(key);
    else entry.expiresAt = this.clock.now() + ttl;
  }

  private afterWrite(): void {
    this.writesSinceSweep++;
    const now = this.clock.now();
    const due = now - this.lastSweepAt >= SWEEP_INTERVAL_MS || this.writesSinceSweep >= Math.max(SWEEP_MIN_WRITES, this.keysAfterSweep);
    if (due) this.sweep(now);
  }

  private sweep(now: number): void {
    for (const [key, entry] of this.entries) {
      if (entry.expiresAt !== null && entry.expiresAt <= now) this.entries.delete(key);
    }
    this.lastSweepAt = now;
    this.writesSinceSweep = 0;
    this.keysAfterSweep = this.entries.size;
  }
}

/** Times to live are integers of milliseconds, as on the Redis wire. */
function integerMs(ms: number): number {
  if (!Number.isSafeInteger(ms)) throw new Error(NOT_AN_INTEGER);
  return ms;
}
