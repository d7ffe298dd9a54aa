/**
 * Twitch EventSub over its webhook transport: verifying a delivery exactly as Twitch signs it, and keeping the
 * pushed channel state (`stream.online`, `stream.offline`, `channel.update`) where every instance reads it.
 *
 * Twitch signs `HMAC-SHA256(secret, message_id + timestamp + raw body)` and sends it as
 * `Twitch-Eventsub-Message-Signature: sha256=<hex>`, with `Twitch-Eventsub-Message-Id`, `-Timestamp` and `-Type`
 * (`webhook_callback_verification`, `notification`, `revocation`). Delivery is at least once: a message id seen
 * before is acknowledged and not applied again; a timestamp older than 10 minutes is refused (replay window).
 * The secret never reaches a log line, an error body or a metric label.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import type { KeyValueStore } from '../../infra/kv/kv-store.js';

/** Twitch: "reject any message with a timestamp older than 10 minutes". */
export const EVENTSUB_REPLAY_WINDOW_MS = 10 * 60_000;
/** A timestamp this far in the future is as suspect as a stale one (clock skew allowance). */
export const EVENTSUB_FUTURE_SKEW_MS = 60_000;
/** The subscription types a channel needs before its pushed state is trusted. */
export const EVENTSUB_TYPES = ['stream.online', 'stream.offline', 'channel.update'] as const;
export type EventSubType = (typeof EVENTSUB_TYPES)[number];

export interface EventSubHeaders {
  readonly messageId: string;
  readonly timestamp: string;
  readonly signature: string;
  readonly messageType: string;
}

/** Reads the four headers (Node lowercases header names); null when any is missing. */
export function eventSubHeaders(headers: Readonly<Record<string, string | string[] | undefined>>): EventSubHeaders | null {
  const one = (name: string) => {
    const v = headers[name];
    return typeof v === 'string' && v.length > 0 ? v : null;
  };
  const messageId = one('twitch-eventsub-message-id');
  const timestamp = one('twitch-eventsub-message-timestamp');
  const signature = one('twitch-eventsub-message-signature');
  const messageType = one('twitch-eventsub-message-type');
  if (!messageId || !timestamp || !signature || !messageType) return null;
  return { messageId, timestamp, signature, messageType };
}

/** `sha256=` + hex HMAC over id + timestamp + body: what Twitch puts in the signature header. */
export function signEventSub(secret: string, messageId: string, timestamp: string, rawBody: Buffer): string {
  const mac = createHmac('sha256', secret);
  mac.update(messageId);
  mac.update(timestamp);
  mac.update(rawBody);
  return `sha256=${mac.digest('hex')}`;
}

export type SignatureCheck =
  | { readonly ok: true; readonly sentAt: number }
  | { readonly ok: false; readonly reason: 'BAD_SIGNATURE' | 'STALE_TIMESTAMP' };

/** Signature first (constant-time), then the replay window: an unsigned caller learns nothing about our clock. */
export function checkEventSubSignature(secret: string, h: EventSubHeaders, rawBody: Buffer, now: number): SignatureCheck {
  const expected = Buffer.from(signEventSub(secret, h.messageId, h.timestamp, rawBody), 'utf8');
  const given = Buffer.from(h.signature, 'utf8');
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'BAD_SIGNATURE' };
  const sentAt = Date.parse(h.timestamp);
  if (!Number.isFinite(sentAt) || now - sentAt > EVENTSUB_REPLAY_WINDOW_MS || sentAt - now > EVENTSUB_FUTURE_SKEW_MS) {
    return { ok: false, reason: 'STALE_TIMESTAMP' };
  }
  return { ok: true, sentAt };
}

const subscriptionSchema = z.object({
  id: z.string().min(1),
  type: z.string().min(1),
  status: z.string().optional(),
  condition: z.object({ broadcaster_user_id: z.string().min(1) }).loose(),
});
const challengeSchema = z.object({ challenge: z.string().min(1), subscription: subscriptionSchema });
const revocationSchema = z.object({ subscription: subscriptionSchema });
const onlineEvent = z
  .object({ broadcaster_user_id: z.string().min(1), broadcaster_user_login: z.string().min(1), type: z.string() })
  .loose();
