import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ConsumerRuntime } from '../infra/bus/consumer-runtime.js';
import { ManualClock } from '../infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { upsertMatch } from '../matches/match.repository.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { retentionCutoffs, runRetention, type RetentionWindows } from './retention.js';

const DAY = 24 * 3600_000;
const NOW = Date.UTC(2026, 5, 1);
const WINDOWS: RetentionWindows = {
  processed_events: 8 * DAY,
  outbox: 3 * DAY,
  overlay_events: 14 * DAY,
  stream_samples: 14 * DAY,
  dead_letters: 30 * DAY,
};
const ago = (ms: number) => new Date(NOW - ms);

let database: DatabaseHandle;

beforeEach(async () => {
  database = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(database.db);
}, 60_000);
afterEach(async () => {
  await database.close();
});

async function match(id: string) {
  await upsertMatch(
    database.db,
    id,
    {
      mode: 'VERIFIED_STREAM',
      status: 'IN_PROGRESS',
      entryFee: { amountCents: 0, currency: 'USD' },
      overlayRequired: false,
      players: [
        { side: 'p1', playerId: `a-${id}`, streamChannels: [`twitch:a_${id}`] },
        { side: 'p2', playerId: `b-${id}`, streamChannels: [`twitch:b_${id}`] },
      ],
    },
    NOW - 40 * DAY,
  );
}

async function count(
  table: 'processed_events' | 'outbox' | 'overlay_events' | 'stream_samples' | 'dead_letters' | 'evidence' | 'grace_episodes',
  where?: (row: Record<string, unknown>) => boolean,
) {
  const rows = (await database.db.selectFrom(table).selectAll().execute()) as Record<string, unknown>[];
  return where ? rows.filter(where).length : rows.length;
}

