import type { Kysely, Transaction } from 'kysely';
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

/** One consumed topic: its schema, the Redis fast-path key, and the effect (run inside one DB transaction). */
export interface TopicHandler<T extends { eventId: string }> {
  topic: string;
  schema: z.ZodType<T>;
  /** Redis key marking the event as done, e.g. `wk:idemp:srv:reserved:<eventId>` (the DB stays authoritative). */
  idempotencyKey?: (eventId: string) => string;
  handle(event: T, context: EventContext): Promise<void>;
  /** Runs after the transaction committed (for example to wake a poller). Failures are only logged. */
  afterCommit?(event: T): void;
}

export type DeadLetterReason = 'INVALID_JSON' | 'NOT_AN_OBJECT' | 'UNSUPPORTED_VERSION' | 'INVALID_FIELDS' | 'UNKNOWN_TOPIC' | 'HANDLER_FAILED';

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

  /** The MessageHandler given to a MessageSource. */
  readonly handle = async (message: InboundMessage): Promise<void> => {
    const { logger, metrics } = this.options;
    const handler = this.handlers.get(message.topic);
    if (!handler) return this.deadLetter(message, 'UNKNOWN_TOPIC', `no handler for topic ${message.topic}`);

    let value: unknown;
    try {
      value = JSON.parse(message.value.toString('utf8'));
    } catch (error) {
      return this.deadLetter(message, 'INVALID_JSON', (error as Error).message);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      return this.deadLetter(message, 'NOT_AN_OBJECT', 'event value must be a JSON object');
    }
    const version = (value as { v?: unknown }).v;
    if (version !== 'v1') {
      return this.deadLetter(message, 'UNSUPPORTED_VERSION', `unsupported event version ${JSON.stringify(version ?? null)}`);
    }
    const parsed = handler.schema.safeParse(value);
    if (!parsed.success) {
      const detail = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
      return this.deadLetter(message, 'INVALID_FIELDS', detail);
    }
    const event = parsed.data;
    const eventId = event.eventId;
    const log = logger.child({ eventId, topic: message.topic, matchId: (event as { matchId?: string }).matchId });

    const idemKey = handler.idempotencyKey?.(eventId);
    if (idemKey && (await this.fastPathSeen(idemKey, log))) {
      metrics.eventsConsumed.inc({ topic: message.topic, result: 'duplicate' });
      log.debug('duplicate event skipped (idempotency key present)');
      return;
    }

    const maxAttempts = this.options.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.applyOnce(handler, event, message.topic, log);
        metrics.eventsConsumed.inc({ topic: message.topic, result });
        if (result === 'processed') {
          log.info('event processed');
          this.options.onCommitted?.();
          try {
            handler.afterCommit?.(event);
          } catch (error) {
            log.warn({ err: error }, 'after-commit hook failed');
          }
        } else {
          log.info('duplicate event skipped (already processed)');
        }
        if (idemKey) await this.markSeen(idemKey, log);
        return;
      } catch (error) {
        // The database (or the network to it) being down is not the message's fault: deliver it again later.
        if (isTransientInfrastructureError(error)) throw error;
        if (attempt >= maxAttempts) {
          log.error({ err: error, attempts: attempt, reason: 'HANDLER_FAILED' }, 'event effect failed repeatedly; dead-lettering');
          metrics.eventsConsumed.inc({ topic: message.topic, result: 'failed' });
          return this.deadLetter(message, 'HANDLER_FAILED', (error as Error).message, eventId);
        }
        const backoff = this.retry.delay(attempt);
        log.warn({ err: error, attempt, backoffMs: Math.round(backoff) }, 'event effect failed; retrying');
        await this.options.clock.sleep(backoff);
      }
    }
  };

  private async applyOnce(
    handler: TopicHandler<{ eventId: string }>,
    event: { eventId: string },
    topic: string,
    log: Logger,
  ): Promise<'processed' | 'duplicate'> {
    const { db, clock, consumer } = this.options;
    return db.transaction().execute(async (trx) => {
      const now = clock.now();
      const claimed = await trx
        .insertInto('processed_events')
        .values({ consumer, event_id: event.eventId, topic, processed_at: new Date(now) })
        .onConflict((oc) => oc.columns(['consumer', 'event_id']).doNothing())
        .returning('event_id')
        .executeTakeFirst();
      if (!claimed) return 'duplicate';
      await handler.handle(event, { trx, eventId: event.eventId, topic, logger: log, now });
      return 'processed';
    });
  }

  private async fastPathSeen(key: string, log: Logger): Promise<boolean> {
    try {
      return (await this.options.kv.get(key)) !== null;
    } catch (error) {
      log.warn({ err: error, reason: 'KV_UNAVAILABLE' }, 'idempotency fast path unavailable; relying on the database');
      return false;
    }
  }

  private async markSeen(key: string, log: Logger): Promise<void> {
    try {
      await this.options.kv.set(key, '1', { px: this.options.idempotencyTtlMs ?? 7 * 24 * 3600_000 });
    } catch (error) {
      log.warn({ err: error, reason: 'KV_UNAVAILABLE' }, 'could not record idempotency key');
    }
  }

  /** Records the message and emits it on the dead-letter topic in one transaction (once per topic/partition/offset). */
  private async deadLetter(message: InboundMessage, reason: DeadLetterReason, detail: string, eventId?: string): Promise<void> {
    const { db, clock, logger, metrics } = this.options;
    const raw = printableRaw(message.value);
    const now = clock.now();
    const id = randomUUID();
    const sourceEventId = storable(eventId ?? message.headers['event-id'] ?? null);
    const key = storable(message.key);
    detail = storable(detail) ?? '';
    await db.transaction().execute(async (trx) => {
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
          detail: detail.slice(0, 2000),
          raw: raw.slice(0, RAW_LIMIT),
          created_at: new Date(now),
        })
        .onConflict((oc) => oc.doNothing())
        .returning('id')
        .executeTakeFirst();
      if (!inserted) return;
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
          detail: detail.slice(0, 2000),
          raw: raw.slice(0, RAW_LIMIT),
          rawTruncated: raw.length > RAW_LIMIT,
        },
      });
    });
    metrics.deadLetters.inc({ topic: message.topic, reason });
    metrics.eventsConsumed.inc({ topic: message.topic, result: 'dead_lettered' });
    logger.warn(
      { topic: message.topic, partition: message.partition, offset: message.offset, reason, detail: detail.slice(0, 300), eventId: sourceEventId },
      'message dead-lettered',
    );
    this.options.onCommitted?.();
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

const TRANSIENT_PG_CODES = /^(08|53|57P|40001|40P01)/;
const TRANSIENT_NET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN']);

/** Connection loss, server shutdown, resource exhaustion, serialization failure or deadlock: retry, never dead-letter. */
export function isTransientInfrastructureError(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && typeof e === 'object' && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && (TRANSIENT_PG_CODES.test(code) || TRANSIENT_NET_CODES.has(code))) return true;
    const message = (e as { message?: unknown }).message;
    if (typeof message === 'string' && /Connection terminated|connection timeout|not released in time/i.test(message)) return true;
  }
  return false;
}
