import { describe, expect, it } from 'vitest';
import { ManualClock } from '../clock.js';
import { describeKeyValueStoreContract } from '../../../test/support/kv-contract.js';
import { KvUnavailableError } from './kv-store.js';
import { MemoryKeyValueStore } from './memory-kv.js';

let clock = new ManualClock();

describeKeyValueStoreContract(
  'memory',
  () => {
    clock = new ManualClock();
    return new MemoryKeyValueStore(clock);
  },
  { advance: async (ms) => clock.advance(ms) },
);

describe('MemoryKeyValueStore', () => {
  it('measures expiry on the injected clock, not on wall time', async () => {
    const manual = new ManualClock(0);
    const kv = new MemoryKeyValueStore(manual);
    await kv.set('k', 'v', { px: 1 });
    await new Promise((r) => setTimeout(r, 20));
    expect(await kv.get('k')).toBe('v');
    expect(await kv.pttl('k')).toBe(1);
    manual.advance(1);
    expect(await kv.get('k')).toBeNull();
  });

  it('sweeps expired keys on later writes so memory does not grow without bound', async () => {
    const manual = new ManualClock(0);
    const kv = new MemoryKeyValueStore(manual);
    for (let i = 0; i < 1_000; i++) await kv.set(`short:${i}`, 'v', { px: 10 });
    manual.advance(2_000);
    await kv.set('trigger', 'v');
    expect(kv.size).toBe(1);
  });

  it('keeps memory bounded under a steady stream of expiring writes without time passing a sweep interval', async () => {
    const manual = new ManualClock(0);
    const kv = new MemoryKeyValueStore(manual);
    for (let i = 0; i < 10_000; i++) {
      await kv.set(`tick:${i}`, 'v', { px: 5 });
      if (i % 10 === 0) manual.advance(1);
    }
    expect(kv.size).toBeLessThan(300);
  });

  it('simulateOutage makes every call throw KvUnavailableError until switched off', async () => {
    const kv = new MemoryKeyValueStore(new ManualClock());
    await kv.set('k', 'v');
    kv.simulateOutage(true);
    await expect(kv.get('k')).rejects.toBeInstanceOf(KvUnavailableError);
    await expect(kv.set('k', 'w', { nx: true })).rejects.toBeInstanceOf(KvUnavailableError);
    await expect(kv.ping()).rejects.toBeInstanceOf(KvUnavailableError);
    kv.simulateOutage(false);
    expect(await kv.get('k')).toBe('v');
  });

  it('rejects a non-integer increment or ttl like Redis', async () => {
    const kv = new MemoryKeyValueStore(new ManualClock());
    await expect(kv.incr('n', 1.5)).rejects.toThrow(/not an integer/);
    await expect(kv.set('k', 'v', { px: 1.5 })).rejects.toThrow(/not an integer/);
    await kv.set('big', String(Number.MAX_SAFE_INTEGER));
    await expect(kv.incr('big')).rejects.toThrow(/overflow/);
  });

  it('a non-positive pexpire deletes the key, as in Redis', async () => {
    const kv = new MemoryKeyValueStore(new ManualClock());
    await kv.set('k', 'v');
    expect(await kv.pexpire('k', 0)).toBe(true);
    expect(await kv.pttl('k')).toBe(-2);
  });
});
