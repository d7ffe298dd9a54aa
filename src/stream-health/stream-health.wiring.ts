import type { FeatureWiring } from '../feature-wiring.js';
import { StreamHealthWorker } from './stream-health.worker.js';
import type { TelemetryProvider } from './telemetry.js';

export interface StreamHealthWiring extends FeatureWiring {
  /** The telemetry providers the composition root built (integrations implement stream health's port). */
  providers: TelemetryProvider[];
}

/**
 * Builds the StreamHealthWorker, subscribes it to `stream.health.check`, and schedules its sweeps:
 * `stream-sweep` every STREAM_CHECK_EVERY_MS and `stream-sweep-backup` every STREAM_BACKUP_EVERY_MS (the
 * backup only sweeps when no full sweep completed recently). Both are once per tick across the fleet.
 */
export function wireStreamHealth(w: StreamHealthWiring): StreamHealthWorker {
  const { config, logger } = w;
  const log = logger.child({ worker: 'StreamHealthWorker' });
  const { providers } = w;
  if (providers.length === 0) {
    log.warn(
      { reason: 'NO_TELEMETRY_PROVIDER' },
      'no stream telemetry provider configured (TWITCH_CLIENT_ID/SECRET, KICK_CLIENT_ID/SECRET, INGEST_STATS_URL, MEDIAMTX_API_URL): every sample is unknown, nothing is enforced',
    );
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
      sliceSize: config.STREAM_SWEEP_SLICE,
      anomalyGuard: {
        enabled: config.STREAM_ANOMALY_GUARD,
        minShare: config.STREAM_ANOMALY_MIN_SHARE,
        minStreams: config.STREAM_ANOMALY_MIN_STREAMS,
      },
      policies: config.enforcementPolicies,
    },
    onOutboxWrite: w.onOutboxWrite,
  });
  w.consumer.register(worker.checkHandler());
  w.scheduler.register({ name: 'stream-sweep', everyMs: config.STREAM_CHECK_EVERY_MS, run: (tick) => worker.primaryTick(tick) });
  w.scheduler.register({
    name: 'stream-sweep-backup',
    everyMs: config.STREAM_BACKUP_EVERY_MS,
    run: async (tick) => void (await worker.backupTick(tick)),
  });
  return worker;
}
