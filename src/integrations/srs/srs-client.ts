/**
 * SRS HTTP API, the part stream health needs: `GET /api/v1/streams?start=&count=` (shared/spec/stream-telemetry.md,
 * "SRS"; fields from `srs_app_statistic.cpp` SrsStatisticStream::dumps) and `GET /api/v1/versions`. One listing
 * per sweep covers every channel; FPS is derived from a cumulative video-frame counter between sweeps over SRS's
 * own clock (`live_ms`), bitrate is `kbps.recv_30s`.
 *
 * Failure never throws: SRS down, 5xx, an error `code`, a timeout or an unreadable page makes the whole listing
 * unknown — never "absent", which would read as FPS 0 and count against the players. So does a listing whose
 * `live_ms` did not advance (a cached or replayed snapshot): see docs/stream-health.md, "Stale telemetry".
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
import { isRecord } from '../http/telemetry-http.js';
import { FrameHistory, type FrameSample } from './frame-history.js';

const idSchema = z.union([z.string(), z.number()]).transform(String);

const pageSchema = z.object({
  code: z.number(),
  /** Changes when SRS restarts: the cached version is read again. */
  service: idSchema.optional(),
  total: z.number().optional(),
  streams: z.array(z.unknown()).optional(),
});
const versionSchema = z.object({
  code: z.literal(0),
  data: z.object({ major: z.number().int(), minor: z.number().int(), revision: z.number().int() }),
});

/**
 * One listed stream, as much of it as stream health reads (fields of `srs_app_statistic.cpp`
 * SrsStatisticStream::dumps; null where the listing left a field out). Read by `readSrsStream`.
 */
export interface SrsStream {
  /** SRS's id of the stream object (a string; a number is read as its decimal string). */
  readonly id: string;
  readonly app: string;
  readonly name: string;
  /** SRS's own clock at the time of the dump (ms): the only Δt for FPS, and how a frozen snapshot shows. */
  readonly liveMs: number | null;
  /** Cumulative frames: video only before SRS 7.0.122, video + audio from 7.0.122 on (see srsFramesIncludeAudio). */
  readonly frames: number | null;
  /** SRS ≥ 7.0.122: cumulative video frames alone. */
  readonly videoFrames: number | null;
  readonly recvBytes: number | null;
  /** `video` is set: SRS has seen the publisher's video sequence header (null until then). */
  readonly video: boolean;
  /** `kbps.recv_30s`. */
  readonly kbps: number | null;
  /** `publish.active`, null when the listing has no `publish`. */
  readonly active: boolean | null;
}

const isFiniteNumber = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);
/** An optional number field: absent → null; present and not a finite number → invalid. */
const optionalNumber = (v: unknown): number | null | undefined => (v === undefined ? null : isFiniteNumber(v) ? v : undefined);

/**
 * Reads one item of a listing page into an `SrsStream`, or null when it is malformed: `id` a string or number,
 * `name` and `app` strings, `vhost` (when present) a string or number, `live_ms`, `frames`, `video_frames`,
 * `audio_frames`, `recv_bytes` (when present) numbers, `kbps` (when present) an object with a number `recv_30s`,
 * `publish` (when present) an object with a boolean `active` and (when present) a string `cid`. Other fields are
 * ignored. Written out rather than a zod schema: a 50k-match sweep reads 100k of these per sweep, and only these
 * few fields are kept (srs-client.spec.ts checks it against the schema it replaces).
 */
