/**
 * The telemetry port of the StreamHealthWorker: what a stream platform or an ingest server can tell us about a
 * channel, with every field allowed to be `unknown` (see shared/spec/stream-telemetry.md, "Decision").
 *
 * A channel is named `<platform>:<id>`, for example `twitch:alice_tv` (a platform channel: live + title) or
 * `srs:live/alice` (an ingest channel: measured FPS + bitrate). A match side lists its channels; the composer
 * below merges what their providers said into one `SideSample` for the policy.
 */

export const UNKNOWN = 'unknown' as const;
export type Unknown = typeof UNKNOWN;

/** Why a field is unknown. Ends up in logs, metrics and evidence, never treated as a violation. */
export type TelemetryUnknownReason =
  | 'timeout'
  | 'network_error'
  | 'http_5xx'
  | 'http_4xx'
  | 'rate_limited'
  | 'unauthorized'
  | 'auth_failed'
  | 'bad_response'
  | 'provider_error'
  | 'platform_error'
  | 'first_sample'
  | 'counter_reset'
  | 'stale_sample'
  /** The source's own clock (SRS `live_ms`, Helix `Date`) did not advance: a replayed or cached snapshot. */
  | 'source_stale'
  /** Clock advanced but no counter moved on a publishing stream (a real publisher that sends nothing is dropped). */
  | 'counters_frozen'
  /** The only frame counter also counts audio frames (SRS ≥ 7.0.122 without `video_frames`). */
  | 'frames_include_audio'
  /** Which SRS version wrote `frames` (video only, or audio too) could not be read. */
  | 'version_unknown'
  /** SRS < 7.0.117 counts frames of RTMP publishers only: an SRT / WebRTC publisher's `frames` stays 0. */
  | 'frames_not_counted'
  /** The systemic-anomaly guard set this sweep's readings of the provider aside (see policy.ts, guardSystemicAnomaly). */
  | 'systemic_anomaly'
  | 'window_too_short'
  | 'no_provider'
  | 'invalid_channel'
  | 'missing';

/** What one provider observed about one channel at `observedAt` (ms since epoch). */
export interface ChannelTelemetry {
  readonly channel: string;
  readonly live: boolean | Unknown;
  readonly title: string | Unknown;
  readonly fps: number | Unknown;
  readonly bitrateKbps: number | Unknown;
  readonly observedAt: number;
  /** Set when any field is unknown because of a failure or a missing sample. */
  readonly unknownReason?: TelemetryUnknownReason;
  /** Small provider facts worth keeping as evidence (Twitch `type`, SRS stream id and frame counter, …). */
  readonly detail?: Readonly<Record<string, string | number | boolean | null>>;
}

/**
 * One provider per platform. `fetch` is called with a batch of that platform's channels (one sweep slice, or
 * all of them), batches requests internally, and never rejects for a provider outage: failed channels come back
 * with `unknown` fields.
 */
export interface TelemetryProvider extends TelemetryReader {
  readonly platform: string;
  /**
   * A sweep that reads its channels slice by slice (sweep.ts) opens one reader per provider and calls its
   * `fetch` once per slice. A provider that lists every stream at once (SRS, MediaMTX) lists once per reader, on
   * the first slice, and keeps a compact record per stream until the sweep ends; one with a per-sweep budget
   * (EventSub) spends it across the slices. Without `openSweep`, `fetch` itself is called once per slice.
   */
  openSweep?(): TelemetryReader;
}

/** Answers one batch of a provider's channels; never rejects for a provider outage (unknown fields instead). */
export interface TelemetryReader {
  fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>>;
}

/** One sweep's view of the providers: each provider's sweep reader, or the provider itself when it has none. */
export function openTelemetrySweep(providers: readonly TelemetryProvider[]): TelemetryProvider[] {
  return providers.map((p) => {
    if (!p.openSweep) return p;
    const reader = p.openSweep();
    return { platform: p.platform, fetch: (channels: string[]) => reader.fetch(channels) };
  });
}

export type ChannelRole = 'platform' | 'ingest';

