/**
 * SRS HTTP API, the part stream health needs: `GET /api/v1/streams?start=&count=` (shared/spec/stream-telemetry.md,
 * "SRS"; fields from `srs_app_statistic.cpp` SrsStatisticStream::dumps). One listing per sweep covers every
 * channel; FPS is derived from the cumulative `frames` counter between sweeps, bitrate is `kbps.recv_30s`.
 *
 * Failure never throws: SRS down, 5xx, an error `code`, a timeout or an unreadable page makes the whole listing
 * unknown — never "absent", which would read as FPS 0 and count against the players.
 */
import { z } from 'zod';
import type { Clock } from '../../infra/clock.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import {
  UNKNOWN,
  parseChannel,
  unknownTelemetry,
  type ChannelTelemetry,
  type TelemetryProvider,
  type TelemetryUnknownReason,
} from '../../stream-health/telemetry.js';

const idSchema = z.union([z.string(), z.number()]).transform(String);

const streamSchema = z.object({
  id: idSchema,
  name: z.string(),
  app: z.string(),
  vhost: idSchema.optional(),
  /** SRS's own clock at the time of the dump (ms): the better Δt for FPS. */
  live_ms: z.number().optional(),
  /** Cumulative video frames of this stream object. */
  frames: z.number().optional(),
  kbps: z.object({ recv_30s: z.number() }).optional(),
  publish: z.object({ active: z.boolean(), cid: z.string().optional() }).optional(),
});
const pageSchema = z.object({
  code: z.number(),
  total: z.number().optional(),
  streams: z.array(z.unknown()).optional(),
});

export type SrsStream = z.infer<typeof streamSchema>;

export type SrsListing =
  | {
      readonly ok: true;
      readonly streams: readonly SrsStream[];
      readonly malformed: number;
      readonly pages: number;
      /** False when streams vanished between two page requests so fast that a page may have skipped some. */
      readonly complete: boolean;
    }
  | { readonly ok: false; readonly reason: TelemetryUnknownReason };

export interface SrsClientOptions {
  /** INGEST_STATS_URL, the SRS HTTP API base, e.g. http://srs:1985 */
  readonly baseUrl: string;
  /** TELEMETRY_TIMEOUT_MS, per page request. */
  readonly timeoutMs: number;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Streams per page (default 500). */
  readonly pageSize?: number;
  /** Stop (and answer unknown) after this many pages (default 20). */
  readonly maxPages?: number;
}

export class SrsClient {
  private readonly pageSize: number;
  private readonly maxPages: number;

  constructor(private readonly options: SrsClientOptions) {
    this.pageSize = Math.max(1, options.pageSize ?? 500);
    this.maxPages = Math.max(1, options.maxPages ?? 20);
  }

  /**
   * Reads every page. SRS lists streams in id order and a stream can vanish between two page requests, which
   * would shift the next page past one we never saw; so consecutive pages overlap a little (deduplicated by id).
   */
  async listStreams(): Promise<SrsListing> {
    const overlap = this.pageSize >= 20 ? 5 : 0;
    const seen = new Map<string, SrsStream>();
    let malformed = 0;
    let start = 0;
    let complete = true;
    for (let page = 1; page <= this.maxPages; page++) {
      const url = new URL(`${this.options.baseUrl.replace(/\/+$/, '')}/api/v1/streams`);
      url.searchParams.set('start', String(start));
      url.searchParams.set('count', String(this.pageSize));
      const answer = await this.getPage(url);
      if (typeof answer === 'string') return { ok: false, reason: answer };
      const items = answer.streams ?? [];
      if (page > 1 && overlap > 0 && items.length > 0) {
        // The page starts inside the previous one's tail; if none of that tail is here, streams ended meanwhile and
        // the listing shifted past some we never saw.
        const head = items.slice(0, overlap).map((item) => (item as { id?: unknown }).id);
        if (!head.some((id) => typeof id === 'string' && seen.has(id))) complete = false;
      }
      for (const item of items) {
        const s = streamSchema.safeParse(item);
        if (s.success) seen.set(s.data.id, s.data);
        else malformed++;
      }
      const done =
        items.length === 0 ||
        (answer.total !== undefined ? start + items.length >= answer.total : items.length < this.pageSize);
      if (done) {
        if (malformed > 0) this.options.logger?.warn({ provider: 'srs', malformed }, 'srs listed streams it could not parse');
        if (!complete) this.options.logger?.warn({ provider: 'srs', pages: page }, 'srs listing shifted while paging; absent streams count as unknown this sweep');
        return { ok: true, streams: [...seen.values()], malformed, pages: page, complete };
      }
      start += Math.max(1, items.length - overlap);
    }
    this.options.logger?.warn({ provider: 'srs', maxPages: this.maxPages }, 'srs listing has more pages than allowed');
    return { ok: false, reason: 'bad_response' };
  }

