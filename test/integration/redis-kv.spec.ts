import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeKeyValueStoreContract } from '../support/kv-contract.js';
import { KvUnavailableError } from '../../src/infra/kv/kv-store.js';
import { RedisKeyValueStore } from '../../src/infra/kv/redis-kv.js';
import { createLogger } from '../../src/observability/logger.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const RUN_PREFIX = `flock-test:${randomUUID()}:`;
const logger = createLogger('silent');
let storeCount = 0;
/** Set when the probe fails: every test then fails with it (a missing Redis is never a skip). */
let unreachable: Error | undefined;

/** Each store gets its own prefix under the run's, so tests never see each other's keys. */
async function makeStore(): Promise<RedisKeyValueStore> {
  if (unreachable) throw unreachable;
  const kv = new RedisKeyValueStore({ url: REDIS_URL, keyPrefix: `${RUN_PREFIX}${++storeCount}:`, logger });
  await kv.connect();
  return kv;
}

beforeAll(async () => {
  const probe = new RedisKeyValueStore({ url: REDIS_URL, keyPrefix: RUN_PREFIX, logger });
  try {
    await probe.connect();
    await probe.ping();
  } catch (err) {
    unreachable = new Error(`Redis not reachable at ${new URL(REDIS_URL).host}: run \`npm run services:up\``, { cause: err });
  } finally {
    await probe.close();
  }
});

afterAll(async () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${RUN_PREFIX}*`, 'COUNT', 500);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } catch {
    // Redis unreachable: every test has already failed with the probe error.
  } finally {
    redis.disconnect();
  }
});

it('Redis is reachable', () => {
  if (unreachable) throw unreachable;
});

describeKeyValueStoreContract('redis', makeStore, { ttlScale: 10 });

describe('RedisKeyValueStore', () => {
  it('applies the key prefix on the server, scripts included', async () => {
    const kv = await makeStore();
    const raw = new Redis(REDIS_URL);
    try {
      await kv.set('lease', 'me', { px: 10_000 });
      const prefixed = `${RUN_PREFIX}${storeCount}:lease`;
      expect(await raw.get(prefixed)).toBe('me');
      expect(await kv.pexpireIfEquals('lease', 'me', 20_000)).toBe(true);
      expect(await raw.pttl(prefixed)).toBeGreaterThan(10_000);
      expect(await kv.delIfEquals('lease', 'me')).toBe(true);
      expect(await raw.exists(prefixed)).toBe(0);
    } finally {
      raw.disconnect();
      await kv.close();
    }
  });

  it('pointed at a closed port, connect/ping/set reject with KvUnavailableError within 2 s', async () => {
    const started = Date.now();
    const kv = new RedisKeyValueStore({ url: 'redis://127.0.0.1:1', keyPrefix: RUN_PREFIX, logger });
    try {
      await expect(kv.connect()).rejects.toBeInstanceOf(KvUnavailableError);
      await expect(kv.ping()).rejects.toBeInstanceOf(KvUnavailableError);
      await expect(kv.set('k', 'v', { nx: true, px: 1_000 })).rejects.toBeInstanceOf(KvUnavailableError);
    } finally {
      await kv.close();
    }
    expect(Date.now() - started).toBeLessThan(2_000);
  });

  it('without connect(), a first call on a closed port still fails fast', async () => {
    const started = Date.now();
    const kv = new RedisKeyValueStore({ url: 'redis://127.0.0.1:1', keyPrefix: RUN_PREFIX, logger });
    try {
      await expect(kv.ping()).rejects.toBeInstanceOf(KvUnavailableError);
      await expect(kv.get('k')).rejects.toBeInstanceOf(KvUnavailableError);
    } finally {
      await kv.close();
    }
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});

describe('RedisKeyValueStore connect()', () => {
  it('after a first command already started the connection, connect() waits for it', async () => {
    if (unreachable) throw unreachable;
    const kv = new RedisKeyValueStore({ url: REDIS_URL, keyPrefix: `${RUN_PREFIX}late:`, logger });
    try {
      await kv.get('k').catch(() => undefined);
      await expect(kv.connect()).resolves.toBeUndefined();
      await expect(kv.set('k', 'v')).resolves.toBe(true);
    } finally {
      await kv.close();
    }
  });

  it('on a closed port, a connect() after a first command fails within the bound', async () => {
    const started = Date.now();
    const kv = new RedisKeyValueStore({ url: 'redis://127.0.0.1:1', keyPrefix: RUN_PREFIX, logger, connectTimeoutMs: 500 });
    try {
      await kv.get('k').catch(() => undefined);
      await expect(kv.connect()).rejects.toBeInstanceOf(KvUnavailableError);
    } finally {
      await kv.close();
    }
    expect(Date.now() - started).toBeLessThan(2_000);
  });
});
