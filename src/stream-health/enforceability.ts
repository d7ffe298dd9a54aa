/**
 * Can the stream rules be enforced on a match at all? A pure rule of the players' channels and the providers
 * this service has configured: each side of a VERIFIED_STREAM match needs a channel that a configured provider
 * can observe for live + title (a platform) and channels that an ingest can measure for FPS and bitrate.
 * Otherwise both sides would read unknown forever and nothing would ever be enforced (issue 10).
 */
import { parseChannel } from './telemetry.js';

export type Observation = 'live' | 'title' | 'fps' | 'bitrate';
export const OBSERVATIONS: readonly Observation[] = ['live', 'title', 'fps', 'bitrate'];

/** What a provider of each platform can tell (shared/spec/stream-telemetry.md §2.2): MediaMTX has no FPS. */
export const PLATFORM_OBSERVES: Readonly<Record<string, readonly Observation[]>> = Object.freeze({
  twitch: ['live', 'title'],
  kick: ['live', 'title'],
  youtube: ['live', 'title'],
  srs: ['fps', 'bitrate'],
  mediamtx: ['bitrate'],
  'nginx-rtmp': ['fps', 'bitrate'],
});

export interface SideChannels {
  readonly side: 'p1' | 'p2';
  readonly streamChannels: readonly string[];
}

/** One side that cannot be fully observed: what is missing, and a sentence for the 400 and the match view. */
export interface EnforcementGap {
  readonly side: 'p1' | 'p2';
  readonly missing: readonly Observation[];
  readonly detail: string;
}

/** The gaps of each side, in side order; empty when every side can be observed for all four checks. */
export function enforcementGaps(players: readonly SideChannels[], configuredPlatforms: ReadonlySet<string>): EnforcementGap[] {
  const gaps: EnforcementGap[] = [];
  for (const player of [...players].sort((a, b) => a.side.localeCompare(b.side))) {
    const observed = new Set<Observation>();
    const unobserved: string[] = [];
    for (const channel of player.streamChannels) {
      const platform = parseChannel(channel)?.platform;
      if (platform !== undefined && configuredPlatforms.has(platform)) for (const o of PLATFORM_OBSERVES[platform] ?? []) observed.add(o);
      else unobserved.push(channel);
    }
    const missing = OBSERVATIONS.filter((o) => !observed.has(o));
    if (missing.length === 0) continue;
    const parts: string[] = [];
    if (missing.includes('live') || missing.includes('title')) parts.push('no channel a configured provider can observe for live/title');
    const measures = missing.filter((o) => o === 'fps' || o === 'bitrate');
    if (measures.length > 0) parts.push(`no channel an ingest can measure for ${measures.join('/')}`);
    const why =
      unobserved.length > 0
        ? `; without a configured provider: ${unobserved.join(', ')}`
        : player.streamChannels.length === 0
          ? '; no channels given'
          : '';
    const configured = configuredPlatforms.size > 0 ? [...configuredPlatforms].sort().join(', ') : 'none';
    gaps.push({
      side: player.side,
      missing,
      detail: `${player.side}: ${parts.join(', and ')}${why} (configured providers: ${configured})`,
    });
  }
  return gaps;
}
