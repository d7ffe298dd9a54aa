import type { Kysely } from 'kysely';
import type { InputEvent } from '../events/inbound.js';
import type { InputTopic } from '../events/topics.js';
import { enqueueEvent } from '../infra/bus/outbox.js';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import { enforcementGaps } from '../stream-health/enforceability.js';
import { type GraceOf, getMatchView, listMatchIds, type MatchFilter, upsertMatch } from './match.repository.js';
import type { MatchView, UpsertMatch } from './match.schemas.js';

export interface MatchesServiceDeps {
  db: Kysely<Database>;
  clock: Clock;
  onOutboxWrite: () => void;
  /** The platforms whose channels this service can observe (the configured telemetry providers). */
  telemetryPlatforms: ReadonlySet<string>;
  /** The configured enforcement policies' names: a match's enforcementMode must be one. */
  enforcementModes: ReadonlySet<string>;
  /** The grace (ms) of each configured enforcement policy, by name: the match view's grace timers. */
  graceOf?: GraceOf;
}

/** A match refused as bad input (answered 400 with `code` and `body`). */
export class MatchRefusedError extends Error {
  constructor(
    readonly code: 'unenforceable_match' | 'unknown_enforcement_mode',
    message: string,
    readonly body: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'MatchRefusedError';
  }
}

/** What the platform asks of matches through the internal API (SPEC §5): upsert, view, input-event replay. */
export class MatchesService {
  constructor(private readonly deps: MatchesServiceDeps) {}

  /**
   * Creates or updates a match in one transaction; throws MatchConflictError when the change is refused, and
   * MatchRefusedError for a VERIFIED_STREAM match nobody could observe (it would never be enforced) unless the
   * platform waives it (the waiver is recorded with the gaps it covers).
   */
  async upsert(id: string, input: UpsertMatch): Promise<{ created: boolean; view: MatchView | undefined }> {
    const { db, clock, enforcementModes } = this.deps;
    if (input.enforcementMode !== undefined && !enforcementModes.has(input.enforcementMode)) {
      const known = [...enforcementModes].sort();
      throw new MatchRefusedError(
        'unknown_enforcement_mode',
        `enforcementMode "${input.enforcementMode}" is not one of: ${known.join(', ')}`,
        { known },
      );
    }
    const gaps = input.mode === 'VERIFIED_STREAM' ? enforcementGaps(input.players, this.deps.telemetryPlatforms) : [];
    if (gaps.length > 0 && !input.streamWaiver) {
      throw new MatchRefusedError('unenforceable_match', gaps.map((g) => g.detail).join('; '), { gaps });
    }
    const waiver = input.streamWaiver ? { ...input.streamWaiver, gaps, at: new Date(clock.now()).toISOString() } : null;
    const { created } = await db.transaction().execute((trx) => upsertMatch(trx, id, input, clock.now(), waiver));
    return { created, view: await getMatchView(db, id, this.deps.graceOf) };
  }

  /** One page of match views, filtered; `nextAfter` is the id to continue after. */
  async list(filter: MatchFilter): Promise<{ items: MatchView[]; nextAfter: string | null }> {
    const { ids, nextAfter } = await listMatchIds(this.deps.db, filter);
    const views = await Promise.all(ids.map((id) => getMatchView(this.deps.db, id, this.deps.graceOf)));
    return { items: views.filter((v): v is MatchView => v !== undefined), nextAfter };
  }

  /** The match view, or undefined for an unknown id. */
  view(id: string): Promise<MatchView | undefined> {
    return getMatchView(this.deps.db, id, this.deps.graceOf);
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
