import { type Clock, SystemClock } from '../infra/clock.js';
import { FakeSrs } from './simulated/srs.js';
import { FakeTwitchHelix, type TwitchFault } from './simulated/twitch-helix.js';

/** What a player's stream does during one segment of a scripted timeline. */
export type StreamState = 'healthy' | 'offline' | 'no-title' | 'low-fps' | 'low-bitrate';

export interface DemoPlayerStream {
  /** Twitch login (`[a-z0-9_]{1,25}`): the channel is `twitch:<login>`. */
  readonly login: string;
  /** SRS stream name under app `live`: the channel is `srs:live/<name>`. */
  readonly ingest: string;
  /** Put in the title when the stream shows it (`[<matchId>]`). */
  readonly matchId: string;
}

export interface StreamSegment {
  /** When the segment starts, from the call to `script`. */
  readonly atMs: number;
  readonly state: StreamState;
}

/**
 * The demo's simulated outside world besides the panel: stream platform (Twitch Helix) and ingest server (SRS).
 * Each is a real HTTP server from ./simulated, so the service talks to them exactly as to the real ones; each
 * player's stream follows a scripted timeline, and `outage` makes both providers fail for a while.
 */
export class DemoPeers {
  private readonly timers = new Set<NodeJS.Timeout>();

  private constructor(
    readonly twitch: FakeTwitchHelix,
    readonly srs: FakeSrs,
    private readonly clock: Clock,
  ) {}

  static async start(clock: Clock = new SystemClock()): Promise<DemoPeers> {
    const twitch = await FakeTwitchHelix.start({ clock });
    const srs = await FakeSrs.start({ clock });
    return new DemoPeers(twitch, srs, clock);
  }

  /**
   * Environment that points the service at the simulated peers, with the stream timings shortened so the demo's
   * verdicts come within a minute (checks every 5 s, 20 s grace — longer than the short dip plus one check interval, so the dip
   * recovers before its grace runs out whatever the phase of the sweep). The user's own settings win.
   */
  env(userEnv: Record<string, string | undefined>): Record<string, string> {
    return {
      TWITCH_CLIENT_ID: userEnv.TWITCH_CLIENT_ID ?? this.twitch.clientId,
      TWITCH_CLIENT_SECRET: userEnv.TWITCH_CLIENT_SECRET ?? this.twitch.clientSecret,
      TWITCH_API_URL: userEnv.TWITCH_API_URL ?? this.twitch.apiUrl,
      TWITCH_AUTH_URL: userEnv.TWITCH_AUTH_URL ?? this.twitch.authUrl,
      INGEST_STATS_URL: userEnv.INGEST_STATS_URL ?? this.srs.url,
      STREAM_CHECK_EVERY_MS: userEnv.STREAM_CHECK_EVERY_MS ?? '5000',
      STREAM_BACKUP_EVERY_MS: userEnv.STREAM_BACKUP_EVERY_MS ?? '10000',
      OFFLINE_GRACE_MS: userEnv.OFFLINE_GRACE_MS ?? '20000',
      TELEMETRY_TIMEOUT_MS: userEnv.TELEMETRY_TIMEOUT_MS ?? '2000',
    };
  }

  /** Plays a player's stream timeline: Twitch entries are scripted on the fake, SRS changes are timed here. */
  script(player: DemoPlayerStream, segments: readonly StreamSegment[]): void {
    const start = this.clock.now();
    this.twitch.script(
      player.login,
      segments.map((s) => ({ at: start + s.atMs, ...this.twitchState(s.state, player.matchId) })),
    );
    for (const segment of segments) this.at(segment.atMs, () => this.ingest(player, segment.state));
  }

  /**
   * Both providers fail for `ms`: Twitch answers 503, 429, or hangs (the client times out); SRS answers 502, an
   * error code, or resets the connection. Every request in the window fails; afterwards they answer again.
   */
  outage(ms: number): Promise<void> {
    const twitchFaults: TwitchFault[] = [{ kind: 'status', status: 503 }, { kind: 'status', status: 429 }, { kind: 'hang' }];
    const srsFaults = [{ kind: 'status', status: 502 } as const, { kind: 'code', code: 1028 } as const, { kind: 'reset' } as const];
    const queues = () => ({
      twitch: (this.twitch as unknown as { faults: Record<string, TwitchFault[]> }).faults.streams ?? [],
      srs: (this.srs as unknown as { faults: unknown[] }).faults,
    });
    let n = 0;
    // Keeps one fault queued at all times: the fakes' fault queues count requests, the demo thinks in seconds.
    const topUp = setInterval(() => {
      const q = queues();
      if (q.twitch.length === 0) this.twitch.failNext('streams', twitchFaults[n % twitchFaults.length] as TwitchFault);
      if (q.srs.length === 0) this.srs.failNext(srsFaults[n % srsFaults.length] as (typeof srsFaults)[number]);
      n++;
    }, 200);
    this.timers.add(topUp);
    return new Promise((resolve) =>
      this.at(ms, () => {
        clearInterval(topUp);
        this.timers.delete(topUp);
        const q = queues();
        q.twitch.length = 0;
        q.srs.length = 0;
        resolve();
      }),
    );
  }

  async close(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.twitch.close();
    await this.srs.close();
  }

  private twitchState(state: StreamState, matchId: string) {
    switch (state) {
      case 'offline':
        return { live: false };
      case 'no-title':
        return { live: true, title: 'Grand final, come watch' };
      default:
        return { live: true, title: `Grand final [${matchId}] GLHF` };
    }
  }

  private ingest(player: DemoPlayerStream, state: StreamState): void {
    if (state === 'offline') {
      try {
        this.srs.unpublish('live', player.ingest);
      } catch {
        // never published: nothing to stop
      }
      return;
    }
    const fps = state === 'low-fps' ? 24 : 60;
    const kbps = state === 'low-bitrate' ? 1800 : 6000;
    this.srs.publish('live', player.ingest, { fps, kbps });
  }

  private at(ms: number, run: () => void): void {
    if (ms <= 0) {
      run();
      return;
    }
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      run();
    }, ms);
    this.timers.add(timer);
  }
}
