import type { Kysely } from 'kysely';
import type { InputEvent } from '../events/inbound.js';
import type { InputTopic } from '../events/topics.js';
import { enqueueEvent } from '../infra/bus/outbox.js';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import { getMatchView, listMatchIds, type MatchFilter, upsertMatch } from './match.repository.js';
import type { MatchView, UpsertMatch } from './match.schemas.js';

export interface MatchesServiceDeps {
  db: Kysely<Database>;
  clock: Clock;
  onOutboxWrite: () => void;
}

/** What the platform asks of matches through the internal API (SPEC §5): upsert, view, input-event replay. */
export class MatchesService {
  constructor(private readonly deps: MatchesServiceDeps) {}

  /** Creates or updates a match in one transaction; throws MatchConflictError when the change is refused. */
  async upsert(id: string, input: UpsertMatch): Promise<{ created: boolean; view: MatchView | undefined }> {
    const { db, clock } = this.deps;
    const { created } = await db.transaction().execute((trx) => upsertMatch(trx, id, input, clock.now()));
    return { created, view: await getMatchView(db, id) };
  }

  /** One page of match views, filtered; `nextAfter` is the id to continue after. */
  async list(filter: MatchFilter): Promise<{ items: MatchView[]; nextAfter: string | null }> {
    const { ids, nextAfter } = await listMatchIds(this.deps.db, filter);
    const views = await Promise.all(ids.map((id) => getMatchView(this.deps.db, id)));
    return { items: views.filter((v): v is MatchView => v !== undefined), nextAfter };
  }

  /** The match view, or undefined for an unknown id. */
  view(id: string): Promise<MatchView | undefined> {
    return getMatchView(this.deps.db, id);
  }

  /**
   * Publishes a validated input event through the outbox, so it reaches the consumer exactly as Kafka input
   * does. A second publish of the same event id is a duplicate, not an error.
   */
  async publishInputEvent(topic: InputTopic, event: InputEvent): Promise<{ duplicate: boolean }> {
    // The envelope's fields go to the envelope; what is left is the topic's payload (unknown fields are dropped).
    const { v: _v, eventId, type: _type, occurredAt, matchId, ...payload } = event;
    const now = this.deps.clock.now();
    const enqueued = await enqueueEvent(this.deps.db, {
      topic,
      matchId,
      key: matchId ?? 'all',
      eventId,
      occurredAt: occurredAt ?? new Date(now).toISOString(),
      now,
      dedupeKey: `input:${topic}:${eventId}`,
      payload,
    });
    this.deps.onOutboxWrite();
    return { duplicate: enqueued === null };
  }
}
