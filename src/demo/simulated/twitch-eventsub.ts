/**
 * A protocol-faithful Twitch EventSub fake (webhook transport) on a real HTTP port.
 *
 * - `POST /helix/eventsub/subscriptions` (app token: `Client-Id` + `Authorization: Bearer`, else 401) with
 *   `{type, version, condition: {broadcaster_user_id}, transport: {method: "webhook", callback, secret}}`:
 *   202 with the subscription in `webhook_callback_verification_pending`, then a signed
 *   `webhook_callback_verification` to the callback; the subscription is `enabled` only when the callback echoes
 *   the challenge with a 200, else `webhook_callback_verification_failed`. 409 for a duplicate subscription.
 * - `GET /helix/eventsub/subscriptions` lists them; `DELETE …?id=` removes one (204, 404 when unknown).
 * - `notify`/`revoke` send signed notifications and revocations (Twitch's headers and body shapes); `resend`
 *   redelivers a message with the same id (at-least-once); the timestamp can be backdated (replay tests).
 */
import { createHmac, randomUUID } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from './loopback-server.js';
import type { Clock } from '../../infra/clock.js';

export interface FakeSubscription {
  id: string;
  status: string;
  type: string;
  version: string;
  condition: { broadcaster_user_id: string };
  transport: { method: 'webhook'; callback: string };
  created_at: string;
  cost: number;
}

export interface SentMessage {
  readonly id: string;
  readonly type: string;
  readonly timestamp: string;
  readonly body: string;
  readonly callback: string;
  readonly secret: string;
  readonly subscriptionType: string;
}

export class FakeTwitchEventSub {
  readonly subscriptions = new Map<string, FakeSubscription & { secret: string }>();
  readonly sent: SentMessage[] = [];
  private server: Server | null = null;
  private base = '';

  private constructor(private readonly clock: Clock) {}

  static async start(options: { clock: Clock }): Promise<FakeTwitchEventSub> {
    const fake = new FakeTwitchEventSub(options.clock);
    ({ server: fake.server, base: fake.base } = await listenOnLoopback((req, res) => {
      fake.handle(req, res).catch(() => {
        if (!res.headersSent) json(res, 500, { error: 'Internal Server Error', status: 500, message: '' });
      });
    }));
    return fake;
  }

  /** Like `https://api.twitch.tv/helix`. */
  get apiUrl(): string {
    return `${this.base}/helix`;
  }

  /** Sends a signed notification for every enabled subscription of `type` on the broadcaster. */
  async notify(
    type: 'stream.online' | 'stream.offline' | 'channel.update',
    broadcaster: { id: string; login: string },
    event: Record<string, unknown> = {},
    options: { sentAt?: number } = {},
  ): Promise<{ message: SentMessage; status: number; text: string }[]> {
    const results = [];
    for (const sub of this.subscriptions.values()) {
      if (sub.type !== type || sub.status !== 'enabled' || sub.condition.broadcaster_user_id !== broadcaster.id) continue;
      const body = JSON.stringify({
        subscription: publicView(sub),
        event: {
          broadcaster_user_id: broadcaster.id,
          broadcaster_user_login: broadcaster.login,
          broadcaster_user_name: broadcaster.login,
          ...defaults(type),
          ...event,
        },
      });
      results.push(await this.deliver(sub, 'notification', body, options.sentAt));
    }
    return results;
  }

  /** Revokes a subscription (`authorization_revoked`, `user_removed`, …) and tells the callback, as Twitch does. */
  async revoke(subscriptionId: string, status = 'authorization_revoked'): Promise<{ status: number; text: string }> {
    const sub = this.subscriptions.get(subscriptionId);
    if (!sub) throw new Error(`no subscription ${subscriptionId}`);
    sub.status = status;
    this.subscriptions.delete(subscriptionId);
    return this.deliver(sub, 'revocation', JSON.stringify({ subscription: publicView(sub) }));
  }

  /** Delivers a message again with the same id, timestamp and body (at-least-once delivery). */
  async resend(message: SentMessage): Promise<{ status: number; text: string }> {
    return post(message);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await closeLoopback(server);
  }