  private async getPage(url: URL): Promise<z.infer<typeof pageSchema> | TelemetryUnknownReason> {
    let status: number;
    let body: string;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(this.options.timeoutMs) });
      status = res.status;
      body = await res.text();
    } catch (err) {
      const reason = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? 'timeout' : 'network_error';
      this.count(reason);
      this.options.logger?.warn({ provider: 'srs', reason }, 'srs streams request failed');
      return reason;
    }
    this.count(String(status));
    if (status !== 200) {
      const reason = status >= 500 ? 'http_5xx' : 'http_4xx';
      this.options.logger?.warn({ provider: 'srs', status, reason }, 'srs streams request failed');
      return reason;
    }
    let parsed: z.infer<typeof pageSchema> | null = null;
    try {
      const r = pageSchema.safeParse(JSON.parse(body));
      parsed = r.success ? r.data : null;
    } catch {
      parsed = null;
    }
    if (!parsed) {
      this.options.logger?.warn({ provider: 'srs' }, 'srs streams answer did not parse');
      return 'bad_response';
    }
    if (parsed.code !== 0) {
      this.options.logger?.warn({ provider: 'srs', code: parsed.code }, 'srs answered with an error code');
      return 'provider_error';
    }
    return parsed;
  }

  private count(status: string): void {
    this.options.metrics?.telemetryRequests.inc({ provider: 'srs', status });
  }
}

export interface SrsProviderOptions {
  /** STREAM_CHECK_EVERY_MS. */
  readonly checkEveryMs: number;
  /** FPS needs a window at least this long (default checkEveryMs / 3): two sweeps seconds apart say nothing. */
  readonly minFpsWindowMs?: number;
  /** A previous sample older than this is stale (default 3 × checkEveryMs): FPS unknown, not averaged over it. */
  readonly maxSampleAgeMs?: number;
}

interface FrameSample {
  readonly frames: number;
  readonly serverMs: number | null;
  readonly localMs: number;
}

type FpsReading = number | TelemetryUnknownReason;

const HISTORY_PER_STREAM = 8;

/**
 * The ingest provider for `srs:<app>/<name>` channels: measured FPS and bitrate, and whether SRS sees a publisher.
 * - stream listed and `publish.active` → live at ingest, bitrate `kbps.recv_30s`, FPS = Δframes / Δt against
 *   the newest earlier sample of the same stream id that is at least minFpsWindowMs old; unknown on the first
 *   sample, a counter that went backwards (reset), or a previous sample older than maxSampleAgeMs (stale);
 * - stream listed but not publishing, or not listed at all while SRS answered → not live, FPS 0, bitrate 0;
 * - SRS did not answer (or answered garbage) → every field unknown.
 * The previous samples live in this object, so a new leader's first sweep reads FPS unknown once.
 */
export class SrsTelemetryProvider implements TelemetryProvider {
  readonly platform = 'srs';
  private readonly history = new Map<string, FrameSample[]>();
  private readonly minWindowMs: number;
  private readonly maxAgeMs: number;

  constructor(
    private readonly client: SrsClient,
    private readonly clock: Clock,
    options: SrsProviderOptions,
  ) {
    this.minWindowMs = options.minFpsWindowMs ?? Math.round(options.checkEveryMs / 3);
    this.maxAgeMs = options.maxSampleAgeMs ?? options.checkEveryMs * 3;
  }