/** Platforms give live + title; ingest servers give measured FPS + bitrate (stream-telemetry.md §2.2). */
export const CHANNEL_ROLES: Readonly<Record<string, ChannelRole>> = Object.freeze({
  twitch: 'platform',
  kick: 'platform',
  youtube: 'platform',
  srs: 'ingest',
  mediamtx: 'ingest',
  'nginx-rtmp': 'ingest',
});

export interface ChannelRef {
  readonly platform: string;
  readonly id: string;
}

/** `twitch:alice_tv` → `{ platform: 'twitch', id: 'alice_tv' }`; null when there is no `platform:` prefix or id. */
export function parseChannel(channel: string): ChannelRef | null {
  const colon = channel.indexOf(':');
  if (colon <= 0 || colon === channel.length - 1) return null;
  return { platform: channel.slice(0, colon).toLowerCase(), id: channel.slice(colon + 1) };
}

const ROLE_ENTRIES = Object.entries(CHANNEL_ROLES);

/**
 * The platform of a channel (`parseChannel(channel)?.platform`), without copying the usual lowercase prefixes:
 * called several times per channel per sweep.
 */
export function channelPlatform(channel: string): string | null {
  const colon = channel.indexOf(':');
  if (colon <= 0 || colon === channel.length - 1) return null;
  for (const [platform] of ROLE_ENTRIES) if (colon === platform.length && channel.startsWith(platform)) return platform;
  return channel.slice(0, colon).toLowerCase();
}

/** The role of a channel's platform; null for a channel without a `platform:` prefix or of an unsupported platform. */
export function channelRole(channel: string): ChannelRole | null {
  const platform = channelPlatform(channel);
  return platform !== null && Object.hasOwn(CHANNEL_ROLES, platform) ? (CHANNEL_ROLES[platform] as ChannelRole) : null;
}

export function unknownTelemetry(channel: string, observedAt: number, reason: TelemetryUnknownReason): ChannelTelemetry {
  return { channel, live: UNKNOWN, title: UNKNOWN, fps: UNKNOWN, bitrateKbps: UNKNOWN, observedAt, unknownReason: reason };
}

/**
 * A real title that is literally "unknown" must not read as "we don't know": it is quoted, so it still fails
 * the title rule instead of pausing enforcement.
 */
export function knownTitle(raw: string): string {
  return raw === UNKNOWN ? `"${raw}"` : raw;
}

/** One side's merged view at one sweep: what the policy checks. */
export interface SideSample {
  readonly channels: readonly string[];
  /** The platform's word (see composeSideSample). */
  readonly live: boolean | Unknown;
  readonly title: string | Unknown;
  /** Measured at our ingest. */
  readonly fps: number | Unknown;
  readonly bitrateKbps: number | Unknown;
  /** Whether our ingest saw the publisher, kept as evidence (not used for `live`). */
  readonly ingestLive: boolean | Unknown;
  readonly observedAt: number;
  /** Per-channel evidence, in the side's channel order. */
  readonly telemetry: readonly ChannelTelemetry[];
  /** Distinct reasons behind unknown fields, for logs and metrics. */
  readonly unknownReasons: readonly TelemetryUnknownReason[];
}

/**
 * Merges one side's channels into a `SideSample`. The rules, and why:
 *
 * - **live comes from the platform.** Viewers watch the platform, so "live" means the platform says live (with
 *   several platform channels, any one live is enough). Our ingest's publish state is kept as `ingestLive`
 *   evidence only. When they disagree:
 *   - platform live, ingest not publishing → live, but FPS and bitrate are 0 (the ingest answered and saw
 *     nothing), so the side still violates on FPS/bitrate: the stream is not reaching our measurement.
 *   - platform offline, ingest publishing → not live: nobody can watch it.
 *   - platform unknown → live unknown, even if the ingest is publishing (we never guess the platform's state);
 *     a known FPS/bitrate violation still counts.
 *   A side without any platform channel falls back to the ingest's publish state for `live` (title unknown).
 * - **title** comes from the live platform channel (else the first platform channel with a known title).
 * - **fps / bitrate** come from the ingest channel that is publishing (else the first ingest channel, which
 *   reports 0 when the ingest answered and the stream is absent, or unknown when the ingest did not answer).
 *   A side without an ingest channel has unknown FPS/bitrate, so it can never be *healthy* — only violating or
 *   unknown: VERIFIED_STREAM sides must name an ingest channel.
 * - A channel the providers did not report on, or of an unsupported platform, counts as unknown (`missing`).
 */
