import type { Config } from '../config/config.js';
import type { Clock } from '../infra/clock.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TelemetryProvider } from '../stream-health/telemetry.js';
import { KickClient, KickTelemetryProvider } from './kick/kick-client.js';
import { MediaMtxClient, MediaMtxTelemetryProvider } from './mediamtx/mediamtx-client.js';
import { SrsClient, SrsTelemetryProvider } from './srs/srs-client.js';
import { HelixClient, TwitchTelemetryProvider } from './twitch/helix-client.js';

type ProviderDeps = { clock: Clock; logger: Logger; metrics: Metrics };

/**
 * The telemetry providers the configuration can enable, each with the settings that enable it: Twitch Helix
 * (TWITCH_CLIENT_ID + TWITCH_CLIENT_SECRET), Kick (KICK_CLIENT_ID + KICK_CLIENT_SECRET), SRS (INGEST_STATS_URL)
 * and MediaMTX (MEDIAMTX_API_URL). A channel of a platform without a provider reads as unknown (never a
 * violation), so a service without providers enforces nothing and says so.
 */
const PROVIDERS: readonly {
  platform: string;
  enabled: (c: Config) => boolean;
  build: (c: Config, deps: ProviderDeps) => TelemetryProvider;
}[] = [
  {
    platform: 'twitch',
    enabled: (c) => c.TWITCH_CLIENT_ID !== undefined && c.TWITCH_CLIENT_SECRET !== undefined,
    build: (config, deps) =>
      new TwitchTelemetryProvider(
        new HelixClient({
          clientId: config.TWITCH_CLIENT_ID!,
          clientSecret: config.TWITCH_CLIENT_SECRET!,
          apiUrl: config.TWITCH_API_URL,
          authUrl: config.TWITCH_AUTH_URL,
          timeoutMs: config.TELEMETRY_TIMEOUT_MS,
          clock: deps.clock,
          logger: deps.logger.child({ component: 'twitch' }),
          metrics: deps.metrics,
        }),
        deps.clock,
      ),
  },
  {
    platform: 'kick',
    enabled: (c) => c.KICK_CLIENT_ID !== undefined && c.KICK_CLIENT_SECRET !== undefined,
    build: (config, deps) =>
      new KickTelemetryProvider(
        new KickClient({
          clientId: config.KICK_CLIENT_ID!,
          clientSecret: config.KICK_CLIENT_SECRET!,
          apiUrl: config.KICK_API_URL,
          authUrl: config.KICK_AUTH_URL,
          timeoutMs: config.TELEMETRY_TIMEOUT_MS,
          clock: deps.clock,
          logger: deps.logger.child({ component: 'kick' }),
          metrics: deps.metrics,
        }),
        deps.clock,
      ),
  },
  {
    platform: 'mediamtx',
    enabled: (c) => c.MEDIAMTX_API_URL !== undefined,
    build: (config, deps) =>
      new MediaMtxTelemetryProvider(
        new MediaMtxClient({
          baseUrl: config.MEDIAMTX_API_URL!,
          timeoutMs: config.TELEMETRY_TIMEOUT_MS,
          logger: deps.logger.child({ component: 'mediamtx' }),
          metrics: deps.metrics,
        }),
        deps.clock,
        { checkEveryMs: config.STREAM_CHECK_EVERY_MS },
      ),
  },
  {
    platform: 'srs',
    // One ingest lists every publisher of the fleet: 1000 streams a page, up to 200 pages (200k streams, 100k
    // matches). The client's defaults (500 × 20 = 10k streams) would make every channel unknown beyond 5k matches.
    enabled: (c) => c.INGEST_STATS_URL !== undefined,
    build: (config, deps) => {
      const logger = deps.logger.child({ component: 'srs' });
      const srs = new SrsClient({
        baseUrl: config.INGEST_STATS_URL!,
        timeoutMs: config.TELEMETRY_TIMEOUT_MS,
        logger,
        metrics: deps.metrics,
        pageSize: 1000,
        // Pages overlap by 5 streams: 250 pages list up to ~249k streams, 100k matches with one ingest stream
        // per side and a margin. A longer listing is refused as unknown (a runaway or broken paging).
        maxPages: 250,
      });
      return new SrsTelemetryProvider(srs, deps.clock, { checkEveryMs: config.STREAM_CHECK_EVERY_MS }, logger);
    },
  },
];

export function telemetryProvidersFromConfig(config: Config, deps: ProviderDeps): TelemetryProvider[] {
  return PROVIDERS.filter((p) => p.enabled(config)).map((p) => p.build(config, deps));
}

/** The platforms whose channels this configuration can observe (no client is built, no request is sent). */
export function telemetryPlatformsFromConfig(config: Config): Set<string> {
  return new Set(PROVIDERS.filter((p) => p.enabled(config)).map((p) => p.platform));
}
