import { z } from 'zod';
import { hostname } from 'node:os';
import ipaddr from 'ipaddr.js';
import { parseEnforcementPolicies, type EnforcementPolicy } from './enforcement-policy.js';

/** The seed's four allowlisted networks (SPEC §3). */
export const DEFAULT_HMAC_ALLOWED_CIDRS = '51.81.223.116/32,10.42.0.0/16,127.0.0.1/32,::1/128';

const DAY_MS = 24 * 60 * 60_000;
const ms = (def: number) => z.coerce.number().int().positive().default(def);
const bool = (def: boolean) =>
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'])
    .default(def ? 'true' : 'false')
    .transform((v) => ['true', '1', 'yes', 'on'].includes(v));
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));
const optionalUrl = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()))
  .pipe(z.url().optional());

/** Names the panel accepts for an egg variable (EggVariable: `^[\w]{1,191}$`, not one of its reserved names). */
const RESERVED_ENV_NAMES = ['SERVER_MEMORY', 'SERVER_IP', 'SERVER_PORT', 'ENV', 'HOME', 'USER', 'STARTUP', 'SERVER_UUID', 'UUID'];
const eggVariableName = (def: string) =>
  z
    .string()
    .trim()
    .default(def)
    .pipe(
      z
        .string()
        .regex(/^\w{1,191}$/, 'must be letters, digits or _ (an egg variable name)')
        .refine((name) => !RESERVED_ENV_NAMES.includes(name) && !name.startsWith('P_SERVER_'), 'is reserved by the panel'),
    );

const cidrList = z
  .string()
  .default(DEFAULT_HMAC_ALLOWED_CIDRS)
  .transform((raw, ctx) => {
    const list = raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const cidr of list) {
      try {
        ipaddr.parseCIDR(cidr);
      } catch {
        ctx.addIssue({ code: 'custom', message: `not a CIDR: "${cidr}"` });
      }
    }
    return list;
  });

/** TRUST_PROXY: off (default) or a comma list of proxy addresses/CIDRs whose X-Forwarded-For is believed. */
const trustProxy = z
  .string()
  .default('')
  .transform((raw, ctx) => {
    const v = raw.trim();
    if (v === '' || ['false', '0', 'off', 'no'].includes(v)) return [] as string[];
    if (['true', '1', 'on', 'yes'].includes(v)) {
      ctx.addIssue({ code: 'custom', message: 'must name the proxy addresses (CIDRs), not just "true"' });
      return [];
    }
    const list = v
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)
      .map((s) => (s.includes('/') ? s : s.includes(':') ? `${s}/128` : `${s}/32`));
    for (const cidr of list) {
      try {
        ipaddr.parseCIDR(cidr);
      } catch {
        ctx.addIssue({ code: 'custom', message: `not an address or CIDR: "${cidr}"` });
      }
    }
    return list;
  });

const brokers = z
  .string()
  .optional()
  .transform((raw, ctx) => {
    if (raw === undefined || raw.trim() === '') return undefined;
    const list = raw
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    for (const b of list) {
      if (!/^[A-Za-z0-9.\-_[\]:]+:\d{1,5}$/.test(b)) ctx.addIssue({ code: 'custom', message: `not host:port: "${b}"` });
    }
    return list;
  });

