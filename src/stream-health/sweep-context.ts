/** What every step of a sweep shares: the worker's dependencies, its resolved settings, and the report it fills. */
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import type { Clock } from '../infra/clock.js';
import type { Database } from '../infra/db/schema.js';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import type { Metrics } from '../observability/metrics.js';
import { DEFAULT_POLICY, type EnforcementPolicy } from '../config/enforcement-policy.js';
import { DEFAULT_ANOMALY_GUARD, type AnomalyGuardOptions, type ProviderAnomaly } from './anomaly-guard.js';
import { resolveGraceOptions, type GraceOptions, type SampleOutcome, type Side } from './policy.js';
import type { TelemetryProvider } from './telemetry.js';

/** STREAM_SWEEP_SLICE's default. */
export const DEFAULT_SWEEP_SLICE = 2000;

export interface StreamHealthSettings {
  /** STREAM_MIN_FPS. */
  minFps: number;
  /** STREAM_MIN_BITRATE_KBPS. */
  minBitrateKbps: number;
  /** OFFLINE_GRACE_MS. */
  graceMs: number;
  /** STREAM_CHECK_EVERY_MS: the sweep cadence the grace clock assumes. */
  checkEveryMs: number;
  /** Configured enforcement policies by name (config.enforcementPolicies); `default` is built from the fields above when absent. */
  policies?: ReadonlyMap<string, EnforcementPolicy>;
  /** Per-match sweep lease in the key-value store (default max(2 × checkEveryMs, 10 s)); a crashed sweep frees its matches after it. */
  leaseMs?: number;
  /** Matches per batched write transaction (default 500). */
  batchSize?: number;
  /** STREAM_SWEEP_SLICE: active matches loaded, leased, read, planned and written at a time (default 2000). */
  sliceSize?: number;
  /** Per-match transactions (episodes, verdicts) in flight at once (default 4). */
  concurrency?: number;
  /** The backup sweep runs only when no full sweep completed within this (default 1.5 × checkEveryMs). */
  backupStaleAfterMs?: number;
  /** STREAM_ANOMALY_GUARD / _MIN_SHARE / _MIN_STREAMS (default on, 30 % of 20 sides). */
  anomalyGuard?: AnomalyGuardOptions;
}

/** Points of a sweep a test can observe; throwing at `verdict-written` rolls the verdict back as a crash would. */
export type SweepTracePoint = 'leases-acquired' | 'telemetry-collected' | 'batch-written' | 'verdict-written' | 'match-committed';

export interface StreamHealthWorkerDeps {
  db: Kysely<Database>;
  kv: KeyValueStore;
  clock: Clock;
  logger: Logger;
  metrics: Metrics;
  providers: TelemetryProvider[];
  settings: StreamHealthSettings;
  instanceId: string;
  /** Called after a transaction that wrote outbox rows commits (wakes the relay). */
  onOutboxWrite?: () => void;
  /** Fault-injection seam for tests; production leaves it unset. */
  trace?: (point: SweepTracePoint, detail: { matchId?: string }) => void;
}

/** The worker's dependencies with every optional setting resolved to its default. */
export interface SweepContext extends StreamHealthWorkerDeps {
  readonly grace: Required<GraceOptions>;
  readonly policies: ReadonlyMap<string, EnforcementPolicy>;
  readonly leaseMs: number;
  readonly batchSize: number;
  readonly sliceSize: number;
  readonly concurrency: number;
  readonly backupStaleAfterMs: number;
  readonly anomalyGuard: AnomalyGuardOptions;
}

export function sweepContext(deps: StreamHealthWorkerDeps): SweepContext {
  const s = deps.settings;
  return {
    ...deps,
    grace: resolveGraceOptions({ graceMs: s.graceMs, checkEveryMs: s.checkEveryMs }),
    policies: withDefaultPolicy(s),
    leaseMs: s.leaseMs ?? Math.max(2 * s.checkEveryMs, 10_000),
    batchSize: Math.max(1, s.batchSize ?? 500),
    sliceSize: Math.max(1, Math.floor(s.sliceSize ?? DEFAULT_SWEEP_SLICE)),
    concurrency: Math.max(1, s.concurrency ?? 4),
    backupStaleAfterMs: s.backupStaleAfterMs ?? Math.round(1.5 * s.checkEveryMs),
    anomalyGuard: s.anomalyGuard ?? DEFAULT_ANOMALY_GUARD,
  };
}

