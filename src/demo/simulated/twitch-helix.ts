/**
 * A protocol-faithful Twitch fake on a real HTTP port: the client-credentials token endpoint and Helix
 * `GET /streams`, driven by an injectable clock (see shared/spec/stream-telemetry.md, "Twitch").
 *
 * - `POST /oauth2/token` (form body or query): client_id + client_secret + grant_type=client_credentials →
 *   `{access_token, expires_in, token_type}`; tokens expire on the clock, or all at once with `expireTokens()`.
 * - `GET /helix/streams?user_login=…&first=…&after=…`: `Client-Id` + `Authorization: Bearer` required (401
 *   otherwise); more than 100 `user_login` → 400; `first` defaults to 20 (max 100) with a cursor, as on Twitch;
 *   offline users are left out; `Ratelimit-Limit/Remaining/Reset` (epoch seconds) from an 800-point bucket per
 *   client per minute; 429 when it is empty.
 * - `GET /helix/users?login=…` gives the user ids of scripted logins; `/helix/eventsub/subscriptions` is served by an
 *   attached EventSub fake (twitch-eventsub.ts) behind the same app-token check.
 * - Channel states are scripted as timelines against the clock; faults (status, hang, reset) are queued per route.
 * - Every answer carries `Date` from the injected clock (an origin server's clock, RFC 9110 §6.6.1).
 * - `freeze()`: Get Streams answers with the state and `Date` of that moment until `thaw()` (a cache or a stuck
 *   edge replaying a snapshot).
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from './loopback-server.js';
import type { Clock } from '../../infra/clock.js';

export interface TwitchChannelState {
  live: boolean;
  /** Helix `type`; defaults to 'live' when live. Twitch also shows '' on error, or rerun/premiere/playlist types. */
  type?: string;
  title?: string;
}

export type TwitchFault =
  | { kind: 'status'; status: number; body?: unknown; headers?: Record<string, string> }
  /** Accept the request and never answer (the client must time out). */
  | { kind: 'hang' }
  /** Destroy the connection without a response. */
  | { kind: 'reset' };

export type TwitchRoute = 'token' | 'streams';

export interface FakeTwitchOptions {
  clock: Clock;
  clientId?: string;
  clientSecret?: string;
  /** Lifetime of issued tokens, in seconds (Twitch: about 60 days; tests use less). */
  tokenTtlSeconds?: number;
  /** Points per client per minute. */
  bucketSize?: number;
}

export interface TwitchRequestLog {
  route: TwitchRoute | 'other';
  method: string;
  at: number;
  status: number;
  logins: string[];
  first: string | null;
  /** The bearer token presented, if any (tests compare tokens; they are fake). */
  bearer: string | null;
}

interface TimelineEntry extends TwitchChannelState {
  at: number;
}

export class FakeTwitchHelix {
  readonly clientId: string;
  readonly clientSecret: string;
  tokenTtlSeconds: number;
  bucketSize: number;
  readonly requests: TwitchRequestLog[] = [];
  tokensIssued = 0;

  private readonly clock: Clock;
  private readonly tokens = new Map<string, { clientId: string; expiresAt: number }>();
  private readonly timelines = new Map<string, TimelineEntry[]>();
  private readonly userIds = new Map<string, string>();
  private readonly faults: Record<TwitchRoute, TwitchFault[]> = { token: [], streams: [] };
  private readonly buckets = new Map<string, { remaining: number; resetAt: number }>();
  private server: Server | null = null;
  private base = '';
  /** Set by freeze(): Get Streams answers as of this time. */
  private frozenAt: number | null = null;
  private eventSub: EventSubRoutes | null = null;

  private constructor(options: FakeTwitchOptions) {
    this.clock = options.clock;
    this.clientId = options.clientId ?? 'fake-client-id';
    this.clientSecret = options.clientSecret ?? 'fake-client-secret-0123456789abcdef';
    this.tokenTtlSeconds = options.tokenTtlSeconds ?? 5_000_000;
    this.bucketSize = options.bucketSize ?? 800;
  }

  static async start(options: FakeTwitchOptions): Promise<FakeTwitchHelix> {
    const fake = new FakeTwitchHelix(options);
    await fake.listen();
    return fake;
  }

  /** Base of Helix, like `https://api.twitch.tv/helix`. */
  get apiUrl(): string {
    return `${this.base}/helix`;
  }

  /** Like `https://id.twitch.tv/oauth2/token`. */
  get authUrl(): string {
    return `${this.base}/oauth2/token`;
  }

  /** The channel's state from now on. */
  setChannel(login: string, state: TwitchChannelState): void {
    this.script(login, [{ at: this.clock.now(), ...state }]);
  }

  /** Adds timeline entries (absolute clock times); the latest entry at or before now is the state. */
  script(login: string, entries: TimelineEntry[]): void {
    const key = login.toLowerCase();
    const list = [...(this.timelines.get(key) ?? []), ...entries].sort((a, b) => a.at - b.at);
    this.timelines.set(key, list);
    if (!this.userIds.has(key)) this.userIds.set(key, String(100_000 + this.userIds.size));
  }

