/**
 * MediaMTX control API, the part stream health needs: `GET /v3/paths/list?page=&itemsPerPage=` (shared/spec/
 * stream-telemetry.md, "MediaMTX"; `bluenviron/mediamtx` `api/openapi.yaml`). One listing per sweep covers every
 * path; MediaMTX gives whether a path has a publisher and a cumulative byte counter, never FPS.
 *
 * Field renames across versions are read either way: `online` / `available` (newer) or `ready` (older) for the
 * publish state, `onlineTime` / `availableTime` / `readyTime` for when it began, `inboundBytes` or `bytesReceived`.
 * Failure never throws: MediaMTX down, 4xx/5xx, a timeout or an unreadable page makes the listing unknown.
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
  type TelemetryReader,
  type TelemetryUnknownReason,
} from '../../stream-health/telemetry.js';
import { httpText, parseJson } from '../http/telemetry-http.js';

const timeSchema = z.string().nullable().optional();
const pathSchema = z
  .object({
    name: z.string(),
    online: z.boolean().optional(),
    available: z.boolean().optional(),
    ready: z.boolean().optional(),
    onlineTime: timeSchema,
    availableTime: timeSchema,
    readyTime: timeSchema,
    inboundBytes: z.number().nonnegative().optional(),
    bytesReceived: z.number().nonnegative().optional(),
  })
  .transform((p) => ({
    name: p.name,
    online: p.online ?? p.available ?? p.ready,
    /** When the current publisher began: a new value means a new session, so the byte counter restarted. */
    since: p.onlineTime ?? p.availableTime ?? p.readyTime ?? null,
    inboundBytes: p.inboundBytes ?? p.bytesReceived,
  }));
const pageSchema = z.object({
  pageCount: z.number().int().nonnegative(),
  itemCount: z.number().int().nonnegative().optional(),
  items: z.array(z.unknown()),
});

export type MediaMtxPath = z.output<typeof pathSchema>;

export type MediaMtxListing =
  | { readonly ok: true; readonly paths: readonly MediaMtxPath[]; readonly malformed: number; readonly pages: number }
  | { readonly ok: false; readonly reason: TelemetryUnknownReason };

export interface MediaMtxClientOptions {
  /** MEDIAMTX_API_URL, the control API base, e.g. http://mediamtx:9997 */
  readonly baseUrl: string;
  /** TELEMETRY_TIMEOUT_MS, per page request. */
  readonly timeoutMs: number;
  readonly logger?: Logger;
  readonly metrics?: Metrics;
  /** Paths per page (default 1000). */
  readonly pageSize?: number;
  /** Stop (and answer unknown) after this many pages (default 200). */
  readonly maxPages?: number;
}

export class MediaMtxClient {
  private readonly pageSize: number;
  private readonly maxPages: number;

  constructor(private readonly options: MediaMtxClientOptions) {
    this.pageSize = Math.max(1, options.pageSize ?? 1000);
    this.maxPages = Math.max(1, options.maxPages ?? 200);
  }

  async listPaths(): Promise<MediaMtxListing> {
    const paths = new Map<string, MediaMtxPath>();
    let malformed = 0;
    for (let page = 0; page < this.maxPages; page++) {
      const url = new URL(`${this.options.baseUrl.replace(/\/+$/, '')}/v3/paths/list`);
      url.searchParams.set('page', String(page));
      url.searchParams.set('itemsPerPage', String(this.pageSize));
      const r = await httpText(url, { method: 'GET' }, this.options.timeoutMs);
      this.count(r.ok ? String(r.status) : r.reason);
      if (!r.ok) return this.failed(r.reason);
      if (r.status !== 200) return this.failed(r.status >= 500 ? 'http_5xx' : 'http_4xx', r.status);
      const parsed = parseJson(r.body, pageSchema);
      if (!parsed) return this.failed('bad_response');
      for (const item of parsed.items) {
        const p = pathSchema.safeParse(item);
        if (p.success) paths.set(p.data.name, p.data);
        else malformed++;
      }
      if (page + 1 >= parsed.pageCount || parsed.items.length === 0) {
        if (malformed > 0) this.options.logger?.warn({ provider: 'mediamtx', malformed }, 'mediamtx listed paths it could not parse');
        return { ok: true, paths: [...paths.values()], malformed, pages: page + 1 };
      }
    }
    this.options.logger?.warn({ provider: 'mediamtx', maxPages: this.maxPages }, 'mediamtx listing has more pages than allowed');
    return { ok: false, reason: 'bad_response' };
  }