export function readSrsStream(item: unknown): SrsStream | null {
  if (!isRecord(item)) return null;
  const { id, app, name, vhost, kbps, publish } = item;
  if (typeof id !== 'string' && !isFiniteNumber(id)) return null;
  if (typeof app !== 'string' || typeof name !== 'string') return null;
  if (vhost !== undefined && typeof vhost !== 'string' && !isFiniteNumber(vhost)) return null;
  const liveMs = optionalNumber(item.live_ms);
  const frames = optionalNumber(item.frames);
  const videoFrames = optionalNumber(item.video_frames);
  const recvBytes = optionalNumber(item.recv_bytes);
  if (liveMs === undefined || frames === undefined || videoFrames === undefined || recvBytes === undefined) return null;
  if (optionalNumber(item.audio_frames) === undefined) return null;
  if (kbps !== undefined && !(isRecord(kbps) && isFiniteNumber(kbps.recv_30s))) return null;
  if (publish !== undefined && !(isRecord(publish) && typeof publish.active === 'boolean')) return null;
  if (publish !== undefined && publish.cid !== undefined && typeof publish.cid !== 'string') return null;
  return {
    id: String(id),
    app,
    name,
    liveMs,
    frames,
    videoFrames,
    recvBytes,
    video: item.video !== undefined && item.video !== null,
    kbps: kbps === undefined ? null : (kbps.recv_30s as number),
    active: publish === undefined ? null : (publish.active as boolean),
  };
}

export interface SrsVersion {
  readonly major: number;
  readonly minor: number;
  readonly revision: number;
}

/**
 * Whether an SRS release counts audio frames in a stream's `frames`. 5.x, 6.x and 7.0 before 7.0.122 count
 * video frames only (`on_video_frames`); 7.0.122 (#4559) made `frames` = video + audio and added `video_frames`
 * and `audio_frames`. Later majors are assumed to keep that.
 */
export function srsFramesIncludeAudio(v: SrsVersion): boolean {
  return v.major > 7 || (v.major === 7 && (v.minor > 0 || v.revision >= 122));
}

export type SrsListing =
  | {
      readonly ok: true;
      readonly streams: readonly SrsStream[];
      readonly malformed: number;
      readonly pages: number;
      /** SRS's `service` id (new on every SRS start), when it sent one. */
      readonly service: string | null;
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
    let service: string | null = null;
    for (let page = 1; page <= this.maxPages; page++) {
      const url = new URL(`${this.options.baseUrl.replace(/\/+$/, '')}/api/v1/streams`);
      url.searchParams.set('start', String(start));
      url.searchParams.set('count', String(this.pageSize));
      const answer = await this.getPage(url);
      if (typeof answer === 'string') return { ok: false, reason: answer };
      service ??= answer.service ?? null;
      const items = answer.streams ?? [];
      if (page > 1 && overlap > 0 && items.length > 0) {
        // The page starts inside the previous one's tail; if none of that tail is here, streams ended meanwhile and
        // the listing shifted past some we never saw.
        const head = items.slice(0, overlap).map((item) => (item as { id?: unknown }).id);
        if (!head.some((id) => typeof id === 'string' && seen.has(id))) complete = false;
      }
      for (const item of items) {
        const s = readSrsStream(item);
        if (s) seen.set(s.id, s);
        else malformed++;
      }
      const done = items.length === 0 || (answer.total !== undefined ? start + items.length >= answer.total : items.length < this.pageSize);
      if (done) {
        if (malformed > 0) this.options.logger?.warn({ provider: 'srs', malformed }, 'srs listed streams it could not parse');
        if (!complete)
          this.options.logger?.warn(
            { provider: 'srs', pages: page },
            'srs listing shifted while paging; absent streams count as unknown this sweep',
          );
        return { ok: true, streams: [...seen.values()], malformed, pages: page, complete, service };
      }
      start += Math.max(1, items.length - overlap);
    }
    this.options.logger?.warn({ provider: 'srs', maxPages: this.maxPages }, 'srs listing has more pages than allowed');
    return { ok: false, reason: 'bad_response' };
  }

  /** `GET /api/v1/versions`: which release wrote the listing (and so what its `frames` counts). */
  async version(): Promise<SrsVersion | TelemetryUnknownReason> {
    const answer = await this.getJson(new URL(`${this.options.baseUrl.replace(/\/+$/, '')}/api/v1/versions`), versionSchema);
    return typeof answer === 'string' ? answer : answer.data;
  }

  private getPage(url: URL): Promise<z.infer<typeof pageSchema> | TelemetryUnknownReason> {
    return this.getJson(url, pageSchema);
  }

  private async getJson<T extends { code: number }>(url: URL, schema: z.ZodType<T>): Promise<T | TelemetryUnknownReason> {
    let status: number;
    let body: string;
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(this.options.timeoutMs) });
      status = res.status;
      body = await res.text();
    } catch (err) {
      const reason = err instanceof Error && (err.name === 'TimeoutError' || err.name === 'AbortError') ? 'timeout' : 'network_error';
      this.count(reason);
      this.options.logger?.warn({ provider: 'srs', reason, path: url.pathname }, 'srs request failed');
      return reason;
    }
    this.count(String(status));
    if (status !== 200) {
      const reason = status >= 500 ? 'http_5xx' : 'http_4xx';
      this.options.logger?.warn({ provider: 'srs', status, reason, path: url.pathname }, 'srs request failed');
      return reason;
    }
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch {
      json = null;
    }
    const code = (json as { code?: unknown } | null)?.code;
    if (typeof code === 'number' && code !== 0) {
      this.options.logger?.warn({ provider: 'srs', code, path: url.pathname }, 'srs answered with an error code');
      return 'provider_error';
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      this.options.logger?.warn({ provider: 'srs', path: url.pathname }, 'srs answer did not parse');
      return 'bad_response';
    }
    return parsed.data;
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
  /**
   * SRS's clock must have moved when we asked at least this long after the previous listing came back (default
   * 1 s); if it did not, the listing is a replayed snapshot and every channel is unknown (`source_stale`).
   */
  readonly minClockAdvanceMs?: number;
}

