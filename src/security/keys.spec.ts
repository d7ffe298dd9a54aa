import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { PgKeyRecords } from './key.repository.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import {
  KeyLookupUnavailable,
  KeyService,
  KeyServiceError,
  deriveSecret,
  encodeSecret,
  formatKeyId,
  keyRecordKey,
  parseKeyId,
  type KeyServiceOptions,
} from './keys.js';
import { decodeSecret } from './signer.js';

const OVERLAY_MASTER = 'overlay-master-secret-0123456789abcdef';
const ADMIN_MASTER = 'admin-hook-secret-0123456789abcdefgh';
const HOUR = 60 * 60 * 1000;

function setup(overrides: Partial<KeyServiceOptions> = {}) {
  const clock = new ManualClock(Date.UTC(2026, 0, 1));
  const kv = new MemoryKeyValueStore(clock);
  const options: KeyServiceOptions = {
    kv,
    clock,
    overlayMasterSecret: OVERLAY_MASTER,
    adminHookSecret: ADMIN_MASTER,
    defaultTtlMs: 6 * HOUR,
    maxSkewMs: 60_000,
    ...overrides,
  };
  return { clock, kv, keys: new KeyService(options), options };
}

async function reasonOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'accepted';
  } catch (err) {
    if (err instanceof KeyServiceError) return err.reason;
    throw err;
  }
}

describe('key ids', () => {
  it('formats and parses', () => {
    const id = formatKeyId('overlay', 'm-123', 1767225600000);
    expect(id).toBe('ovl_m-123_1767225600000');
    expect(parseKeyId(id)).toMatchObject({ prefix: 'ovl', matchId: 'm-123', issuedAt: 1767225600000 });
    expect(formatKeyId('admin', 'A-z-9', 1767225600000)).toBe('adm_A-z-9_1767225600000');
  });

  it('refuses matchIds and times the grammar cannot carry', () => {
    expect(() => formatKeyId('overlay', 'm_1', 1767225600000)).toThrow(KeyServiceError);
    expect(() => formatKeyId('overlay', '', 1767225600000)).toThrow(KeyServiceError);
    expect(() => formatKeyId('overlay', 'x'.repeat(65), 1767225600000)).toThrow(KeyServiceError);
    expect(() => formatKeyId('overlay', 'm', 999_999_999_999)).toThrow(KeyServiceError);
  });

  it('derives secrets per key and per master', () => {
    const a = deriveSecret(OVERLAY_MASTER, 'ovl_m-1_1767225600000');
    expect(a).toHaveLength(32);
    expect(deriveSecret(OVERLAY_MASTER, 'ovl_m-1_1767225600001').equals(a)).toBe(false);
    expect(deriveSecret(ADMIN_MASTER, 'ovl_m-1_1767225600000').equals(a)).toBe(false);
    expect(decodeSecret(encodeSecret(a)).equals(a)).toBe(true);
  });
});