  async fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>> {
    const out = new Map<string, ChannelTelemetry>();
    let listing: SrsListing;
    try {
      listing = await this.client.listStreams();
    } catch {
      listing = { ok: false, reason: 'provider_error' };
    }
    const at = this.clock.now();
    if (!listing.ok) {
      for (const c of channels) out.set(c, unknownTelemetry(c, at, listing.reason));
      return out;
    }

    const fps = new Map<string, FpsReading>();
    const byKey = new Map<string, SrsStream[]>();
    for (const s of listing.streams) {
      fps.set(s.id, this.readFps(s, at));
      const key = `${s.app}/${s.name}`;
      byKey.set(key, [...(byKey.get(key) ?? []), s]);
    }
    this.prune(at);

    for (const channel of channels) {
      const ref = parseChannel(channel);
      const slash = ref?.id.indexOf('/') ?? -1;
      if (ref?.platform !== this.platform || slash <= 0 || slash === ref.id.length - 1) {
        out.set(channel, unknownTelemetry(channel, at, 'invalid_channel'));
        continue;
      }
      const candidates = byKey.get(ref.id) ?? [];
      // Several vhosts may carry the same app/name: the publishing one with the most data wins.
      const stream = [...candidates].sort(
        (a, b) => Number(b.publish?.active === true) - Number(a.publish?.active === true) || (b.kbps?.recv_30s ?? 0) - (a.kbps?.recv_30s ?? 0),
      )[0];
      if (!stream) {
        // Absent while SRS answered: nothing reaches our ingest. Unless part of the listing was unreadable.
        out.set(
          channel,
          listing.malformed > 0 || !listing.complete
            ? unknownTelemetry(channel, at, 'bad_response')
            : { channel, live: false, title: UNKNOWN, fps: 0, bitrateKbps: 0, observedAt: at, detail: { listed: false } },
        );
        continue;
      }
      const detail = { streamId: stream.id, frames: stream.frames ?? null, active: stream.publish?.active ?? null };
      if (stream.publish === undefined) {
        out.set(channel, { ...unknownTelemetry(channel, at, 'bad_response'), detail });
        continue;
      }
      if (!stream.publish.active) {
        out.set(channel, { channel, live: false, title: UNKNOWN, fps: 0, bitrateKbps: 0, observedAt: at, detail });
        continue;
      }
      const reading = fps.get(stream.id) ?? 'bad_response';
      const bitrateKbps = stream.kbps?.recv_30s ?? UNKNOWN;
      const unknownReason = typeof reading === 'string' ? reading : bitrateKbps === UNKNOWN ? 'bad_response' : undefined;
      out.set(channel, {
        channel,
        live: true,
        title: UNKNOWN,
        fps: typeof reading === 'number' ? reading : UNKNOWN,
        bitrateKbps,
        observedAt: at,
        ...(unknownReason ? { unknownReason } : {}),
        detail,
      });
    }
    return out;
  }

  /** Δframes/Δt against the newest sample at least minWindowMs old; records this sample either way. */
  private readFps(stream: SrsStream, at: number): FpsReading {
    if (stream.frames === undefined) return 'bad_response';
    const current: FrameSample = { frames: stream.frames, serverMs: stream.live_ms ?? null, localMs: at };
    let samples = this.history.get(stream.id) ?? [];
    let reading: FpsReading;
    // SRS never rewinds a stream object's counter (a new object gets a new id); a decrease is still handled.
    if (samples.some((s) => s.frames > current.frames)) {
      samples = [];
      reading = 'counter_reset';
    } else {
      const baseline = [...samples].reverse().find((s) => at - s.localMs >= this.minWindowMs);
      if (!baseline) reading = samples.length > 0 ? 'window_too_short' : 'first_sample';
      else if (at - baseline.localMs > this.maxAgeMs) reading = 'stale_sample';
      else {
        const serverDt = current.serverMs !== null && baseline.serverMs !== null ? current.serverMs - baseline.serverMs : 0;
        const dtMs = serverDt > 0 ? serverDt : at - baseline.localMs;
        reading = ((current.frames - baseline.frames) * 1000) / dtMs;
      }
    }
    samples = [...samples.filter((s) => at - s.localMs <= this.maxAgeMs), current].slice(-HISTORY_PER_STREAM);
    this.history.set(stream.id, samples);
    return reading;
  }

  /** Forgets streams not seen for longer than maxSampleAgeMs. */
  private prune(at: number): void {
    for (const [id, samples] of this.history) {
      const last = samples[samples.length - 1];
      if (!last || at - last.localMs > this.maxAgeMs) this.history.delete(id);
    }
  }
}
