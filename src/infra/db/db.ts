import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

/** A connection or an open transaction: repositories take either, so the caller owns the transaction boundary. */
export type Db = Kysely<Database> | Transaction<Database>;