const offlineEvent = z.object({ broadcaster_user_id: z.string().min(1), broadcaster_user_login: z.string().min(1) }).loose();
const updateEvent = z
  .object({ broadcaster_user_id: z.string().min(1), broadcaster_user_login: z.string().min(1), title: z.string() })
  .loose();
const notificationSchema = z.object({ subscription: subscriptionSchema, event: z.unknown() });

export type EventSubMessage =
  | {
      readonly kind: 'challenge';
      readonly challenge: string;
      readonly userId: string;
      readonly subType: string;
      readonly subscriptionId: string;
    }
  | { readonly kind: 'revocation'; readonly userId: string; readonly subType: string; readonly status: string }
  | { readonly kind: 'online'; readonly userId: string; readonly login: string; readonly streamType: string }
  | { readonly kind: 'offline'; readonly userId: string; readonly login: string }
  | { readonly kind: 'title'; readonly userId: string; readonly login: string; readonly title: string }
  /** A notification of a type we never subscribe to: acknowledged, not applied. */
  | { readonly kind: 'ignored'; readonly subType: string };

/** Parses a verified body by its message type; null when the body does not have the documented shape. */
export function parseEventSubMessage(messageType: string, rawBody: Buffer): EventSubMessage | null {
  let json: unknown;
  try {
    json = JSON.parse(rawBody.toString('utf8'));
  } catch {
    return null;
  }
  if (messageType === 'webhook_callback_verification') {
    const m = challengeSchema.safeParse(json);
    if (!m.success) return null;
    const s = m.data.subscription;
    return {
      kind: 'challenge',
      challenge: m.data.challenge,
      userId: s.condition.broadcaster_user_id,
      subType: s.type,
      subscriptionId: s.id,
    };
  }
  if (messageType === 'revocation') {
    const m = revocationSchema.safeParse(json);
    if (!m.success) return null;
    const s = m.data.subscription;
    return { kind: 'revocation', userId: s.condition.broadcaster_user_id, subType: s.type, status: s.status ?? 'unknown' };
  }
  if (messageType !== 'notification') return null;
  const n = notificationSchema.safeParse(json);
  if (!n.success) return null;
  switch (n.data.subscription.type) {
    case 'stream.online': {
      const e = onlineEvent.safeParse(n.data.event);
      return e.success
        ? {
            kind: 'online',
            userId: e.data.broadcaster_user_id,
            login: e.data.broadcaster_user_login.toLowerCase(),
            streamType: e.data.type,
          }
        : null;
    }
    case 'stream.offline': {
      const e = offlineEvent.safeParse(n.data.event);
      return e.success ? { kind: 'offline', userId: e.data.broadcaster_user_id, login: e.data.broadcaster_user_login.toLowerCase() } : null;
    }
    case 'channel.update': {
      const e = updateEvent.safeParse(n.data.event);
      return e.success
        ? { kind: 'title', userId: e.data.broadcaster_user_id, login: e.data.broadcaster_user_login.toLowerCase(), title: e.data.title }
        : null;
    }
    default:
      return { kind: 'ignored', subType: n.data.subscription.type };
  }
}

/** One pushed field with the time Twitch sent it: the newer of two observations wins. */
export interface Stamped<T> {
  readonly value: T;
  readonly at: number;
}

/** What the pushes (and the Helix reconciliation's seed) say about one broadcaster. */
export interface PushedChannel {
  readonly userId: string;
  /** All of EVENTSUB_TYPES enabled (challenge answered) and none revoked since. */
  readonly confirmed: boolean;
  readonly live: Stamped<boolean> | null;
  /** Twitch stream `type` with the live value (`live`, `rerun`, …). */
  readonly streamType: string | null;
  readonly title: Stamped<string> | null;
}

