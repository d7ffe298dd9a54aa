/**
 * Kick public API, the part stream health needs (shared/spec/stream-telemetry.md, "Kick"): an app access token
 * (client credentials at id.kick.com) and two batched lookups of at most 50 each, never mixed in one request:
 * - `GET /public/v1/livestreams?broadcaster_user_id=…` for numeric channels: live streams are listed
 *   (`stream_title`), offline broadcasters are left out;
 * - `GET /public/v1/channels?slug=…` for slugs: every channel is listed with `stream.is_live` and `stream_title`;
 *   one unknown slug fails the whole request with a 400, so a failed slug batch is split to find it.
 *
 * Failure never throws out of `lookup`: token failure, 401 twice, 429 (Kick sends no rate-limit headers, so the
 * client backs off for a while), 5xx, a timeout or an unparseable body leave the batch `unknown` with a reason.
 */
import { z } from 'zod';
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
import { AppToken, fetchPlatformChannels, httpText, parseJson, type HttpResult } from '../http/telemetry-http.js';

/** Kick accepts at most 50 `broadcaster_user_id` or 50 `slug` values per request. */
export const KICK_MAX_BATCH = 50;
const USER_ID = /^[1-9][0-9]{0,18}$/;
const SLUG = /^[a-z0-9][a-z0-9_-]{0,63}$/;

const livestreamSchema = z.object({
  broadcaster_user_id: z.coerce.number(),
  slug: z.string().optional(),
  stream_title: z.string(),
  started_at: z.string().optional(),
});
const livestreamsSchema = z.object({ data: z.array(livestreamSchema) });

const channelSchema = z.object({
  broadcaster_user_id: z.coerce.number().optional(),
  slug: z.string(),
  stream_title: z.string().optional(),
  stream: z.object({ is_live: z.boolean(), start_time: z.string().optional() }).nullable().optional(),
});
const channelsSchema = z.object({ data: z.array(channelSchema) });

/** What Kick said about one broadcaster (by user id or slug). */
export type KickLookup =
  | { readonly status: 'live'; readonly title: string; readonly startedAt: string | null }
  | { readonly status: 'offline' }
  | { readonly status: 'unknown'; readonly reason: TelemetryUnknownReason };

export interface KickClientOptions {
  readonly clientId: string;
  readonly clientSecret: string;
  /** KICK_API_URL, e.g. https://api.kick.com */
  readonly apiUrl: string;
  /** KICK_AUTH_URL, e.g. https://id.kick.com/oauth/token */
  readonly authUrl: string;
  /** TELEMETRY_TIMEOUT_MS, per HTTP request. */
  readonly timeoutMs: number;
  readonly clock: Clock;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** After a 429, send nothing for this long (default 30 s): Kick gives no reset time. */
  readonly backoffMs?: number;
  /** Refresh the token this long before it expires (default 5 min, at most half its lifetime). */
  readonly refreshMarginMs?: number;
}

type Kind = 'id' | 'slug';

export class KickClient {
  private readonly token: AppToken;
  private readonly backoffMs: number;
  private quietUntil = 0;

  constructor(private readonly options: KickClientOptions) {
    this.backoffMs = options.backoffMs ?? 30_000;
    this.token = new AppToken({
      clientId: options.clientId,
      clientSecret: options.clientSecret,
      authUrl: options.authUrl,
      timeoutMs: options.timeoutMs,
      clock: options.clock,
      refreshMarginMs: options.refreshMarginMs ?? 5 * 60_000,
      onResult: (status, message) => {
        this.count('kick_auth', status);
        if (status !== '200') this.options.logger?.warn({ provider: 'kick_auth', status, message }, 'kick token request failed');
      },
    });
  }

  /**
   * Looks up every channel id: all-digit ids as broadcaster user ids, the rest as slugs (lowercased). Keys of the
   * result are the normalized ids.
   */
  async lookup(ids: readonly string[]): Promise<Map<string, KickLookup>> {
    const result = new Map<string, KickLookup>();
    const byKind: Record<Kind, string[]> = { id: [], slug: [] };
    for (const raw of new Set(ids.map(normalizeKickId))) {
      if (USER_ID.test(raw)) byKind.id.push(raw);
      else if (SLUG.test(raw)) byKind.slug.push(raw);
      else result.set(raw, { status: 'unknown', reason: 'invalid_channel' });
    }
    for (const kind of ['id', 'slug'] as const) {
      const list = byKind[kind];
      for (let i = 0; i < list.length; i += KICK_MAX_BATCH) {
        for (const [k, v] of await this.batch(kind, list.slice(i, i + KICK_MAX_BATCH))) result.set(k, v);
      }
    }
    return result;
  }

