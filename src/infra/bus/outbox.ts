import { randomUUID } from 'node:crypto';
import type { Db } from '../db/db.js';
import type { EnvelopeField, EventEnvelope } from '../../events/envelope.js';
import type { EventPayloads, EventTopic } from '../../events/outbound.js';

/** Payload fields may not name an envelope field: the compiler refuses them, and the envelope wins anyway. */
type PayloadOf<T extends EventTopic> = EventPayloads[T] & { [K in EnvelopeField]?: never };

export interface EnqueueRequest<T extends EventTopic> {
  topic: T;
  /** The match the event is about; also the partition key. Absent only for fleet-wide events (see `key`). */
  matchId: string | undefined;
  /** Partition key when there is no matchId. */
  key?: string;
  /** The topic's payload: the fields beside the envelope. */
  payload: PayloadOf<T>;
  /** Makes a second enqueue of the same effect a no-op (unique constraint on outbox.dedupe_key). */
  dedupeKey?: string;
  /** Use this event id (input events replayed through the internal API keep theirs). */
  eventId?: string;
  /** The event's own time when it has one (a replayed input event); `now` otherwise. */
  occurredAt?: string;
  now: number;
  /** Extra headers beside event-id and event-type (for example a correlation id). */
  headers?: Record<string, string>;
}

/** The outbox row of one request and the envelope it carries (the one place an envelope is built). */
function outboxRow<T extends EventTopic>(request: EnqueueRequest<T>) {
  // The row's id is always ours; a replayed input event keeps its own eventId, which need not be a UUID.
  const id = randomUUID();
  const eventId = request.eventId ?? id;
  // The envelope is spread last: no payload field can override eventId, type, v, occurredAt or matchId.
  const envelope = {
    ...request.payload,
    v: 'v1',
    eventId,
    type: request.topic,
    occurredAt: request.occurredAt ?? new Date(request.now).toISOString(),
    ...(request.matchId === undefined ? {} : { matchId: request.matchId }),
  } as EventEnvelope<T, EventPayloads[T]>;
  const headers = { ...request.headers, 'event-id': envelope.eventId, 'event-type': request.topic };
  const row = {
    id,
    topic: request.topic,
    key: request.matchId ?? request.key ?? 'all',
    payload: JSON.stringify(envelope),
    headers: JSON.stringify(headers),
    dedupe_key: request.dedupeKey ?? null,
    created_at: new Date(request.now),
    published_at: null,
  };
  return { row, envelope };
}

/**
 * Writes an event into the transactional outbox, inside the caller's transaction.
 * Returns the envelope, or null when `dedupeKey` says it was already emitted.
 */
export async function enqueueEvent<T extends EventTopic>(
  db: Db,
  request: EnqueueRequest<T>,
): Promise<EventEnvelope<T, EventPayloads[T]> | null> {
  const { row, envelope } = outboxRow(request);
  const inserted = await db
    .insertInto('outbox')
    .values(row)
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted ? envelope : null;
}

/**
 * enqueueEvent for several events in one multi-row INSERT, inside the caller's transaction. Returns, per request
 * in order, its envelope or null when its `dedupeKey` says it was already emitted.
 */
export async function enqueueEvents<T extends EventTopic>(
  db: Db,
  requests: readonly EnqueueRequest<T>[],
): Promise<(EventEnvelope<T, EventPayloads[T]> | null)[]> {
  if (requests.length === 0) return [];
  const rows = requests.map((request) => outboxRow(request));
  const inserted = new Set<string>();
  // 8 columns a row: 1,000 rows stay far below PostgreSQL's 65,535 bind parameters.
  for (let i = 0; i < rows.length; i += 1_000) {
    const written = await db
      .insertInto('outbox')
      .values(rows.slice(i, i + 1_000).map((r) => r.row))
      .onConflict((oc) => oc.doNothing())
      .returning('id')
      .execute();
    for (const w of written) inserted.add(w.id);
  }
  return rows.map((r) => (inserted.has(r.row.id) ? r.envelope : null));
}
