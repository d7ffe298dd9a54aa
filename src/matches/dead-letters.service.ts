import { type DeadLetterFilter, getDeadLetter, listDeadLetters, resolveDeadLetter } from '../infra/bus/dead-letter.repository.js';
import type { MatchesServiceDeps } from './matches.service.js';

/** The database, a clock and the outbox nudge, as the match service has them. */
export type DeadLettersServiceDeps = Pick<MatchesServiceDeps, 'db' | 'clock' | 'onOutboxWrite'>;

/** What operators do with dead letters through the internal API: list, look, replay once, discard. */
export class DeadLettersService {
  constructor(private readonly deps: DeadLettersServiceDeps) {}

  list(filter: DeadLetterFilter) {
    return listDeadLetters(this.deps.db, filter);
  }

  get(id: string) {
    return getDeadLetter(this.deps.db, id);
  }

  async resolve(id: string, action: 'REPLAYED' | 'DISCARDED', actor: string) {
    const outcome = await resolveDeadLetter(this.deps.db, id, action, actor, this.deps.clock.now());
    if (outcome.kind === 'resolved' && action === 'REPLAYED') this.deps.onOutboxWrite();
    return outcome;
  }
}