describe('retention', () => {
  it('computes one cutoff per table from its window', () => {
    expect(retentionCutoffs(NOW, WINDOWS)).toEqual({
      processed_events: ago(8 * DAY),
      outbox: ago(3 * DAY),
      overlay_events: ago(14 * DAY),
      stream_samples: ago(14 * DAY),
      dead_letters: ago(30 * DAY),
    });
  });

  it('deletes only what nothing needs: expired keys, published rows, samples and overlay events of settled matches; keeps evidence', async () => {
    const db = database.db;
    await match('m-settled');
    await match('m-open');
    // processed events: one past the window, one inside it
    await db
      .insertInto('processed_events')
      .values([
        { consumer: 'c', event_id: 'old', topic: 'server.reserved', processed_at: ago(9 * DAY) },
        { consumer: 'c', event_id: 'recent', topic: 'server.reserved', processed_at: ago(7 * DAY) },
      ])
      .execute();
    // outbox: old published, old UNpublished (still to send), recent published
    const outboxRow = (createdAt: Date, publishedAt: Date | null) => ({
      id: randomUUID(),
      topic: 'server.ready',
      key: 'k',
      payload: JSON.stringify({}),
      headers: JSON.stringify({}),
      created_at: createdAt,
      published_at: publishedAt,
    });
    await db
      .insertInto('outbox')
      .values([outboxRow(ago(5 * DAY), ago(5 * DAY)), outboxRow(ago(5 * DAY), null), outboxRow(ago(1 * DAY), ago(1 * DAY))])
      .execute();
    // an open grace episode on m-open, a closed one on m-settled; samples and overlay events 20 days old on both
    const episode = (id: string, matchId: string, state: 'open' | 'closed') => ({
      id,
      match_id: matchId,
      side: 'p1' as const,
      state,
      opened_at: ago(20 * DAY),
      closed_at: state === 'closed' ? ago(19 * DAY) : null,
      data: JSON.stringify({}),
      updated_at: ago(19 * DAY),
    });
    await db
      .insertInto('grace_episodes')
      .values([episode('ep-open', 'm-open', 'open'), episode('ep-closed', 'm-settled', 'closed')])
      .execute();
    const sample = (matchId: string, episodeId: string | null, at: Date) => ({
      match_id: matchId,
      side: 'p1' as const,
      episode_id: episodeId,
      outcome: 'violating',
      sample: JSON.stringify({}),
      observed_at: at,
    });
    await db
      .insertInto('stream_samples')
      .values([
        sample('m-open', 'ep-open', ago(20 * DAY)),
        sample('m-open', null, ago(20 * DAY)),
        sample('m-settled', 'ep-closed', ago(20 * DAY)),
        sample('m-settled', null, ago(1 * DAY)),
      ])
      .execute();
    const overlay = (matchId: string, at: Date) => ({
      match_id: matchId,
      request_id: randomUUID(),
      key_id: `ovl_${matchId}`,
      type: 'overlay.heartbeat',
      seq: null,
      body: JSON.stringify({}),
      received_at: at,
    });
    await db
      .insertInto('overlay_events')
      .values([overlay('m-open', ago(20 * DAY)), overlay('m-settled', ago(20 * DAY)), overlay('m-settled', ago(2 * DAY))])
      .execute();
    await db
      .insertInto('evidence')
      .values({
        id: 'ev-1',
        match_id: 'm-settled',
        side: 'p1',
        episode_id: 'ep-closed',
        kind: 'stream-health-verdict',
        bundle: JSON.stringify({ samples: {} }),
        created_at: ago(60 * DAY),
      })
      .execute();
    const deadLetter = (at: Date, offset: string) => ({
      id: randomUUID(),
      topic: 'server.reserved',
      partition: 0,
      offset,
      key: null,
      event_id: null,
      reason: 'INVALID_JSON',
      detail: 'x',
      raw: '{',
      created_at: at,
    });
    await db
      .insertInto('dead_letters')
      .values([deadLetter(ago(31 * DAY), '1'), deadLetter(ago(29 * DAY), '2')])
      .execute();

    const metrics = new Metrics();
    const deleted = await runRetention({ db, now: NOW, windows: WINDOWS, batchSize: 1_000, maxBatches: 10, metrics });

    expect(deleted).toEqual({ processed_events: 1, outbox: 1, overlay_events: 1, stream_samples: 1, dead_letters: 1 });
    expect((await db.selectFrom('processed_events').select('event_id').execute()).map((r) => r.event_id)).toEqual(['recent']);
    expect(await count('outbox', (r) => r.published_at === null)).toBe(1);
    expect(await count('outbox')).toBe(2);
    expect(await count('stream_samples', (r) => r.match_id === 'm-open')).toBe(2);
    expect(await count('stream_samples', (r) => r.match_id === 'm-settled')).toBe(1);
    expect(await count('overlay_events', (r) => r.match_id === 'm-open')).toBe(1);
    expect(await count('overlay_events', (r) => r.match_id === 'm-settled')).toBe(1);
    expect(await count('dead_letters')).toBe(1);
    expect(await count('evidence')).toBe(1);
    expect(await count('grace_episodes')).toBe(2);
    expect(await metrics.registry.getSingleMetricAsString('flock_retention_deleted_total')).toContain(
      'flock_retention_deleted_total{table="outbox"} 1',
    );
  });

  it('works in bounded batches: at most batchSize × maxBatches rows per table per run, the rest on the next', async () => {
    const rows = Array.from({ length: 25 }, (_, i) => ({
      consumer: 'c',
      event_id: `e${i}`,
      topic: 'server.reserved',
      processed_at: ago(10 * DAY),
    }));
    await database.db.insertInto('processed_events').values(rows).execute();
    const first = await runRetention({ db: database.db, now: NOW, windows: WINDOWS, batchSize: 10, maxBatches: 2 });
    expect(first.processed_events).toBe(20);
    expect(await count('processed_events')).toBe(5);
    const second = await runRetention({ db: database.db, now: NOW, windows: WINDOWS, batchSize: 10, maxBatches: 2 });
    expect(second.processed_events).toBe(5);
    expect(await count('processed_events')).toBe(0);
  });

  it('a redelivered event processed inside the window is still deduplicated after retention ran', async () => {
    const clock = new ManualClock(NOW - 7 * DAY);
    let effects = 0;
    // A fresh consumer each time (no in-memory or Redis fast path): only the database can tell it was seen.
    const freshConsumer = () => {
      const consumer = new ConsumerRuntime({
        consumer: 'workers',
        db: database.db,
        kv: new MemoryKeyValueStore(clock),
        clock,
        logger: createLogger('silent'),
        metrics: new Metrics(),
      });
      consumer.register({
        topic: 'server.released',
        schema: z.object({ v: z.literal('v1'), eventId: z.string() }).passthrough(),
        handle: async () => void effects++,
      });
      return consumer;
    };
    const message = {
      topic: 'server.released',
      partition: 0,
      offset: '7',
      key: null,
      value: Buffer.from(JSON.stringify({ v: 'v1', eventId: 'evt-redelivered' })),
      headers: {},
    };
    await freshConsumer().handle(message);
    expect(effects).toBe(1);

    clock.set(NOW);
    await runRetention({ db: database.db, now: clock.now(), windows: WINDOWS, batchSize: 100, maxBatches: 10 });
    await freshConsumer().handle(message);
    expect(effects).toBe(1);
  });
});