  private failed(reason: TelemetryUnknownReason, status?: number): MediaMtxListing {
    this.options.logger?.warn({ provider: 'mediamtx', reason, status }, 'mediamtx paths request failed');
    return { ok: false, reason };
  }

  private count(status: string): void {
    this.options.metrics?.telemetryRequests.inc({ provider: 'mediamtx', status });
  }
}

export interface MediaMtxProviderOptions {
  /** STREAM_CHECK_EVERY_MS. */
  readonly checkEveryMs: number;
  /** Bitrate needs a window at least this long (default checkEveryMs / 3). */
  readonly minWindowMs?: number;
  /** A previous sample older than this is stale (default 3 × checkEveryMs): bitrate unknown, not averaged over it. */
  readonly maxSampleAgeMs?: number;
}

interface ByteSample {
  readonly bytes: number;
  readonly since: string | null;
  /** When this listing answered: MediaMTX reports no clock of its own, so Δt is measured between its answers. */
  readonly at: number;
}

const HISTORY_PER_PATH = 8;

/**
 * The ingest provider for `mediamtx:<path>` channels: whether a publisher is online and the bitrate it delivers,
 * Δ`inboundBytes` × 8 / Δt over the time between the listings that reported them. FPS is always unknown (MediaMTX
 * does not measure it), so an FPS threshold needs an SRS channel or a waiver.
 * - path online → live at ingest, bitrate from the newest earlier sample of the same session at least
 *   minWindowMs old; unknown on the first sample, a new session (`onlineTime` changed) or a counter that went
 *   backwards, or a previous sample older than maxSampleAgeMs;
 * - path listed but offline, or not listed while MediaMTX answered → not live, bitrate 0;
 * - MediaMTX did not answer (or answered garbage) → every field unknown.
 */
export class MediaMtxTelemetryProvider implements TelemetryProvider {
  readonly platform = 'mediamtx';
  private readonly history = new Map<string, ByteSample[]>();
  private readonly minWindowMs: number;
  private readonly maxAgeMs: number;

  constructor(
    private readonly client: MediaMtxClient,
    private readonly clock: Clock,
    options: MediaMtxProviderOptions,
  ) {
    this.minWindowMs = options.minWindowMs ?? Math.round(options.checkEveryMs / 3);
    this.maxAgeMs = options.maxSampleAgeMs ?? options.checkEveryMs * 3;
  }

  /** One sweep of one batch: lists MediaMTX and answers these channels (see openSweep for a sweep in slices). */
  fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>> {
    return this.openSweep().fetch(channels);
  }

  /**
   * A sweep that reads its channels in slices: MediaMTX is listed once, on the first slice's fetch, and the
   * reader keeps one compact record per path (its state and bitrate reading) until the sweep drops it.
   */
  openSweep(): TelemetryReader {
    let listed: Promise<PathsListing> | null = null;
    return {
      fetch: async (channels) => {
        listed ??= this.listForSweep();
        return this.answer(await listed, channels);
      },
    };
  }

  private async listForSweep(): Promise<PathsListing> {
    let listing: MediaMtxListing;
    try {
      listing = await this.client.listPaths();
    } catch {
      listing = { ok: false, reason: 'provider_error' };
    }
    const at = this.clock.now();
    if (!listing.ok) return { ok: false, reason: listing.reason, at };
    const byName = new Map<string, CompactPath>();
    for (const p of listing.paths) {
      byName.set(p.name, {
        online: p.online ?? null,
        since: p.since,
        inboundBytes: p.inboundBytes ?? null,
        rate: p.online === true ? this.readRate(p, at) : null,
      });
    }
    this.prune(at);
    return { ok: true, at, byName, malformed: listing.malformed };
  }

