import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { expectSameAsOracle } from '../../../test/support/field-variants.js';
import { readHelixStream } from './helix-client.js';

/** The zod schema `readHelixStream` replaced: the oracle. Both accept or both refuse, and read the same values. */
const streamSchema = z.object({
  id: z.string().optional(),
  user_id: z.string().optional(),
  user_login: z.string(),
  type: z.string(),
  title: z.string(),
  started_at: z.string().optional(),
});

const valid = {
  id: '40952121085',
  user_id: '101051819',
  user_login: 'alice_tv',
  user_name: 'Alice_TV',
  game_id: '32982',
  type: 'live',
  title: 'ranked [m-1]',
  viewer_count: 120,
  started_at: '2026-01-01T12:00:00Z',
  tags: ['English'],
};

const variants: Record<string, unknown[]> = {
  id: [undefined, '', 5, null],
  user_id: [undefined, 7, null],
  user_login: [undefined, '', 5, null],
  type: [undefined, '', 'rerun', 0, null],
  title: [undefined, '', 'unknown', 1, null, []],
  started_at: [undefined, '', 0, null],
};

describe('readHelixStream', () => {
  it('accepts and refuses exactly what the zod schema it replaced did, field by field, with the same values', () => {
    const { accepted, refused } = expectSameAsOracle(valid, variants, readHelixStream, (item) => {
      const r = streamSchema.safeParse(item);
      return r.success ? r.data : null;
    });
    expect(refused).toBeGreaterThan(8);
    expect(accepted).toBeGreaterThan(8);
  });

  it('refuses what is not an object', () => {
    for (const item of [null, 5, 'x', [], [valid], true]) {
      expect(readHelixStream(item)).toBeNull();
      expect(streamSchema.safeParse(item).success).toBe(false);
    }
  });
});
