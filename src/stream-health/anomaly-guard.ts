/**
 * Systemic-anomaly guard: pure functions of one sweep's samples. No I/O, no clock reads.
 *
 * Players fail one by one; a provider fails for everyone it reads. When, in one sweep, a large share of the
 * match sides read through one provider turn from healthy to violating at once, because of that provider's
 * readings, the fault is the provider's (a stale cache, a broken ingest, an API change), not the players'. That
 * provider's readings in that sweep are then set aside as unknown, which pauses the affected grace clocks
 * (policy.ts, advanceGrace), and the anomaly is recorded on every side it touched, so the evidence of any later
 * verdict on those sides shows it. A single real violator among healthy streams stays far below the threshold
 * and is judged as usual; so is a violation read through another provider. Explained in docs/stream-health.md.
 */
import type { ProviderAnomaly, SampleCheck, Side, SideGrace, ViolationCode } from './policy.js';

export type { ProviderAnomaly } from './policy.js';
import { channelPlatform, channelRole, parseChannel, unknownTelemetry, type ChannelTelemetry, type SideSample } from './telemetry.js';

export interface AnomalyGuardOptions {
  /** STREAM_ANOMALY_GUARD. */
  readonly enabled: boolean;
  /** STREAM_ANOMALY_MIN_SHARE: share (0–1] of a provider's sides turning healthy → violating in one sweep. */
  readonly minShare: number;
  /** STREAM_ANOMALY_MIN_STREAMS: the guard judges a provider only when it read at least this many sides. */
  readonly minStreams: number;
}

export const DEFAULT_ANOMALY_GUARD: AnomalyGuardOptions = Object.freeze({ enabled: true, minShare: 0.3, minStreams: 20 });

/** One match side in this sweep, as the guard sees it. */
export interface GuardedSide {
  /** Providers (channel platforms) this side was read through. */
  readonly providers: readonly string[];
  /** The side's last known outcome was healthy (see lastKnownHealthy). */
  readonly wasHealthy: boolean;
  /** Providers whose readings made this sample violating; empty when it is not violating. */
  readonly violatingThrough: readonly string[];
}

/** Per provider: sides read through it, and how many of them turned healthy → violating through its readings. */
export type GuardCounts = Map<string, { streams: number; turned: number }>;

export function countGuardedSides(sides: readonly GuardedSide[], into: GuardCounts = new Map()): GuardCounts {
  for (const side of sides) countSide(into, new Set(side.providers), side.wasHealthy ? side.violatingThrough : NONE);
  return into;
}

/** Counts one side for each of its providers (each once); `turnedThrough`: the providers it turned violating through. */
function countSide(into: GuardCounts, providers: Iterable<string>, turnedThrough: readonly string[]): void {
  for (const provider of providers) {
    const c = into.get(provider) ?? { streams: 0, turned: 0 };
    c.streams++;
    if (turnedThrough.includes(provider)) c.turned++;
    into.set(provider, c);
  }
}