export function composeSideSample(channels: readonly string[], telemetry: ReadonlyMap<string, ChannelTelemetry>, at: number): SideSample {
  // One pass, no intermediate arrays: a 50k-match sweep composes 100k sides.
  const all: ChannelTelemetry[] = [];
  const reasons: TelemetryUnknownReason[] = [];
  const platform = new LiveVote();
  const ingest = new LiveVote();
  let livePlatform: ChannelTelemetry | undefined;
  let titledPlatform: ChannelTelemetry | undefined;
  let liveIngest: ChannelTelemetry | undefined;
  let firstIngest: ChannelTelemetry | undefined;
  for (const channel of channels) {
    const role = channelRole(channel);
    const t = telemetry.get(channel) ?? unknownTelemetry(channel, at, role === null ? 'no_provider' : 'missing');
    all.push(t);
    if (t.unknownReason && !reasons.includes(t.unknownReason)) reasons.push(t.unknownReason);
    if (role === 'platform') {
      platform.add(t.live);
      if (t.live === true) livePlatform ??= t;
      if (t.title !== UNKNOWN) titledPlatform ??= t;
    } else if (role === 'ingest') {
      ingest.add(t.live);
      if (t.live === true) liveIngest ??= t;
      firstIngest ??= t;
    }
  }
  if (ingest.count === 0 && !reasons.includes('no_provider')) reasons.push('no_provider');

  const ingestLive = ingest.result();
  const live = platform.count > 0 ? platform.result() : ingestLive;
  const title = (livePlatform ?? titledPlatform)?.title ?? UNKNOWN;
  const measuring = liveIngest ?? firstIngest;
  return {
    channels,
    live,
    title,
    fps: measuring?.fps ?? UNKNOWN,
    bitrateKbps: measuring?.bitrateKbps ?? UNKNOWN,
    ingestLive,
    observedAt: at,
    telemetry: all,
    unknownReasons: reasons,
  };
}

/** `true` if any says true; otherwise unknown if any is unknown; otherwise false (also for none: unknown). */
class LiveVote {
  count = 0;
  private anyTrue = false;
  private anyUnknown = false;

  add(live: boolean | Unknown): void {
    this.count++;
    if (live === true) this.anyTrue = true;
    else if (live === UNKNOWN) this.anyUnknown = true;
  }

  result(): boolean | Unknown {
    if (this.count === 0) return UNKNOWN;
    if (this.anyTrue) return true;
    return this.anyUnknown ? UNKNOWN : false;
  }
}

/**
 * Asks each provider once for all of its channels (grouped by the `platform:` prefix) and merges the answers.
 * A channel without a provider, or whose provider broke its promise and threw, comes back unknown.
 */
export async function collectTelemetry(
  providers: readonly TelemetryProvider[],
  channels: readonly string[],
  at: number,
): Promise<Map<string, ChannelTelemetry>> {
  const byPlatform = new Map<string, string[]>();
  const result = new Map<string, ChannelTelemetry>();
  for (const channel of new Set(channels)) {
    const ref = parseChannel(channel);
    if (!ref) {
      result.set(channel, unknownTelemetry(channel, at, 'invalid_channel'));
      continue;
    }
    const list = byPlatform.get(ref.platform) ?? [];
    list.push(channel);
    byPlatform.set(ref.platform, list);
  }
  await Promise.all(
    [...byPlatform].map(async ([platform, list]) => {
      const provider = providers.find((p) => p.platform === platform);
      if (!provider) {
        for (const c of list) result.set(c, unknownTelemetry(c, at, 'no_provider'));
        return;
      }
      let answer: Map<string, ChannelTelemetry>;
      try {
        answer = await provider.fetch(list);
      } catch {
        answer = new Map();
        for (const c of list) answer.set(c, unknownTelemetry(c, at, 'provider_error'));
      }
      for (const c of list) result.set(c, answer.get(c) ?? unknownTelemetry(c, at, 'missing'));
    }),
  );
  return result;
}
