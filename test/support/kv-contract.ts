import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { KvUnavailableError, type KeyValueStore } from '../../src/infra/kv/kv-store.js';

/** Moves the store's time forward: a manual clock for the memory adapter, a real wait for Redis. */
export type Advance = (ms: number) => Promise<void>;

const realWait: Advance = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export interface KeyValueStoreContractOptions {
  /** Moves the store's time forward; default a real wait. */
  advance?: Advance;
  /**
   * Multiplies the TTLs that a follow-up round-trip must land inside (base TTL 100 ms, waited out for 1.5×).
   * Against a real server use ≈10 (1 s TTL, 1.5 s wait) so a scheduling stall on a loaded machine cannot make a
   * key expire before the "still there" checks; a manual clock needs no margin. Default: 10 with real waits, 1 with
   * an injected `advance`.
   */
  ttlScale?: number;
}

/**
 * The one behaviour both key-value adapters must share (Redis semantics). Each test gets a fresh store;
 * time-to-live tests use real TTLs (scaled by `ttlScale`) so they run unchanged against a real server.
 */
export function describeKeyValueStoreContract(
  name: string,
  makeStore: () => KeyValueStore | Promise<KeyValueStore>,
  options: KeyValueStoreContractOptions = {},
): void {
  const advance = options.advance ?? realWait;
  const scale = options.ttlScale ?? (options.advance === undefined ? 10 : 1);
  if (!(scale > 0)) throw new RangeError(`ttlScale must be positive, got ${scale}`);
  /** A TTL that the test's follow-up calls must beat; TTL_WAIT is surely past it. */
  const TTL = Math.round(100 * scale);
  const TTL_WAIT = Math.round(1.5 * TTL);

  describe(`KeyValueStore contract: ${name}`, () => {
    let kv: KeyValueStore;

    beforeEach(async () => {
      kv = await makeStore();
    });

    afterEach(async () => {
      await kv.close();
    });

    describe('get / set', () => {
      it('reads null for a missing key and the value after a set', async () => {
        expect(await kv.get('missing')).toBeNull();
        expect(await kv.set('k', 'v1')).toBe(true);
        expect(await kv.get('k')).toBe('v1');
        expect(await kv.set('k', 'v2')).toBe(true);
        expect(await kv.get('k')).toBe('v2');
      });

      it('NX writes only the first time', async () => {
        expect(await kv.set('nx', 'first', { nx: true })).toBe(true);
        expect(await kv.set('nx', 'second', { nx: true })).toBe(false);
        expect(await kv.get('nx')).toBe('first');
      });

      it('PX expires the key after the ttl', async () => {
        expect(await kv.set('px', 'v', { px: TTL })).toBe(true);
        expect(await kv.get('px')).toBe('v');
        await advance(TTL_WAIT);
        expect(await kv.get('px')).toBeNull();
        expect(await kv.pttl('px')).toBe(-2);
      });

      it('NX succeeds again once the previous value expired', async () => {
        expect(await kv.set('nx-px', 'a', { nx: true, px: TTL })).toBe(true);
        expect(await kv.set('nx-px', 'b', { nx: true, px: TTL })).toBe(false);
        await advance(TTL_WAIT);
        expect(await kv.set('nx-px', 'c', { nx: true, px: 10 * TTL })).toBe(true);
        expect(await kv.get('nx-px')).toBe('c');
      });

      it('a plain set clears a previous ttl', async () => {
        await kv.set('ttl', 'a', { px: 10_000 });
        await kv.set('ttl', 'b');
        expect(await kv.pttl('ttl')).toBe(-1);
      });

      it('rejects a non-positive PX like Redis', async () => {
        await expect(kv.set('bad-px', 'v', { px: 0 })).rejects.toThrow(/invalid expire time/);
        expect(await kv.get('bad-px')).toBeNull();
      });
    });

    describe('del', () => {
      it('returns how many of the keys existed', async () => {
        await kv.set('a', '1');
        await kv.set('b', '2');
        expect(await kv.del('a', 'b', 'nope')).toBe(2);
        expect(await kv.get('a')).toBeNull();
        expect(await kv.del('a')).toBe(0);
        expect(await kv.del()).toBe(0);
      });

      // Only a wait after the write, nothing that must beat the ttl: a short one cannot flake.
      it('does not count an expired key', async () => {
        await kv.set('gone', 'v', { px: 50 });
        await advance(100);
        expect(await kv.del('gone')).toBe(0);
      });
    });

    describe('incr', () => {
      it('counts a missing key from 0 and increments by any integer', async () => {
        expect(await kv.incr('n')).toBe(1);
        expect(await kv.incr('n')).toBe(2);
        expect(await kv.incr('n', 10)).toBe(12);
        expect(await kv.incr('n', -20)).toBe(-8);
        expect(await kv.get('n')).toBe('-8');
      });

      it('increments a stored integer string', async () => {
        await kv.set('s', '41');
        expect(await kv.incr('s')).toBe(42);
      });

      it('keeps the ttl of the key', async () => {
        await kv.set('ttl-n', '1', { px: 10_000 });
        await kv.incr('ttl-n');
        const ttl = await kv.pttl('ttl-n');
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(10_000);
      });

      it('throws like Redis on a non-integer value, without a KvUnavailableError', async () => {
        await kv.set('word', 'abc');
        const err = await kv.incr('word').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(Error);
        expect(err).not.toBeInstanceOf(KvUnavailableError);
        expect((err as Error).message).toMatch(/ERR value is not an integer/);
        await kv.set('float', '1.5');
        await expect(kv.incr('float')).rejects.toThrow(/not an integer/);
        expect(await kv.get('word')).toBe('abc');
      });

      it('is atomic: 200 parallel increments give 200', async () => {
        const results = await Promise.all(Array.from({ length: 200 }, () => kv.incr('parallel')));
        expect(await kv.get('parallel')).toBe('200');
        expect(new Set(results).size).toBe(200);
      });
    });

    describe('pexpire / pttl', () => {
      it('pttl is -2 for a missing key, -1 without expiry, the remaining ms otherwise', async () => {
        expect(await kv.pttl('none')).toBe(-2);
        await kv.set('forever', 'v');
        expect(await kv.pttl('forever')).toBe(-1);
        await kv.set('soon', 'v', { px: 5_000 });
        const ttl = await kv.pttl('soon');
        expect(ttl).toBeGreaterThan(4_000);
        expect(ttl).toBeLessThanOrEqual(5_000);
      });

      it('pexpire sets a ttl on an existing key only', async () => {
        expect(await kv.pexpire('none', 1_000)).toBe(false);
        expect(await kv.pttl('none')).toBe(-2);
        await kv.set('k', 'v');
        expect(await kv.pexpire('k', TTL)).toBe(true);
        const ttl = await kv.pttl('k');
        expect(ttl).toBeGreaterThan(0);
        expect(ttl).toBeLessThanOrEqual(TTL);
        await advance(TTL_WAIT);
        expect(await kv.get('k')).toBeNull();
      });
    });

    describe('compare-and-set', () => {
      it('delIfEquals deletes only when the value matches', async () => {
        await kv.set('lease', 'owner-a');
        expect(await kv.delIfEquals('lease', 'owner-b')).toBe(false);
        expect(await kv.get('lease')).toBe('owner-a');
        expect(await kv.delIfEquals('lease', 'owner-a')).toBe(true);
        expect(await kv.get('lease')).toBeNull();
        expect(await kv.delIfEquals('lease', 'owner-a')).toBe(false);
      });

      it('pexpireIfEquals extends only when the value matches', async () => {
        const extended = 100 * TTL;
        await kv.set('lease', 'owner-a', { px: TTL });
        expect(await kv.pexpireIfEquals('lease', 'owner-b', extended)).toBe(false);
        expect(await kv.pttl('lease')).toBeLessThanOrEqual(TTL);
        expect(await kv.pexpireIfEquals('lease', 'owner-a', extended)).toBe(true);
        expect(await kv.pttl('lease')).toBeGreaterThan(extended / 2);
        expect(await kv.pexpireIfEquals('missing', 'owner-a', extended)).toBe(false);
        expect(await kv.pttl('missing')).toBe(-2);
      });

      it('setManyNx writes only the keys that do not exist, with the ttl, and says which', async () => {
        await kv.set('many:b', 'someone-else');
        expect(await kv.setManyNx(['many:a', 'many:b', 'many:c'], 'owner-a', 100 * TTL)).toEqual([true, false, true]);
        expect(await kv.get('many:a')).toBe('owner-a');
        expect(await kv.get('many:b')).toBe('someone-else');
        expect(await kv.pttl('many:c')).toBeGreaterThan(50 * TTL);
        expect(await kv.setManyNx(['many:a'], 'owner-b', 100 * TTL)).toEqual([false]);
        expect(await kv.setManyNx([], 'owner-a', TTL)).toEqual([]);
      });

      it('delManyIfEquals deletes only the keys holding the value', async () => {
        await kv.setManyNx(['many:a', 'many:c'], 'owner-a', 100 * TTL);
        await kv.set('many:b', 'owner-b');
        expect(await kv.delManyIfEquals(['many:a', 'many:b', 'many:c', 'many:missing'], 'owner-a')).toBe(2);
        expect(await kv.get('many:a')).toBeNull();
        expect(await kv.get('many:b')).toBe('owner-b');
        expect(await kv.delManyIfEquals([], 'owner-a')).toBe(0);
      });

      // As above: the short ttl only has to be over before the checks, never to outlast them.
      it('an expired value cannot be renewed or released', async () => {
        await kv.set('lease', 'owner-a', { px: 50 });
        await advance(100);
        expect(await kv.pexpireIfEquals('lease', 'owner-a', 10_000)).toBe(false);
        expect(await kv.delIfEquals('lease', 'owner-a')).toBe(false);
      });
    });

    describe('high-water mark', () => {
      it('a missing mark without a floor is unknown and stays missing; with a floor it is seeded', async () => {
        expect(await kv.raiseHighWater('hw', 5, 10_000)).toEqual({ outcome: 'unknown' });
        expect(await kv.get('hw')).toBeNull();
        expect(await kv.raiseHighWater('hw', 5, 10_000, null)).toEqual({ outcome: 'raised', previous: null });
        expect(await kv.get('hw')).toBe('5');
        expect(await kv.raiseHighWater('seeded', 3, 10_000, 7)).toEqual({ outcome: 'stale', current: 7 });
        expect(await kv.get('seeded')).toBe('7');
        expect(await kv.raiseHighWater('seeded', 8, 10_000)).toEqual({ outcome: 'raised', previous: 7 });
      });

      it('only a higher value raises it; equal and lower are stale and leave it', async () => {
        await kv.raiseHighWater('hw', 10, 10_000, null);
        expect(await kv.raiseHighWater('hw', 10, 10_000)).toEqual({ outcome: 'stale', current: 10 });
        expect(await kv.raiseHighWater('hw', -3, 10_000)).toEqual({ outcome: 'stale', current: 10 });
        expect(await kv.raiseHighWater('hw', 11, 10_000, 99)).toEqual({ outcome: 'raised', previous: 10 });
        expect(await kv.get('hw')).toBe('11');
        expect(await kv.pttl('hw')).toBeGreaterThan(5_000);
      });

      it('of concurrent raises to the same value exactly one wins', async () => {
        await kv.raiseHighWater('hw', 1, 10_000, null);
        const results = await Promise.all(Array.from({ length: 20 }, () => kv.raiseHighWater('hw', 2, 10_000)));
        expect(results.filter((r) => r.outcome === 'raised')).toHaveLength(1);
        expect(results.filter((r) => r.outcome === 'stale')).toHaveLength(19);
      });

      it('restore puts the previous value back only while the mark still holds the raised one', async () => {
        await kv.raiseHighWater('hw', 4, 10_000, null);
        await kv.raiseHighWater('hw', 6, 10_000);
        expect(await kv.restoreHighWater('hw', 5, 4)).toBe(false);
        expect(await kv.restoreHighWater('hw', 6, 4)).toBe(true);
        expect(await kv.get('hw')).toBe('4');
        expect(await kv.pttl('hw')).toBeGreaterThan(5_000);
        expect(await kv.restoreHighWater('hw', 4, null)).toBe(true);
        expect(await kv.get('hw')).toBeNull();
      });

      it('the mark expires after its ttl', async () => {
        await kv.raiseHighWater('hw', 4, TTL, null);
        await advance(TTL_WAIT);
        expect(await kv.raiseHighWater('hw', 1, 10_000)).toEqual({ outcome: 'unknown' });
      });
    });

    describe('lifecycle', () => {
      it('ping resolves while open', async () => {
        await expect(kv.ping()).resolves.toBeUndefined();
      });

      it('every call rejects with KvUnavailableError after close', async () => {
        const closing = await makeStore();
        await closing.close();
        await expect(closing.ping()).rejects.toBeInstanceOf(KvUnavailableError);
        await expect(closing.get('k')).rejects.toBeInstanceOf(KvUnavailableError);
        await expect(closing.set('k', 'v')).rejects.toBeInstanceOf(KvUnavailableError);
        await expect(closing.incr('k')).rejects.toBeInstanceOf(KvUnavailableError);
        await expect(closing.delIfEquals('k', 'v')).rejects.toBeInstanceOf(KvUnavailableError);
        await expect(closing.setManyNx(['k'], 'v', 1000)).rejects.toBeInstanceOf(KvUnavailableError);
        await expect(closing.delManyIfEquals(['k'], 'v')).rejects.toBeInstanceOf(KvUnavailableError);
        await expect(closing.close()).resolves.toBeUndefined();
      });
    });
  });
}