describe('KeyService', () => {
  it('issues a key: record without the secret, TTL a little past expiry', async () => {
    const { keys, kv, clock } = setup();
    const issued = await keys.issue({ matchId: 'm-123', kind: 'overlay' });
    expect(issued.keyId).toBe(`ovl_m-123_${clock.now()}`);
    expect(issued.expiresAt).toBe(clock.now() + 6 * HOUR);
    expect(decodeSecret(issued.secret).equals(deriveSecret(OVERLAY_MASTER, issued.keyId))).toBe(true);

    const raw = (await kv.get(keyRecordKey(issued.keyId))) as string;
    expect(JSON.parse(raw)).toEqual({
      v: 1,
      keyId: issued.keyId,
      matchId: 'm-123',
      kind: 'overlay',
      issuedAt: issued.issuedAt,
      expiresAt: issued.expiresAt,
      revoked: false,
    });
    expect(raw).not.toContain(issued.secret);
    expect(raw).not.toContain(OVERLAY_MASTER);
    expect(await kv.pttl(keyRecordKey(issued.keyId))).toBe(6 * HOUR + 60_000 + 60_000);
  });

  it('issues admin keys with the same default TTL, or the one given', async () => {
    const { keys } = setup();
    const admin = await keys.issue({ matchId: 'm-1', kind: 'admin' });
    expect(admin.keyId.startsWith('adm_m-1_')).toBe(true);
    expect(admin.expiresAt - admin.issuedAt).toBe(6 * HOUR);
    expect(decodeSecret(admin.secret).equals(deriveSecret(ADMIN_MASTER, admin.keyId))).toBe(true);
    const short = await keys.issue({ matchId: 'm-1', kind: 'admin', ttlMs: 1000 });
    expect(short.expiresAt - short.issuedAt).toBe(1000);
  });

  it('gives two keys issued in the same millisecond different ids', async () => {
    const { keys } = setup();
    const a = await keys.issue({ matchId: 'm-1', kind: 'overlay' });
    const b = await keys.issue({ matchId: 'm-1', kind: 'overlay' });
    expect(b.keyId).not.toBe(a.keyId);
    expect(b.issuedAt).toBe(a.issuedAt + 1);
  });

  it('refuses bad input', async () => {
    const { keys } = setup();
    expect(await reasonOf(keys.issue({ matchId: 'm 1', kind: 'overlay' }))).toBe('MATCH_ID_INVALID');
    expect(await reasonOf(keys.issue({ matchId: 'm', kind: 'overlay', ttlMs: 0 }))).toBe('TTL_INVALID');
    expect(await reasonOf(keys.issue({ matchId: 'm', kind: 'overlay', ttlMs: 1.5 }))).toBe('TTL_INVALID');
    expect(await reasonOf(keys.issue({ matchId: 'm', kind: 'overlay', ttlMs: 30 * 24 * HOUR }))).toBe('TTL_INVALID');
    const { keys: noAdmin } = setup({ adminHookSecret: undefined });
    expect(await reasonOf(noAdmin.issue({ matchId: 'm', kind: 'admin' }))).toBe('NO_MASTER_SECRET');
    expect(noAdmin.secretFor('adm_m_1767225600000')).toBeNull();
    expect(() => setup({ cacheTtlMs: 5001 })).toThrow(RangeError);
  });

  it('looks up records and revokes keys', async () => {
    const { keys, kv, clock } = setup();
    const issued = await keys.issue({ matchId: 'm-1', kind: 'overlay' });
    expect(await keys.lookup(issued.keyId)).toMatchObject({ keyId: issued.keyId, revoked: false });
    clock.advance(1000);
    const ttlBefore = await kv.pttl(keyRecordKey(issued.keyId));
    expect(await keys.revoke(issued.keyId)).toBe(true);
    expect(await keys.lookup(issued.keyId)).toMatchObject({ revoked: true, revokedAt: clock.now() });
    expect(await kv.pttl(keyRecordKey(issued.keyId))).toBe(ttlBefore);
    expect(await keys.revoke(issued.keyId)).toBe(true);
    expect(await keys.revoke('ovl_m-1_1767225600999')).toBe(false);
    expect(await keys.revoke('not a key id')).toBe(false);
  });

  it('makes a revocation on another instance effective within 5 s', async () => {
    const { keys: a, kv, clock, options } = setup();
    const b = new KeyService(options);
    const issued = await a.issue({ matchId: 'm-1', kind: 'overlay' });
    expect(await b.lookup(issued.keyId)).toMatchObject({ revoked: false });
    await a.revoke(issued.keyId);
    clock.advance(4_999);
    expect(await b.lookup(issued.keyId)).toMatchObject({ revoked: false }); // cached, within the allowed lag
    clock.advance(1);
    expect(await b.lookup(issued.keyId)).toMatchObject({ revoked: true });
    expect(kv).toBeDefined();
  });

  it('does not cache misses, so a key issued elsewhere works at once', async () => {
    const { keys: a, options, clock } = setup();
    const b = new KeyService(options);
    const keyId = `ovl_m-1_${clock.now()}`;
    expect(await b.lookup(keyId)).toBeNull();
    await a.issue({ matchId: 'm-1', kind: 'overlay' });
    expect(await b.lookup(keyId)).not.toBeNull();
  });

  it('keeps the cache bounded', async () => {
    const { keys, clock } = setup({ cacheMaxEntries: 3 });
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) {
      ids.push((await keys.issue({ matchId: `m-${i}`, kind: 'overlay' })).keyId);
      clock.advance(1);
    }
    for (const id of ids) expect(await keys.lookup(id)).not.toBeNull();
    expect((keys as unknown as { cache: Map<string, unknown> }).cache.size).toBeLessThanOrEqual(3);
  });

  it('treats a record that does not describe its key id, or is corrupt, as absent', async () => {
    const { keys, kv } = setup();
    const keyId = 'ovl_m-1_1767225600000';
    await kv.set(keyRecordKey(keyId), '{not json');
    expect(await keys.lookup(keyId)).toBeNull();
    await kv.set(
      keyRecordKey(keyId),
      JSON.stringify({ v: 1, keyId, matchId: 'm-2', kind: 'overlay', issuedAt: 1767225600000, expiresAt: 1767229200000, revoked: false }),
    );
    expect(await keys.lookup(keyId)).toBeNull();
    await kv.set(
      keyRecordKey(keyId),
      JSON.stringify({ v: 1, keyId, matchId: 'm-1', kind: 'admin', issuedAt: 1767225600000, expiresAt: 1767229200000, revoked: false }),
    );
    expect(await keys.lookup(keyId)).toBeNull();
  });

  it('propagates store outages, naming the key-value store (the verifier answers 503)', async () => {
    const { keys, kv } = setup();
    kv.simulateOutage(true);
    const failure = await keys.lookup('ovl_m-1_1767225600000').catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(KeyLookupUnavailable);
    expect(failure).toMatchObject({ dependency: 'redis', cause: { name: 'KvUnavailableError' } });
  });
});

