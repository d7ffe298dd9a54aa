/**
 * OutboxRelay on a REAL PostgreSQL: many rows per send, marked published in one go, and woken by rows that another
 * instance commits (LISTEN/NOTIFY), not by its idle poll.
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { MessageSink, OutboundMessage } from '../../src/infra/bus/bus.js';
import { OutboxRelay } from '../../src/infra/bus/outbox-relay.js';
import { SystemClock } from '../../src/infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../../src/infra/db/database.js';
import { migrateToLatest } from '../../src/infra/db/migrations.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { freshPostgresDatabase } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';

class RecordingSink implements MessageSink {
  readonly sends: OutboundMessage[][] = [];
  async send(messages: OutboundMessage[]): Promise<void> {
    this.sends.push(messages);
  }
  async close(): Promise<void> {}
  get total(): number {
    return this.sends.reduce((n, s) => n + s.length, 0);
  }
}

let url: string;
let drop: () => Promise<void>;
let database: DatabaseHandle;
/** Another instance's connection: its inserts cannot call this relay's nudge(). */
let other: pg.Client;

async function insertRows(n: number, prefix: string): Promise<void> {
  const ids = Array.from({ length: n }, () => randomUUID());
  await other.query(
    `INSERT INTO outbox (id, topic, key, payload, headers, created_at)
     SELECT id, 'server.ready', $2 || ord, jsonb_build_object('n', ord), jsonb_build_object('event-id', id::text), now()
     FROM unnest($1::uuid[]) WITH ORDINALITY AS t(id, ord)`,
    [ids, prefix],
  );
}

/** A relay on the test database that always leads, unless `overrides` say otherwise. */
function newRelay(overrides: Partial<ConstructorParameters<typeof OutboxRelay>[0]>): OutboxRelay {
  return new OutboxRelay({
    db: database.db,
    sink: new RecordingSink(),
    clock: new SystemClock(),
    logger: createLogger('silent'),
    metrics: new Metrics(),
    leadership: { holds: async () => true, release: async () => undefined },
    ...overrides,
  });
}

beforeAll(async () => {
  const fresh = await freshPostgresDatabase();
  url = fresh.url;
  drop = fresh.drop;
  database = await openDatabase({ url, dataDir: '.data/unused' });
  await migrateToLatest(database.db);
  other = new pg.Client({ connectionString: url });
  await other.connect();
});

afterAll(async () => {
  await other?.end();
  await database?.close();
  await drop?.();
});

describe('OutboxRelay (real PostgreSQL)', () => {
  it('publishes a backlog in a few large sends, in seq order, and marks every row published', async () => {
    await insertRows(1200, 'k');
    const sink = new RecordingSink();
    const metrics = new Metrics();
    const relay = newRelay({ sink, metrics });
    expect(await relay.drain()).toBe(1200);
    expect(sink.sends.map((s) => s.length)).toEqual([500, 500, 200]);
    const order = sink.sends.flat().map((m) => Number(m.key.slice(1)));
    expect(order).toEqual([...Array(1200).keys()].map((i) => i + 1));
    expect((await other.query(`SELECT count(*)::int AS n FROM outbox WHERE published_at IS NULL`)).rows[0].n).toBe(0);
    await relay.samplePending();
    expect((await metrics.outboxPending.get()).values[0]?.value).toBe(0);
    expect((await metrics.outboxOldestUnpublishedSeconds.get()).values[0]?.value).toBe(0);
    expect((await metrics.relayBatchSize.get()).values.find((v) => v.metricName === 'flock_outbox_relay_batch_size_sum')?.value).toBe(1200);
  });

  it('samples the pending rows and the age of the oldest one, on any instance', async () => {
    await other.query(
      `INSERT INTO outbox (id, topic, key, payload, headers, created_at) VALUES ($1, 'server.ready', 'old', '{}', '{}', now() - interval '90 seconds')`,
      [randomUUID()],
    );
    await insertRows(3, 'p');
    const metrics = new Metrics();
    const relay = newRelay({ metrics, leadership: { holds: async () => false, release: async () => undefined } });
    await relay.samplePending();
    expect((await metrics.outboxPending.get()).values[0]?.value).toBe(4);
    const age = (await metrics.outboxOldestUnpublishedSeconds.get()).values[0]?.value ?? 0;
    expect(age).toBeGreaterThanOrEqual(89);
    expect(age).toBeLessThan(200);
    await relay.drain();
  });

  it('wakes on rows committed by another instance without waiting for its idle poll', async () => {
    const sink = new RecordingSink();
    const relay = newRelay({ sink, idleMs: 120_000 });
    const unlisten = database.listen!('outbox_rows', () => relay.nudge());
    relay.start();
    try {
      // The first pass runs at start; after it the relay sleeps for 120 s unless notified.
      await new Promise((r) => setTimeout(r, 1000));
      const t0 = Date.now();
      await insertRows(30, 'w');
      await eventually(() => sink.total >= 30, 10_000, 'the relay to publish the other instance’s rows');
      expect(Date.now() - t0).toBeLessThan(10_000);
      await insertRows(5, 'w2');
      await eventually(() => sink.total >= 35, 10_000, 'a second wake-up');
    } finally {
      await relay.stop();
      await unlisten();
    }
  });
});