type Reading = { readonly fps: number } | { readonly unknown: TelemetryUnknownReason; readonly bitrateToo?: boolean };

/**
 * Samples kept per SRS stream. Samples older than maxSampleAgeMs (3 sweeps) are dropped anyway, so at the sweep
 * cadence a stream holds 3–4 and the FPS baseline (the newest sample at least minFpsWindowMs old) is always among
 * them. Only four listings within minFpsWindowMs (single-match checks between sweeps) leave no baseline: FPS is
 * then unknown for that listing (`window_too_short`), never a violation. Four, not more: at 100k streams each
 * extra sample is 3.2 MB (frame-history.ts).
 */
const HISTORY_PER_STREAM = 4;

/**
 * The ingest provider for `srs:<app>/<name>` channels: measured FPS and bitrate, and whether SRS sees a publisher.
 * - stream listed and `publish.active` → live at ingest, bitrate `kbps.recv_30s`, FPS = Δvideo frames / Δ`live_ms`
 *   against the newest earlier sample of the same stream id that is at least minFpsWindowMs old. FPS is unknown
 *   on the first sample, a counter that went backwards (reset), a previous sample older than maxSampleAgeMs, a
 *   `live_ms` that did not advance, and when the only counter also counts audio; FPS and bitrate are both
 *   unknown when SRS's clock moved but none of the stream's counters did (frozen statistics);
 * - stream listed but not publishing, or not listed at all while SRS answered → not live, FPS 0, bitrate 0;
 * - SRS did not answer, answered garbage, or answered a listing whose `live_ms` did not advance since the
 *   previous one (a cached or replayed snapshot) → every field unknown.
 * The previous samples live in this object, so a new leader's first sweep reads FPS unknown once.
 */
export class SrsTelemetryProvider implements TelemetryProvider {
  readonly platform = 'srs';
  private readonly history = new FrameHistory(HISTORY_PER_STREAM);
  private readonly minWindowMs: number;
  private readonly maxAgeMs: number;
  private readonly minClockAdvanceMs: number;
  /** The newest `live_ms` of the previous listing, and when (our clock) it came back. */
  private lastListing: { readonly serverMs: number; readonly localMs: number } | null = null;
  /** The release behind the SRS process `service` (read once per SRS start). */
  private version: { readonly service: string | null; readonly value: SrsVersion } | null = null;

