import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import type { Database } from './schema.js';
import { PGlitePool } from './pglite-pool.js';

export const DATABASE = Symbol('Database');

export interface DatabaseHandle {
  readonly db: Kysely<Database>;
  readonly kind: 'postgres' | 'pglite';
  ping(): Promise<void>;
  /**
   * Calls `listener` on every NOTIFY of `channel` (PostgreSQL only: a dedicated connection that reconnects after a
   * loss; undefined for the embedded database, whose writers all live in this process). Returns the unsubscribe.
   */
  listen?(channel: string, listener: () => void): () => Promise<void>;
  close(): Promise<void>;
}

/** LISTEN on a dedicated connection; after a loss it reconnects (and calls `listener` once: notifications may be missed). */
function listenWithReconnect(url: string, channel: string, listener: () => void): () => Promise<void> {
  let client: pg.Client | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const connect = async (): Promise<void> => {
    if (stopped) return;
    const next = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
    const reconnect = () => {
      if (stopped || client !== next) return;
      client = undefined;
      next.removeAllListeners();
      // pg may still emit 'error' after 'end' (connection cut): without a listener that crashes the process.
      next.on('error', () => undefined);
      void next.end().catch(() => undefined);
      retry = setTimeout(() => void connect(), 1_000);
      retry.unref();
    };
    client = next;
    next.on('error', reconnect);
    next.on('end', reconnect);
    next.on('notification', (n) => n.channel === channel && listener());
    try {
      await next.connect();
      await next.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      listener();
    } catch {
      reconnect();
    }
  };
  void connect();
  return async () => {
    stopped = true;
    clearTimeout(retry);
    const c = client;
    client = undefined;
    await c?.end().catch(() => undefined);
  };
}

/** PostgreSQL when a URL is given, otherwise PGlite (real Postgres in WASM) persisted under `dataDir`. */
export async function openDatabase(options: {
  url?: string;
  dataDir: string;
  poolSize?: number;
  queryTimeoutMs?: number;
}): Promise<DatabaseHandle> {
  if (options.url) {
    const timeout = options.queryTimeoutMs ?? 5_000;
    const pool = new pg.Pool({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      // The server cancels a statement past the bound; the client gives up on a server that never answers.
      statement_timeout: timeout,
      query_timeout: timeout + 1_000,
      connectionTimeoutMillis: 5_000,
      idleTimeoutMillis: 30_000,
    });
    // An idle client losing its server must not crash the process; the next query reports the error.
    pool.on('error', () => undefined);
    // Same for a checked-out client between two queries (pg-pool listens only while idle): the query in flight
    // or the next one fails with the error; an unhandled 'error' event would crash the process instead.
    pool.on('connect', (client) => void client.on('error', () => undefined));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return {
      db,
      kind: 'postgres',
      ping: async () => void (await sql`select 1`.execute(db)),
      listen: (channel, listener) => listenWithReconnect(options.url!, channel, listener),
      close: () => db.destroy(),
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  let pglite: InstanceType<typeof PGlite>;
  if (options.dataDir === 'memory://') {
    pglite = await PGlite.create();
  } else {
    const dir = resolve(options.dataDir, 'pglite');
    mkdirSync(dir, { recursive: true });
    pglite = await PGlite.create({ dataDir: dir });
  }
  const pool = new PGlitePool(pglite);
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: pool as unknown as pg.Pool }) });
  return {
    db,
    kind: 'pglite',
    ping: async () => void (await sql`select 1`.execute(db)),
    close: () => db.destroy(),
  };
}
