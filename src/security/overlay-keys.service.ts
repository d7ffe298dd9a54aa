import type { Kysely } from 'kysely';
import type { Database } from '../infra/db/schema.js';
import type { KeyService } from './keys.js';

/** One player's overlay key as the platform fetches it; the secret only while the key is valid. */
export interface OverlayKeyView {
  side: 'p1' | 'p2';
  playerId: string;
  keyId: string;
  /** Unpadded base64url; absent once the key is revoked or expired. */
  secret?: string;
  expiresAt: string | null;
  revoked: boolean;
}

export type OverlayKeysAnswer = { kind: 'unknown_match' } | { kind: 'keys'; issued: boolean; keys: OverlayKeyView[] };

/**
 * The per-player overlay keys of a match (issued when its server goes ready), for the platform's internal API only.
 * Their secrets are derived again on each call and never stored, logged or put into events.
 */
export class OverlayKeysService {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly keys: KeyService,
    private readonly now: () => number,
  ) {}

  async list(matchId: string): Promise<OverlayKeysAnswer> {
    const rows = await this.db
      .selectFrom('overlay_keys as o')
      .leftJoin('hmac_keys as k', 'k.key_id', 'o.key_id')
      .select(['o.side', 'o.player_id', 'o.key_id', 'k.expires_at', 'k.revoked_at'])
      .where('o.match_id', '=', matchId)
      .orderBy('o.side')
      .execute();
    if (rows.length === 0) {
      const known =
        (await this.db.selectFrom('matches').select('id').where('id', '=', matchId).executeTakeFirst()) ??
        (await this.db.selectFrom('provisions').select('match_id').where('match_id', '=', matchId).executeTakeFirst());
      return known ? { kind: 'keys', issued: false, keys: [] } : { kind: 'unknown_match' };
    }
    const now = this.now();
    return {
      kind: 'keys',
      issued: true,
      keys: rows.map((r) => {
        const expiresAt = r.expires_at === null ? null : Number(r.expires_at);
        const revoked = r.revoked_at !== null;
        const valid = !revoked && expiresAt !== null && expiresAt > now;
        const secret = valid ? this.keys.secretOf(r.key_id) : null;
        return {
          side: r.side,
          playerId: r.player_id,
          keyId: r.key_id,
          ...(secret ? { secret } : {}),
          expiresAt: expiresAt === null ? null : new Date(expiresAt).toISOString(),
          revoked,
        };
      }),
    };
  }
}
