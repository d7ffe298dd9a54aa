import { randomUUID } from 'node:crypto';
import type { Db } from '../db/db.js';
import { encodeCursor } from '../db/cursor.js';

export type DeadLetterState = 'PENDING' | 'REPLAYED' | 'DISCARDED';

export interface DeadLetterView {
  id: string;
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  eventId: string | null;
  reason: string;
  detail: string;
  raw: string;
  createdAt: string;
  state: DeadLetterState;
  resolution: { action: 'REPLAYED' | 'DISCARDED'; actor: string; at: string } | null;
}

export interface DeadLetterFilter {
  topic?: string;
  state?: DeadLetterState;
  limit: number;
  /** The (createdAt ISO, id) of the last row of the previous page. */
  after?: [string, string];
}

function query(db: Db) {
  return db
    .selectFrom('dead_letters as d')
    .leftJoin('dead_letter_resolutions as r', 'r.dead_letter_id', 'd.id')
    .select([
      'd.id',
      'd.topic',
      'd.partition',
      'd.offset',
      'd.key',
      'd.event_id',
      'd.reason',
      'd.detail',
      'd.raw',
      'd.created_at',
      'r.action',
      'r.actor',
      'r.resolved_at',
    ]);
}

type Row = Awaited<ReturnType<ReturnType<typeof query>['executeTakeFirstOrThrow']>>;

function view(row: Row): DeadLetterView {
  return {
    id: row.id,
    topic: row.topic,
    partition: row.partition,
    offset: row.offset,
    key: row.key,
    eventId: row.event_id,
    reason: row.reason,
    detail: row.detail,
    raw: row.raw,
    createdAt: row.created_at.toISOString(),
    state: row.action ?? 'PENDING',
    resolution:
      row.action && row.actor && row.resolved_at ? { action: row.action, actor: row.actor, at: row.resolved_at.toISOString() } : null,
  };
}

/** Dead letters, newest first, one page at a time. */
export async function listDeadLetters(db: Db, filter: DeadLetterFilter): Promise<{ items: DeadLetterView[]; nextCursor: string | null }> {
  let q = query(db);
  if (filter.topic) q = q.where('d.topic', '=', filter.topic);
  if (filter.state === 'PENDING') q = q.where('r.action', 'is', null);
  else if (filter.state) q = q.where('r.action', '=', filter.state);
  if (filter.after) {
    const [at, id] = filter.after;
    q = q.where((eb) =>
      eb.or([eb('d.created_at', '<', new Date(at)), eb.and([eb('d.created_at', '=', new Date(at)), eb('d.id', '<', id)])]),
    );
  }
  const rows = await q
    .orderBy('d.created_at', 'desc')
    .orderBy('d.id', 'desc')
    .limit(filter.limit + 1)
    .execute();
  const items = rows.slice(0, filter.limit).map(view);
  const last = items.at(-1);
  return { items, nextCursor: rows.length > filter.limit && last ? encodeCursor([last.createdAt, last.id]) : null };
}

export async function getDeadLetter(db: Db, id: string): Promise<DeadLetterView | undefined> {
  const row = await query(db).where('d.id', '=', id).executeTakeFirst();
  return row ? view(row) : undefined;
}

export type ResolveOutcome =
  | { kind: 'resolved'; deadLetter: DeadLetterView }
  | { kind: 'not_found' }
  | { kind: 'already_resolved'; deadLetter: DeadLetterView }
  | { kind: 'not_replayable'; detail: string };

/**
 * Replays (republishes the stored message to its topic through the outbox) or discards a dead letter, once:
 * the resolution row's primary key makes a second attempt a no-op, reported as already resolved.
 */
export async function resolveDeadLetter(
  db: Db,
  id: string,
  action: 'REPLAYED' | 'DISCARDED',
  actor: string,
  now: number,
): Promise<ResolveOutcome> {
  const outcome = await db.transaction().execute(async (trx): Promise<ResolveOutcome | { kind: 'done' }> => {
    const letter = await trx.selectFrom('dead_letters').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
    if (!letter) return { kind: 'not_found' };
    let outboxId: string | null = null;
    let payload: Record<string, unknown> | null = null;
    if (action === 'REPLAYED') {
      payload = replayablePayload(letter.raw);
      if (!payload)
        return {
          kind: 'not_replayable',
          detail: 'the stored message is not a whole JSON object (binary, truncated or malformed); discard it instead',
        };
      outboxId = randomUUID();
    }
    const inserted = await trx
      .insertInto('dead_letter_resolutions')
      .values({ dead_letter_id: id, action, actor, outbox_id: outboxId, resolved_at: new Date(now) })
      .onConflict((oc) => oc.doNothing())
      .returning('dead_letter_id')
      .executeTakeFirst();
    if (!inserted)
      return { kind: 'already_resolved', deadLetter: view((await query(trx).where('d.id', '=', id).executeTakeFirstOrThrow()) as Row) };
    if (payload && outboxId) {
      // The message goes back unchanged (same event id), keyed as before; replay-of links it to its dead letter.
      await trx
        .insertInto('outbox')
        .values({
          id: outboxId,
          topic: letter.topic,
          key: letter.key ?? 'all',
          payload: JSON.stringify(payload),
          headers: JSON.stringify({ ...(letter.event_id ? { 'event-id': letter.event_id } : {}), 'replay-of': id }),
          dedupe_key: `dead-letter-replay:${id}`,
          created_at: new Date(now),
          published_at: null,
        })
        .execute();
    }
    return { kind: 'done' };
  });
  if (outcome.kind !== 'done') return outcome;
  return { kind: 'resolved', deadLetter: (await getDeadLetter(db, id)) as DeadLetterView };
}

/** The stored raw message as a JSON object, or null when it cannot be sent again as it was. */
function replayablePayload(raw: string): Record<string, unknown> | null {
  if (raw.startsWith('base64:')) return null;
  try {
    const value: unknown = JSON.parse(raw);
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
