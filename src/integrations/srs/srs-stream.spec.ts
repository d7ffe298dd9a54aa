import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { expectSameAsOracle } from '../../../test/support/field-variants.js';
import { readSrsStream } from './srs-client.js';

/**
 * The zod schema `readSrsStream` replaced (the listing item's shape, from srs_app_statistic.cpp
 * SrsStatisticStream::dumps). It is the oracle here: for every item below, both accept or both refuse, and an
 * accepted item reads the same values.
 */
const idSchema = z.union([z.string(), z.number()]).transform(String);
const streamSchema = z.object({
  id: idSchema,
  name: z.string(),
  app: z.string(),
  vhost: idSchema.optional(),
  live_ms: z.number().optional(),
  frames: z.number().optional(),
  video_frames: z.number().optional(),
  audio_frames: z.number().optional(),
  recv_bytes: z.number().optional(),
  video: z.unknown().optional(),
  kbps: z.object({ recv_30s: z.number() }).optional(),
  publish: z.object({ active: z.boolean(), cid: z.string().optional() }).optional(),
});

const valid = {
  id: 'vid-1',
  name: 'alice',
  app: 'live',
  vhost: 'vid-0',
  live_ms: 1_767_225_600_000,
  frames: 1800,
  video_frames: 1800,
  audio_frames: 1400,
  recv_bytes: 22_500_000,
  video: { codec: 'H264' },
  kbps: { recv_30s: 6000, send_30s: 0 },
  publish: { active: true, cid: 'c1' },
  clients: 2,
};

/** Per field: values to try in place of the valid one (undefined = the field left out). */
const variants: Record<string, unknown[]> = {
  id: [undefined, 7, 'x', null, true, {}, 1.5, Number.POSITIVE_INFINITY],
  name: [undefined, '', 5, null],
  app: [undefined, 'app', 5, null, []],
  vhost: [undefined, 3, '__defaultVhost__', null, false],
  live_ms: [undefined, 0, -5, '1000', null, Number.NaN, Number.POSITIVE_INFINITY],
  frames: [undefined, 0, 2.5, '10', null],
  video_frames: [undefined, 0, 'x', null],
  audio_frames: [undefined, 3, 'x', null],
  recv_bytes: [undefined, 0, '1', null],
  video: [undefined, null, 0, false, 'x', {}],
  kbps: [undefined, null, {}, { recv_30s: 'x' }, { recv_30s: 0 }, [], 5, { recv_30s: null }],
  publish: [undefined, null, {}, { active: false }, { active: 'yes' }, { active: true, cid: 5 }, { active: true, cid: null }, []],
};

function expected(item: unknown) {
  const r = streamSchema.safeParse(item);
  if (!r.success) return null;
  const s = r.data;
  return {
    id: s.id,
    app: s.app,
    name: s.name,
    liveMs: s.live_ms ?? null,
    frames: s.frames ?? null,
    videoFrames: s.video_frames ?? null,
    recvBytes: s.recv_bytes ?? null,
    video: s.video !== undefined && s.video !== null,
    kbps: s.kbps?.recv_30s ?? null,
    active: s.publish?.active ?? null,
  };
}

describe('readSrsStream', () => {
  it('reads a full listing item', () => {
    expect(readSrsStream(valid)).toEqual({
      id: 'vid-1',
      app: 'live',
      name: 'alice',
      liveMs: 1_767_225_600_000,
      frames: 1800,
      videoFrames: 1800,
      recvBytes: 22_500_000,
      video: true,
      kbps: 6000,
      active: true,
    });
  });

  it('accepts and refuses exactly what the zod schema it replaced did, field by field', () => {
    const { accepted, refused } = expectSameAsOracle(valid, variants, readSrsStream, expected);
    // The matrix covers both sides of the line.
    expect(refused).toBeGreaterThan(20);
    expect(accepted).toBeGreaterThan(20);
  });

  it('refuses what is not an object', () => {
    for (const item of [null, undefined, 5, 'x', [], [valid], true]) {
      expect(readSrsStream(item)).toBeNull();
      expect(streamSchema.safeParse(item).success).toBe(false);
    }
  });
});
