import { isTransientInfrastructureError } from '../faults/outage.js';
import { sql, type Kysely, type Transaction } from 'kysely';
import type { Logger } from 'pino';
import type { z } from 'zod';
import { randomUUID } from 'node:crypto';
import { Backoff } from '../backoff.js';
import type { Clock } from '../clock.js';
import type { Database } from '../db/schema.js';
import type { KeyValueStore } from '../kv/kv-store.js';
import type { Metrics } from '../../observability/metrics.js';
import type { InboundMessage } from './bus.js';
import { enqueueEvent } from './outbox.js';
import { Topics } from '../../events/topics.js';

export interface EventContext {
  trx: Transaction<Database>;
  eventId: string;
  topic: string;
  logger: Logger;
  now: number;
}

/** One fresh event of a batch, with its own logger (eventId, topic, matchId bound). */
export interface BatchItem<T> {
  event: T;
  logger: Logger;
}

export interface BatchContext {
  trx: Transaction<Database>;
  topic: string;
  now: number;
}

/** One consumed topic: its schema, the Redis fast-path key, and the effect (run inside one DB transaction). */
export interface TopicHandler<T extends { eventId: string }> {
  topic: string;
  schema: z.ZodType<T>;
  /** Redis key marking the event as done, e.g. `wk:idemp:srv:reserved:<eventId>` (the DB stays authoritative). */
  idempotencyKey?: (eventId: string) => string;
  handle(event: T, context: EventContext): Promise<void>;
  /**
   * Optional bulk form of `handle` for the fresh events of one batch (already claimed, in offset order): few
   * statements for the lot instead of a few per event. It must have exactly the effect of `handle` on each event
   * in turn. If it throws, the batch is re-run message by message (savepoints), so a failing event is still set
   * aside alone.
   */
  handleMany?(events: readonly BatchItem<T>[], context: BatchContext): Promise<void>;
  /** Runs after the transaction committed (for example to wake a poller). Failures are only logged. */
  afterCommit?(event: T): void;
}

interface Decoded {
  kind: 'event';
  message: InboundMessage;
  handler: TopicHandler<{ eventId: string }>;
  event: { eventId: string };
  log: Logger;
  idemKey: string | undefined;
}

interface Invalid {
  kind: 'invalid';
  message: InboundMessage;
  reason: DeadLetterReason;
  detail: string;
}

interface BatchOutcome {
  processed: Decoded[];
  duplicates: Decoded[];
  deadLettered: Invalid[];
  /** Set aside after a failed effect (with the later messages of its key): retried one by one after the commit. */
  deferred: Decoded[];
}

export type DeadLetterReason =
  | 'INVALID_JSON'
  | 'NOT_AN_OBJECT'
  | 'UNSUPPORTED_VERSION'
  | 'INVALID_FIELDS'
  | 'UNKNOWN_TOPIC'
  | 'HANDLER_FAILED';

export interface ConsumerRuntimeOptions {
  consumer: string;
  db: Kysely<Database>;
  kv: KeyValueStore;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  /** Attempts at the effect before the message is dead-lettered as HANDLER_FAILED. */
  maxAttempts?: number;
  idempotencyTtlMs?: number;
  onCommitted?: () => void;
  /** Source of the retry jitter, in [0, 1). Default Math.random. */
  random?: () => number;
}

/** Retries of a failing effect on the same message: 100 ms doubling to 5 s, never less than half of that. */
const EFFECT_RETRY = { baseMs: 100, capMs: 5_000, jitter: 'equal' } as const;

const RAW_LIMIT = 65_536;

/**
 * Turns raw bus messages into exactly-once effects: validate (else dead-letter and let the offset commit),
 * skip known event ids (Redis fast path, then the processed_events primary key), run the effect and its
 * outbox writes in one transaction. Resolving means "commit the offset"; rejecting means "deliver again".
 */
export class ConsumerRuntime {
  private readonly handlers = new Map<string, TopicHandler<{ eventId: string }>>();
  private readonly retry: Backoff;

  constructor(private readonly options: ConsumerRuntimeOptions) {
    this.retry = new Backoff(EFFECT_RETRY, options.random);
  }

  register<T extends { eventId: string }>(handler: TopicHandler<T>): void {
    this.handlers.set(handler.topic, handler as unknown as TopicHandler<{ eventId: string }>);
  }

  get topics(): string[] {
    return [...this.handlers.keys()];
  }

  /** One message on its own: validate, fast-path dedupe, then its own transaction with retries (embedded bus, tools). */
  readonly handle = async (message: InboundMessage): Promise<void> => {
    const decoded = this.decode(message);
    if (decoded.kind === 'invalid') return this.deadLetter(message, decoded.reason, decoded.detail);
    if (await this.fastPathSeen(decoded)) return;
    await this.handleOne(decoded);
  };

