import type { Db } from '../infra/db/db.js';

export type MatchKeyKind = 'admin' | 'overlay';

/**
 * The per-match HMAC keys provisioning hands out (implemented by security's KeyService, security/match-keys.ts).
 * A key's secret is never stored: it is derived from the master secret of its kind and the key id, so the same
 * key id always yields the same secret and a retried delivery never needs a second key.
 */
export interface MatchKeys {
  /**
   * Issues a key inside the caller's transaction (its record commits or rolls back with it); the first key id tried
   * carries `at`. Null when the master secret of that kind is not configured.
   */
  issue(db: Db, matchId: string, kind: MatchKeyKind, at: number): Promise<{ keyId: string; expiresAt: number } | null>;
  /**
   * Issues many keys inside the caller's transaction in as few statements as the store allows, answers in request
   * order. Null (and nothing issued) when the master secret of any requested kind is not configured.
   */
  issueMany(
    db: Db,
    requests: readonly { matchId: string; kind: MatchKeyKind; at: number }[],
  ): Promise<{ keyId: string; expiresAt: number }[] | null>;
  /** The key's secret, derived again; null when its master secret is not configured. */
  secretOf(keyId: string): string | null;
  /** Marks the keys revoked inside the caller's transaction (the durable record). */
  revokeIn(db: Db, keyIds: readonly string[], at: number): Promise<void>;
  /** Tells the shared cache (and the durable record, again) that the key is revoked; throws when it cannot. */
  revoke(keyId: string): Promise<void>;
}
