import type { KeyValueStore } from '../infra/kv/kv-store.js';

/** Key prefix of general-purpose leases; callers with their own key scheme pass another. */
export const LEASE_PREFIX = 'lease:';

/**
 * Cluster-wide leases on the key-value port: at most one owner holds a name at a time, for a bounded time.
 * Acquisition is SET NX PX, so it is not re-entrant (an owner asking again for a lease it holds gets false);
 * renew and release are compare-and-set on the owner token, so nobody can extend or drop another's lease.
 * An owner that dies simply stops renewing and the lease expires after its ttl.
 * KV errors (KvUnavailableError) propagate: callers decide whether to fail closed.
 */
export class Leases {
  constructor(
    private readonly kv: KeyValueStore,
    private readonly prefix: string = LEASE_PREFIX,
  ) {}

  /** Takes the lease when nobody holds it; true when `owner` now holds it for `ttlMs`. */
  async tryAcquire(name: string, owner: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    return this.kv.set(this.key(name), owner, { nx: true, px: ttlMs });
  }

  /** `tryAcquire` for many names in one round trip; true per name now held by `owner`, in order. */
  async tryAcquireMany(names: readonly string[], owner: string, ttlMs: number): Promise<boolean[]> {
    assertTtl(ttlMs);
    return this.kv.setManyNx(
      names.map((n) => this.key(n)),
      owner,
      ttlMs,
    );
  }

  /** `release` for many names in one round trip; returns how many `owner` held (and dropped). */
  async releaseMany(names: readonly string[], owner: string): Promise<number> {
    return this.kv.delManyIfEquals(
      names.map((n) => this.key(n)),
      owner,
    );
  }

  /** Extends the lease to `ttlMs` from now; false when `owner` no longer holds it (expired or taken over). */
  async renew(name: string, owner: string, ttlMs: number): Promise<boolean> {
    assertTtl(ttlMs);
    return this.kv.pexpireIfEquals(this.key(name), owner, ttlMs);
  }

  /** Gives the lease up; false when `owner` did not hold it (then nothing is deleted). */
  async release(name: string, owner: string): Promise<boolean> {
    return this.kv.delIfEquals(this.key(name), owner);
  }

  /** The current holder, or null when the lease is free. */
  async holder(name: string): Promise<string | null> {
    return this.kv.get(this.key(name));
  }

  private key(name: string): string {
    return `${this.prefix}${name}`;
  }
}

function assertTtl(ttlMs: number): void {
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new RangeError(`lease ttl must be a positive integer of ms, got ${ttlMs}`);
}