const stampedBool = z.object({ value: z.boolean(), at: z.number(), type: z.string().nullable().optional() });
const stampedText = z.object({ value: z.string(), at: z.number() });

/**
 * The pushed state in the key-value store (Redis in production), shared by every instance:
 * - `tw:es:msg:<messageId>` claims a delivery (SET NX, kept for the replay window): at-least-once → applied once;
 * - `tw:es:login:<login>` → broadcaster user id (from notifications and the subscription manager);
 * - `tw:es:sub:<userId>:<type>` → the subscription id once its challenge was answered; deleted on revocation;
 * - `tw:es:live:<userId>` / `tw:es:title:<userId>` → `{value, at}`, written only when newer than what is there.
 */
export class EventSubStateStore {
  constructor(
    private readonly kv: KeyValueStore,
    /** How long pushed state stays trusted without any new push or seed (default 6 h). */
    private readonly stateTtlMs = 6 * 60 * 60_000,
  ) {}

  /** True the first time a message id is seen within the replay window. */
  async claimMessage(messageId: string): Promise<boolean> {
    return this.kv.set(`tw:es:msg:${messageId}`, '1', { nx: true, px: EVENTSUB_REPLAY_WINDOW_MS + EVENTSUB_FUTURE_SKEW_MS });
  }

  /** Undo a claim whose effect could not be written, so Twitch's retry applies it. */
  async releaseMessage(messageId: string): Promise<void> {
    await this.kv.del(`tw:es:msg:${messageId}`);
  }

  async rememberLogin(login: string, userId: string): Promise<void> {
    await this.kv.set(`tw:es:login:${login.toLowerCase()}`, userId, { px: this.stateTtlMs * 4 });
  }

  async userIdOf(login: string): Promise<string | null> {
    return this.kv.get(`tw:es:login:${login.toLowerCase()}`);
  }

  /**
   * A subscription answered its challenge. The pushed state from before is dropped: changes made while we were
   * not subscribed never arrived, so it may be stale (the reconciliation seeds it again).
   */
  async confirm(userId: string, subType: string, subscriptionId: string): Promise<void> {
    await this.kv.del(`tw:es:live:${userId}`, `tw:es:title:${userId}`);
    await this.kv.set(`tw:es:sub:${userId}:${subType}`, subscriptionId);
  }

  /** Revoked (user removed, authorization revoked, failures exceeded…): the channel is unknown until resubscribed. */
  async revoke(userId: string, subType: string): Promise<void> {
    await this.kv.del(`tw:es:sub:${userId}:${subType}`, `tw:es:live:${userId}`, `tw:es:title:${userId}`);
  }

  /** The subscription ids we hold for a user, by type (for the subscription manager). */
  async subscriptionsOf(userId: string): Promise<Partial<Record<EventSubType, string>>> {
    const out: Partial<Record<EventSubType, string>> = {};
    const ids = await Promise.all(EVENTSUB_TYPES.map((t) => this.kv.get(`tw:es:sub:${userId}:${t}`)));
    EVENTSUB_TYPES.forEach((t, i) => {
      const id = ids[i];
      if (id) out[t] = id;
    });
    return out;
  }

  async writeLive(userId: string, live: boolean, streamType: string | null, at: number): Promise<void> {
    const current = parseStored(await this.kv.get(`tw:es:live:${userId}`), stampedBool);
    if (current && current.at > at) return; // an older delivery (retry, reordering) never overwrites a newer one
    await this.kv.set(`tw:es:live:${userId}`, JSON.stringify({ value: live, at, type: streamType }), { px: this.stateTtlMs });
  }

  async writeTitle(userId: string, title: string, at: number): Promise<void> {
    const current = parseStored(await this.kv.get(`tw:es:title:${userId}`), stampedText);
    if (current && current.at > at) return;
    await this.kv.set(`tw:es:title:${userId}`, JSON.stringify({ value: title, at }), { px: this.stateTtlMs });
  }

