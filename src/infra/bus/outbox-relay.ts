import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { Backoff } from '../backoff.js';
import type { Clock } from '../clock.js';
import { PollLoop } from '../poll-loop.js';
import type { Database } from '../db/schema.js';
import type { Metrics } from '../../observability/metrics.js';
import type { MessageSink, OutboundMessage } from './bus.js';

/** Decides which instance relays: one relay at a time keeps per-key order across the fleet. */
export interface RelayLeadership {
  /** True while this instance may relay (acquires or renews its lease). */
  holds(): Promise<boolean>;
  release(): Promise<void>;
}

export interface OutboxRelayOptions {
  db: Kysely<Database>;
  sink: MessageSink;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  leadership: RelayLeadership;
  batchSize?: number;
  idleMs?: number;
  /** How often every instance (leader or not) samples the pending rows for the metrics (default 5 s). */
  sampleEveryMs?: number;
  /**
   * Input topics this outbox feeds to the consumer (the embedded bus): their unpublished rows are the consumer's
   * backlog, reported as `flock_consumer_lag` (partition 0) as Kafka's committed-offset lag is.
   */
  consumerInputTopics?: readonly string[];
}

/** After a failed pass: 400 ms doubling to 5 s (200·2^failures), no jitter: the lease leaves one relay, so no herd to spread. */
const RELAY_RETRY = { baseMs: 200, capMs: 5_000, jitter: 'none' } as const;

/**
 * Relays committed outbox rows to the bus in `seq` order and marks them published only after the sink
 * acknowledged them. A crash between the two republishes the batch: consumers dedupe on `event-id`.
 * Rows are read in a short query and sent outside any transaction, so an embedded sink whose handlers
 * use the database cannot deadlock against the relay.
 */
export class OutboxRelay {
  private readonly loop: PollLoop;
  private sampler: NodeJS.Timeout | undefined;

  constructor(private readonly options: OutboxRelayOptions) {
    const { clock, logger, leadership } = options;
    this.loop = new PollLoop({
      clock,
      idleMs: options.idleMs ?? 250,
      retry: new Backoff(RELAY_RETRY),
      pass: async () => ((await leadership.holds()) ? this.relayBatch() : 0),
      onError: (error, failures) => logger.warn({ err: error, reason: 'OUTBOX_RELAY_FAILED', failures }, 'outbox relay pass failed'),
    });
  }

  start(): void {
    this.loop.start();
    clearInterval(this.sampler);
    this.sampler = setInterval(() => void this.samplePending(), this.options.sampleEveryMs ?? 5_000);
    this.sampler.unref();
  }

  /** outbox_pending and the age of the oldest pending row, read from the database (any instance may be asked). */
  async samplePending(): Promise<void> {
    const { db, metrics, clock, logger } = this.options;
    try {
      const row = await db
        .selectFrom('outbox')
        .select((eb) => [eb.fn.countAll<string>().as('pending'), eb.fn.min('created_at').as('oldest')])
        .where('published_at', 'is', null)
        .executeTakeFirst();
      metrics.outboxPending.set(Number(row?.pending ?? 0));
      const oldest = row?.oldest ? new Date(row.oldest as Date | string).getTime() : undefined;
      metrics.outboxOldestUnpublishedSeconds.set(oldest === undefined ? 0 : Math.max(0, (clock.now() - oldest) / 1000));
      const inputs = this.options.consumerInputTopics ?? [];
      if (inputs.length > 0) {
        const backlog = await db
          .selectFrom('outbox')
          .select((eb) => ['topic', eb.fn.countAll<string>().as('pending')])
          .where('published_at', 'is', null)
          .where('topic', 'in', [...inputs])
          .groupBy('topic')
          .execute();
        const byTopic = new Map(backlog.map((r) => [r.topic, Number(r.pending)]));
        for (const topic of inputs) metrics.consumerLag.set({ topic, partition: '0' }, byTopic.get(topic) ?? 0);
      }
    } catch (error) {
      logger.debug({ err: error }, 'outbox sample failed');
    }
  }

  /** Asks for an immediate pass (called after a transaction that enqueued events commits). */
  nudge(): void {
    this.loop.nudge();
  }

  async stop(): Promise<void> {
    clearInterval(this.sampler);
    await this.loop.stop();
    await this.options.leadership.release().catch(() => undefined);
  }

  /** Relays until nothing is pending (used by the CLI, tests and shutdown). Returns rows relayed. */
  async drain(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await this.relayBatch();
      total += n;
      if (n === 0) return total;
    }
  }

  /** One produce request of up to `batchSize` rows (idempotent producer), then one UPDATE marking them all. */
  private async relayBatch(): Promise<number> {
    const { db, sink, metrics, clock } = this.options;
    const rows = await db
      .selectFrom('outbox')
      .select(['seq', 'id', 'topic', 'key', 'payload', 'headers'])
      .where('published_at', 'is', null)
      .orderBy('seq')
      .limit(this.options.batchSize ?? 500)
      .execute();
    if (rows.length === 0) return 0;
    metrics.relayBatchSize.observe(rows.length);
    const messages: OutboundMessage[] = rows.map((row) => ({
      topic: row.topic,
      key: row.key,
      value: JSON.stringify(row.payload),
      headers: row.headers as Record<string, string>,
    }));
    await sink.send(messages);
    await db
      .updateTable('outbox')
      .set({ published_at: new Date(clock.now()) })
      .where(
        'seq',
        'in',
        rows.map((r) => r.seq),
      )
      .where('published_at', 'is', null)
      .execute();
    for (const row of rows) metrics.outboxPublished.inc({ topic: row.topic });
    return rows.length;
  }
}