function withDefaultPolicy(s: StreamHealthSettings): ReadonlyMap<string, EnforcementPolicy> {
  const policies = new Map(s.policies ?? []);
  if (!policies.has(DEFAULT_POLICY)) {
    const { minFps, minBitrateKbps, graceMs } = s;
    policies.set(DEFAULT_POLICY, {
      name: DEFAULT_POLICY,
      minFps,
      minBitrateKbps,
      graceMs,
      checkIntervalMultiple: 1,
      verdictRule: 'forfeit',
    });
  }
  return policies;
}

/** The policy a match names; one removed from configuration since falls back to `default` (logged by the sweep). */
export function policyOf(ctx: Pick<SweepContext, 'policies'>, mode: string): { policy: EnforcementPolicy; fallback: boolean } {
  const named = ctx.policies.get(mode);
  return named ? { policy: named, fallback: false } : { policy: ctx.policies.get(DEFAULT_POLICY) as EnforcementPolicy, fallback: true };
}

export interface SweepOptions {
  /** Sweep one match (a `stream.health.check` with matchId); all active matches when absent. */
  matchId?: string;
  signal?: AbortSignal;
}

export interface VerdictSummary {
  matchId: string;
  side: Side;
  verdict: 'FORFEIT' | 'DISPUTE';
  reason: string;
  evidenceId: string;
  episodeId: string;
}

export interface SweepReport {
  scope: string;
  /** Active matches found (in the slices loaded before an abort). */
  matches: number;
  /** Non-empty slices the full sweep loaded (up to STREAM_SWEEP_SLICE matches each); 0 for a one-match sweep. */
  slices: number;
  /** Matches this sweep held the lease of and evaluated. */
  swept: number;
  /** Matches skipped because another sweep (here or on another instance) holds their lease. */
  leasedElsewhere: number;
  /** Provider channels asked about (summed over the slices: one batched collection per slice). */
  channels: number;
  /** Samples applied per outcome (one per side). */
  samples: Record<SampleOutcome, number>;
  /** Sides whose write lost the version check to a concurrent sweep (their sample was dropped). */
  stale: number;
  warnings: number;
  verdicts: VerdictSummary[];
  /** Providers whose readings the systemic-anomaly guard set aside in this sweep (each once, from the slice that flagged it on). */
  anomalies: ProviderAnomaly[];
  aborted: boolean;
  durationMs: number;
  /** Wall time per step (ms), summed over the slices: load the active matches, leases, provider collection, batched writes, per-match transactions. */
  phases: { loadMs: number; leasesMs: number; telemetryMs: number; batchMs: number; eventfulMs: number };
}

export function emptyReport(scope: string): SweepReport {
  return {
    scope,
    matches: 0,
    slices: 0,
    swept: 0,
    leasedElsewhere: 0,
    channels: 0,
    samples: { healthy: 0, violating: 0, unknown: 0 },
    stale: 0,
    warnings: 0,
    verdicts: [],
    anomalies: [],
    aborted: false,
    durationMs: 0,
    phases: { loadMs: 0, leasesMs: 0, telemetryMs: 0, batchMs: 0, eventfulMs: 0 },
  };
}

/** A side's sample was applied: count it in the report and the metrics. */
export function countSample(ctx: SweepContext, report: SweepReport, outcome: SampleOutcome): void {
  report.samples[outcome]++;
  ctx.metrics.streamSamples.inc({ outcome });
}

/** A batch's samples by outcome: one counter update per outcome, not one per side (100k a sweep at 50k matches). */
export function countSamples(ctx: SweepContext, report: SweepReport, tally: Readonly<Record<SampleOutcome, number>>): void {
  for (const outcome of SAMPLE_OUTCOMES) {
    const n = tally[outcome];
    if (n === 0) continue;
    report.samples[outcome] += n;
    ctx.metrics.streamSamples.inc({ outcome }, n);
  }
}

const SAMPLE_OUTCOMES: readonly SampleOutcome[] = ['healthy', 'violating', 'unknown'];
