import type { Db } from '../infra/db/db.js';
import type { MatchKeyKind, MatchKeys } from '../provisioning/match-keys.port.js';
import { PgKeyRecords } from './key.repository.js';
import type { KeyService } from './keys.js';

/** Provisioning's MatchKeys port on the KeyService: issuing and revoking inside the caller's transaction. */
export class KeyServiceMatchKeys implements MatchKeys {
  constructor(private readonly keys: KeyService) {}

  async issue(db: Db, matchId: string, kind: MatchKeyKind, at: number): Promise<{ keyId: string; expiresAt: number } | null> {
    if (!this.keys.canIssue(kind)) return null;
    const issued = await this.keys.issue({ matchId, kind }, { records: new PgKeyRecords(db), issuedAt: at });
    return { keyId: issued.keyId, expiresAt: issued.expiresAt };
  }

  async issueMany(
    db: Db,
    requests: readonly { matchId: string; kind: MatchKeyKind; at: number }[],
  ): Promise<{ keyId: string; expiresAt: number }[] | null> {
    if (requests.some((r) => !this.keys.canIssue(r.kind))) return null;
    const issued = await this.keys.issueMany(
      requests.map((r) => ({ matchId: r.matchId, kind: r.kind, issuedAt: r.at })),
      new PgKeyRecords(db),
    );
    return issued.map((k) => ({ keyId: k.keyId, expiresAt: k.expiresAt }));
  }

  secretOf(keyId: string): string | null {
    return this.keys.secretOf(keyId);
  }

  async revokeIn(db: Db, keyIds: readonly string[], at: number): Promise<void> {
    const records = new PgKeyRecords(db);
    for (const keyId of keyIds) await records.revoke(keyId, at);
    for (const keyId of keyIds) this.keys.invalidate(keyId);
  }

  async revoke(keyId: string): Promise<void> {
    await this.keys.revoke(keyId);
  }
}
