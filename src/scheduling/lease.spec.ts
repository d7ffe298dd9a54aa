import { beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../infra/clock.js';
import { KvUnavailableError } from '../infra/kv/kv-store.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { Leases } from './lease.js';

describe('Leases', () => {
  let clock: ManualClock;
  let kv: MemoryKeyValueStore;
  let leases: Leases;

  beforeEach(() => {
    clock = new ManualClock(0);
    kv = new MemoryKeyValueStore(clock);
    leases = new Leases(kv);
  });

  it('gives a free lease to exactly one of several contenders', async () => {
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((owner) => leases.tryAcquire('sweep', owner, 1_000)));
    expect(results.filter(Boolean)).toHaveLength(1);
    const winner = ['a', 'b', 'c', 'd'][results.indexOf(true)];
    expect(await leases.holder('sweep')).toBe(winner);
  });

  it('is not re-entrant: the holder asking again gets false', async () => {
    expect(await leases.tryAcquire('sweep', 'a', 1_000)).toBe(true);
    expect(await leases.tryAcquire('sweep', 'a', 1_000)).toBe(false);
  });

  it('stores the lease under its prefix with the ttl', async () => {
    await new Leases(kv, 'sched:running:').tryAcquire('backup', 'a', 1_000);
    expect(await kv.get('sched:running:backup')).toBe('a');
    expect(await kv.pttl('sched:running:backup')).toBe(1_000);
  });

  it('expires when not renewed, and can then be taken by another owner', async () => {
    await leases.tryAcquire('sweep', 'a', 1_000);
    clock.advance(999);
    expect(await leases.tryAcquire('sweep', 'b', 1_000)).toBe(false);
    clock.advance(1);
    expect(await leases.tryAcquire('sweep', 'b', 1_000)).toBe(true);
    expect(await leases.holder('sweep')).toBe('b');
  });

  it('renew extends only the holder’s lease', async () => {
    await leases.tryAcquire('sweep', 'a', 1_000);
    clock.advance(800);
    expect(await leases.renew('sweep', 'b', 1_000)).toBe(false);
    expect(await leases.renew('sweep', 'a', 1_000)).toBe(true);
    clock.advance(800);
    expect(await leases.holder('sweep')).toBe('a');
    expect(await kv.pttl('lease:sweep')).toBe(200);
  });

  it('renew fails once the lease expired or was taken over', async () => {
    await leases.tryAcquire('sweep', 'a', 1_000);
    clock.advance(1_000);
    expect(await leases.renew('sweep', 'a', 1_000)).toBe(false);
    await leases.tryAcquire('sweep', 'b', 1_000);
    expect(await leases.renew('sweep', 'a', 1_000)).toBe(false);
    expect(await leases.holder('sweep')).toBe('b');
  });

  it('release drops only the holder’s lease', async () => {
    await leases.tryAcquire('sweep', 'a', 1_000);
    expect(await leases.release('sweep', 'b')).toBe(false);
    expect(await leases.holder('sweep')).toBe('a');
    expect(await leases.release('sweep', 'a')).toBe(true);
    expect(await leases.holder('sweep')).toBeNull();
    expect(await leases.release('sweep', 'a')).toBe(false);
  });

  it('a late release by a former holder does not drop the new holder’s lease', async () => {
    await leases.tryAcquire('sweep', 'a', 1_000);
    clock.advance(1_500);
    await leases.tryAcquire('sweep', 'b', 1_000);
    expect(await leases.release('sweep', 'a')).toBe(false);
    expect(await leases.holder('sweep')).toBe('b');
  });

  it('rejects a non-positive or fractional ttl', async () => {
    await expect(leases.tryAcquire('sweep', 'a', 0)).rejects.toBeInstanceOf(RangeError);
    await expect(leases.renew('sweep', 'a', 1.5)).rejects.toBeInstanceOf(RangeError);
  });

  it('lets KvUnavailableError through so callers can fail closed', async () => {
    kv.simulateOutage(true);
    await expect(leases.tryAcquire('sweep', 'a', 1_000)).rejects.toBeInstanceOf(KvUnavailableError);
  });
});