  /** From now on Get Streams answers with the states and `Date` of `at` (default now), until thaw(). */
  freeze(at = this.clock.now()): void {
    this.frozenAt = at;
  }

  thaw(): void {
    this.frozenAt = null;
  }

  /** Serves `/helix/eventsub/subscriptions` through an EventSub fake, behind this fake's app-token check. */
  attachEventSub(routes: EventSubRoutes): void {
    this.eventSub = routes;
  }

  /** Every issued token is expired from now on (the next call with one gets a 401). */
  expireTokens(): void {
    for (const t of this.tokens.values()) t.expiresAt = Math.min(t.expiresAt, this.clock.now());
  }

  /** Queue a fault for the next `times` requests to a route. */
  failNext(route: TwitchRoute, fault: TwitchFault, times = 1): void {
    for (let i = 0; i < times; i++) this.faults[route].push(fault);
  }

  /** Empty (or set) a client's bucket for the rest of its current window. */
  setRemaining(remaining: number, clientId = this.clientId): void {
    const bucket = this.bucket(clientId);
    bucket.remaining = remaining;
  }

  streamsRequests(): TwitchRequestLog[] {
    return this.requests.filter((r) => r.route === 'streams');
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await closeLoopback(server);
  }

  // ─── HTTP ──────────────────────────────────────────────────────────────────────────────────────────────────

  private async listen(): Promise<void> {
    ({ server: this.server, base: this.base } = await listenOnLoopback((req, res) => {
      this.handle(req, res).catch(() => {
        if (!res.headersSent) this.json(res, 500, { error: 'Internal Server Error', status: 500, message: '' });
      });
    }));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base);
    const body = await readBody(req);
    const route: TwitchRoute | 'other' =
      url.pathname === '/oauth2/token' ? 'token' : url.pathname === '/helix/streams' ? 'streams' : 'other';
    const entry: TwitchRequestLog = {
      route,
      method: req.method ?? '',
      at: this.clock.now(),
      status: 0,
      logins: url.searchParams.getAll('user_login'),
      first: url.searchParams.get('first'),
      bearer: bearerOf(req),
    };
    this.requests.push(entry);

    if (route !== 'other') {
      const fault = this.faults[route].shift();
      if (fault?.kind === 'hang') return; // the socket is destroyed on close()
      if (fault?.kind === 'reset') {
        entry.status = -1;
        req.socket.destroy();
        return;
      }
      if (fault?.kind === 'status') {
        entry.status = this.json(
          res,
          fault.status,
          fault.body ?? { error: 'Fault', status: fault.status, message: 'injected' },
          fault.headers,
        );
        return;
      }
    }