describe('durable key records (PostgreSQL, Redis as cache)', () => {
  let database: DatabaseHandle;
  beforeAll(async () => {
    database = await openDatabase({ dataDir: 'memory://' });
    await migrateToLatest(database.db);
  }, 60_000); // PGlite's start is slow on a loaded machine
  afterAll(() => database.close());

  // Each test uses its own match ids: the database is shared by the tests of this block.
  const durable = () => setup({ records: new PgKeyRecords(database.db) });

  it('an issued key survives the loss of every cached record (Redis flushed)', async () => {
    const { keys, kv, options } = durable();
    const issued = await keys.issue({ matchId: 'd-1', kind: 'overlay' });
    expect(await kv.get(keyRecordKey(issued.keyId))).not.toBeNull();
    await kv.del(keyRecordKey(issued.keyId));
    const fresh = new KeyService(options); // another instance: nothing in process memory either
    expect(await fresh.lookup(issued.keyId)).toMatchObject({
      keyId: issued.keyId,
      matchId: 'd-1',
      kind: 'overlay',
      revoked: false,
      expiresAt: issued.expiresAt,
    });
    // The lookup filled the cache again, with the record's lifetime.
    expect(await kv.pttl(keyRecordKey(issued.keyId))).toBeGreaterThan(6 * HOUR);
  });

  it('a revocation is durable: after the cache is lost the key is still revoked', async () => {
    const { keys, kv, options, clock } = durable();
    const issued = await keys.issue({ matchId: 'd-2', kind: 'admin' });
    clock.advance(10);
    expect(await keys.revoke(issued.keyId)).toBe(true);
    expect(await keys.lookup(issued.keyId)).toMatchObject({ revoked: true, revokedAt: clock.now() });
    await kv.del(keyRecordKey(issued.keyId));
    expect(await new KeyService(options).lookup(issued.keyId)).toMatchObject({ revoked: true, revokedAt: clock.now() });
    clock.advance(10);
    expect(await keys.revoke(issued.keyId)).toBe(true); // the first revocation time stands
    expect(await new KeyService(options).lookup(issued.keyId)).toMatchObject({ revokedAt: clock.now() - 10 });
    expect(await keys.revoke('ovl_d-2_1767225600999')).toBe(false);
    expect(await keys.revoke('ovl_d-2\u0000_1767225600999')).toBe(false);
  });

  it('two instances issuing in the same millisecond get different key ids (the primary key decides)', async () => {
    const a = durable();
    const b = new KeyService(a.options);
    const [x, y] = await Promise.all([a.keys.issue({ matchId: 'd-3', kind: 'overlay' }), b.issue({ matchId: 'd-3', kind: 'overlay' })]);
    expect(x.keyId).not.toBe(y.keyId);
  });

  it('a record past its cache lifetime is gone, and pruning removes it a day later', async () => {
    const { keys, kv, options, clock } = durable();
    const issued = await keys.issue({ matchId: 'd-4', kind: 'overlay', ttlMs: 1000 });
    await kv.del(keyRecordKey(issued.keyId));
    clock.advance(1000 + 60_000 + 60_000);
    expect(await new KeyService(options).lookup(issued.keyId)).toBeNull();
    clock.advance(24 * HOUR);
    expect(await keys.pruneExpired()).toBeGreaterThanOrEqual(1);
    expect(await new PgKeyRecords(database.db).find(issued.keyId)).toBeNull();
  });

  it('a record that must come from PostgreSQL when PostgreSQL fails: the failure names the database, not the cache', async () => {
    const { keys, kv, options } = durable();
    const issued = await keys.issue({ matchId: 'd-6', kind: 'overlay' });
    await kv.del(keyRecordKey(issued.keyId));
    await sql`ALTER TABLE hmac_keys RENAME TO hmac_keys_away`.execute(database.db);
    try {
      const failure = await new KeyService(options).lookup(issued.keyId).catch((e: unknown) => e);
      expect(failure).toBeInstanceOf(KeyLookupUnavailable);
      expect(failure).toMatchObject({ dependency: 'database', message: 'key lookup failed: database unavailable' });
      expect((failure as Error).cause).toMatchObject({ code: '42P01' });
    } finally {
      await sql`ALTER TABLE hmac_keys_away RENAME TO hmac_keys`.execute(database.db);
    }
    expect(await new KeyService(options).lookup(issued.keyId)).toMatchObject({ keyId: issued.keyId });
  });

  it('issuing still succeeds with the cache down; verifying reads the durable record once it is back', async () => {
    const { keys, kv, options } = durable();
    kv.simulateOutage(true);
    const issued = await keys.issue({ matchId: 'd-5', kind: 'overlay' });
    kv.simulateOutage(false);
    expect(await kv.get(keyRecordKey(issued.keyId))).toBeNull();
    expect(await new KeyService(options).lookup(issued.keyId)).toMatchObject({ keyId: issued.keyId });
  });
});
