/**
 * Keeps Twitch's EventSub subscriptions equal to what the active matches need, once per tick across the fleet:
 * the three types per broadcaster of an active VERIFIED_STREAM match, created when the match becomes active and
 * deleted when it ends. Twitch's listing is the truth: a subscription it shows `enabled` is confirmed in the
 * store, and one it no longer shows (or shows failed or revoked) is unconfirmed, so that channel reads unknown
 * until it is enabled again. Every change costs a Helix point, so a tick makes at most `maxChanges` of them.
 */
import { z } from 'zod';
import type { Logger } from '../../observability/logger.js';
import { EVENTSUB_TYPES, type EventSubStateStore } from './eventsub.js';
import type { HelixClient } from './helix-client.js';

const listSchema = z.object({
  data: z.array(
    z.object({
      id: z.string(),
      status: z.string(),
      type: z.string(),
      condition: z.object({ broadcaster_user_id: z.string().optional() }).loose(),
      transport: z.object({ method: z.string(), callback: z.string().optional() }).loose(),
    }),
  ),
  pagination: z.object({ cursor: z.string().optional() }).optional(),
});
const usersSchema = z.object({ data: z.array(z.object({ id: z.string(), login: z.string() })) });

export interface SubscriptionPlan {
  readonly create: { userId: string; type: string }[];
  readonly remove: string[];
  readonly confirm: { userId: string; type: string; id: string }[];
  readonly unconfirm: { userId: string; type: string }[];
}

/** What to change (pure): wanted users × types against what Twitch lists for our callback. */
export function planSubscriptions(
  wanted: ReadonlySet<string>,
  listed: readonly { id: string; status: string; type: string; userId: string }[],
): SubscriptionPlan {
  const plan: SubscriptionPlan = { create: [], remove: [], confirm: [], unconfirm: [] };
  const present = new Set<string>();
  for (const s of listed) {
    const usable = s.status === 'enabled' || s.status === 'webhook_callback_verification_pending';
    if (!wanted.has(s.userId) || !usable) {
      plan.remove.push(s.id);
      plan.unconfirm.push({ userId: s.userId, type: s.type });
      continue;
    }
    present.add(`${s.userId}|${s.type}`);
    if (s.status === 'enabled') plan.confirm.push({ userId: s.userId, type: s.type, id: s.id });
    else plan.unconfirm.push({ userId: s.userId, type: s.type });
  }
  for (const userId of wanted) {
    for (const type of EVENTSUB_TYPES) {
      if (!present.has(`${userId}|${type}`)) plan.create.push({ userId, type });
    }
  }
  return plan;
}

export class EventSubSubscriptions {
  constructor(
    private readonly helix: HelixClient,
    private readonly store: EventSubStateStore,
    private readonly options: { callbackUrl: string; secret: string; maxChanges: number; logger?: Logger },
  ) {}

  /** One reconciliation; returns what it did (for logs and tests). Stops early on any Helix failure. */
  async reconcile(logins: readonly string[]): Promise<{ created: number; removed: number; unresolved: number } | null> {
    const ids = await this.resolve(logins);
    if (!ids) return null;
    const listed = await this.list();
    if (!listed) return null;
    const plan = planSubscriptions(new Set(ids.values()), listed);
    // A subscription Twitch shows enabled is confirmed even if its challenge reached another instance that lost the write.
    for (const c of plan.confirm) {
      const held = await this.store.subscriptionsOf(c.userId);
      if (held[c.type as keyof typeof held] !== c.id) await this.store.confirm(c.userId, c.type, c.id);
    }
    for (const u of plan.unconfirm) await this.store.revoke(u.userId, u.type);
    let budget = this.options.maxChanges;
    let removed = 0;
    let created = 0;
    for (const id of plan.remove) {
      if (budget-- <= 0) break;
      const r = await this.helix.appRequest('DELETE', `/eventsub/subscriptions?id=${encodeURIComponent(id)}`);
      if (typeof r !== 'string' && (r.status === 204 || r.status === 404)) removed++;
    }
    for (const c of plan.create) {
      if (budget-- <= 0) break;
      const r = await this.helix.appRequest('POST', '/eventsub/subscriptions', {
        type: c.type,
        version: '1',
        condition: { broadcaster_user_id: c.userId },
        transport: { method: 'webhook', callback: this.options.callbackUrl, secret: this.options.secret },
      });
      if (typeof r !== 'string' && (r.status === 202 || r.status === 409)) created++;
      else this.options.logger?.warn({ type: c.type, status: typeof r === 'string' ? r : r.status }, 'eventsub subscription not created');
    }
    return { created, removed, unresolved: logins.length - ids.size };
  }

  /** Login → broadcaster user id, from the store or Helix `GET /users` (100 logins a request). */
  private async resolve(logins: readonly string[]): Promise<Map<string, string> | null> {
    const ids = new Map<string, string>();
    const unknown: string[] = [];
    for (const login of logins) {
      const id = await this.store.userIdOf(login);
      if (id) ids.set(login, id);
      else unknown.push(login);
    }
    for (let i = 0; i < unknown.length; i += 100) {
      const query = unknown
        .slice(i, i + 100)
        .map((l) => `login=${encodeURIComponent(l)}`)
        .join('&');
      const r = await this.helix.appRequest('GET', `/users?${query}`);
      if (typeof r === 'string' || r.status !== 200) return ids.size > 0 ? ids : null;
      const parsed = usersSchema.safeParse(safeJson(r.body));
      if (!parsed.success) return null;
      for (const u of parsed.data.data) {
        ids.set(u.login.toLowerCase(), u.id);
        await this.store.rememberLogin(u.login, u.id);
      }
    }
    return ids;
  }

  /** Our subscriptions (this callback), all pages; null when the listing failed (then nothing changes). */
  private async list(): Promise<{ id: string; status: string; type: string; userId: string }[] | null> {
    const out: { id: string; status: string; type: string; userId: string }[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 1_000; page++) {
      const r = await this.helix.appRequest('GET', `/eventsub/subscriptions${cursor ? `?after=${encodeURIComponent(cursor)}` : ''}`);
      if (typeof r === 'string' || r.status !== 200) return null;
      const parsed = listSchema.safeParse(safeJson(r.body));
      if (!parsed.success) return null;
      for (const s of parsed.data.data) {
        if (s.transport.method !== 'webhook' || s.transport.callback !== this.options.callbackUrl || !s.condition.broadcaster_user_id)
          continue;
        out.push({ id: s.id, status: s.status, type: s.type, userId: s.condition.broadcaster_user_id });
      }
      cursor = parsed.data.pagination?.cursor;
      if (!cursor) return out;
    }
    return null;
  }
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}
