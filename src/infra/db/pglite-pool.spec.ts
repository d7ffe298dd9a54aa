import { PGlite } from '@electric-sql/pglite';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PGlitePool } from './pglite-pool.js';

describe('PGlitePool', () => {
  let pglite: PGlite;
  // Booting the WASM database can take seconds on a loaded machine: it happens here, not inside a test's time.
  beforeAll(async () => {
    pglite = await PGlite.create();
  });
  afterAll(() => pglite.close());

  it('hands the single connection out one caller at a time', async () => {
    const pool = new PGlitePool(pglite);
    const a = await pool.connect();
    let bGot = false;
    const b = pool.connect().then((c) => {
      bGot = true;
      return c;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(bGot).toBe(false);
    a.release();
    (await b).release();
    expect(bGot).toBe(true);
  });

  it('a caller that gives up waiting does not block the ones behind it', async () => {
    const pool = new PGlitePool(pglite, 50);
    const a = await pool.connect();
    await expect(pool.connect()).rejects.toThrow('not released in time');
    const c = pool.connect();
    a.release();
    const conn = await c;
    expect((await conn.query('select 1 as one')).rows).toEqual([{ one: 1 }]);
    conn.release();
  });
});