  private async deliver(sub: FakeSubscription & { secret: string }, type: string, body: string, sentAt?: number) {
    const message: SentMessage = {
      id: randomUUID(),
      type,
      timestamp: new Date(sentAt ?? this.clock.now()).toISOString(),
      body,
      callback: sub.transport.callback,
      secret: sub.secret,
      subscriptionType: sub.type,
    };
    this.sent.push(message);
    return { message, ...(await post(message)) };
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base);
    const body = await readBody(req);
    if (url.pathname !== '/helix/eventsub/subscriptions') return void json(res, 404, { error: 'Not Found', status: 404, message: '' });
    if (!req.headers['client-id'] || !/^Bearer \S+$/i.test(String(req.headers.authorization ?? ''))) {
      return void json(res, 401, { error: 'Unauthorized', status: 401, message: 'Invalid OAuth token' });
    }
    await this.handleSubscriptions(req, url, body, res);
  }

  /** The subscription endpoints (also served on the Helix fake's host through `attachEventSub`); returns the status. */
  async handleSubscriptions(req: IncomingMessage, url: URL, body: string, res: ServerResponse): Promise<number> {
    if (req.method === 'GET') {
      const data = [...this.subscriptions.values()].map(publicView);
      return json(res, 200, {
        data,
        total: data.length,
        total_cost: data.reduce((s, d) => s + d.cost, 0),
        max_total_cost: 10_000,
        pagination: {},
      });
    }
    if (req.method === 'DELETE') {
      const id = url.searchParams.get('id') ?? '';
      if (!this.subscriptions.delete(id)) return json(res, 404, { error: 'Not Found', status: 404, message: 'subscription not found' });
      res.writeHead(204).end();
      return 204;
    }
    if (req.method !== 'POST') return json(res, 405, { error: 'Method Not Allowed', status: 405, message: '' });
    let input: CreateRequest | null;
    try {
      input = JSON.parse(body) as CreateRequest | null;
    } catch {
      return json(res, 400, { error: 'Bad Request', status: 400, message: 'invalid JSON' });
    }
    const secret = input?.transport?.secret;
    const callback = input?.transport?.callback;
    const userId = input?.condition?.broadcaster_user_id;
    if (
      typeof input?.type !== 'string' ||
      typeof userId !== 'string' ||
      input?.transport?.method !== 'webhook' ||
      typeof callback !== 'string'
    ) {
      return json(res, 400, { error: 'Bad Request', status: 400, message: 'invalid subscription' });
    }
    // Twitch: the secret is an ASCII string of 10 to 100 characters.
    if (typeof secret !== 'string' || secret.length < 10 || secret.length > 100) {
      return json(res, 400, { error: 'Bad Request', status: 400, message: 'invalid transport secret' });
    }
    for (const s of this.subscriptions.values()) {
      if (s.type === input.type && s.condition.broadcaster_user_id === userId && s.transport.callback === callback) {
        return json(res, 409, { error: 'Conflict', status: 409, message: 'subscription already exists' });
      }
    }
    const sub = {
      id: randomUUID(),
      status: 'webhook_callback_verification_pending',
      type: input.type,
      version: String(input.version ?? '1'),
      condition: { broadcaster_user_id: userId },
      transport: { method: 'webhook' as const, callback },
      created_at: new Date(this.clock.now()).toISOString(),
      cost: 0,
      secret,
    };
    this.subscriptions.set(sub.id, sub);
    json(res, 202, { data: [publicView(sub)], total: this.subscriptions.size, total_cost: 0, max_total_cost: 10_000 });
    const challenge = randomUUID();
    const answer = await this.deliver(sub, 'webhook_callback_verification', JSON.stringify({ challenge, subscription: publicView(sub) }));
    sub.status = answer.status === 200 && answer.text === challenge ? 'enabled' : 'webhook_callback_verification_failed';
    return 202;
  }
}

/** The create body as sent; every field is checked before use. */
interface CreateRequest {
  type?: unknown;
  version?: unknown;
  condition?: { broadcaster_user_id?: unknown };
  transport?: { method?: unknown; callback?: unknown; secret?: unknown };
}

function defaults(type: string): Record<string, unknown> {
  if (type === 'stream.online') return { id: randomUUID(), type: 'live', started_at: new Date().toISOString() };
  if (type === 'channel.update')
    return { title: '', language: 'en', category_id: '32399', category_name: 'Counter-Strike', content_classification_labels: [] };
  return {};
}

function publicView(sub: FakeSubscription): FakeSubscription {
  const { id, status, type, version, condition, transport, created_at, cost } = sub;
  return { id, status, type, version, condition, transport, created_at, cost };
}

async function post(m: SentMessage): Promise<{ status: number; text: string }> {
  const signature = `sha256=${createHmac('sha256', m.secret)
    .update(m.id + m.timestamp + m.body)
    .digest('hex')}`;
  try {
    const res = await fetch(m.callback, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'twitch-eventsub-message-id': m.id,
        'twitch-eventsub-message-retry': '0',
        'twitch-eventsub-message-type': m.type,
        'twitch-eventsub-message-signature': signature,
        'twitch-eventsub-message-timestamp': m.timestamp,
        'twitch-eventsub-subscription-type': m.subscriptionType,
        'twitch-eventsub-subscription-version': '1',
      },
      body: m.body,
      signal: AbortSignal.timeout(10_000),
    });
    return { status: res.status, text: await res.text() };
  } catch {
    return { status: 0, text: '' };
  }
}

function json(res: ServerResponse, status: number, body: unknown): number {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
  return status;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
