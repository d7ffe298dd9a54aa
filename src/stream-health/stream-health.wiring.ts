import type { Config } from '../config/config.js';
import type { Clock } from '../infra/clock.js';
import type { FeatureWiring } from '../infra/feature-wiring.js';
import { SrsClient, SrsTelemetryProvider } from '../integrations/srs/srs-client.js';
import { HelixClient, TwitchTelemetryProvider } from '../integrations/twitch/helix-client.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { StreamHealthWorker } from './stream-health.worker.js';
import type { TelemetryProvider } from './telemetry.js';

export type StreamHealthWiring = FeatureWiring;

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
    const srs = new SrsClient({
      baseUrl: config.INGEST_STATS_URL,
      timeoutMs: config.TELEMETRY_TIMEOUT_MS,
      logger: deps.logger.child({ component: 'srs' }),
      metrics: deps.metrics,
      pageSize: 1000,
      maxPages: 200,
    });
    providers.push(new SrsTelemetryProvider(srs, deps.clock, { checkEveryMs: config.STREAM_CHECK_EVERY_MS }));
  }
  return providers;
}

/**
 * Builds the StreamHealthWorker, subscribes it to `stream.health.check`, and schedules its sweeps:
 * `stream-sweep` every STREAM_CHECK_EVERY_MS and `stream-sweep-backup` every STREAM_BACKUP_EVERY_MS (the
 * backup only sweeps when no full sweep completed recently). Both are once per tick across the fleet.
 */
export function wireStreamHealth(w: StreamHealthWiring): StreamHealthWorker {
  const { config, logger } = w;
  const log = logger.child({ worker: 'StreamHealthWorker' });
  const providers = telemetryProvidersFromConfig(config, { clock: w.clock, logger, metrics: w.metrics });
  if (providers.length === 0) {
    log.warn({ reason: 'NO_TELEMETRY_PROVIDER' }, 'no stream telemetry provider configured (TWITCH_CLIENT_ID/SECRET, INGEST_STATS_URL): every sample is unknown, nothing is enforced');
  } else {
    log.info({ providers: providers.map((p) => p.platform) }, 'stream telemetry providers');
  }
  const worker = new StreamHealthWorker({
    db: w.db,
    kv: w.kv,
    clock: w.clock,
    logger: log,
    metrics: w.metrics,
    providers,
    instanceId: config.instanceId,
    settings: {
      minFps: config.STREAM_MIN_FPS,
      minBitrateKbps: config.STREAM_MIN_BITRATE_KBPS,
      graceMs: config.OFFLINE_GRACE_MS,
      checkEveryMs: config.STREAM_CHECK_EVERY_MS,
    },
    onOutboxWrite: w.onOutboxWrite,
  });
  w.consumer.register(worker.checkHandler());
  w.scheduler.register({ name: 'stream-sweep', everyMs: config.STREAM_CHECK_EVERY_MS, run: (tick) => worker.primaryTick(tick) });
  w.scheduler.register({ name: 'stream-sweep-backup', everyMs: config.STREAM_BACKUP_EVERY_MS, run: async (tick) => void (await worker.backupTick(tick)) });
  return worker;
}
