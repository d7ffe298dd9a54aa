/**
 * Twitch Helix, the part stream health needs: an app access token (client credentials) and `GET /streams`
 * for up to 100 logins per request (shared/spec/stream-telemetry.md, "Twitch").
 *
 * Failure never throws out of `getStreams`: a batch that could not be read (token endpoint down, 401 twice,
 * 429, 5xx, timeout, unparseable body) comes back as `unknown` for each of its logins, with a reason code.
 * The client secret and access tokens never reach a log line, an error message or a metric label.
 */
import type { Clock } from '../../infra/clock.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import {
  UNKNOWN,
  knownTitle,
  unknownTelemetry,
  type ChannelTelemetry,
  type TelemetryProvider,
  type TelemetryUnknownReason,
} from '../../stream-health/telemetry.js';
import { AppToken, fetchPlatformChannels, httpText, isRecord, type HttpResult } from '../http/telemetry-http.js';

/** Helix accepts at most 100 `user_login` per Get Streams request. */
export const HELIX_MAX_LOGINS = 100;
/** Twitch logins: lowercase letters, digits, underscore. */
const LOGIN = /^[a-z0-9_]{1,25}$/;

/** One item of Get Streams' `data[]`, as much of it as stream health reads. Read by `readHelixStream`. */
export interface HelixStream {
  readonly id?: string;
  readonly user_id?: string;
  readonly user_login: string;
  /** "live", another type (rerun, premiere, …), or "" (Twitch's error marker). */
  readonly type: string;
  readonly title: string;
  readonly started_at?: string;
}

const optionalString = (v: unknown) => v === undefined || typeof v === 'string';

/**
 * Reads one `data[]` item: `user_login`, `type` and `title` strings, `id`, `user_id` and `started_at` strings when
 * present; null when it is not that. Written out rather than a zod schema: a 50k-match sweep reads 100k items a
 * sweep (helix-client.spec.ts checks it against the schema it replaces).
 */
export function readHelixStream(item: unknown): HelixStream | null {
  if (!isRecord(item)) return null;
  const { id, user_id, user_login, type, title, started_at } = item;
  if (typeof user_login !== 'string' || typeof type !== 'string' || typeof title !== 'string') return null;
  if (!optionalString(id) || !optionalString(user_id) || !optionalString(started_at)) return null;
  return {
    user_login,
    type,
    title,
    ...(id === undefined ? {} : { id: id as string }),
    ...(user_id === undefined ? {} : { user_id: user_id as string }),
    ...(started_at === undefined ? {} : { started_at: started_at as string }),
  };
}

/** Get Streams' body: `{ data: [...] }` with every item readable, or null (the whole batch is then unknown). */
function readStreamsPage(text: string): HelixStream[] | null {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return null;
  }
  const data = isRecord(json) ? json.data : undefined;
  if (!Array.isArray(data)) return null;
  const streams: HelixStream[] = [];
  for (const item of data) {
    const stream = readHelixStream(item);
    if (!stream) return null;
    streams.push(stream);
  }
  return streams;
}

/** What Helix said about one login. `found` includes non-live types (rerun, premiere, …) and the error type ''. */
export type StreamLookup =
  | { readonly status: 'found'; readonly stream: HelixStream }
  | { readonly status: 'offline' }
  | { readonly status: 'unknown'; readonly reason: TelemetryUnknownReason };

export interface HelixClientOptions {
  readonly clientId: string;
  readonly clientSecret: string;
  /** TWITCH_API_URL, e.g. https://api.twitch.tv/helix */
  readonly apiUrl: string;
  /** TWITCH_AUTH_URL, e.g. https://id.twitch.tv/oauth2/token */
  readonly authUrl: string;
  /** TELEMETRY_TIMEOUT_MS, per HTTP request. */
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Longest wait for an empty rate-limit bucket to refill; beyond it the batch is unknown (default 5 s). */
  readonly maxRateLimitWaitMs?: number;
  /** Refresh the token this long before it expires (default 5 min, at most half its lifetime). */
  readonly refreshMarginMs?: number;
  /** Batches in flight at once (default 4). */
  readonly concurrency?: number;
  /**
   * Helix's `Date` must have moved on for a request sent at least this long after the previous answer came back
   * (default 5 s: `Date` has 1 s resolution, and Twitch's edges may disagree by a little); if it did not, the
   * answer is a replayed snapshot → `source_stale`.
   */
  readonly minClockAdvanceMs?: number;
}

export class HelixClient {
  private readonly token: AppToken;
  private rate: { remaining: number | null; resetAt: number | null } = { remaining: null, resetAt: null };
  private readonly maxWaitMs: number;
  private readonly concurrency: number;
  private readonly minClockAdvanceMs: number;
  /** The newest Helix `Date` seen, and when (our clock) that answer came back. */
  private sourceClock: { readonly dateMs: number; readonly receivedAt: number } | null = null;

