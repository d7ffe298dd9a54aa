/**
 * A protocol-faithful Kick fake on a real HTTP port (shared/spec/stream-telemetry.md, "Kick"; KickDevDocs
 * `getting-started/generating-tokens-oauth2-flow.md`, `apis/livestreams.md`, `apis/channels.md`):
 *
 * - `POST /oauth/token` (form body): client_id + client_secret + grant_type=client_credentials →
 *   `{access_token, token_type: "Bearer", expires_in}`; `{error}` with 400/401 otherwise.
 * - `GET /public/v1/livestreams?broadcaster_user_id=…` (≤ 50, `limit` ≤ 100): `{data: [...], message: "OK"}` with
 *   live broadcasters only (offline ones are left out); fields `broadcaster_user_id, channel_id, slug,
 *   stream_title, category, thumbnail, language, viewer_count, started_at, has_mature_content`.
 * - `GET /public/v1/channels?slug=…` or `?broadcaster_user_id=…` (≤ 50, not mixed): every channel with `stream
 *   {is_live, start_time, …}` and `stream_title`; an unknown slug fails the whole request with 400.
 * - Bearer token required (401); no rate-limit headers; faults (status, hang, reset) queued per route.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import { closeLoopback, listenOnLoopback } from './loopback-server.js';
import type { Clock } from '../../infra/clock.js';

export type KickRoute = 'token' | 'livestreams' | 'channels';
export type KickFault = { kind: 'status'; status: number; body?: unknown } | { kind: 'hang' } | { kind: 'reset' };

export interface KickRequestLog {
  route: KickRoute | 'other';
  at: number;
  status: number;
  ids: string[];
  slugs: string[];
}

interface KickChannel {
  userId: number;
  slug: string;
  live: boolean;
  title: string;
  startedAt: number;
}

export class FakeKick {
  readonly clientId = 'fake-kick-client';
  readonly clientSecret = 'fake-kick-secret-0123456789abcdef0123';
  readonly requests: KickRequestLog[] = [];
  tokensIssued = 0;
  tokenTtlSeconds = 3600;

  private readonly channels = new Map<string, KickChannel>();
  private readonly tokens = new Map<string, number>();
  private readonly faults: Record<KickRoute, KickFault[]> = { token: [], livestreams: [], channels: [] };
  private server: Server | null = null;
  private base = '';

  private constructor(private readonly clock: Clock) {}

  static async start(options: { clock: Clock }): Promise<FakeKick> {
    const fake = new FakeKick(options.clock);
    ({ server: fake.server, base: fake.base } = await listenOnLoopback((req, res) => {
      fake.handle(req, res).catch(() => {
        if (!res.headersSent) fake.json(res, 500, { message: 'Internal Server Error' });
      });
    }));
    return fake;
  }

  /** Like `https://api.kick.com` (KICK_API_URL). */
  get apiUrl(): string {
    return this.base;
  }

  /** Like `https://id.kick.com/oauth/token` (KICK_AUTH_URL). */
  get authUrl(): string {
    return `${this.base}/oauth/token`;
  }

  /** Creates or updates a channel; returns its broadcaster user id. */
  setChannel(slug: string, state: { live: boolean; title?: string }): number {
    const key = slug.toLowerCase();
    const existing = this.channels.get(key);
    const channel: KickChannel = existing ?? { userId: 70_000 + this.channels.size, slug: key, live: false, title: '', startedAt: 0 };
    if (state.live && !channel.live) channel.startedAt = this.clock.now();
    channel.live = state.live;
    if (state.title !== undefined) channel.title = state.title;
    this.channels.set(key, channel);
    return channel.userId;
  }

  expireTokens(): void {
    for (const token of this.tokens.keys()) this.tokens.set(token, this.clock.now());
  }

  failNext(route: KickRoute, fault: KickFault, times = 1): void {
    for (let i = 0; i < times; i++) this.faults[route].push(fault);
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = null;
    await closeLoopback(server);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.base);
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const route: KickRoute | 'other' =
      url.pathname === '/oauth/token'
        ? 'token'
        : url.pathname === '/public/v1/livestreams'
          ? 'livestreams'
          : url.pathname === '/public/v1/channels'
            ? 'channels'
            : 'other';
    const entry: KickRequestLog = {
      route,
      at: this.clock.now(),
      status: 0,
      ids: url.searchParams.getAll('broadcaster_user_id'),
      slugs: url.searchParams.getAll('slug'),
    };
    this.requests.push(entry);
    if (route === 'other') {
      entry.status = this.json(res, 404, { message: 'Not Found' });
      return;
    }
    const fault = this.faults[route].shift();
    if (fault?.kind === 'hang') return;
    if (fault?.kind === 'reset') {
      entry.status = -1;
      req.socket.destroy();
      return;
    }
    if (fault?.kind === 'status') {
      entry.status = this.json(res, fault.status, fault.body ?? { message: 'injected', data: null });
      return;
    }
    if (route === 'token') entry.status = this.token(req, body, res);
    else entry.status = this.lookup(req, url, route, res);
  }

  private token(req: IncomingMessage, body: string, res: ServerResponse): number {
    if (req.method !== 'POST') return this.json(res, 405, { error: 'Method Not Allowed' });
    const form = new URLSearchParams(body);
    if (form.get('grant_type') !== 'client_credentials') return this.json(res, 400, { error: 'Invalid request' });
    if (form.get('client_id') !== this.clientId || form.get('client_secret') !== this.clientSecret) {
      return this.json(res, 401, { error: 'invalid_client' });
    }
    const token = randomBytes(16).toString('hex').toUpperCase();
    this.tokens.set(token, this.clock.now() + this.tokenTtlSeconds * 1000);
    this.tokensIssued++;
    return this.json(res, 200, { access_token: token, token_type: 'Bearer', expires_in: this.tokenTtlSeconds });
  }

  private lookup(req: IncomingMessage, url: URL, route: 'livestreams' | 'channels', res: ServerResponse): number {
    if (req.method !== 'GET') return this.json(res, 405, { message: 'Method Not Allowed', data: null });
    const m = /^Bearer (\S+)$/i.exec(String(req.headers.authorization ?? ''));
    const expiresAt = m ? this.tokens.get(m[1] as string) : undefined;
    if (expiresAt === undefined || expiresAt <= this.clock.now()) return this.json(res, 401, { message: 'Unauthorized', data: null });
    const ids = url.searchParams.getAll('broadcaster_user_id');
    const slugs = url.searchParams.getAll('slug');
    if (ids.length > 50 || slugs.length > 50) return this.json(res, 400, { message: 'too many values', data: null });
    if (ids.some((id) => !/^\d+$/.test(id))) return this.json(res, 400, { message: 'invalid broadcaster_user_id', data: null });
    const all = [...this.channels.values()];
    if (route === 'livestreams') {
      if (slugs.length > 0) return this.json(res, 400, { message: 'unknown parameter slug', data: null });
      const limit = Number(url.searchParams.get('limit') ?? 25);
      if (!Number.isInteger(limit) || limit < 1 || limit > 100) return this.json(res, 400, { message: 'invalid limit', data: null });
      const live = all.filter((c) => c.live && (ids.length === 0 || ids.includes(String(c.userId)))).slice(0, limit);
      return this.json(res, 200, { data: live.map((c) => this.livestream(c)), message: 'OK' });
    }
    if (ids.length > 0 && slugs.length > 0)
      return this.json(res, 400, { message: 'broadcaster_user_id and slug cannot be mixed', data: null });
    const unknownSlug = slugs.find((s) => !this.channels.has(s.toLowerCase()));
    if (unknownSlug !== undefined) return this.json(res, 400, { message: `channel not found: ${unknownSlug}`, data: null });
    const chosen =
      slugs.length > 0
        ? slugs.map((s) => this.channels.get(s.toLowerCase()) as KickChannel)
        : all.filter((c) => ids.includes(String(c.userId)));
    return this.json(res, 200, { data: chosen.map((c) => this.channel(c)), message: 'OK' });
  }

  private livestream(c: KickChannel) {
    return {
      broadcaster_user_id: c.userId,
      channel_id: c.userId + 1_000_000,
      slug: c.slug,
      stream_title: c.title,
      category: { id: 15, name: 'Counter-Strike 2', thumbnail: '' },
      thumbnail: '',
      language: 'en',
      viewer_count: 12,
      started_at: new Date(c.startedAt).toISOString(),
      has_mature_content: false,
      custom_tags: [],
    };
  }

  private channel(c: KickChannel) {
    return {
      banner_picture: '',
      broadcaster_user_id: c.userId,
      category: { id: 15, name: 'Counter-Strike 2', thumbnail: '' },
      channel_description: '',
      slug: c.slug,
      stream: {
        is_live: c.live,
        is_mature: false,
        key: '',
        language: 'en',
        start_time: c.live ? new Date(c.startedAt).toISOString() : '0001-01-01T00:00:00Z',
        thumbnail: '',
        url: '',
        viewer_count: c.live ? 12 : 0,
      },
      stream_title: c.title,
    };
  }

  json(res: ServerResponse, status: number, body: unknown): number {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
    return status;
  }
}