  constructor(
    private readonly client: SrsClient,
    private readonly clock: Clock,
    options: SrsProviderOptions,
    private readonly logger?: Logger,
  ) {
    this.minWindowMs = options.minFpsWindowMs ?? Math.round(options.checkEveryMs / 3);
    this.maxAgeMs = options.maxSampleAgeMs ?? options.checkEveryMs * 3;
    this.minClockAdvanceMs = options.minClockAdvanceMs ?? 1_000;
  }

  /** One sweep of one batch: lists SRS and answers these channels (see openSweep for a sweep in slices). */
  fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>> {
    return this.openSweep().fetch(channels);
  }

  /**
   * A sweep that reads its channels in slices: SRS is listed once, on the first slice's fetch, and the reader
   * keeps one compact record per app/name (the chosen stream's counters and its FPS reading) until the sweep
   * drops it; every slice is answered from that record, so FPS history advances once per sweep, not per slice.
   */
  openSweep(): TelemetryReader {
    let listed: Promise<SweepListing> | null = null;
    return {
      fetch: async (channels) => {
        listed ??= this.listForSweep();
        return answerChannels(this.platform, await listed, channels);
      },
    };
  }

  /** Lists SRS, reads FPS of every publishing stream (recording its history), keeps what the channels need. */
  private async listForSweep(): Promise<SweepListing> {
    const askedAt = this.clock.now();
    let listing: SrsListing;
    try {
      listing = await this.client.listStreams();
    } catch {
      listing = { ok: false, reason: 'provider_error' };
    }
    const at = this.clock.now();
    if (!listing.ok) return { ok: false, reason: listing.reason, at };

    const stale = this.staleListing(listing.streams, askedAt, at);
    if (stale) return { ok: false, reason: stale, at };
    const release = listing.streams.some((s) => s.active === true && s.videoFrames === null) ? await this.releaseOf(listing.service) : null;

    // Several vhosts may carry the same app/name: the publishing one with the most data wins (the first on a tie).
    // Every publishing stream is read (its FPS history advances), chosen or not.
    const byKey = new ListedStreams(listing.streams.length);
    for (const stream of listing.streams) byKey.offer(stream, stream.active === true ? this.read(stream, release, at) : null);
    this.prune(at);
    return { ok: true, at, byKey, partial: listing.malformed > 0 || !listing.complete };
  }

  /**
   * The listing's clock is its newest `live_ms`. If we asked at least minClockAdvanceMs after the previous listing
   * came back and that clock did not move past the previous listing's, SRS (or a cache in front of it) replayed a
   * snapshot: nothing in it is news. Compared with the previous listing, not the newest ever seen, so a clock
   * stepped back costs one sweep. A listing with streams but no clock at all cannot be dated either.
   */
  private staleListing(streams: readonly SrsStream[], askedAt: number, at: number): TelemetryUnknownReason | null {
    if (streams.length === 0) return null;
    let serverMs = Number.NEGATIVE_INFINITY;
    for (const s of streams) if (s.liveMs !== null && s.liveMs > serverMs) serverMs = s.liveMs;
    if (serverMs === Number.NEGATIVE_INFINITY) return 'bad_response';
    const prev = this.lastListing;
    this.lastListing = { serverMs, localMs: at };
    if (prev && serverMs <= prev.serverMs && askedAt - prev.localMs >= this.minClockAdvanceMs) {
      this.logger?.warn(
        { provider: 'srs', reason: 'source_stale', liveMs: serverMs, previousLiveMs: prev.serverMs, sinceMs: askedAt - prev.localMs },
        'srs listing clock (live_ms) did not advance: a replayed snapshot, every srs channel is unknown this sweep',
      );
      return 'source_stale';
    }
    return null;
  }

