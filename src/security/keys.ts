/**
 * HMAC key ids, per-key secrets and the issuance records behind them (hmac-v1.md "Keys and secrets").
 *
 * A key's secret is never stored: it is derived on demand from the master secret of its kind and the key id.
 * The issuance record is what makes a key valid (issued, not revoked, inside its time window). It lives in
 * PostgreSQL (`hmac_keys`) and is cached in Redis at `hmac:secret:<keyId>` (the seed's key name), so a Redis
 * restart without persistence loses nothing: the next lookup reads the row and fills the cache again.
 */
import { createHmac, createSecretKey, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import type { Clock } from '../infra/clock.js';
import type { Dependency } from '../infra/faults/outage.js';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import { KEY_ID_PATTERN, parseKeyId, type KeyIdParts, type KeyPrefix } from './signer.js';

export { KEY_ID_PATTERN, parseKeyId, type KeyIdParts };

export type KeyKind = 'overlay' | 'admin';

const PREFIX_OF: Readonly<Record<KeyKind, KeyPrefix>> = { overlay: 'ovl', admin: 'adm' };
const KIND_OF: Readonly<Record<KeyPrefix, KeyKind>> = { ovl: 'overlay', adm: 'admin' };

export function prefixOfKind(kind: KeyKind): KeyPrefix {
  return PREFIX_OF[kind];
}

export function kindOfPrefix(prefix: KeyPrefix): KeyKind {
  return KIND_OF[prefix];
}

/** Label mixed into every derivation so a secret of this protocol is useless anywhere else. */
export const DERIVATION_LABEL = 'flock-hmac-v1|';

export const MATCH_ID_PATTERN = /^[A-Za-z0-9-]{1,64}$/;

/** Redis key of a key's issuance record. */
export function keyRecordKey(keyId: string): string {
  return `hmac:secret:${keyId}`;
}

/** `<ovl|adm>_<matchId>_<issuedAt>`; throws on a matchId or time the grammar cannot carry. */
export function formatKeyId(kind: KeyKind, matchId: string, issuedAt: number): string {
  if (!MATCH_ID_PATTERN.test(matchId)) throw new KeyServiceError('MATCH_ID_INVALID', 'matchId must match ^[A-Za-z0-9-]{1,64}$');
  const keyId = `${PREFIX_OF[kind]}_${matchId}_${issuedAt}`;
  if (!KEY_ID_PATTERN.test(keyId)) throw new KeyServiceError('CLOCK_INVALID', 'issuedAt must be 13 digits of milliseconds');
  return keyId;
}

/** `HMAC-SHA256(master, "flock-hmac-v1|" + keyId)`: the key's 32-byte secret. */
export function deriveSecret(master: string | Uint8Array | KeyObject, keyId: string): Buffer {
  const key = typeof master === 'string' ? Buffer.from(master, 'utf8') : master;
  return createHmac('sha256', key)
    .update(DERIVATION_LABEL + keyId, 'utf8')
    .digest();
}

/** A secret as handed to callers: unpadded base64url. */
export function encodeSecret(secret: Uint8Array): string {
  return Buffer.from(secret).toString('base64url');
}

/** What Redis holds for a key (never the secret). */
export interface KeyRecord {
  readonly v: 1;
  readonly keyId: string;
  readonly matchId: string;
  readonly kind: KeyKind;
  readonly issuedAt: number;
  readonly expiresAt: number;
  readonly revoked: boolean;
  readonly revokedAt?: number;
}

const keyRecordSchema = z.object({
  v: z.literal(1),
  keyId: z.string(),
  matchId: z.string(),
  kind: z.enum(['overlay', 'admin']),
  issuedAt: z.number().int(),
  expiresAt: z.number().int(),
  revoked: z.boolean(),
  revokedAt: z.number().int().optional(),
});

/** Where issued key records live durably (PostgreSQL); the key-value store only caches them. */
export interface KeyRecordStore {
  /** Inserts a new record; false when the key id is already taken. */
  insert(record: KeyRecord): Promise<boolean>;
  find(keyId: string): Promise<KeyRecord | null>;
  /** Marks the key revoked (the first revocation time stands); the updated record, or null when there is none. */
  revoke(keyId: string, at: number): Promise<KeyRecord | null>;
  /** Deletes records whose key expired before `before`; returns how many. */
  pruneExpired(before: number): Promise<number>;
  /** Inserts many new records in one statement; the key ids that were free (the others are left alone). */
  insertMany?(records: readonly KeyRecord[]): Promise<Set<string>>;
}

/** A freshly issued key: the only time its secret leaves the service. */
export interface IssuedKey {
  readonly keyId: string;
  /** Unpadded base64url of the 32-byte secret. */
  readonly secret: string;
  readonly matchId: string;
  readonly kind: KeyKind;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

export type KeyServiceReason = 'MATCH_ID_INVALID' | 'TTL_INVALID' | 'NO_MASTER_SECRET' | 'CLOCK_INVALID' | 'KEY_ID_TAKEN';

export class KeyServiceError extends Error {
  constructor(
    readonly reason: KeyServiceReason,
    message: string,
  ) {
    super(message);
    this.name = 'KeyServiceError';
  }
}

/**
 * A key lookup that could not be answered, naming the dependency that failed: the cache in the key-value store
 * (`redis`) or the durable record in PostgreSQL (`database`). The verifier fails closed on it (503) and reports
 * that dependency, so a database outage is never logged or counted as a Redis one. `cause` is the original error.
 */
export class KeyLookupUnavailable extends Error {
  constructor(
    readonly dependency: Dependency,
    options: { cause: unknown },
  ) {
    super(`key lookup failed: ${dependency === 'redis' ? 'key-value store' : 'database'} unavailable`, options);
    this.name = 'KeyLookupUnavailable';
  }
}

/** Issuing inside a caller's transaction: its record store, and the issue time (the first key id tried). */
export interface IssueWithin {
  readonly records?: KeyRecordStore;
  readonly issuedAt?: number;
}

/** The lookups the verifier needs; KeyService is the implementation. */
export interface KeyDirectory {
  /**
   * The key's issuance record (cached at most `cacheTtlMs`), or null when it was never issued or has gone.
   * @throws KeyLookupUnavailable when the cache or the durable record cannot be read.
   */
  lookup(keyId: string): Promise<KeyRecord | null>;
  /**
   * The key's 32-byte secret as a KeyObject (HMAC with a KeyObject skips Node's per-call key preparation), or null
   * when the master secret of its kind is not configured.
   */
  secretFor(keyId: string): KeyObject | null;
}

export interface KeyServiceOptions {
  /** Cache of the records (and, without `records`, their only home). */
  kv: KeyValueStore;
  /**
   * The durable records (PostgreSQL). The composition root always passes it; without it records live only in the
   * key-value store, which unit tests of the verifier and the benchmarks use.
   */
  records?: KeyRecordStore;
  clock: Clock;
  /** OVERLAY_MASTER_SECRET; overlay keys cannot be issued or verified without it. */
  overlayMasterSecret: string | undefined;
  /** ADMIN_HOOK_SECRET; admin keys cannot be issued or verified without it. */
  adminHookSecret: string | undefined;
  /** OVERLAY_KEY_TTL_MS: default lifetime of a key of either kind. */
  defaultTtlMs: number;
  /** MAX_SKEW_MS: records outlive their key by this (plus a minute) so a request signed at expiry still verifies. */
  maxSkewMs: number;
  /** How long a looked-up record may be reused in this process; at most 5000 (revocation lag). */
  cacheTtlMs?: number;
  /** Most records cached at once (oldest dropped first). */
  cacheMaxEntries?: number;
}

/** The longest a revocation may take to reach every instance (hmac-v1.md). */
export const MAX_REVOCATION_LAG_MS = 5_000;
/** Longest lifetime a key may be given (7 days): keys are per match. */
export const MAX_KEY_TTL_MS = 7 * 24 * 60 * 60 * 1000;
const RECORD_GRACE_MS = 60_000;
const ISSUE_ATTEMPTS = 5;

interface CacheEntry {
  readonly record: KeyRecord;
  readonly until: number;
  /** The derived secret, kept as long as the record (process memory only, as hmac-v1 allows). */
  secret?: KeyObject;
}

/**
 * Issues, revokes and looks up HMAC keys. Records live in the key-value store (shared by every instance); this
 * process keeps found records for at most 5 s, so a revocation is honoured everywhere within 5 s. Misses are not
 * cached (a key issued on another instance works at once, and random key ids cannot fill memory). A derived
 * secret lives beside its cached record, as a KeyObject: Node prepares a Buffer key again on every createHmac.
 */
export class KeyService implements KeyDirectory {
  private readonly cache = new Map<string, CacheEntry>();
  private readonly masterKeys = new Map<KeyKind, KeyObject>();
  private readonly cacheTtlMs: number;
  private readonly cacheMaxEntries: number;

  constructor(private readonly options: KeyServiceOptions) {
    this.cacheTtlMs = options.cacheTtlMs ?? MAX_REVOCATION_LAG_MS;
    if (!(this.cacheTtlMs >= 0 && this.cacheTtlMs <= MAX_REVOCATION_LAG_MS)) {
      throw new RangeError(`cacheTtlMs must be between 0 and ${MAX_REVOCATION_LAG_MS}`);
    }
    this.cacheMaxEntries = options.cacheMaxEntries ?? 10_000;
  }

  /** Issues a new key for a match. Rotation is issuing again: old keys stay valid until their expiry. */
  async issue(request: { matchId: string; kind: KeyKind; ttlMs?: number }, within?: IssueWithin): Promise<IssuedKey> {
    const { kv, clock } = this.options;
    const records = within?.records ?? this.options.records;
    const ttlMs = request.ttlMs ?? this.options.defaultTtlMs;
    if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_KEY_TTL_MS) {
      throw new KeyServiceError('TTL_INVALID', `ttlMs must be an integer between 1 and ${MAX_KEY_TTL_MS}`);
    }
    const master = this.masterFor(request.kind);
    if (master === undefined) {
      throw new KeyServiceError('NO_MASTER_SECRET', `no master secret configured for ${request.kind} keys`);
    }
    let issuedAt = within?.issuedAt ?? clock.now();
    // The key id carries issuedAt; two issues for one match in the same millisecond take the next one.
    for (let attempt = 0; attempt < ISSUE_ATTEMPTS; attempt++, issuedAt++) {
      const keyId = formatKeyId(request.kind, request.matchId, issuedAt);
      const record: KeyRecord = {
        v: 1,
        keyId,
        matchId: request.matchId,
        kind: request.kind,
        issuedAt,
        expiresAt: issuedAt + ttlMs,
        revoked: false,
      };
      if (records) {
        if (!(await records.insert(record))) continue;
        // Inside the caller's transaction the record may still roll back: the first lookup fills the cache.
        if (!within?.records) await this.cacheQuietly(record);
      } else if (!(await kv.set(keyRecordKey(keyId), JSON.stringify(record), { nx: true, px: this.recordTtl(record.expiresAt) }))) {
        continue;
      }
      return {
        keyId,
        secret: encodeSecret(deriveSecret(master, keyId)),
        matchId: record.matchId,
        kind: record.kind,
        issuedAt,
        expiresAt: record.expiresAt,
      };
    }
    throw new KeyServiceError('KEY_ID_TAKEN', 'could not find a free key id; try again');
  }

  /**
   * Issues one key per request into a durable record store, inside the caller's transaction (records roll back with
   * it): one statement for all when the store can insert many, then `issue` for any key id that was taken (it tries
   * the next millisecond, as `issue` does). The answers come in the order of the requests.
   */
  async issueMany(
    requests: readonly { matchId: string; kind: KeyKind; issuedAt: number }[],
    records: KeyRecordStore,
  ): Promise<IssuedKey[]> {
    if (!records.insertMany) {
      const one: IssuedKey[] = [];
      for (const r of requests) one.push(await this.issue({ matchId: r.matchId, kind: r.kind }, { records, issuedAt: r.issuedAt }));
      return one;
    }
    const ttlMs = this.options.defaultTtlMs;
    const planned = requests.map((r) => {
      const master = this.masterFor(r.kind);
      if (master === undefined) throw new KeyServiceError('NO_MASTER_SECRET', `no master secret configured for ${r.kind} keys`);
      const keyId = formatKeyId(r.kind, r.matchId, r.issuedAt);
      const record: KeyRecord = {
        v: 1,
        keyId,
        matchId: r.matchId,
        kind: r.kind,
        issuedAt: r.issuedAt,
        expiresAt: r.issuedAt + ttlMs,
        revoked: false,
      };
      return { record, master };
    });
    const free = await records.insertMany(planned.map((p) => p.record));
    const issued: IssuedKey[] = [];
    for (const { record, master } of planned) {
      if (free.has(record.keyId)) {
        const { keyId, matchId, kind, issuedAt, expiresAt } = record;
        issued.push({ keyId, secret: encodeSecret(deriveSecret(master, keyId)), matchId, kind, issuedAt, expiresAt });
      } else {
        issued.push(await this.issue({ matchId: record.matchId, kind: record.kind }, { records, issuedAt: record.issuedAt + 1 }));
      }
    }
    return issued;
  }

  /**
   * Marks a key revoked (the record stays until its own expiry, so the key id is never reissued).
   * @returns false when no such key exists (never issued, or already gone).
   */
  async revoke(keyId: string): Promise<boolean> {
    const { kv, clock, records } = this.options;
    this.cache.delete(keyId);
    if (records) {
      if (!parseKeyId(keyId)) return false;
      const revoked = await records.revoke(keyId, clock.now());
      if (!revoked) return false;
      // The cache must learn it too (a failure here throws: the caller retries, or every instance keeps accepting).
      await kv.set(keyRecordKey(keyId), JSON.stringify(revoked), { px: this.recordTtl(revoked.expiresAt) });
      this.cache.delete(keyId);
      return true;
    }
    const record = await this.fetch(keyId);
    if (!record) return false;
    if (record.revoked) return true;
    const ttl = await kv.pttl(keyRecordKey(keyId));
    if (ttl === -2) return false;
    const revoked: KeyRecord = { ...record, revoked: true, revokedAt: clock.now() };
    await kv.set(keyRecordKey(keyId), JSON.stringify(revoked), ttl > 0 ? { px: ttl } : {});
    this.cache.delete(keyId);
    return true;
  }

  /**
   * The secret of a key id as handed to its holder (unpadded base64url), derived again from the master secret of
   * its kind; null for a malformed key id or an unconfigured master. Says nothing about the key being valid.
   */
  secretOf(keyId: string): string | null {
    const parts = parseKeyId(keyId);
    if (!parts) return null;
    const master = this.masterFor(kindOfPrefix(parts.prefix));
    return master === undefined ? null : encodeSecret(deriveSecret(master, keyId));
  }

  /** Whether keys of this kind can be issued (their master secret is configured). */
  canIssue(kind: KeyKind): boolean {
    return this.masterFor(kind) !== undefined;
  }

  async lookup(keyId: string): Promise<KeyRecord | null> {
    const now = this.options.clock.now();
    const hit = this.cache.get(keyId);
    if (hit && hit.until > now) return hit.record;
    if (hit) this.cache.delete(keyId);
    const record = await this.fetch(keyId);
    if (record && this.cacheTtlMs > 0) {
      if (this.cache.size >= this.cacheMaxEntries) this.evict(now);
      this.cache.set(keyId, { record, until: now + this.cacheTtlMs });
    }
    return record;
  }

  secretFor(keyId: string): KeyObject | null {
    const entry = this.cache.get(keyId);
    if (entry?.secret) return entry.secret;
    const parts = parseKeyId(keyId);
    if (!parts) return null;
    const master = this.masterKeyFor(kindOfPrefix(parts.prefix));
    if (master === undefined) return null;
    const secret = createSecretKey(deriveSecret(master, keyId));
    if (entry) entry.secret = secret;
    return secret;
  }

  private masterKeyFor(kind: KeyKind): KeyObject | undefined {
    const master = this.masterFor(kind);
    if (master === undefined) return undefined;
    const cached = this.masterKeys.get(kind);
    if (cached) return cached;
    const key = createSecretKey(Buffer.from(master, 'utf8'));
    this.masterKeys.set(kind, key);
    return key;
  }

  /** Drops a cached record (the revoking instance sees its own revocation at once). */
  invalidate(keyId: string): void {
    this.cache.delete(keyId);
  }

  private masterFor(kind: KeyKind): string | undefined {
    return kind === 'overlay' ? this.options.overlayMasterSecret : this.options.adminHookSecret;
  }

  private recordTtl(expiresAt: number): number {
    return Math.max(1, expiresAt - this.options.clock.now() + this.options.maxSkewMs + RECORD_GRACE_MS);
  }

  /** Deletes durable records of keys that expired more than a day ago; returns how many (0 without `records`). */
  async pruneExpired(): Promise<number> {
    return (await this.options.records?.pruneExpired(this.options.clock.now() - 24 * 60 * 60 * 1000)) ?? 0;
  }

  /** Fills the cache; a failure is left to the next lookup, which reads the durable record again. */
  private async cacheQuietly(record: KeyRecord): Promise<void> {
    try {
      await this.options.kv.set(keyRecordKey(record.keyId), JSON.stringify(record), { px: this.recordTtl(record.expiresAt) });
    } catch {
      // The record is durable; the cache is only a cache.
    }
  }

  /** The cached record, else the durable one (which then fills the cache); null when there is none or it is gone. */
  private async fetch(keyId: string): Promise<KeyRecord | null> {
    const parts = parseKeyId(keyId);
    if (!parts) return null;
    let cached: KeyRecord | null | undefined;
    try {
      cached = await this.fetchCached(keyId, parts);
    } catch (err) {
      throw new KeyLookupUnavailable('redis', { cause: err });
    }
    if (cached !== undefined || !this.options.records) return cached ?? null;
    let record: KeyRecord | null;
    try {
      record = await this.options.records.find(keyId);
    } catch (err) {
      throw new KeyLookupUnavailable('database', { cause: err });
    }
    // Past the point where the cache entry would have expired, the key is as gone as in the cache.
    if (!record || this.recordTtl(record.expiresAt) <= 1) return null;
    await this.cacheQuietly(record);
    return record;
  }

  /** Reads and validates a cached record: undefined when there is none, null when it does not describe this key id. */
  private async fetchCached(keyId: string, parts: KeyIdParts): Promise<KeyRecord | null | undefined> {
    const raw = await this.options.kv.get(keyRecordKey(keyId));
    if (raw === null) return undefined;
    let data: unknown;
    try {
      data = JSON.parse(raw);
    } catch {
      return null;
    }
    const parsed = keyRecordSchema.safeParse(data);
    if (!parsed.success) return null;
    const record = parsed.data;
    const consistent =
      record.keyId === keyId &&
      record.matchId === parts.matchId &&
      record.issuedAt === parts.issuedAt &&
      record.kind === kindOfPrefix(parts.prefix);
    return consistent ? Object.freeze(record as KeyRecord) : null;
  }

  private evict(now: number): void {
    for (const [id, entry] of this.cache) {
      if (entry.until <= now) this.cache.delete(id);
    }
    // Still full: drop the oldest entries (Map keeps insertion order).
    for (const id of this.cache.keys()) {
      if (this.cache.size < this.cacheMaxEntries) break;
      this.cache.delete(id);
    }
  }
}
