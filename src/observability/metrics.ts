import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { BUILD_VERSION } from './build-info.js';

export const METRICS = Symbol('Metrics');

/** One registry per process (tests create their own), holding every metric the service exports. */
export class Metrics {
  readonly registry = new Registry();

  readonly eventsConsumed = new Counter({
    name: 'flock_events_consumed_total',
    help: 'Input events by topic and result (processed, duplicate, dead_lettered, failed)',
    labelNames: ['topic', 'result'] as const,
    registers: [this.registry],
  });
  readonly deadLetters = new Counter({
    name: 'flock_dead_letters_total',
    help: 'Messages sent to the dead-letter topic, by source topic and reason',
    labelNames: ['topic', 'reason'] as const,
    registers: [this.registry],
  });
  readonly outboxPublished = new Counter({
    name: 'flock_outbox_published_total',
    help: 'Outbox rows relayed to the bus, by topic',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly outboxPending = new Gauge({
    name: 'flock_outbox_pending',
    help: 'Outbox rows not yet relayed (sampled by the relay)',
    registers: [this.registry],
  });
  readonly provisionOutcomes = new Counter({
    name: 'flock_provisioning_outcomes_total',
    help: 'Provisioning outcomes: ready, failed (by reason), released',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });
  readonly adminKeyDeliveries = new Counter({
    name: 'flock_admin_key_deliveries_total',
    help: 'Admin key delivery attempts through the panel: delivered, pending (will retry), failed (by reason)',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });
  readonly provisionsActive = new Gauge({
    name: 'flock_provisioning_active',
    help: 'Provisions not yet READY, FAILED or RELEASED (sampled by the monitor)',
    registers: [this.registry],
  });
  readonly provisionReadySeconds = new Histogram({
    name: 'flock_provisioning_ready_seconds',
    help: 'Time from reservation to server.ready',
    buckets: [5, 10, 20, 30, 45, 60, 90, 120, 180, 240, 300],
    registers: [this.registry],
  });
  readonly panelRequests = new Counter({
    name: 'flock_pterodactyl_requests_total',
    help: 'Requests to the Pterodactyl application API by operation and status (or error class)',
    labelNames: ['operation', 'status'] as const,
    registers: [this.registry],
  });
  readonly panelRequestSeconds = new Histogram({
    name: 'flock_pterodactyl_request_seconds',
    help: 'Latency of Pterodactyl application API requests',
    labelNames: ['operation'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly panelRateLimitWaitSeconds = new Histogram({
    name: 'flock_pterodactyl_rate_limit_wait_seconds',
    help: 'Time spent waiting for a fleet-wide panel request slot',
    buckets: [0, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });
  readonly refunds = new Counter({
    name: 'flock_refunds_total',
    help: 'Refund ledger entries written',
    labelNames: ['currency'] as const,
    registers: [this.registry],
  });
  readonly hmacVerifications = new Counter({
    name: 'flock_hmac_verifications_total',
    help: 'Hook request verifications by result and reason',
    labelNames: ['result', 'reason', 'route'] as const,
    registers: [this.registry],
  });
  readonly streamAnomalies = new Counter({
    name: 'flock_stream_systemic_anomalies_total',
    help: "Sweeps in which a telemetry provider's readings were set aside by the systemic-anomaly guard, by provider",
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly scheduledTicks = new Counter({
    name: 'flock_scheduled_ticks_total',
    help: 'Scheduled task ticks by task and result (ran, skipped_not_leader, skipped_overrun, failed, skipped_kv_unavailable)',
    labelNames: ['task', 'result'] as const,
    registers: [this.registry],
  });
  readonly scheduledTickSeconds = new Histogram({
    name: 'flock_scheduled_tick_seconds',
    help: 'Duration of scheduled task ticks',
    labelNames: ['task'] as const,
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30],
    registers: [this.registry],
  });
  readonly streamSamples = new Counter({
    name: 'flock_stream_samples_total',
    help: 'Stream health samples by side outcome (healthy, violating, unknown)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly streamVerdicts = new Counter({
    name: 'flock_stream_verdicts_total',
    help: 'Stream-health verdicts by kind (FORFEIT, DISPUTE) and reason',
    labelNames: ['verdict', 'reason'] as const,
    registers: [this.registry],
  });
  readonly telemetryRequests = new Counter({
    name: 'flock_telemetry_requests_total',
    help: 'Requests to stream telemetry providers by provider and status',
    labelNames: ['provider', 'status'] as const,
    registers: [this.registry],
  });

  readonly consumerBatchSize = new Histogram({
    name: 'flock_consumer_batch_size',
    help: 'Messages per consumed batch (one partition, one database transaction)',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [this.registry],
  });
  readonly relayBatchSize = new Histogram({
    name: 'flock_outbox_relay_batch_size',
    help: 'Outbox rows per relay produce request',
    buckets: [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000],
    registers: [this.registry],
  });
  readonly consumerLag = new Gauge({
    name: 'flock_consumer_lag',
    help: 'Messages between the committed offset and the end of each assigned partition (sampled)',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly outboxOldestUnpublishedSeconds = new Gauge({
    name: 'flock_outbox_oldest_unpublished_seconds',
    help: 'Age of the oldest outbox row not yet relayed (0 when none; sampled by the relay)',
    registers: [this.registry],
  });
  readonly httpRequests = new Counter({
    name: 'flock_http_requests_total',
    help: 'HTTP requests answered, by method, route template (unmatched for none) and status code',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpRequestSeconds = new Histogram({
    name: 'flock_http_request_duration_seconds',
    help: 'Time from receiving an HTTP request to the end of its answer, by method and route template',
    labelNames: ['method', 'route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly unexpectedErrors = new Counter({
    name: 'flock_unexpected_errors_total',
    help: 'Errors nobody anticipated (answered 500 and logged at error level), by where they surfaced',
    labelNames: ['where'] as const,
    registers: [this.registry],
  });
  readonly dependencyUnavailable = new Counter({
    name: 'flock_dependency_unavailable_total',
    help: 'Requests answered 503 because a dependency (database, redis) was unreachable',
    labelNames: ['dependency'] as const,
    registers: [this.registry],
  });
  readonly scheduledLastSuccess = new Gauge({
    name: 'flock_scheduled_task_last_success_timestamp_seconds',
    help: 'Unix time of the last successful run of a scheduled task on this instance; the scheduler start until then',
    labelNames: ['task'] as const,
    registers: [this.registry],
  });
  readonly scheduledPeriod = new Gauge({
    name: 'flock_scheduled_task_period_seconds',
    help: 'Configured period of a scheduled task',
    labelNames: ['task'] as const,
    registers: [this.registry],
  });
  readonly graceEpisodesOpened = new Counter({
    name: 'flock_grace_episodes_opened_total',
    help: 'Stream-health grace episodes opened (a side started violating the stream rules)',
    registers: [this.registry],
  });
  readonly graceEpisodesClosed = new Counter({
    name: 'flock_grace_episodes_closed_total',
    help: 'Stream-health grace episodes closed because the stream recovered within grace',
    registers: [this.registry],
  });
  readonly replaysDetected = new Counter({
    name: 'flock_hook_replays_detected_total',
    help: 'Correctly signed hook requests whose nonce was already spent, by route',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });
  readonly retentionDeleted = new Counter({
    name: 'flock_retention_deleted_total',
    help: 'Rows deleted by the retention task, by table',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });
  readonly buildInfo = new Gauge({
    name: 'flock_build_info',
    help: 'Always 1; the labels say which build runs',
    labelNames: ['version', 'nodejs'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics) collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ version: BUILD_VERSION, nodejs: process.versions.node }, 1);
  }
}
