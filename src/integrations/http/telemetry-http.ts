/**
 * The HTTP pieces every telemetry client shares: one request with a timeout that never throws, JSON parsed
 * against a schema (null when it does not fit), and an OAuth client-credentials app token kept until shortly
 * before it expires. Twitch and Kick both use the last one; its secret and tokens never reach a log line.
 */
import { z } from 'zod';
import type { Clock } from '../../infra/clock.js';
import { parseChannel, unknownTelemetry, type ChannelTelemetry } from '../../stream-health/telemetry.js';

export type HttpResult =
  | { readonly ok: true; readonly status: number; readonly headers: Headers; readonly body: string }
  | { readonly ok: false; readonly reason: 'timeout' | 'network_error' };

/** One request; a timeout or a broken connection comes back as a reason, never as an exception. */
export async function httpText(url: URL, init: RequestInit, timeoutMs: number): Promise<HttpResult> {
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    const body = await res.text();
    return { ok: true, status: res.status, headers: res.headers, body };
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError');
    return { ok: false, reason: timedOut ? 'timeout' : 'network_error' };
  }
}

/** A JSON object (not null, not an array): what a provider's answer or one of its items must be. */
export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseJson<T>(text: string, schema: z.ZodType<T>): T | null {
  try {
    const result = schema.safeParse(JSON.parse(text));
    return result.success ? result.data : null;
  } catch {
    return null;
  }
}

const tokenSchema = z.object({
  access_token: z.string().min(1),
  expires_in: z.coerce.number().positive(),
  token_type: z.string().optional(),
});

export class TokenError extends Error {
  constructor(readonly status: string) {
    super(`token request failed (${status})`);
    this.name = 'TokenError';
  }
}

export interface AppTokenOptions {
  readonly clientId: string;
  readonly clientSecret: string;
  /** The provider's token endpoint (client-credentials grant, form-encoded body). */
  readonly authUrl: string;
  readonly timeoutMs: number;
  readonly clock: Clock;
  /** Refresh this long before expiry (at most half the token's lifetime). */
  readonly refreshMarginMs: number;
  /** Told the outcome of each token request: the HTTP status or the failure reason, and a safe error message. */
  readonly onResult?: (status: string, message?: string) => void;
}

/** An app access token from the client-credentials grant: one request in flight, reused until near expiry. */
export class AppToken {
  private token: { value: string; expiresAt: number; lifetimeMs: number } | null = null;
  private inFlight: Promise<string> | null = null;

  constructor(private readonly options: AppTokenOptions) {}

  async get(): Promise<string> {
    const now = this.options.clock.now();
    const t = this.token;
    if (t && now < t.expiresAt - Math.min(this.options.refreshMarginMs, t.lifetimeMs / 2)) return t.value;
    this.inFlight ??= this.request().finally(() => {
      this.inFlight = null;
    });
    return this.inFlight;
  }

  /** Forgets the token if it is still this one (the provider said 401: expired or revoked early). */
  invalidate(value: string): void {
    if (this.token?.value === value) this.token = null;
  }

  private async request(): Promise<string> {
    const body = new URLSearchParams({
      client_id: this.options.clientId,
      client_secret: this.options.clientSecret,
      grant_type: 'client_credentials',
    });
    const r = await httpText(
      new URL(this.options.authUrl),
      { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: body.toString() },
      this.options.timeoutMs,
    );
    if (!r.ok) {
      this.options.onResult?.(r.reason);
      throw new TokenError(r.reason);
    }
    const parsed = r.status === 200 ? parseJson(r.body, tokenSchema) : null;
    if (!parsed) {
      // Providers' error bodies ("invalid client") carry no secret: safe to report.
      const message =
        parseJson(r.body, z.object({ message: z.string() }))?.message ?? parseJson(r.body, z.object({ error: z.string() }))?.error;
      this.options.onResult?.(String(r.status), message);
      throw new TokenError(String(r.status));
    }
    this.options.onResult?.(String(r.status));
    const lifetimeMs = parsed.expires_in * 1000;
    this.token = { value: parsed.access_token, expiresAt: this.options.clock.now() + lifetimeMs, lifetimeMs };
    return parsed.access_token;
  }
}

/**
 * A platform provider's `fetch`: each channel of `platform` to its normalized id, one batched lookup for all of
 * them, each answer to telemetry. Never rejects: a lookup that threw, or an id it did not answer, is `provider_error`.
 */
export async function fetchPlatformChannels<L>(
  platform: string,
  channels: readonly string[],
  clock: Clock,
  normalize: (id: string) => string,
  lookup: (ids: string[]) => Promise<Map<string, L>>,
  toTelemetry: (channel: string, answer: L, at: number) => ChannelTelemetry,
): Promise<Map<string, ChannelTelemetry>> {
  const out = new Map<string, ChannelTelemetry>();
  const idOf = new Map<string, string>();
  for (const channel of channels) {
    const ref = parseChannel(channel);
    if (ref?.platform === platform) idOf.set(channel, normalize(ref.id));
    else out.set(channel, unknownTelemetry(channel, clock.now(), 'invalid_channel'));
  }
  let answers: Map<string, L>;
  try {
    answers = await lookup([...new Set(idOf.values())]);
  } catch {
    answers = new Map();
  }
  const at = clock.now();
  for (const [channel, id] of idOf) {
    const answer = answers.get(id);
    out.set(channel, answer === undefined ? unknownTelemetry(channel, at, 'provider_error') : toTelemetry(channel, answer, at));
  }
  return out;
}
