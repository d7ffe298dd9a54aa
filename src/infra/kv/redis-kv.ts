import { Redis, ReplyError } from 'ioredis';
import type { Logger } from '../../observability/logger.js';
import { KvUnavailableError, type HighWaterResult, type KeyValueStore, type SetOptions } from './kv-store.js';

export interface RedisKeyValueStoreOptions {
  url: string;
  /** Prepended to every key by ioredis (e.g. `flock:`); empty for none. */
  keyPrefix?: string;
  logger: Logger;
  /** Bound on the TCP connect (and on `connect()`), default 2 s. */
  connectTimeoutMs?: number;
  /** Bound on any single command once connected, so a hung server surfaces as unavailable. Default 2 s. */
  commandTimeoutMs?: number;
}

/** Compare-and-delete: only the holder of a lease may release it. */
const DEL_IF_EQUALS = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end`;
/** Compare-and-expire: only the holder of a lease may renew it. */
const PEXPIRE_IF_EQUALS = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end`;
/**
 * High-water mark (KeyValueStore.raiseHighWater). ARGV: value, ttl ms, floor ('?' none given, '' null, else an
 * integer). Reply: {'raised', previous or ''} | {'stale', current} | {'unknown'}. INCR's integer check on the held value.
 */
const RAISE_HIGH_WATER = `
local held = redis.call('GET', KEYS[1])
local current
if held then
  current = tonumber(held)
  if current == nil or string.find(held, '^-?%d+$') == nil then return redis.error_reply('ERR value is not an integer or out of range') end
elseif ARGV[3] == '?' then
  return {'unknown'}
elseif ARGV[3] ~= '' then
  current = tonumber(ARGV[3])
end
local value = tonumber(ARGV[1])
if current ~= nil and value <= current then
  if not held then redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[2]) end
  return {'stale', tostring(held or ARGV[3])}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {'raised', held or ARGV[3]}`;
/** Undo of a raise: ARGV raisedTo, previous ('' deletes). */
const RESTORE_HIGH_WATER = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL') end
return 1`;

/** SET NX PX for every key: 1 per key written, 0 per key that existed. */
const SET_MANY_NX = `local out = {}
for i, k in ipairs(KEYS) do
  if redis.call('SET', k, ARGV[1], 'PX', ARGV[2], 'NX') then out[i] = 1 else out[i] = 0 end