    if (route === 'token') entry.status = this.token(req, url, body, res);
    else if (route === 'streams') entry.status = this.streams(req, url, res);
    else if (url.pathname === '/helix/users' || (this.eventSub && url.pathname === '/helix/eventsub/subscriptions')) {
      if (!this.validToken(req)) entry.status = this.json(res, 401, { error: 'Unauthorized', status: 401, message: 'Invalid OAuth token' });
      else if (url.pathname === '/helix/users') entry.status = this.users(url, res);
      else entry.status = await (this.eventSub as EventSubRoutes).handleSubscriptions(req, url, body, res);
    } else {
      entry.status = 404;
      this.json(res, 404, { error: 'Not Found', status: 404, message: '' });
    }
  }

  private token(req: IncomingMessage, url: URL, body: string, res: ServerResponse): number {
    if (req.method !== 'POST') return this.json(res, 405, { status: 405, message: 'method not allowed' });
    const form = new URLSearchParams(body);
    const param = (name: string) => form.get(name) ?? url.searchParams.get(name);
    if (param('client_id') !== this.clientId) return this.json(res, 400, { status: 400, message: 'invalid client' });
    if (param('client_secret') !== this.clientSecret) return this.json(res, 403, { status: 403, message: 'invalid client secret' });
    if (param('grant_type') !== 'client_credentials') return this.json(res, 400, { status: 400, message: 'unsupported grant type' });
    const accessToken = randomBytes(15).toString('hex');
    this.tokens.set(accessToken, { clientId: this.clientId, expiresAt: this.clock.now() + this.tokenTtlSeconds * 1000 });
    this.tokensIssued++;
    return this.json(res, 200, { access_token: accessToken, expires_in: this.tokenTtlSeconds, token_type: 'bearer' });
  }

  private streams(req: IncomingMessage, url: URL, res: ServerResponse): number {
    if (req.method !== 'GET') return this.json(res, 405, { error: 'Method Not Allowed', status: 405, message: '' });
    const clientId = headerOf(req, 'client-id');
    const bearer = bearerOf(req);
    const token = bearer ? this.tokens.get(bearer) : undefined;
    if (!clientId || !bearer || !token || token.expiresAt <= this.clock.now()) {
      return this.json(res, 401, { error: 'Unauthorized', status: 401, message: 'Invalid OAuth token' });
    }
    if (token.clientId !== clientId) {
      return this.json(res, 401, { error: 'Unauthorized', status: 401, message: 'Client ID and OAuth token do not match' });
    }

    const bucket = this.bucket(clientId);
    const limitHeaders = () => ({
      'Ratelimit-Limit': String(this.bucketSize),
      'Ratelimit-Remaining': String(bucket.remaining),
      'Ratelimit-Reset': String(Math.ceil(bucket.resetAt / 1000)),
    });
    if (bucket.remaining <= 0) {
      return this.json(res, 429, { error: 'Too Many Requests', status: 429, message: '' }, limitHeaders());
    }
    bucket.remaining--;

    const logins = url.searchParams.getAll('user_login').map((l) => l.toLowerCase());
    if (logins.length > 100) {
      return this.json(
        res,
        400,
        { error: 'Bad Request', status: 400, message: 'The number of user_login parameters must be less than or equal to 100' },
        limitHeaders(),
      );
    }
    const firstRaw = url.searchParams.get('first');
    const first = firstRaw === null ? 20 : Number(firstRaw);
    if (!Number.isInteger(first) || first < 1 || first > 100) {
      return this.json(res, 400, { error: 'Bad Request', status: 400, message: 'first must be between 1 and 100' }, limitHeaders());
    }
    const after = url.searchParams.get('after');
    const offset = after ? Number(Buffer.from(after, 'base64url').toString('utf8')) || 0 : 0;

    const live = [...new Set(logins)].flatMap((login) => {
      const state = this.stateOf(login);
      if (!state?.live) return [];
      return [this.streamObject(login, state)];
    });
    const page = live.slice(offset, offset + first);
    const next = offset + first < live.length ? Buffer.from(String(offset + first), 'utf8').toString('base64url') : undefined;
    const headers: Record<string, string> = limitHeaders();
    if (this.frozenAt !== null) headers.Date = new Date(this.frozenAt).toUTCString();
    return this.json(res, 200, { data: page, pagination: next ? { cursor: next } : {} }, headers);
  }

  private validToken(req: IncomingMessage): boolean {
    const bearer = bearerOf(req);
    const token = bearer ? this.tokens.get(bearer) : undefined;
    return Boolean(token && token.expiresAt > this.clock.now() && token.clientId === headerOf(req, 'client-id'));
  }

  /** `GET /helix/users?login=…` (up to 100): `{data: [{id, login, …}]}` for the logins it knows. */
  private users(url: URL, res: ServerResponse): number {
    const logins = url.searchParams.getAll('login').map((l) => l.toLowerCase());
    if (logins.length > 100) return this.json(res, 400, { error: 'Bad Request', status: 400, message: 'too many logins' });
    const data = logins.flatMap((login) => {
      const id = this.userIds.get(login);
      return id
        ? [{ id, login, display_name: login, type: '', broadcaster_type: '', description: '', created_at: new Date(0).toISOString() }]
        : [];
    });
    return this.json(res, 200, { data });
  }

  /** The user id Helix reports for a scripted login (EventSub conditions name users by id). */
  userIdOf(login: string): string | undefined {
    return this.userIds.get(login.toLowerCase());
  }

  private stateOf(login: string): TimelineEntry | undefined {
    const now = this.frozenAt ?? this.clock.now();
    const list = this.timelines.get(login) ?? [];
    let current: TimelineEntry | undefined;
    for (const e of list) if (e.at <= now) current = e;
    return current;
  }

  private streamObject(login: string, state: TimelineEntry) {
    const userId = this.userIds.get(login) ?? '0';
    return {
      id: `4${userId}`,
      user_id: userId,
      user_login: login,
      user_name: login,
      game_id: '32399',
      game_name: 'Counter-Strike',
      type: state.type ?? 'live',
      title: state.title ?? '',
      tags: [],
      viewer_count: 7,
      started_at: new Date(state.at).toISOString(),
      language: 'en',
      thumbnail_url: `https://static-cdn.jtvnw.net/previews-ttv/live_user_${login}-{width}x{height}.jpg`,
      tag_ids: [],
      is_mature: false,
    };
  }

  private bucket(clientId: string): { remaining: number; resetAt: number } {
    const now = this.clock.now();
    let bucket = this.buckets.get(clientId);
    if (!bucket || now >= bucket.resetAt) {
      bucket = { remaining: this.bucketSize, resetAt: now + 60_000 };
      this.buckets.set(clientId, bucket);
    }
    return bucket;
  }

  private json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): number {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
      Date: new Date(this.clock.now()).toUTCString(),
      ...headers,
    });
    res.end(text);
    return status;
  }
}

/** The subscription endpoints of the EventSub fake (twitch-eventsub.ts), served on Helix's host. */
export interface EventSubRoutes {
  handleSubscriptions(req: IncomingMessage, url: URL, body: string, res: ServerResponse): Promise<number>;
}

function headerOf(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function bearerOf(req: IncomingMessage): string | null {
  const auth = headerOf(req, 'authorization');
  const m = auth ? /^Bearer (\S+)$/i.exec(auth) : null;
  return m?.[1] ?? null;
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
