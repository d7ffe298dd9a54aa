import { type Kysely, sql } from 'kysely';
import type { Database } from '../infra/db/schema.js';
import type { KeyRecord, KeyRecordStore } from './keys.js';

type Row = Awaited<ReturnType<PgKeyRecords['select']>>;

/** The hmac_keys table. */
export class PgKeyRecords implements KeyRecordStore {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(record: KeyRecord): Promise<boolean> {
    return (await this.insertMany([record])).has(record.keyId);
  }

  async insertMany(records: readonly KeyRecord[]): Promise<Set<string>> {
    if (records.length === 0) return new Set();
    const inserted = await this.db
      .insertInto('hmac_keys')
      .values(
        records.map((record) => ({
          key_id: record.keyId,
          match_id: record.matchId,
          kind: record.kind,
          issued_at: record.issuedAt,
          expires_at: record.expiresAt,
          revoked_at: record.revokedAt ?? null,
        })),
      )
      .onConflict((oc) => oc.column('key_id').doNothing())
      .returning('key_id')
      .execute();
    return new Set(inserted.map((r) => r.key_id));
  }

  async find(keyId: string): Promise<KeyRecord | null> {
    const row = await this.select(keyId);
    return row ? toRecord(row) : null;
  }

  async revoke(keyId: string, at: number): Promise<KeyRecord | null> {
    const row = await this.db
      .updateTable('hmac_keys')
      .set({ revoked_at: sql<number>`coalesce(revoked_at, ${at})` })
      .where('key_id', '=', keyId)
      .returningAll()
      .executeTakeFirst();
    return row ? toRecord(row) : null;
  }

  async pruneExpired(before: number): Promise<number> {
    const result = await this.db
      .deleteFrom('hmac_keys')
      .where('expires_at', '<', before as never)
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  private select(keyId: string) {
    return this.db.selectFrom('hmac_keys').selectAll().where('key_id', '=', keyId).executeTakeFirst();
  }
}

function toRecord(row: NonNullable<Row>): KeyRecord {
  const revokedAt = row.revoked_at === null ? undefined : Number(row.revoked_at);
  return Object.freeze({
    v: 1,
    keyId: row.key_id,
    matchId: row.match_id,
    kind: row.kind,
    issuedAt: Number(row.issued_at),
    expiresAt: Number(row.expires_at),
    revoked: revokedAt !== undefined,
    ...(revokedAt === undefined ? {} : { revokedAt }),
  });
}