  constructor(private readonly options: HelixClientOptions) {
    this.minClockAdvanceMs = options.minClockAdvanceMs ?? 5_000;
    this.maxWaitMs = options.maxRateLimitWaitMs ?? 5_000;
    this.token = new AppToken({
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      authUrl: options.authUrl,
      timeoutMs: options.timeoutMs,
      clock: options.clock,
      refreshMarginMs: options.refreshMarginMs ?? 5 * 60_000,
      onResult: (status, message) => {
        this.count('twitch_auth', status);
        if (status === '200') return;
        if (message === undefined) this.options.logger?.warn({ provider: 'twitch_auth', reason: status }, 'twitch token request failed');
        else
          this.options.logger?.error({ provider: 'twitch_auth', status: Number(status), message }, 'twitch refused the app access token');
      },
    });
    this.concurrency = Math.max(1, options.concurrency ?? 4);
  }

  /** The last rate-limit state seen (Ratelimit-Remaining, Ratelimit-Reset in ms). */
  rateLimit(): { readonly remaining: number | null; readonly resetAt: number | null } {
    return { ...this.rate };
  }

  /** Looks up every login (case-insensitive), 100 per request. Keys of the result are lowercased logins. */
  async getStreams(logins: readonly string[]): Promise<Map<string, StreamLookup>> {
    const result = new Map<string, StreamLookup>();
    const valid: string[] = [];
    for (const login of new Set(logins.map((l) => l.toLowerCase()))) {
      if (LOGIN.test(login)) valid.push(login);
      else result.set(login, { status: 'unknown', reason: 'invalid_channel' });
    }
    const batches: string[][] = [];
    for (let i = 0; i < valid.length; i += HELIX_MAX_LOGINS) batches.push(valid.slice(i, i + HELIX_MAX_LOGINS));

    let next = 0;
    const worker = async () => {
      while (next < batches.length) {
        const batch = batches[next++] as string[];
        const answer = await this.fetchBatch(batch);
        for (const login of batch) {
          if (typeof answer === 'string') result.set(login, { status: 'unknown', reason: answer });
          else {
            const stream = answer.get(login);
            result.set(login, stream ? { status: 'found', stream } : { status: 'offline' });
          }
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, batches.length) }, worker));
    return result;
  }

  /**
   * Any other app-token Helix call (EventSub subscriptions, users), one point of the same bucket, with the same
   * token refresh after a 401; a reason code when it could not be made or read.
   */
  async appRequest(
    method: string,
    pathAndQuery: string,
    body?: unknown,
  ): Promise<{ status: number; body: string } | TelemetryUnknownReason> {
    const r = await this.authorized(new URL(`${this.options.apiUrl.replace(/\/+$/, '')}${pathAndQuery}`), method, body);
    if (typeof r === 'string') return r;
    return r.ok ? { status: r.status, body: r.body } : r.reason;
  }

  /** One request with the app token and a rate-limit slot, retried once with a fresh token after a 401. */
  private async authorized(
    url: URL,
    method: string,
    body?: unknown,
  ): Promise<(HttpResult & { readonly sentAt: number }) | 'auth_failed' | 'rate_limited'> {
    for (let attempt = 0; ; attempt++) {
      let token: string;
      try {
        token = await this.token.get();
      } catch {
        return 'auth_failed';
      }
      if (!(await this.acquireRateSlot())) {
        this.count('twitch', 'skipped_rate_limit');
        return 'rate_limited';
      }
      const headers: Record<string, string> = { 'Client-Id': this.options.clientId, Authorization: `Bearer ${token}` };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const sentAt = this.options.clock.now();
      const init = { method, headers, body: body === undefined ? undefined : JSON.stringify(body) };
      const response = { ...(await httpText(url, init, this.options.timeoutMs)), sentAt };
      if (response.ok) this.noteRateLimit(response.headers);
      this.count('twitch', response.ok ? String(response.status) : response.reason);
      if (response.ok && response.status === 401 && attempt === 0) {
        this.token.invalidate(token); // expired or revoked early: refresh once and retry
        continue;
      }
      return response;
    }
  }

  /** One Get Streams request (plus one retry after a 401); a reason code when it could not be read. */
  private async fetchBatch(batch: readonly string[]): Promise<Map<string, HelixStream> | TelemetryUnknownReason> {
    const url = new URL(`${this.options.apiUrl.replace(/\/+$/, '')}/streams`);
    // first=100: Helix pages at 20 by default, which would silently drop live users beyond the 20th.
    url.searchParams.set('first', String(HELIX_MAX_LOGINS));
    for (const login of batch) url.searchParams.append('user_login', login);

    const response = await this.authorized(url, 'GET');
    if (response === 'rate_limited') {
      this.options.logger?.warn({ provider: 'twitch', logins: batch.length }, 'twitch rate-limit bucket empty; batch left unknown');
      return 'rate_limited';
    }
    if (response === 'auth_failed') return 'auth_failed';
    const r = response;
    if (!r.ok) {
      this.options.logger?.warn({ provider: 'twitch', reason: r.reason, logins: batch.length }, 'twitch streams request failed');
      return r.reason;
    }
    if (r.status !== 200) {
      const reason: TelemetryUnknownReason =
        r.status === 429 ? 'rate_limited' : r.status === 401 ? 'unauthorized' : r.status >= 500 ? 'http_5xx' : 'http_4xx';
      const level = reason === 'http_4xx' || reason === 'unauthorized' ? 'error' : 'warn';
      this.options.logger?.[level]({ provider: 'twitch', status: r.status, reason, logins: batch.length }, 'twitch streams request failed');
      return reason;
    }
    const parsed = readStreamsPage(r.body);
    if (!parsed) {
      this.options.logger?.warn({ provider: 'twitch', logins: batch.length }, 'twitch streams answer did not parse');
      return 'bad_response';
    }
    if (this.replayed(r.headers, r.sentAt)) return 'source_stale';
    const found = new Map<string, HelixStream>();
    for (const s of parsed) found.set(s.user_login.toLowerCase(), s);
    return found;
  }

  /**
   * Helix gives no per-stream clock (`started_at` is the broadcast's start, `viewer_count` may stand still), so
   * the answer's `Date` is its source clock. A request sent minClockAdvanceMs after the newest answer came back
   * is answered at a later server time, so its `Date` must be later too; if not, a cache or a stuck edge replayed
   * an old snapshot. No `Date` at all cannot be judged and is taken as is.
   */
  private replayed(headers: Headers, sentAt: number): boolean {
    const dateMs = Date.parse(headers.get('date') ?? '');
    if (!Number.isFinite(dateMs)) return false;
    const prev = this.sourceClock;
    const receivedAt = this.options.clock.now();
    if (prev && dateMs <= prev.dateMs && sentAt - prev.receivedAt >= this.minClockAdvanceMs) {
      this.options.logger?.warn(
        {
          provider: 'twitch',
          reason: 'source_stale',
          date: new Date(dateMs).toISOString(),
          previousDate: new Date(prev.dateMs).toISOString(),
          sinceMs: sentAt - prev.receivedAt,
        },
        'twitch answer dated no later than the previous one: a replayed snapshot, its batch is unknown this sweep',
      );
      return true;
    }
    if (!prev || dateMs > prev.dateMs) this.sourceClock = { dateMs, receivedAt };
    return false;
  }

  /**
   * Spends one point of the bucket Twitch reported. When it is empty, waits for its reset if that is within
   * maxRateLimitWaitMs, else gives up (unknown) rather than earning a 429.
   */
  private async acquireRateSlot(): Promise<boolean> {
    for (;;) {
      const now = this.options.clock.now();
      if (this.rate.resetAt !== null && now >= this.rate.resetAt) this.rate = { remaining: null, resetAt: null };
      if (this.rate.remaining === null) return true;
      if (this.rate.remaining > 0) {
        this.rate.remaining--;
        return true;
      }
      const wait = (this.rate.resetAt ?? now) - now;
      if (wait > this.maxWaitMs) return false;
      await this.options.clock.sleep(wait);
    }
  }

  private noteRateLimit(headers: Headers): void {
    const remaining = Number(headers.get('ratelimit-remaining') ?? Number.NaN);
    const reset = Number(headers.get('ratelimit-reset') ?? Number.NaN);
    if (Number.isFinite(remaining) && Number.isFinite(reset)) this.rate = { remaining, resetAt: reset * 1000 };
  }

  private count(provider: string, status: string): void {
    this.options.metrics?.telemetryRequests.inc({ provider, status });
  }
}