end
return out`;
/** Compare-and-delete for every key; returns how many were deleted. */
const DEL_MANY_IF_EQUALS = `local n = 0
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then n = n + redis.call('DEL', k) end
end
return n`;
/** Keys per script call: bounded so one call never holds the server for long. */
const MANY_CHUNK = 500;

interface Scripts {
  flockDelIfEquals(key: string, expected: string): Promise<number>;
  flockPexpireIfEquals(key: string, expected: string, ms: number): Promise<number>;
  /** Variadic: (numKeys, ...keys, value, px). */
  flockSetManyNx(...args: (string | number)[]): Promise<number[]>;
  /** Variadic: (numKeys, ...keys, expected). */
  flockDelManyIfEquals(...args: (string | number)[]): Promise<number>;
  flockRaiseHighWater(key: string, value: string, ms: number, floor: string): Promise<string[]>;
  flockRestoreHighWater(key: string, raisedTo: string, previous: string): Promise<number>;
}

/** Replies that mean "the server cannot serve you now" rather than "this command is wrong". */
const UNAVAILABLE_REPLY = /^(LOADING|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|READONLY|BUSY)\b/;

/**
 * The key-value port over ioredis. Fails fast instead of queueing: no offline queue and one retry per request,
 * so a Redis outage surfaces as KvUnavailableError within the connect/command timeout rather than hanging.
 * Genuine command errors (e.g. INCR on a non-integer) are passed through unchanged.
 */
export class RedisKeyValueStore implements KeyValueStore {
  private readonly redis: Redis;
  private readonly scripts: Scripts;
  private readonly logger: Logger;
  private readonly connectTimeoutMs: number;
  private closed = false;
  /** Logs the first error of an outage and the recovery, not every reconnect attempt. */
  private failing = false;

  constructor(options: RedisKeyValueStoreOptions) {
    this.logger = options.logger.child({ component: 'redis-kv' });
    const connectTimeout = options.connectTimeoutMs ?? 2_000;
    this.connectTimeoutMs = connectTimeout;
    this.redis = new Redis(options.url, {
      keyPrefix: options.keyPrefix ?? '',
      lazyConnect: true,
      connectTimeout,
      commandTimeout: options.commandTimeoutMs ?? 2_000,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: (attempt) => Math.min(attempt * 100, 2_000),
    });
    this.redis.defineCommand('flockDelIfEquals', { numberOfKeys: 1, lua: DEL_IF_EQUALS });
    this.redis.defineCommand('flockPexpireIfEquals', { numberOfKeys: 1, lua: PEXPIRE_IF_EQUALS });
    // No fixed key count: the first argument says how many keys follow (ioredis still prefixes them).
    this.redis.defineCommand('flockSetManyNx', { lua: SET_MANY_NX });
    this.redis.defineCommand('flockDelManyIfEquals', { lua: DEL_MANY_IF_EQUALS });
    this.redis.defineCommand('flockRaiseHighWater', { numberOfKeys: 1, lua: RAISE_HIGH_WATER });
    this.redis.defineCommand('flockRestoreHighWater', { numberOfKeys: 1, lua: RESTORE_HIGH_WATER });
    this.scripts = this.redis as unknown as Scripts;
    this.redis.on('error', (err: Error) => {
      if (this.failing || this.closed) return;
      this.failing = true;
      this.logger.warn({ err, reason: 'KV_UNAVAILABLE' }, 'redis connection error; retrying in the background');
    });
    this.redis.on('ready', () => {
      if (this.failing) this.logger.info('redis connection restored');
      this.failing = false;
    });
  }

  /** Opens the connection; rejects with KvUnavailableError when Redis cannot be reached within the connect timeout. */
  async connect(): Promise<void> {
    this.assertOpen();
    if (this.redis.status === 'ready') return;
    try {
      if (this.redis.status === 'wait') await this.redis.connect();
      else await this.readyWithin(this.connectTimeoutMs);
    } catch (err) {
      throw unavailable(err, 'connect');
    }
  }

  async get(key: string): Promise<string | null> {
    return this.command('get', () => this.redis.get(key));
  }

  async set(key: string, value: string, options: SetOptions = {}): Promise<boolean> {
    const { nx, px } = options;
    const reply = await this.command('set', () => {
      if (px !== undefined && nx) return this.redis.set(key, value, 'PX', px, 'NX');
      if (px !== undefined) return this.redis.set(key, value, 'PX', px);
      if (nx) return this.redis.set(key, value, 'NX');
      return this.redis.set(key, value);
    });
    return reply === 'OK';
  }

  async del(...keys: string[]): Promise<number> {
    if (keys.length === 0) return this.command('del', async () => 0);
    return this.command('del', () => this.redis.del(...keys));
  }

  async incr(key: string, by = 1): Promise<number> {
    return this.command('incr', () => this.redis.incrby(key, by));
  }

  async pexpire(key: string, ms: number): Promise<boolean> {
    return (await this.command('pexpire', () => this.redis.pexpire(key, ms))) === 1;
  }

  async pttl(key: string): Promise<number> {
    return this.command('pttl', () => this.redis.pttl(key));
  }

  async delIfEquals(key: string, expected: string): Promise<boolean> {
    return (await this.command('delIfEquals', () => this.scripts.flockDelIfEquals(key, expected))) === 1;
  }

  async setManyNx(keys: readonly string[], value: string, px: number): Promise<boolean[]> {
    this.assertOpen();
    const out: boolean[] = [];
    for (let i = 0; i < keys.length; i += MANY_CHUNK) {
      const chunk = keys.slice(i, i + MANY_CHUNK);
      const reply = await this.command('setManyNx', () => this.scripts.flockSetManyNx(chunk.length, ...chunk, value, Math.round(px)));
      for (const r of reply) out.push(r === 1);
    }
    return out;
  }

  async delManyIfEquals(keys: readonly string[], expected: string): Promise<number> {
    this.assertOpen();
    let deleted = 0;
    for (let i = 0; i < keys.length; i += MANY_CHUNK) {
      const chunk = keys.slice(i, i + MANY_CHUNK);
      deleted += await this.command('delManyIfEquals', () => this.scripts.flockDelManyIfEquals(chunk.length, ...chunk, expected));
    }
    return deleted;
  }

  async pexpireIfEquals(key: string, expected: string, ms: number): Promise<boolean> {
    return (await this.command('pexpireIfEquals', () => this.scripts.flockPexpireIfEquals(key, expected, ms))) === 1;
  }

  async raiseHighWater(key: string, value: number, ttlMs: number, floor?: number | null): Promise<HighWaterResult> {
    if (!Number.isSafeInteger(value) || (floor !== undefined && floor !== null && !Number.isSafeInteger(floor))) {
      throw new Error('ERR value is not an integer or out of range');
    }
    const floorArg = floor === undefined ? '?' : floor === null ? '' : String(floor);
    const reply = await this.command('raiseHighWater', () => this.scripts.flockRaiseHighWater(key, String(value), ttlMs, floorArg));
    if (reply[0] === 'unknown') return { outcome: 'unknown' };
    if (reply[0] === 'stale') return { outcome: 'stale', current: Number(reply[1]) };
    return { outcome: 'raised', previous: reply[1] === '' || reply[1] === undefined ? null : Number(reply[1]) };
  }

  async restoreHighWater(key: string, raisedTo: number, previous: number | null): Promise<boolean> {
    const reply = await this.command('restoreHighWater', () =>
      this.scripts.flockRestoreHighWater(key, String(raisedTo), previous === null ? '' : String(previous)),
    );
    return reply === 1;
  }

  async ping(): Promise<void> {
    await this.command('ping', () => this.redis.ping());
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.redis.status === 'ready') {
      // QUIT lets in-flight replies arrive; the bound keeps shutdown from waiting on a dying server.
      await Promise.race([this.redis.quit().catch(() => undefined), new Promise((r) => setTimeout(r, 1_000).unref())]);
    }
    this.redis.disconnect();
  }

  /** Already connecting or reconnecting (a first command started it): wait for ready, bounded. */
  private readyWithin(ms: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const settle = (err?: Error) => {
        clearTimeout(timer);
        this.redis.off('ready', onReady);
        this.redis.off('end', onEnd);
        if (err) reject(err);
        else resolve();
      };
      const onReady = () => settle();
      const onEnd = () => settle(new Error('connection ended'));
      const timer = setTimeout(() => settle(new Error(`not ready within ${ms} ms`)), ms);
      this.redis.once('ready', onReady);
      this.redis.once('end', onEnd);
    });
  }

  private assertOpen(): void {
    if (this.closed) throw new KvUnavailableError('redis key-value store is closed');
  }

  private async command<T>(name: string, run: () => Promise<T>): Promise<T> {
    this.assertOpen();
    try {
      return await run();
    } catch (err) {
      if (isCommandError(err)) throw err;
      throw unavailable(err, name);
    }
  }
}

/** A reply error is Redis answering (the command itself is wrong); anything else is the connection failing. */
function isCommandError(err: unknown): boolean {
  return err instanceof ReplyError && !UNAVAILABLE_REPLY.test((err as Error).message);
}

function unavailable(err: unknown, operation: string): KvUnavailableError {
  if (err instanceof KvUnavailableError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new KvUnavailableError(`redis unavailable during ${operation}: ${message}`, { cause: err });
}