  private answer(listing: PathsListing, channels: readonly string[]): Map<string, ChannelTelemetry> {
    const out = new Map<string, ChannelTelemetry>();
    const { at } = listing;
    if (!listing.ok) {
      for (const c of channels) out.set(c, unknownTelemetry(c, at, listing.reason));
      return out;
    }
    for (const channel of channels) {
      const ref = parseChannel(channel);
      const name = ref?.id.replace(/^\/+/, '') ?? '';
      if (ref?.platform !== this.platform || name === '') {
        out.set(channel, unknownTelemetry(channel, at, 'invalid_channel'));
        continue;
      }
      const path = listing.byName.get(name);
      if (!path) {
        out.set(
          channel,
          listing.malformed > 0
            ? unknownTelemetry(channel, at, 'bad_response')
            : { channel, live: false, title: UNKNOWN, fps: UNKNOWN, bitrateKbps: 0, observedAt: at, detail: { listed: false } },
        );
        continue;
      }
      const detail = { online: path.online, since: path.since, inboundBytes: path.inboundBytes };
      if (path.online === null) {
        out.set(channel, { ...unknownTelemetry(channel, at, 'bad_response'), detail });
        continue;
      }
      if (!path.online) {
        out.set(channel, { channel, live: false, title: UNKNOWN, fps: UNKNOWN, bitrateKbps: 0, observedAt: at, detail });
        continue;
      }
      const rate = path.rate ?? 'bad_response';
      out.set(channel, {
        channel,
        live: true,
        title: UNKNOWN,
        fps: UNKNOWN,
        bitrateKbps: typeof rate === 'number' ? rate : UNKNOWN,
        observedAt: at,
        ...(typeof rate === 'string' ? { unknownReason: rate } : {}),
        detail,
      });
    }
    return out;
  }

  /** Δbytes × 8 / Δms (kbit/s) against the newest same-session sample at least minWindowMs old; records this one. */
  private readRate(path: MediaMtxPath, at: number): number | TelemetryUnknownReason {
    if (path.inboundBytes === undefined) return 'bad_response';
    const current: ByteSample = { bytes: path.inboundBytes, since: path.since, at };
    let samples = this.history.get(path.name) ?? [];
    let reading: number | TelemetryUnknownReason;
    if (samples.some((s) => s.since !== current.since || s.bytes > current.bytes)) {
      samples = [];
      reading = 'counter_reset';
    } else {
      const baseline = [...samples].reverse().find((s) => at - s.at >= this.minWindowMs);
      if (!baseline) reading = samples.length > 0 ? 'window_too_short' : 'first_sample';
      else if (at - baseline.at > this.maxAgeMs) reading = 'stale_sample';
      else reading = ((current.bytes - baseline.bytes) * 8) / (at - baseline.at);
    }
    samples = [...samples.filter((s) => at - s.at <= this.maxAgeMs), current].slice(-HISTORY_PER_PATH);
    this.history.set(path.name, samples);
    return reading;
  }

  private prune(at: number): void {
    for (const [name, samples] of this.history) {
      const last = samples[samples.length - 1];
      if (!last || at - last.at > this.maxAgeMs) this.history.delete(name);
    }
  }
}

/** What a sweep keeps of one listed path. */
interface CompactPath {
  readonly online: boolean | null;
  readonly since: string | null;
  readonly inboundBytes: number | null;
  /** Set for an online path: kbit/s or why unknown. */
  readonly rate: number | TelemetryUnknownReason | null;
}

type PathsListing =
  | { readonly ok: false; readonly reason: TelemetryUnknownReason; readonly at: number }
  | { readonly ok: true; readonly at: number; readonly byName: ReadonlyMap<string, CompactPath>; readonly malformed: number };