  async read(userId: string): Promise<PushedChannel> {
    const [subs, liveRaw, titleRaw] = await Promise.all([
      this.subscriptionsOf(userId),
      this.kv.get(`tw:es:live:${userId}`),
      this.kv.get(`tw:es:title:${userId}`),
    ]);
    const live = parseStored(liveRaw, stampedBool);
    const title = parseStored(titleRaw, stampedText);
    return {
      userId,
      confirmed: EVENTSUB_TYPES.every((t) => subs[t] !== undefined),
      live: live ? { value: live.value, at: live.at } : null,
      streamType: live?.type ?? null,
      title,
    };
  }
}

function parseStored<T>(raw: string | null, schema: z.ZodType<T>): T | null {
  if (raw === null) return null;
  try {
    const r = schema.safeParse(JSON.parse(raw));
    return r.success ? r.data : null;
  } catch {
    return null;
  }
}

/** What the webhook route answers, decided from the delivery alone (the controller only writes it). */
export type EventSubOutcome =
  | { readonly status: 200; readonly text: string; readonly reason: 'CHALLENGE_ANSWERED' }
  | { readonly status: 204; readonly reason: 'APPLIED' | 'DUPLICATE' | 'REVOKED' | 'IGNORED_TYPE' }
  | { readonly status: 400; readonly reason: 'BAD_MESSAGE' }
  | { readonly status: 403; readonly reason: 'MISSING_HEADERS' | 'BAD_SIGNATURE' | 'STALE_TIMESTAMP' }
  | { readonly status: 503; readonly reason: 'KV_UNAVAILABLE' };

/**
 * Verifies and applies one webhook delivery. Order: headers, signature, replay window, shape, dedupe claim,
 * effect. A store failure releases the claim and answers 503, so Twitch's retry applies the message later.
 */
export class EventSubReceiver {
  constructor(
    private readonly secret: string,
    private readonly store: EventSubStateStore,
    private readonly now: () => number,
  ) {}

  async receive(headers: Readonly<Record<string, string | string[] | undefined>>, rawBody: Buffer): Promise<EventSubOutcome> {
    const h = eventSubHeaders(headers);
    if (!h) return { status: 403, reason: 'MISSING_HEADERS' };
    const check = checkEventSubSignature(this.secret, h, rawBody, this.now());
    if (!check.ok) return { status: 403, reason: check.reason };
    const message = parseEventSubMessage(h.messageType, rawBody);
    if (!message) return { status: 400, reason: 'BAD_MESSAGE' };
    // A challenge is answered every time it comes (Twitch waits for the echo); only effects are deduplicated.
    let claimed = false;
    try {
      if (message.kind === 'challenge') {
        await this.store.confirm(message.userId, message.subType, message.subscriptionId);
        return { status: 200, text: message.challenge, reason: 'CHALLENGE_ANSWERED' };
      }
      if (!(await this.store.claimMessage(h.messageId))) return { status: 204, reason: 'DUPLICATE' };
      claimed = true;
      switch (message.kind) {
        case 'revocation':
          await this.store.revoke(message.userId, message.subType);
          return { status: 204, reason: 'REVOKED' };
        case 'online':
          await this.store.rememberLogin(message.login, message.userId);
          await this.store.writeLive(message.userId, message.streamType === 'live', message.streamType, check.sentAt);
          return { status: 204, reason: 'APPLIED' };
        case 'offline':
          await this.store.rememberLogin(message.login, message.userId);
          await this.store.writeLive(message.userId, false, null, check.sentAt);
          return { status: 204, reason: 'APPLIED' };
        case 'title':
          await this.store.rememberLogin(message.login, message.userId);
          await this.store.writeTitle(message.userId, message.title, check.sentAt);
          return { status: 204, reason: 'APPLIED' };
        case 'ignored':
          return { status: 204, reason: 'IGNORED_TYPE' };
      }
    } catch {
      if (claimed) await this.store.releaseMessage(h.messageId).catch(() => undefined);
      return { status: 503, reason: 'KV_UNAVAILABLE' };
    }
  }
}