/**
 * The platform provider for `twitch:<login>` channels: live + title (Twitch gives no FPS or bitrate).
 * - in `data[]` with `type` "live" → live, with its title;
 * - in `data[]` with another type (rerun, premiere, playlist, watch_party) → not live, title kept as evidence;
 * - in `data[]` with type "" → Twitch's own error marker → unknown (`platform_error`), never a violation;
 * - absent from `data[]` → offline: live false, title unknown;
 * - batch failed → every field unknown with the reason.
 */
export class TwitchTelemetryProvider implements TelemetryProvider {
  readonly platform = 'twitch';

  constructor(
    private readonly client: HelixClient,
    private readonly clock: Clock,
  ) {}

  fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>> {
    return fetchPlatformChannels(
      this.platform,
      channels,
      this.clock,
      (id) => id.toLowerCase(),
      (logins) => this.client.getStreams(logins),
      toTelemetry,
    );
  }
}

function toTelemetry(channel: string, lookup: StreamLookup, at: number): ChannelTelemetry {
  const unmeasured = { fps: UNKNOWN, bitrateKbps: UNKNOWN } as const;
  switch (lookup.status) {
    case 'unknown':
      return unknownTelemetry(channel, at, lookup.reason);
    case 'offline':
      return { channel, live: false, title: UNKNOWN, ...unmeasured, observedAt: at };
    case 'found': {
      const { stream } = lookup;
      const detail = { type: stream.type, streamId: stream.id ?? null, startedAt: stream.started_at ?? null };
      if (stream.type === '') {
        return {
          channel,
          live: UNKNOWN,
          title: knownTitle(stream.title),
          ...unmeasured,
          observedAt: at,
          unknownReason: 'platform_error',
          detail,
        };
      }
      return { channel, live: stream.type === 'live', title: knownTitle(stream.title), ...unmeasured, observedAt: at, detail };
    }
  }
}
