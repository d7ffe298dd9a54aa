import type { PGlite } from '@electric-sql/pglite';

/**
 * Presents one PGlite instance as the small part of a `pg.Pool` that Kysely's PostgresDialect uses.
 * PGlite has a single connection, so `connect()` hands it out exclusively: a transaction holds it until release.
 */
export class PGlitePool {
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly pglite: PGlite,
    private readonly acquireTimeoutMs = 30_000,
  ) {}

  async connect(): Promise<{ query: PGliteQuery; release: () => void }> {
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const previous = this.queue;
    this.queue = previous.then(() => mine);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        previous,
        new Promise((_, reject) => {
          // A wait this long means a caller held the connection too long (or used the database inside a transaction).
          timer = setTimeout(() => reject(new Error('embedded database connection not released in time')), this.acquireTimeoutMs);
          timer.unref();
        }),
      ]);
    } catch (error) {
      // Give our place in the queue back once it comes, or everyone behind us would wait forever.
      void previous.then(release);
      throw error;
    } finally {
      clearTimeout(timer);
    }
    let released = false;
    return {
      query: async (sql: string, parameters?: unknown[]) => {
        const result = await this.pglite.query<Record<string, unknown>>(sql, parameters ?? []);
        return { command: commandOf(sql), rowCount: result.affectedRows ?? result.rows.length, rows: result.rows };
      },
      release: () => {
        if (released) return;
        released = true;
        release();
      },
    };
  }

  async end(): Promise<void> {
    await this.queue;
    await this.pglite.close();
  }
}

type PGliteQuery = (sql: string, parameters?: unknown[]) => Promise<{ command: string; rowCount: number; rows: Record<string, unknown>[] }>;

function commandOf(sql: string): string {
  const match = /^\s*(?:with\b[\s\S]*?\)\s*)?(insert|update|delete|merge|select)\b/i.exec(sql);
  if (match?.[1]) return match[1].toUpperCase();
  return (/^\s*(\w+)/.exec(sql)?.[1] ?? '').toUpperCase();
}