  /** The SRS release, read once per SRS process (`service`); null while it cannot be read (retried next sweep). */
  private async releaseOf(service: string | null): Promise<SrsVersion | null> {
    if (this.version && this.version.service === service) return this.version.value;
    let answer: SrsVersion | TelemetryUnknownReason;
    try {
      answer = await this.client.version();
    } catch {
      answer = 'provider_error';
    }
    if (typeof answer === 'string') {
      this.logger?.warn({ provider: 'srs', reason: answer }, 'srs version unknown: FPS from `frames` stays unknown this sweep');
      return null;
    }
    this.version = { service, value: answer };
    this.logger?.info(
      { provider: 'srs', version: `${answer.major}.${answer.minor}.${answer.revision}`, framesIncludeAudio: srsFramesIncludeAudio(answer) },
      'srs version',
    );
    return answer;
  }

  /** The video-only frame counter of this stream, or why there is none. */
  private videoCounter(stream: SrsStream, release: SrsVersion | null): number | TelemetryUnknownReason {
    if (stream.videoFrames !== null) return stream.videoFrames;
    if (stream.frames === null) return 'bad_response';
    if (release === null) return 'version_unknown';
    return srsFramesIncludeAudio(release) ? 'frames_include_audio' : stream.frames;
  }

  /** Δvideo frames / Δ`live_ms` against the newest sample at least minWindowMs old; records this sample either way. */
  private read(stream: SrsStream, release: SrsVersion | null, at: number): Reading {
    if (stream.liveMs === null) return { unknown: 'bad_response' };
    const counter = this.videoCounter(stream, release);
    const current: FrameSample = {
      videoFrames: typeof counter === 'number' ? counter : null,
      recvBytes: stream.recvBytes,
      serverMs: stream.liveMs,
      localMs: at,
    };
    const history = this.history;
    let reading: Reading;
    // SRS never rewinds a stream object's counters or clock (a new object gets a new id); a decrease is still handled.
    const reset = history.anyAhead(stream.id, current);
    if (reset) reading = { unknown: 'counter_reset' };
    else {
      const found = history.findLast(stream.id, (localMs) => at - localMs >= this.minWindowMs);
      const baseline = found < 0 ? null : history.sample(stream.id, found);
      if (!baseline) reading = { unknown: history.count(stream.id) > 0 ? 'window_too_short' : 'first_sample' };
      else if (at - baseline.localMs > this.maxAgeMs) reading = { unknown: 'stale_sample' };
      else if (current.serverMs <= baseline.serverMs) reading = { unknown: 'source_stale', bitrateToo: true };
      else if (frozenCounters(baseline, current)) reading = { unknown: 'counters_frozen', bitrateToo: true };
      else if (typeof counter === 'string') reading = { unknown: counter };
      else if (baseline.videoFrames === null) reading = { unknown: 'first_sample' };
      else if (framesNotCounted(stream, baseline, current)) reading = { unknown: 'frames_not_counted' };
      else reading = { fps: ((counter - baseline.videoFrames) * 1000) / (current.serverMs - baseline.serverMs) };
    }
    history.record(stream.id, current, this.maxAgeMs, reset);
    return reading;
  }

  /** Forgets streams not seen for longer than maxSampleAgeMs. */
  private prune(at: number): void {
    this.history.prune(at, this.maxAgeMs);
  }
}

/** Whether stream `a` beats `b` for the same app/name: publishing first, then the higher bitrate. */
function preferStream(a: Pick<SrsStream, 'active' | 'kbps'>, b: Pick<SrsStream, 'active' | 'kbps'>): boolean {
  const active = Number(a.active === true) - Number(b.active === true);
  return active > 0 || (active === 0 && (a.kbps ?? 0) > (b.kbps ?? 0));
}

/**
 * SRS counts `frames` in the RTMP publisher's loop only before 7.0.117 (SRT) / 7.0.118 (WebRTC); there the video
 * sequence header alone counts one frame. So a counter still at 0 while SRS knows the video codec (`video` set)
 * and bytes arrive is a publisher whose frames SRS does not count, not a stream without frames.
 */
