import { z } from 'zod';
import { hostname } from 'node:os';
import ipaddr from 'ipaddr.js';

/** The seed's four allowlisted networks (SPEC §3). */
export const DEFAULT_HMAC_ALLOWED_CIDRS = '51.81.223.116/32,10.42.0.0/16,127.0.0.1/32,::1/128';

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

  // Security
  OVERLAY_MASTER_SECRET: optionalString,
  ADMIN_HOOK_SECRET: optionalString,
  HMAC_ALLOWED_CIDRS: cidrList,
  TRUST_PROXY: trustProxy,
  OVERLAY_KEY_TTL_MS: ms(6 * 60 * 60 * 1000),
  OVERLAY_HEARTBEAT_TIMEOUT_MS: ms(45_000),
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
  // Systemic-anomaly guard (docs/stream-health.md): a provider's readings are set aside for a sweep in which at
  // least this share of at least this many sides read through it turn healthy → violating at once.
  STREAM_ANOMALY_GUARD: bool(true),
  STREAM_ANOMALY_MIN_SHARE: z.coerce.number().gt(0).max(1).default(0.3),
  STREAM_ANOMALY_MIN_STREAMS: z.coerce.number().int().min(2).default(20),
  PROVISION_MONITOR_EVERY_MS: ms(10_000),
  // Coalesced panel polling: one fleet-wide listing per tick (docs/panel.md); 0 polls every server on its own.
  PANEL_LIST_EVERY_MS: z.coerce.number().int().min(0).default(2_000),
  TWITCH_CLIENT_ID: optionalString,
  TWITCH_CLIENT_SECRET: optionalString,
  TWITCH_API_URL: z.url().default('https://api.twitch.tv/helix'),
  TWITCH_AUTH_URL: z.url().default('https://id.twitch.tv/oauth2/token'),
  INGEST_STATS_URL: optionalUrl,
  TELEMETRY_TIMEOUT_MS: ms(8_000),

  // Infrastructure (unset → embedded default)
  DATABASE_URL: optionalString,
  DATA_DIR: z.string().default('.data'),
  REDIS_URL: optionalString,
  REDIS_KEY_PREFIX: z.string().default(''),
  // Bound on every PostgreSQL statement (server side) and query round trip (client side): a hung database answers 503.
  DB_QUERY_TIMEOUT_MS: ms(5_000),
  KAFKA_BROKERS: brokers,
  KAFKA_GROUP_ID: z.string().min(1).default('flocknode-workers'),
  KAFKA_CLIENT_ID: z.string().min(1).default('flocknode-workers'),
  KAFKA_TOPIC_PREFIX: z.string().default(''),
  // Within the broker's group.min/max.session.timeout.ms (6 s … 30 min by default).
  KAFKA_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).max(1_800_000).default(30_000),
  SHUTDOWN_TIMEOUT_MS: ms(25_000),

  // Set by `demo` only: allows short secrets and generated defaults.
  DEMO_MODE: bool(false),
});

export type RawConfig = z.infer<typeof configSchema>;

export interface Config extends RawConfig {
  readonly instanceId: string;
  readonly embedded: { readonly database: boolean; readonly redis: boolean; readonly kafka: boolean };
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

const SECRET_NAMES = ['OVERLAY_MASTER_SECRET', 'ADMIN_HOOK_SECRET', 'INTERNAL_API_TOKEN', 'PTERO_APP_API_KEY'] as const;
export const SECRET_CONFIG_KEYS: readonly string[] = [...SECRET_NAMES, 'TWITCH_CLIENT_SECRET'];

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
  if (options.service && !demo) {
    // A running service without these cannot do its job; the demo generates its own.
    for (const name of ['PTERO_APP_URL', 'PTERO_APP_API_KEY', 'OVERLAY_MASTER_SECRET', 'ADMIN_HOOK_SECRET', 'INTERNAL_API_TOKEN'] as const) {
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
  if ((text('TWITCH_CLIENT_ID') === undefined) !== (text('TWITCH_CLIENT_SECRET') === undefined)) {
    problems.push('TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET: set both or neither');
  }
  if (problems.length > 0 || !parsed.success) throw new ConfigError(problems);
  const raw = parsed.data;
  const instanceId = raw.INSTANCE_ID ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
  return Object.freeze({
    ...raw,
    instanceId,
    embedded: Object.freeze({
      database: raw.DATABASE_URL === undefined,
      redis: raw.REDIS_URL === undefined,
      kafka: raw.KAFKA_BROKERS === undefined,
    }),
  });
}

export const CONFIG = Symbol('Config');
