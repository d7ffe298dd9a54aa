import type { Config } from '../config/config.js';
import type { Clock } from '../infra/clock.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { TelemetryProvider } from '../stream-health/telemetry.js';
import { SrsClient, SrsTelemetryProvider } from './srs/srs-client.js';
import { HelixClient, TwitchTelemetryProvider } from './twitch/helix-client.js';

/**
 * The telemetry providers the configuration enables: Twitch Helix when TWITCH_CLIENT_ID and
 * TWITCH_CLIENT_SECRET are set, SRS when INGEST_STATS_URL is set. A channel of a platform without a provider
 * reads as unknown (never a violation), so a service without providers enforces nothing and says so.
 */
export function telemetryProvidersFromConfig(config: Config, deps: { clock: Clock; logger: Logger; metrics: Metrics }): TelemetryProvider[] {
  const providers: TelemetryProvider[] = [];
  if (config.TWITCH_CLIENT_ID && config.TWITCH_CLIENT_SECRET) {
    const helix = new HelixClient({
      clientId: config.TWITCH_CLIENT_ID,
      clientSecret: config.TWITCH_CLIENT_SECRET,
      apiUrl: config.TWITCH_API_URL,
      authUrl: config.TWITCH_AUTH_URL,
      timeoutMs: config.TELEMETRY_TIMEOUT_MS,
      clock: deps.clock,
      logger: deps.logger.child({ component: 'twitch' }),
      metrics: deps.metrics,
    });
    providers.push(new TwitchTelemetryProvider(helix, deps.clock));
  }
  if (config.INGEST_STATS_URL) {
    // One ingest lists every publisher of the fleet: 1000 streams a page, up to 200 pages (200k streams, 100k
    // matches). The client's defaults (500 × 20 = 10k streams) would make every channel unknown beyond 5k matches.
    const srsLogger = deps.logger.child({ component: 'srs' });
    const srs = new SrsClient({
      baseUrl: config.INGEST_STATS_URL,
      timeoutMs: config.TELEMETRY_TIMEOUT_MS,
      logger: srsLogger,
      metrics: deps.metrics,
      pageSize: 1000,
      maxPages: 200,
    });
    providers.push(new SrsTelemetryProvider(srs, deps.clock, { checkEveryMs: config.STREAM_CHECK_EVERY_MS }, srsLogger));
  }
  return providers;
}