function framesNotCounted(stream: SrsStream, prev: FrameSample, current: FrameSample): boolean {
  const bytesGrew = prev.recvBytes !== null && current.recvBytes !== null && current.recvBytes > prev.recvBytes;
  return stream.videoFrames === null && prev.videoFrames === 0 && current.videoFrames === 0 && bytesGrew && stream.video;
}

/**
 * A publisher that sends nothing is dropped by SRS within seconds (`publish timeout`), so a publishing stream
 * whose received bytes and frames both stood still while SRS's clock moved has statistics that are not updated.
 */
function frozenCounters(prev: FrameSample, current: FrameSample): boolean {
  if (prev.recvBytes === null || current.recvBytes === null || current.recvBytes !== prev.recvBytes) return false;
  return prev.videoFrames === null || current.videoFrames === null || current.videoFrames === prev.videoFrames;
}

/** One listed app/name as a slice's channel is answered from it: the chosen stream's evidence, and its reading. */
interface ListedStream {
  readonly id: string;
  readonly frames: number | null;
  readonly videoFrames: number | null;
  readonly liveMs: number | null;
  readonly active: boolean | null;
  readonly kbps: number | null;
  readonly reading: Reading | null;
}

const NUMBERS = 5;
const [FRAMES, VIDEO_FRAMES, LIVE_MS, KBPS, FPS] = [0, 1, 2, 3, 4];

/**
 * What a sweep keeps of the SRS listing until its last slice: per app/name, the chosen stream's fields and its
 * reading, in columns (numbers in one Float64Array, NaN for null): at 100k streams about a third of the memory
 * of an object per stream, which the sweep would carry through every slice (docs/stream-health.md, "Capacity").
 */
class ListedStreams {
  private readonly rowOf = new Map<string, number>();
  private readonly ids: string[] = [];
  private readonly numbers: Float64Array;
  /** publish.active: -1 unknown, 0 false, 1 true. */
  private readonly active: Int8Array;
  private readonly bitrateToo: Uint8Array;
  /** The reading: an unknown one's reason, else the FPS column (NaN: no reading, the stream does not publish). */
  private readonly reasons: (TelemetryUnknownReason | null)[] = [];

  constructor(capacity: number) {
    this.numbers = new Float64Array(capacity * NUMBERS);
    this.active = new Int8Array(capacity);
    this.bitrateToo = new Uint8Array(capacity);
  }

  /** Keeps `stream` for its app/name unless a stream kept for it already is preferable (preferStream). */
  offer(stream: SrsStream, reading: Reading | null): void {
    const key = `${stream.app}/${stream.name}`;
    let row = this.rowOf.get(key);
    if (row !== undefined && !preferStream(stream, { active: this.activeOf(row), kbps: this.number(row, KBPS) })) return;
    if (row === undefined) {
      row = this.ids.length;
      this.rowOf.set(key, row);
      this.ids.push(stream.id);
      this.reasons.push(null);
    } else this.ids[row] = stream.id;
    const at = row * NUMBERS;
    const nums = this.numbers;
    nums[at + FRAMES] = stream.frames ?? Number.NaN;
    nums[at + VIDEO_FRAMES] = stream.videoFrames ?? Number.NaN;
    nums[at + LIVE_MS] = stream.liveMs ?? Number.NaN;
    nums[at + KBPS] = stream.kbps ?? Number.NaN;
    nums[at + FPS] = reading && 'fps' in reading ? reading.fps : Number.NaN;
    this.active[row] = stream.active === null ? -1 : stream.active ? 1 : 0;
    this.reasons[row] = reading && 'unknown' in reading ? reading.unknown : null;
    this.bitrateToo[row] = reading && 'unknown' in reading && reading.bitrateToo ? 1 : 0;
  }