  /**
   * The batch handler given to a MessageSource: messages of one partition, in offset order. Invalid ones are
   * dead-lettered and the rest claimed (processed_events) and applied in ONE transaction; resolving means "commit
   * the last offset", rejecting (database unreachable) means "deliver the whole batch again". A message whose effect
   * throws is taken out of the batch (savepoint) with every later message of its key, so the others commit and
   * per-key order holds; those then go through the one-message path (retries, then HANDLER_FAILED dead letter).
   */
  readonly handleBatch = async (messages: readonly InboundMessage[]): Promise<void> => {
    if (messages.length === 0) return;
    this.options.metrics.consumerBatchSize.observe(messages.length);
    const invalid: Invalid[] = [];
    const candidates: Decoded[] = [];
    const firstOf = new Set<string>();
    const seen = await Promise.all(
      messages.map((m) => this.decode(m)).map(async (d) => (d.kind === 'event' && (await this.fastPathSeen(d)) ? null : d)),
    );
    for (const d of seen) {
      if (d === null) continue;
      if (d.kind === 'invalid') invalid.push(d);
      else if (firstOf.has(d.event.eventId)) this.reportDuplicate(d);
      else {
        firstOf.add(d.event.eventId);
        candidates.push(d);
      }
    }
    let outcome: BatchOutcome;
    try {
      outcome = await this.applyBatch(invalid, candidates, false);
    } catch (error) {
      if (isTransientInfrastructureError(error)) throw error;
      this.options.logger.warn({ err: error, size: messages.length }, 'batch effect failed; re-running it with one savepoint per message');
      outcome = await this.applyBatch(invalid, candidates, true);
    }
    await this.afterBatch(outcome);
    for (const d of outcome.deferred) await this.handleOne(d);
  };