  private async batch(kind: Kind, batch: readonly string[]): Promise<Map<string, KickLookup>> {
    const answer = await this.request(kind, batch);
    const out = new Map<string, KickLookup>();
    if (answer === 'http_4xx' && kind === 'slug' && batch.length > 1) {
      // One unknown slug fails them all: halve until the bad one stands alone (log2(50) ≈ 6 extra requests).
      const mid = Math.ceil(batch.length / 2);
      for (const half of [batch.slice(0, mid), batch.slice(mid)]) for (const [k, v] of await this.batch(kind, half)) out.set(k, v);
      return out;
    }
    if (answer === 'http_4xx' && kind === 'slug') {
      out.set(batch[0] as string, { status: 'unknown', reason: 'invalid_channel' });
      return out;
    }
    for (const id of batch) {
      out.set(id, typeof answer === 'string' ? { status: 'unknown', reason: answer } : (answer.get(id) ?? { status: 'offline' }));
    }
    return out;
  }

  /** One request (plus one retry after a 401); a reason code when it could not be read. */
  private async request(kind: Kind, batch: readonly string[]): Promise<Map<string, KickLookup> | TelemetryUnknownReason> {
    if (this.options.clock.now() < this.quietUntil) {
      this.count('kick', 'skipped_rate_limit');
      return 'rate_limited';
    }
    const url = new URL(`${this.options.apiUrl.replace(/\/+$/, '')}/public/v1/${kind === 'id' ? 'livestreams' : 'channels'}`);
    for (const v of batch) url.searchParams.append(kind === 'id' ? 'broadcaster_user_id' : 'slug', v);
    if (kind === 'id') url.searchParams.set('limit', String(KICK_MAX_BATCH));

    let response: HttpResult | null = null;
    for (let attempt = 0; attempt < 2; attempt++) {
      let token: string;
      try {
        token = await this.token.get();
      } catch {
        return 'auth_failed';
      }
      response = await httpText(
        url,
        { method: 'GET', headers: { Authorization: `Bearer ${token}`, Accept: 'application/json' } },
        this.options.timeoutMs,
      );
      this.count('kick', response.ok ? String(response.status) : response.reason);
      if (response.ok && response.status === 401 && attempt === 0) {
        this.token.invalidate(token);
        continue;
      }
      break;
    }
    const r = response as HttpResult;
    if (!r.ok) {
      this.options.logger?.warn({ provider: 'kick', reason: r.reason, channels: batch.length }, 'kick request failed');
      return r.reason;
    }
    if (r.status !== 200) {
      const reason: TelemetryUnknownReason =
        r.status === 429
          ? 'rate_limited'
          : r.status === 401 || r.status === 403
            ? 'unauthorized'
            : r.status >= 500
              ? 'http_5xx'
              : 'http_4xx';
      if (reason === 'rate_limited') this.quietUntil = this.options.clock.now() + this.backoffMs;
      const level = reason === 'unauthorized' ? 'error' : 'warn';
      this.options.logger?.[level]({ provider: 'kick', status: r.status, reason, channels: batch.length }, 'kick request failed');
      return reason;
    }
    const found = new Map<string, KickLookup>();
    if (kind === 'id') {
      const parsed = parseJson(r.body, livestreamsSchema);
      if (!parsed) return this.unparsed(batch.length);
      for (const s of parsed.data) {
        found.set(String(s.broadcaster_user_id), { status: 'live', title: s.stream_title, startedAt: s.started_at ?? null });
      }
    } else {
      const parsed = parseJson(r.body, channelsSchema);
      if (!parsed) return this.unparsed(batch.length);
      for (const c of parsed.data) {
        const live = c.stream?.is_live === true;
        found.set(
          c.slug.toLowerCase(),
          live ? { status: 'live', title: c.stream_title ?? '', startedAt: c.stream?.start_time ?? null } : { status: 'offline' },
        );
      }
    }
    return found;
  }

  private unparsed(channels: number): TelemetryUnknownReason {
    this.options.logger?.warn({ provider: 'kick', channels }, 'kick answer did not parse');
    return 'bad_response';
  }

  private count(provider: string, status: string): void {
    this.options.metrics?.telemetryRequests.inc({ provider, status });
  }
}

/** Slugs are case-insensitive on Kick; user ids are digits. */
function normalizeKickId(id: string): string {
  return id.trim().toLowerCase();
}

/**
 * The platform provider for `kick:<slug>` and `kick:<broadcaster_user_id>` channels: live + title only (Kick
 * gives no FPS or bitrate). Listed as live → live with its title; offline → live false, title unknown; batch
 * failed → every field unknown with the reason.
 */
export class KickTelemetryProvider implements TelemetryProvider {
  readonly platform = 'kick';

  constructor(
    private readonly client: KickClient,
    private readonly clock: Clock,
  ) {}

  fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>> {
    return fetchPlatformChannels(this.platform, channels, this.clock, normalizeKickId, (ids) => this.client.lookup(ids), toTelemetry);
  }
}

function toTelemetry(channel: string, lookup: KickLookup, at: number): ChannelTelemetry {
  const unmeasured = { fps: UNKNOWN, bitrateKbps: UNKNOWN } as const;
  if (lookup.status === 'unknown') return unknownTelemetry(channel, at, lookup.reason);
  if (lookup.status === 'offline') return { channel, live: false, title: UNKNOWN, ...unmeasured, observedAt: at };
  return { channel, live: true, title: knownTitle(lookup.title), ...unmeasured, observedAt: at, detail: { startedAt: lookup.startedAt } };
}