  /** The stream kept for an app/name, or undefined when none was listed. */
  get(key: string): ListedStream | undefined {
    const row = this.rowOf.get(key);
    if (row === undefined) return undefined;
    const reason = this.reasons[row];
    const fps = this.number(row, FPS);
    return {
      id: this.ids[row] as string,
      frames: this.number(row, FRAMES),
      videoFrames: this.number(row, VIDEO_FRAMES),
      liveMs: this.number(row, LIVE_MS),
      active: this.activeOf(row),
      kbps: this.number(row, KBPS),
      reading: reason ? { unknown: reason, ...(this.bitrateToo[row] === 1 ? { bitrateToo: true } : {}) } : fps !== null ? { fps } : null,
    };
  }

  private number(row: number, field: number): number | null {
    const v = this.numbers[row * NUMBERS + field] as number;
    return Number.isNaN(v) ? null : v;
  }

  private activeOf(row: number): boolean | null {
    const v = this.active[row];
    return v === -1 ? null : v === 1;
  }
}

type SweepListing =
  | { readonly ok: false; readonly reason: TelemetryUnknownReason; readonly at: number }
  | {
      readonly ok: true;
      readonly at: number;
      readonly byKey: ListedStreams;
      /** Part of the listing was unreadable or shifted: an absent stream is unknown, not "not publishing". */
      readonly partial: boolean;
    };

/**
 * One slice's channels answered from the sweep's listing:
 * - listed and publishing → live at ingest, FPS from the reading, bitrate `kbps.recv_30s`;
 * - listed but not publishing, or absent from a complete listing → not live, FPS 0, bitrate 0;
 * - the listing failed or was stale → every field unknown.
 */
function answerChannels(platform: string, listing: SweepListing, channels: readonly string[]): Map<string, ChannelTelemetry> {
  const out = new Map<string, ChannelTelemetry>();
  const { at } = listing;
  for (const channel of channels) {
    if (!listing.ok) {
      out.set(channel, unknownTelemetry(channel, at, listing.reason));
      continue;
    }
    const ref = parseChannel(channel);
    const slash = ref?.id.indexOf('/') ?? -1;
    if (ref?.platform !== platform || slash <= 0 || slash === ref.id.length - 1) {
      out.set(channel, unknownTelemetry(channel, at, 'invalid_channel'));
      continue;
    }
    const listed = listing.byKey.get(ref.id);
    if (!listed) {
      // Absent while SRS answered: nothing reaches our ingest. Unless part of the listing was unreadable.
      out.set(
        channel,
        listing.partial
          ? unknownTelemetry(channel, at, 'bad_response')
          : { channel, live: false, title: UNKNOWN, fps: 0, bitrateKbps: 0, observedAt: at, detail: { listed: false } },
      );
      continue;
    }
    const stream = listed;
    const detail = {
      streamId: stream.id,
      frames: stream.frames,
      videoFrames: stream.videoFrames,
      liveMs: stream.liveMs,
      active: stream.active,
    };
    if (stream.active === null) {
      out.set(channel, { ...unknownTelemetry(channel, at, 'bad_response'), detail });
      continue;
    }
    if (!stream.active) {
      out.set(channel, { channel, live: false, title: UNKNOWN, fps: 0, bitrateKbps: 0, observedAt: at, detail });
      continue;
    }
    const reading = listed.reading ?? { unknown: 'bad_response' };
    const bitrateKbps = 'unknown' in reading && reading.bitrateToo ? UNKNOWN : (stream.kbps ?? UNKNOWN);
    const unknownReason = 'unknown' in reading ? reading.unknown : bitrateKbps === UNKNOWN ? 'bad_response' : undefined;
    out.set(channel, {
      channel,
      live: true,
      title: UNKNOWN,
      fps: 'fps' in reading ? reading.fps : UNKNOWN,
      bitrateKbps,
      observedAt: at,
      ...(unknownReason ? { unknownReason } : {}),
      detail,
    });
  }
  return out;
}
