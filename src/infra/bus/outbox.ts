import { randomUUID } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import type { Database } from '../db/schema.js';

/** The envelope every emitted event carries (SPEC §4). */
export interface EventEnvelope {
  v: 'v1';
  eventId: string;
  type: string;
  occurredAt: string;
  matchId: string;
  [field: string]: unknown;
}

export type Db = Kysely<Database> | Transaction<Database>;

export interface EnqueueRequest {
  topic: string;
  /** The match the event is about; also the partition key. Absent only for fleet-wide events (see `key`). */
  matchId: string | undefined;
  /** Partition key when there is no matchId. */
  key?: string;
  /** Event fields beside the envelope's. */
  fields?: Record<string, unknown>;
  /** Makes a second enqueue of the same effect a no-op (unique constraint on outbox.dedupe_key). */
  dedupeKey?: string;
  /** Use this event id (input events replayed through the internal API keep theirs). */
  eventId?: string;
  now: number;
  /** Extra headers beside event-id and event-type (for example a correlation id). */
  headers?: Record<string, string>;
}

/**
 * Writes an event into the transactional outbox, inside the caller's transaction.
 * Returns the envelope, or null when `dedupeKey` says it was already emitted.
 */
export async function enqueueEvent(db: Db, request: EnqueueRequest): Promise<EventEnvelope | null> {
  const eventId = request.eventId ?? randomUUID();
  const envelope = {
    v: 'v1',
    eventId,
    type: request.topic,
    occurredAt: new Date(request.now).toISOString(),
    ...(request.matchId === undefined ? {} : { matchId: request.matchId }),
    ...request.fields,
  } as EventEnvelope;
  // A replayed input event keeps its own eventId (it arrives in `fields`); the header always matches the body.
  const headers = { ...request.headers, 'event-id': envelope.eventId, 'event-type': request.topic };
  const inserted = await db
    .insertInto('outbox')
    .values({
      id: eventId,
      topic: request.topic,
      key: request.matchId ?? request.key ?? 'all',
      payload: JSON.stringify(envelope),
      headers: JSON.stringify(headers),
      dedupe_key: request.dedupeKey ?? null,
      created_at: new Date(request.now),
      published_at: null,
    })
    .onConflict((oc) => oc.doNothing())
    .returning('id')
    .executeTakeFirst();
  return inserted ? envelope : null;
}