export const configSchema = z.object({
  NODE_ENV: z.string().default('production'),
  PORT: z.coerce.number().int().min(0).max(65535).default(8080),
  HOST: z.string().default('0.0.0.0'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  INSTANCE_ID: optionalString,

  // Pterodactyl
  PTERO_APP_URL: optionalUrl,
  PTERO_APP_API_KEY: optionalString,
  PTERO_RATE_LIMIT_PER_MIN: z.coerce.number().int().min(2).default(240),
  // The panel's throttle window: 60 s on Pterodactyl; Pelican makes it configurable.
  PTERO_RATE_LIMIT_WINDOW_MS: ms(60_000),
  PTERO_TIMEOUT_MS: ms(10_000),
  PTERO_MUTATION_TIMEOUT_MS: ms(30_000),
  // The startup update must name skip_scripts; the panel never shows the server's value (docs/panel.md).
  PANEL_SKIP_SCRIPTS: bool(false),
  // The egg variables the game server's admin plugin reads its admin key from (docs/security.md, docs/panel.md).
  ADMIN_KEY_ID_VARIABLE: eggVariableName('FLOCK_ADMIN_KEY_ID'),
  ADMIN_KEY_SECRET_VARIABLE: eggVariableName('FLOCK_ADMIN_KEY_SECRET'),
  // Attempts of one admin key delivery before a retryable panel failure is recorded as final.
  ADMIN_KEY_DELIVERY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(50).default(6),

  // Security
  OVERLAY_MASTER_SECRET: optionalString,
  ADMIN_HOOK_SECRET: optionalString,
  HMAC_ALLOWED_CIDRS: cidrList,
  TRUST_PROXY: trustProxy,
  OVERLAY_KEY_TTL_MS: ms(6 * 60 * 60 * 1000),
  OVERLAY_HEARTBEAT_TIMEOUT_MS: ms(45_000),
  // Coalesced overlay presence (docs/security.md): heartbeats of a connected overlay are persisted in batches this often,
  // at most this many held in memory (when full, a heartbeat is stored in its own transaction).
  OVERLAY_PRESENCE_FLUSH_MS: ms(1_000),
  OVERLAY_PRESENCE_BUFFER_MAX: z.coerce.number().int().positive().default(20_000),
  // Failed hook verifications per address or key id per minute before failures are answered 429.
  HMAC_FAILURE_LIMIT_PER_MIN: z.coerce.number().int().positive().default(20),
  // Valid hook calls per key id per window before further calls are answered 429 (a leaked key cannot flood).
  HMAC_KEY_BUDGET: z.coerce.number().int().positive().default(300),
  HMAC_KEY_BUDGET_WINDOW_MS: ms(10_000),
  INTERNAL_API_TOKEN: optionalString,

  // Timeouts and limits (seed names and defaults are binding)
  READY_DEADLINE_MS: ms(300_000),
  POLL_EVERY_MS: ms(4_000),
  OFFLINE_GRACE_MS: ms(90_000),
  MAX_BODY_BYTES: z.coerce.number().int().positive().default(65_536),
  MAX_SKEW_MS: ms(60_000),

  // Stream health
  STREAM_MIN_FPS: z.coerce.number().positive().default(30),
  STREAM_MIN_BITRATE_KBPS: z.coerce.number().positive().default(2500),
  STREAM_CHECK_EVERY_MS: ms(30_000),
  STREAM_BACKUP_EVERY_MS: ms(60_000),
  // A sweep works on this many active matches at a time (docs/stream-health.md, "One sweep"): bounds its memory.
  STREAM_SWEEP_SLICE: z.coerce.number().int().min(10).max(50_000).default(2000),
  // Systemic-anomaly guard (docs/stream-health.md): a provider's readings are set aside for a sweep in which at
  // least this share of at least this many sides read through it turn healthy → violating at once.
  STREAM_ANOMALY_GUARD: bool(true),
  STREAM_ANOMALY_MIN_SHARE: z.coerce.number().gt(0).max(1).default(0.3),
  STREAM_ANOMALY_MIN_STREAMS: z.coerce.number().int().min(2).default(20),
  // Named enforcement policies (JSON), selected by a match's enforcementMode; see docs/stream-health.md.
  STREAM_POLICIES: optionalString,
  PROVISION_MONITOR_EVERY_MS: ms(10_000),
  // Coalesced panel polling: one fleet-wide listing per tick (docs/panel.md); 0 polls every server on its own.
  PANEL_LIST_EVERY_MS: z.coerce.number().int().min(0).default(2_000),
  TWITCH_CLIENT_ID: optionalString,
  TWITCH_CLIENT_SECRET: optionalString,
  TWITCH_API_URL: z.url().default('https://api.twitch.tv/helix'),
  TWITCH_AUTH_URL: z.url().default('https://id.twitch.tv/oauth2/token'),
  INGEST_STATS_URL: optionalUrl,
  // Twitch EventSub (webhook transport): the secret Twitch signs deliveries with; set it to turn EventSub on.
  TWITCH_EVENTSUB_SECRET: optionalString,
  // Helix Get Streams requests per sweep once EventSub is on (400 per 30 s tick is Twitch's whole 800/min bucket).
  TWITCH_HELIX_POINTS_PER_SWEEP: z.coerce.number().int().min(0).default(200),
  TWITCH_HELIX_SAMPLE_POINTS_PER_SWEEP: z.coerce.number().int().min(0).default(10),
  // The public URL of POST /v1/twitch/eventsub; without it no subscriptions are managed (pushes still verified).
  TWITCH_EVENTSUB_CALLBACK_URL: optionalUrl,
  TWITCH_EVENTSUB_RECONCILE_EVERY_MS: ms(30_000),
  TWITCH_EVENTSUB_MAX_CHANGES_PER_TICK: z.coerce.number().int().min(0).default(50),
  KICK_CLIENT_ID: optionalString,
  KICK_CLIENT_SECRET: optionalString,
  KICK_API_URL: z.url().default('https://api.kick.com'),
  KICK_AUTH_URL: z.url().default('https://id.kick.com/oauth/token'),
  MEDIAMTX_API_URL: optionalUrl,
  TELEMETRY_TIMEOUT_MS: ms(8_000),

  // Infrastructure (unset → embedded default)
  DATABASE_URL: optionalString,
  DATA_DIR: z.string().default('.data'),
  REDIS_URL: optionalString,
  REDIS_KEY_PREFIX: z.string().default(''),
  // Bound on every PostgreSQL statement (server side) and query round trip (client side): a hung database answers 503.
  DB_QUERY_TIMEOUT_MS: ms(5_000),
  // How long a starting instance waits for an unreachable database (retrying with backoff) before it exits non-zero.
  DB_STARTUP_WAIT_MS: z.coerce.number().int().min(0).max(3_600_000).default(60_000),
  KAFKA_BROKERS: brokers,
  KAFKA_GROUP_ID: z.string().min(1).default('flocknode-workers'),
  KAFKA_CLIENT_ID: z.string().min(1).default('flocknode-workers'),
  KAFKA_TOPIC_PREFIX: z.string().default(''),
  // Within the broker's group.min/max.session.timeout.ms (6 s … 30 min by default).
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).max(1_800_000).default(30_000),
  // What `flock-workers kafka topics --create` creates (and the check expects at least).
  KAFKA_TOPIC_PARTITIONS: z.coerce.number().int().min(1).max(1_000).default(6),
  KAFKA_REPLICATION_FACTOR: z.coerce.number().int().min(1).max(10).default(3),
  SHUTDOWN_TIMEOUT_MS: ms(25_000),
  // After SIGTERM, /readyz answers 503 this long before the service stops taking work (load balancers move away).
  DRAIN_MS: z.coerce.number().int().min(0).max(300_000).default(5_000),
  // `start` refuses a half-embedded setup (some of DATABASE_URL, REDIS_URL, KAFKA_BROKERS unset) unless the
  // embedded parts are named here: a comma list of database, redis, kafka, or "all".
  ALLOW_EMBEDDED: z.string().default(''),

  // Retention (docs/configuration.md): windows in ms; evidence, enforcements, episodes and the ledger are kept.
  RETENTION_EVERY_MS: ms(10 * 60_000),
  RETENTION_BATCH_SIZE: z.coerce.number().int().min(1).max(50_000).default(1_000),
  RETENTION_MAX_BATCHES: z.coerce.number().int().min(1).default(100),
  // Must exceed the input topics' retention: a redelivered event older than this would run again.
  RETENTION_PROCESSED_EVENTS_MS: z.coerce
    .number()
    .int()
    .min(DAY_MS)
    .default(8 * DAY_MS),
  RETENTION_OUTBOX_MS: z.coerce
    .number()
    .int()
    .min(60 * 60_000)
    .default(3 * DAY_MS),
  RETENTION_OVERLAY_EVENTS_MS: z.coerce
    .number()
    .int()
    .min(60 * 60_000)
    .default(14 * DAY_MS),
  RETENTION_STREAM_SAMPLES_MS: z.coerce
    .number()
    .int()
    .min(60 * 60_000)
    .default(14 * DAY_MS),
  RETENTION_DEAD_LETTERS_MS: z.coerce
    .number()
    .int()
    .min(DAY_MS)
    .default(30 * DAY_MS),

  // Set by `demo` only: allows short secrets and generated defaults.
  DEMO_MODE: bool(false),
});