/** The providers whose counts cross the thresholds, sorted by name; empty when the guard is off. */
export function judgeCounts(counts: GuardCounts, at: number, options: AnomalyGuardOptions): ProviderAnomaly[] {
  if (!options.enabled) return [];
  const anomalies: ProviderAnomaly[] = [];
  for (const [provider, { streams, turned }] of [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    const share = streams === 0 ? 0 : turned / streams;
    if (streams >= options.minStreams && turned > 0 && share >= options.minShare) {
      anomalies.push({ provider, at, streams, turnedViolating: turned, share, minShare: options.minShare, minStreams: options.minStreams });
    }
  }
  return anomalies;
}

/**
 * The providers whose readings show a systemic anomaly in this sweep: at least `minStreams` sides read through
 * the provider, and at least `minShare` of them turned from healthy to violating through its readings. Sorted by
 * provider name; empty when the guard is off.
 */
export function detectSystemicAnomalies(sides: readonly GuardedSide[], at: number, options: AnomalyGuardOptions): ProviderAnomaly[] {
  if (!options.enabled) return [];
  return judgeCounts(countGuardedSides(sides), at, options);
}

/**
 * Healthy at its last known sample: not inside an open episode (a violating sample opens one) and healthy at
 * least once. Unknown samples since then do not change it, so a fault that lasts several sweeps is caught in
 * each of them (its first sweep's samples were set aside as unknown, not violating).
 */
export function lastKnownHealthy(grace: SideGrace): boolean {
  return grace.episode?.state !== 'open' && grace.lastHealthyAt !== null;
}

/** The providers (channel platforms) of a side's channels. */
export function sideProviders(sample: Pick<SideSample, 'channels'>): string[] {
  const providers: string[] = [];
  for (const c of sample.channels) {
    const platform = channelPlatform(c);
    if (platform !== null && !providers.includes(platform)) providers.push(platform);
  }
  return providers;
}

const PLATFORM_CHECKS: readonly ViolationCode[] = ['STREAM_OFFLINE', 'TITLE_MISSING_MATCH_ID'];

/**
 * The providers whose readings produced this sample's violations, following composeSideSample: live and title
 * come from the platform channels (the ingest ones when the side has no platform channel), FPS and bitrate
 * from the ingest channels.
 */
export function violationSources(sample: Pick<SideSample, 'channels'>, check: Pick<SampleCheck, 'violations'>): string[] {
  const byRole = { platform: new Set<string>(), ingest: new Set<string>() };
  for (const c of sample.channels) {
    const role = channelRole(c);
    const platform = channelPlatform(c);
    if (role && platform !== null) byRole[role].add(platform);
  }
  const liveFrom = byRole.platform.size > 0 ? byRole.platform : byRole.ingest;
  const out = new Set<string>();
  for (const code of check.violations) for (const p of PLATFORM_CHECKS.includes(code) ? liveFrom : byRole.ingest) out.add(p);
  return [...out].sort();
}

/**
 * This sweep's telemetry with every channel of the given providers set aside as unknown (`systemic_anomaly`).
 * What the provider said is kept in `detail` (readLive, readTitle, readFps, readBitrateKbps) for the evidence.
 */
export function setAsideProviders(
  telemetry: ReadonlyMap<string, ChannelTelemetry>,
  providers: ReadonlySet<string>,
): Map<string, ChannelTelemetry> {
  const out = new Map(telemetry);
  for (const [channel, t] of telemetry) {
    const platform = parseChannel(channel)?.platform;
    if (platform === undefined || !providers.has(platform)) continue;
    out.set(channel, {
      ...unknownTelemetry(channel, t.observedAt, 'systemic_anomaly'),
      detail: {
        ...t.detail,
        readLive: String(t.live),
        readTitle: String(t.title),
        readFps: String(t.fps),
        readBitrateKbps: String(t.bitrateKbps),
        ...(t.unknownReason ? { readUnknownReason: t.unknownReason } : {}),
      },
    });
  }
  return out;
}

/** At most this many anomalies are kept per side: the evidence needs the recent ones, not an unbounded log. */
export const ANOMALIES_KEPT = 10;

/** The side's state with the anomalies that touched it this sweep appended (oldest dropped beyond ANOMALIES_KEPT). */
export function recordAnomalies(grace: SideGrace, anomalies: readonly ProviderAnomaly[]): SideGrace {
  if (anomalies.length === 0) return grace;
  return { ...grace, anomalies: [...(grace.anomalies ?? []), ...anomalies].slice(-ANOMALIES_KEPT) };
}

/** What the guard needs of a match plan: each side's previous state, this sweep's sample and its check. */
export interface GuardablePlan {
  readonly sides: Readonly<
    Record<
      Side,
      {
        readonly prev: SideGrace;
        readonly sample: Pick<SideSample, 'channels'>;
        readonly check: Pick<SampleCheck, 'outcome' | 'violations'>;
      }
    >
  >;
}

/**
 * What the guard carries from one slice of a sweep to the next (sweep.ts plans a sweep slice by slice): the
 * anomalies already found, whose providers stay set aside for the rest of the sweep, and the counts of the
 * slices judged so far, which a slice too small to judge on its own is judged with.
 */
export interface GuardCarry {
  readonly anomalies: readonly ProviderAnomaly[];
  readonly counts: GuardCounts;
}

export function emptyGuardCarry(): GuardCarry {
  return { anomalies: [], counts: new Map() };
}

/**
 * Plans the matches of a sweep (or of one slice of it) behind the guard: plans them on the telemetry as read,
 * looks for systemic anomalies, and if there are any plans them again with the flagged providers' readings set
 * aside (unknown), passing each plan the anomalies so the sides they touched record them. `plan` must be pure.
 *
 * Across slices (`carry`): a provider flagged in an earlier slice is set aside in every later slice of the sweep
 * from the start (so its sides record that anomaly); each slice is judged on its own sides, except a provider
 * that the slice read fewer than `minStreams` sides of, which is judged on the sweep's sides so far (this slice
 * included), so a small last slice is never left unguarded. `anomalies` are the ones new in this slice; `carry`
 * is what the next slice needs.
 */
export function planBehindGuard<M, P extends GuardablePlan>(
  matches: readonly M[],
  telemetry: ReadonlyMap<string, ChannelTelemetry>,
  at: number,
  options: AnomalyGuardOptions,
  plan: (match: M, telemetry: ReadonlyMap<string, ChannelTelemetry>, anomalies: readonly ProviderAnomaly[]) => P,
  carry: GuardCarry = emptyGuardCarry(),
): { readonly plans: P[]; readonly anomalies: ProviderAnomaly[]; readonly carry: GuardCarry } {
  if (!options.enabled) return { plans: matches.map((m) => plan(m, telemetry, [])), anomalies: [], carry };
  const flagged = new Set(carry.anomalies.map((a) => a.provider));
  const read = flagged.size > 0 ? setAsideProviders(telemetry, flagged) : telemetry;
  const plans = matches.map((m) => plan(m, read, carry.anomalies));
  const slice = countPlannedSides(plans);
  const judged: GuardCounts = new Map();
  for (const [provider, c] of slice) {
    if (flagged.has(provider)) continue;
    const before = carry.counts.get(provider);
    judged.set(
      provider,
      c.streams >= options.minStreams || !before ? c : { streams: c.streams + before.streams, turned: c.turned + before.turned },
    );
  }
  const counts: GuardCounts = new Map(carry.counts);
  for (const [provider, c] of slice) {
    const before = counts.get(provider) ?? { streams: 0, turned: 0 };
    counts.set(provider, { streams: before.streams + c.streams, turned: before.turned + c.turned });
  }
  const anomalies = judgeCounts(judged, at, options);
  if (anomalies.length === 0) return { plans, anomalies, carry: { anomalies: carry.anomalies, counts } };
  const all = [...carry.anomalies, ...anomalies];
  const setAside = setAsideProviders(telemetry, new Set(all.map((a) => a.provider)));
  return { plans: matches.map((m) => plan(m, setAside, all)), anomalies, carry: { anomalies: all, counts } };
}

/** The anomalies among `anomalies` that concern a side read through these channels. */
export function anomaliesOfSide(channels: readonly string[], anomalies: readonly ProviderAnomaly[]): ProviderAnomaly[] {
  if (anomalies.length === 0) return [];
  const providers = new Set(sideProviders({ channels }));
  return anomalies.filter((a) => providers.has(a.provider));
}

const SIDE_NAMES: readonly Side[] = ['p1', 'p2'];
const NONE: readonly string[] = [];

/** `countGuardedSides` over the plans' sides, without a GuardedSide per side (a sweep plans 100k sides). */
function countPlannedSides(plans: readonly GuardablePlan[]): GuardCounts {
  const counts: GuardCounts = new Map();
  for (const p of plans) {
    for (const side of SIDE_NAMES) {
      const s = p.sides[side];
      // Only a side that was healthy can turn: the sources of other sides' violations are not needed.
      const turned = s.check.outcome === 'violating' && lastKnownHealthy(s.prev) ? violationSources(s.sample, s.check) : NONE;
      countSide(counts, sideProviders(s.sample), turned);
    }
  }
  return counts;
}