  private decode(message: InboundMessage): Decoded | Invalid {
    const handler = this.handlers.get(message.topic);
    if (!handler) return { kind: 'invalid', message, reason: 'UNKNOWN_TOPIC', detail: `no handler for topic ${message.topic}` };
    let value: unknown;
    try {
      value = JSON.parse(message.value.toString('utf8'));
    } catch (error) {
      return { kind: 'invalid', message, reason: 'INVALID_JSON', detail: (error as Error).message };
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return { kind: 'invalid', message, reason: 'NOT_AN_OBJECT', detail: 'event value must be a JSON object' };
    }
    const version = (value as { v?: unknown }).v;
    if (version !== 'v1') {
      return {
        kind: 'invalid',
        message,
        reason: 'UNSUPPORTED_VERSION',
        detail: `unsupported event version ${JSON.stringify(version ?? null)}`,
      };
    }
    const parsed = handler.schema.safeParse(value);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      return { kind: 'invalid', message, reason: 'INVALID_FIELDS', detail };
    }
    const event = parsed.data;
    const log = this.options.logger.child({
      eventId: event.eventId,
      topic: message.topic,
      matchId: (event as { matchId?: string }).matchId,
    });
    return { kind: 'event', message, handler, event, log, idemKey: handler.idempotencyKey?.(event.eventId) };
  }

  /** The retry loop of one message in its own transaction; dead-letters it as HANDLER_FAILED after maxAttempts. */
  private async handleOne(d: Decoded): Promise<void> {
    const { metrics } = this.options;
    const { message, handler, event, log } = d;
    const maxAttempts = this.options.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.applyOnce(handler, event, message.topic, log);
        await this.afterBatch({
          processed: result === 'processed' ? [d] : [],
          duplicates: result === 'duplicate' ? [d] : [],
          deadLettered: [],
          deferred: [],
        });
        return;
      } catch (error) {
        // The database (or the network to it) being down is not the message's fault: deliver it again later.
        if (isTransientInfrastructureError(error)) throw error;
        if (attempt >= maxAttempts) {
          log.error({ err: error, attempts: attempt, reason: 'HANDLER_FAILED' }, 'event effect failed repeatedly; dead-lettering');
          metrics.eventsConsumed.inc({ topic: message.topic, result: 'failed' });
          return this.deadLetter(message, 'HANDLER_FAILED', (error as Error).message, event.eventId);
        }
        const backoff = this.retry.delay(attempt);
        log.warn({ err: error, attempt, backoffMs: Math.round(backoff) }, 'event effect failed; retrying');
        await this.options.clock.sleep(backoff);
      }
    }
  }

  /**
   * One transaction for the batch. Without savepoints the first failing effect aborts it (the caller re-runs with
   * them); with savepoints a failing message and the later messages of its key are set aside (`deferred`).
   */
  private async applyBatch(invalid: Invalid[], candidates: Decoded[], savepoints: boolean): Promise<BatchOutcome> {
    const { db, clock, consumer } = this.options;
    return db.transaction().execute(async (trx) => {
      const now = clock.now();
      const outcome: BatchOutcome = { processed: [], duplicates: [], deadLettered: [], deferred: [] };
      for (const d of invalid) {
        if (await this.writeDeadLetter(trx, d.message, d.reason, d.detail, now)) outcome.deadLettered.push(d);
      }
      if (!savepoints) {
        const claimed =
          candidates.length === 0
            ? []
            : await trx
                .insertInto('processed_events')
                .values(
                  candidates.map((d) => ({ consumer, event_id: d.event.eventId, topic: d.message.topic, processed_at: new Date(now) })),
                )
                .onConflict((oc) => oc.columns(['consumer', 'event_id']).doNothing())
                .returning('event_id')
                .execute();
        const fresh = new Set(claimed.map((r) => r.event_id));
        // Runs of consecutive fresh events of one bulk-capable handler go in one call (a partition's batch is one topic).
        let run: Decoded[] = [];
        const flush = async () => {
          if (run.length === 0) return;
          const [first] = run;
          await first!.handler.handleMany!(
            run.map((d) => ({ event: d.event, logger: d.log })),
            { trx, topic: first!.message.topic, now },
          );
          outcome.processed.push(...run);
          run = [];
        };
        for (const d of candidates) {
          if (!fresh.has(d.event.eventId)) {
            outcome.duplicates.push(d);
            continue;
          }
          if (d.handler.handleMany) {
            if (run.length > 0 && run[0]!.handler !== d.handler) await flush();
            run.push(d);
            continue;
          }
          await flush();
          await d.handler.handle(d.event, { trx, eventId: d.event.eventId, topic: d.message.topic, logger: d.log, now });
          outcome.processed.push(d);
        }
        await flush();
        return outcome;
      }
      const blockedKeys = new Set<string | null>();
      for (const d of candidates) {
        if (blockedKeys.has(d.message.key)) {
          outcome.deferred.push(d);
          continue;
        }
        await sql`savepoint batch_message`.execute(trx);
        try {
          const result = await this.claimAndApply(trx, d.handler, d.event, d.message.topic, d.log, now);
          await sql`release savepoint batch_message`.execute(trx);
          (result === 'processed' ? outcome.processed : outcome.duplicates).push(d);
        } catch (error) {
          if (isTransientInfrastructureError(error)) throw error;
          await sql`rollback to savepoint batch_message`.execute(trx);
          d.log.warn({ err: error }, 'event effect failed inside its batch; retrying it on its own');
          blockedKeys.add(d.message.key);
          outcome.deferred.push(d);
        }
      }
      return outcome;
    });
  }

  /** Metrics, logs, after-commit hooks and Redis fast-path keys of a committed transaction. */
  private async afterBatch(outcome: BatchOutcome): Promise<void> {
    const { metrics } = this.options;
    for (const d of outcome.processed) {
      metrics.eventsConsumed.inc({ topic: d.message.topic, result: 'processed' });
      d.log.info('event processed');
      try {
        d.handler.afterCommit?.(d.event);
      } catch (error) {
        d.log.warn({ err: error }, 'after-commit hook failed');
      }
    }
    for (const d of outcome.duplicates) {
      metrics.eventsConsumed.inc({ topic: d.message.topic, result: 'duplicate' });
      d.log.info('duplicate event skipped (already processed)');
    }
    for (const d of outcome.deadLettered) this.reportDeadLetter(d.message, d.reason, d.detail, d.message.headers['event-id'] ?? null);
    if (outcome.processed.length > 0 || outcome.deadLettered.length > 0) this.options.onCommitted?.();
    await Promise.all([...outcome.processed, ...outcome.duplicates].map((d) => this.markSeen(d)));
  }

  private reportDuplicate(d: Decoded): void {
    this.options.metrics.eventsConsumed.inc({ topic: d.message.topic, result: 'duplicate' });
    d.log.debug('duplicate event skipped (idempotency key present or repeated in the batch)');
  }

  private async applyOnce(
    handler: TopicHandler<{ eventId: string }>,
    event: { eventId: string },
    topic: string,
    log: Logger,
  ): Promise<'processed' | 'duplicate'> {
    return this.options.db.transaction().execute((trx) => this.claimAndApply(trx, handler, event, topic, log, this.options.clock.now()));
  }

  /** Claims the event id (processed_events primary key) and, if it was new, applies the effect in `trx`. */
  private async claimAndApply(
    trx: Transaction<Database>,
    handler: TopicHandler<{ eventId: string }>,
    event: { eventId: string },
    topic: string,
    log: Logger,
    now: number,
  ): Promise<'processed' | 'duplicate'> {
    const claimed = await trx
      .insertInto('processed_events')
      .values({ consumer: this.options.consumer, event_id: event.eventId, topic, processed_at: new Date(now) })
      .onConflict((oc) => oc.columns(['consumer', 'event_id']).doNothing())
      .returning('event_id')
      .executeTakeFirst();
    if (!claimed) return 'duplicate';
    await handler.handle(event, { trx, eventId: event.eventId, topic, logger: log, now });
    return 'processed';
  }

  /** Redis short-cut: true (and counted as a duplicate) when the event's idempotency key is present. */
  private async fastPathSeen(d: Decoded): Promise<boolean> {
    if (!d.idemKey) return false;
    try {
      if ((await this.options.kv.get(d.idemKey)) === null) return false;
    } catch (error) {
      d.log.warn({ err: error, reason: 'KV_UNAVAILABLE' }, 'idempotency fast path unavailable; relying on the database');
      return false;
    }
    this.reportDuplicate(d);
    return true;
  }

  private async markSeen(d: Decoded): Promise<void> {
    if (!d.idemKey) return;
    try {
      await this.options.kv.set(d.idemKey, '1', { px: this.options.idempotencyTtlMs ?? 7 * 24 * 3600_000 });
    } catch (error) {
      d.log.warn({ err: error, reason: 'KV_UNAVAILABLE' }, 'could not record idempotency key');
    }
  }

  /** Records the message and emits it on the dead-letter topic in one transaction (once per topic/partition/offset). */
  private async deadLetter(message: InboundMessage, reason: DeadLetterReason, detail: string, eventId?: string): Promise<void> {
    const now = this.options.clock.now();
    const inserted = await this.options.db.transaction().execute((trx) => this.writeDeadLetter(trx, message, reason, detail, now, eventId));
    if (inserted) {
      this.reportDeadLetter(message, reason, detail, eventId ?? message.headers['event-id'] ?? null);
      this.options.onCommitted?.();
    }
  }

  /** The dead_letters row and its outbox event, in `trx`; false when this topic/partition/offset was already recorded. */
  private async writeDeadLetter(
    trx: Transaction<Database>,
    message: InboundMessage,
    reason: DeadLetterReason,
    detail: string,
    now: number,
    eventId?: string,
  ): Promise<boolean> {
    const raw = printableRaw(message.value);
    const id = randomUUID();
    const sourceEventId = storable(eventId ?? message.headers['event-id'] ?? null);
    const key = storable(message.key);
    const storedDetail = (storable(detail) ?? '').slice(0, 2000);
    const inserted = await trx
      .insertInto('dead_letters')
      .values({
        id,
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
        key,
        event_id: sourceEventId,
        reason,
        detail: storedDetail,
        raw: raw.slice(0, RAW_LIMIT),
        created_at: new Date(now),
      })
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .executeTakeFirst();
    if (!inserted) return false;
    await enqueueEvent(trx, {
      topic: Topics.deadLetter,
      matchId: key ?? 'unknown',
      now,
      payload: {
        deadLetterId: id,
        sourceTopic: message.topic,
        partition: message.partition,
        offset: message.offset,
        sourceEventId,
        reason,
        detail: storedDetail,
        raw: raw.slice(0, RAW_LIMIT),
        rawTruncated: raw.length > RAW_LIMIT,
      },
    });
    return true;
  }

  private reportDeadLetter(message: InboundMessage, reason: DeadLetterReason, detail: string, eventId: string | null): void {
    const { logger, metrics } = this.options;
    metrics.deadLetters.inc({ topic: message.topic, reason });
    metrics.eventsConsumed.inc({ topic: message.topic, result: 'dead_lettered' });
    logger.warn(
      {
        topic: message.topic,
        partition: message.partition,
        offset: message.offset,
        reason,
        detail: storable(detail).slice(0, 300),
        eventId: storable(eventId),
      },
      'message dead-lettered',
    );
  }
}

/** PostgreSQL text rejects NUL and invalid UTF-8: such payloads are kept whole as `base64:<…>`. */
function printableRaw(value: Buffer): string {
  const text = value.toString('utf8');
  if (text.includes('\u0000') || !Buffer.from(text, 'utf8').equals(value)) return `base64:${value.toString('base64')}`;
  return text;
}

/** PostgreSQL text and jsonb refuse NUL: anything from a message that is stored gets it escaped. */
function storable<T extends string | null | undefined>(value: T): T {
  return (typeof value === 'string' ? value.replaceAll('\u0000', '\\u0000') : value) as T;
}