export type RawConfig = z.infer<typeof configSchema>;

export interface Config extends RawConfig {
  readonly instanceId: string;
  /** STREAM_POLICIES on top of `default` (today's STREAM_MIN_FPS, STREAM_MIN_BITRATE_KBPS, OFFLINE_GRACE_MS). */
  readonly enforcementPolicies: ReadonlyMap<string, EnforcementPolicy>;
  readonly embedded: { readonly database: boolean; readonly redis: boolean; readonly kafka: boolean };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const SECRET_NAMES = ['OVERLAY_MASTER_SECRET', 'ADMIN_HOOK_SECRET', 'INTERNAL_API_TOKEN', 'PTERO_APP_API_KEY'] as const;
export const SECRET_CONFIG_KEYS: readonly string[] = [
  ...SECRET_NAMES,
  'TWITCH_CLIENT_SECRET',
  'TWITCH_EVENTSUB_SECRET',
  'KICK_CLIENT_SECRET',
];

/** Validates the whole environment and reports every problem at once (never the value of a secret). */
export function loadConfig(env: NodeJS.ProcessEnv | Record<string, string | undefined>, options: { service?: boolean } = {}): Config {
  const parsed = configSchema.safeParse(env);
  const problems: string[] = [];
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push(`${issue.path.join('.') || '(root)'}: ${issue.message}`);
    }
  }
  // The checks below read the raw strings too, so one run reports every problem, not only the schema's.
  const text = (name: string): string | undefined => {
    const value = env[name]?.trim();
    return value ? value : undefined;
  };
  const demo = parsed.success ? parsed.data.DEMO_MODE : ['true', '1', 'yes', 'on'].includes(text('DEMO_MODE') ?? '');
  if (!demo) {
    for (const name of SECRET_NAMES) {
      const value = text(name);
      if (value !== undefined && Buffer.byteLength(value, 'utf8') < 32) {
        problems.push(`${name}: must be at least 32 bytes outside the demo`);
      }
    }
  }
  const eventSubSecret = text('TWITCH_EVENTSUB_SECRET');
  if (eventSubSecret !== undefined && !demo && Buffer.byteLength(eventSubSecret, 'utf8') < 32) {
    problems.push('TWITCH_EVENTSUB_SECRET: must be at least 32 bytes outside the demo');
  }
  // Twitch accepts a transport secret of 10 to 100 ASCII characters.
  if (eventSubSecret !== undefined && (eventSubSecret.length > 100 || !/^[\x21-\x7e]+$/.test(eventSubSecret))) {
    problems.push('TWITCH_EVENTSUB_SECRET: at most 100 printable ASCII characters');
  }
  if (eventSubSecret !== undefined && text('TWITCH_CLIENT_ID') === undefined) {
    problems.push('TWITCH_EVENTSUB_SECRET: needs TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET (subscriptions use the app token)');
  }
  if (options.service && !demo) {
    // A running service without these cannot do its job; the demo generates its own.
    for (const name of [
      'PTERO_APP_URL',
      'PTERO_APP_API_KEY',
      'OVERLAY_MASTER_SECRET',
      'ADMIN_HOOK_SECRET',
      'INTERNAL_API_TOKEN',
    ] as const) {
      if (text(name) === undefined) problems.push(`${name}: required to run the service`);
    }
  }
  const databaseUrl = text('DATABASE_URL');
  if (databaseUrl && !/^postgres(ql)?:\/\//.test(databaseUrl)) problems.push('DATABASE_URL: must be a postgres:// or postgresql:// URL');
  const redisUrl = text('REDIS_URL');
  if (redisUrl && !/^rediss?:\/\//.test(redisUrl)) problems.push('REDIS_URL: must be a redis:// or rediss:// URL');
  if (text('PTERO_APP_URL') && !text('PTERO_APP_API_KEY') && !problems.some((p) => p.startsWith('PTERO_APP_API_KEY'))) {
    problems.push('PTERO_APP_API_KEY: required when PTERO_APP_URL is set');
  }
  if ((text('ADMIN_KEY_ID_VARIABLE') ?? 'FLOCK_ADMIN_KEY_ID') === (text('ADMIN_KEY_SECRET_VARIABLE') ?? 'FLOCK_ADMIN_KEY_SECRET')) {
    problems.push('ADMIN_KEY_ID_VARIABLE / ADMIN_KEY_SECRET_VARIABLE: must name two different variables');
  }
  if ((text('TWITCH_CLIENT_ID') === undefined) !== (text('TWITCH_CLIENT_SECRET') === undefined)) {
    problems.push('TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET: set both or neither');
  }
  if ((text('KICK_CLIENT_ID') === undefined) !== (text('KICK_CLIENT_SECRET') === undefined)) {
    problems.push('KICK_CLIENT_ID / KICK_CLIENT_SECRET: set both or neither');
  }
  // Policies are judged even when other settings failed (each base value falls back to its default), so one run
  // reports every problem.
  const field = <K extends 'STREAM_MIN_FPS' | 'STREAM_MIN_BITRATE_KBPS' | 'OFFLINE_GRACE_MS' | 'STREAM_CHECK_EVERY_MS'>(key: K): number => {
    const r = configSchema.shape[key].safeParse(env[key]);
    return r.success ? r.data : (configSchema.shape[key].parse(undefined) as number);
  };
  const policies = parseEnforcementPolicies(text('STREAM_POLICIES'), {
    minFps: field('STREAM_MIN_FPS'),
    minBitrateKbps: field('STREAM_MIN_BITRATE_KBPS'),
    graceMs: field('OFFLINE_GRACE_MS'),
    checkEveryMs: field('STREAM_CHECK_EVERY_MS'),
  });
  problems.push(...policies.problems);
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const raw = parsed.data;
  const instanceId = raw.INSTANCE_ID ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  return Object.freeze({
    ...raw,
    instanceId,
    enforcementPolicies: policies.policies,
    embedded: Object.freeze({
      database: raw.DATABASE_URL === undefined,
      redis: raw.REDIS_URL === undefined,
      kafka: raw.KAFKA_BROKERS === undefined,
    }),
  });
}

export const CONFIG = Symbol('Config');
