/** `str:grace:<matchId>:<side>` for operators (`redis-cli keys "str:grace:*"`): set while an episode is open, never read for a decision. */
import type { Logger } from 'pino';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import { iso } from './evidence-policy.js';
import type { MatchPlan } from './match-plan.js';
import { graceDeadline, type GraceOptions, type Side } from './policy.js';
import { SIDES } from './stream-health.repository.js';

export const graceKey = (matchId: string, side: Side) => `str:grace:${matchId}:${side}`;

export async function mirrorGrace(kv: KeyValueStore, plan: MatchPlan, grace: Required<GraceOptions>, logger: Logger): Promise<void> {
  for (const side of SIDES) {
    const s = plan.sides[side];
    const ep = s.next.episode;
    try {
      if (ep?.state === 'open') {
        const value = {
          episodeId: ep.id,
          openedAt: iso(ep.openedAt),
          anchorAt: iso(ep.anchorAt),
          graceDeadlineAt: iso(graceDeadline(ep, grace.graceMs)),
          elapsedMs: ep.elapsedMs,
          pausedMs: ep.pausedMs,
          violations: ep.violations,
        };
        await kv.set(graceKey(plan.match.id, side), JSON.stringify(value), { px: grace.graceMs + 10 * grace.checkEveryMs });
      } else if (s.prev.episode?.state === 'open' || s.reset) {
        await kv.del(graceKey(plan.match.id, side));
      }
    } catch (err) {
      logger.debug({ err, reason: 'KV_UNAVAILABLE' }, 'grace mirror not updated (PostgreSQL stays authoritative)');
    }
  }
}
