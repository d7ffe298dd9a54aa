import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_HMAC_ALLOWED_CIDRS, loadConfig } from './config.js';

const SECRET = 'x'.repeat(32);
const service = {
  PTERO_APP_URL: 'https://panel.example.com',
  PTERO_APP_API_KEY: `ptla_${SECRET}`,
  OVERLAY_MASTER_SECRET: SECRET,
  ADMIN_HOOK_SECRET: SECRET,
  INTERNAL_API_TOKEN: SECRET,
};

function problems(env: Record<string, string>, options = { service: true }): string[] {
  try {
    loadConfig(env, options);
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
  return [];
}

describe('loadConfig', () => {
  it('validates the systemic-anomaly guard settings (defaults: on, 30 % of 20 sides)', () => {
    expect(loadConfig(service, { service: true })).toMatchObject({
      STREAM_ANOMALY_GUARD: true,
      STREAM_ANOMALY_MIN_SHARE: 0.3,
      STREAM_ANOMALY_MIN_STREAMS: 20,
    });
    expect(
      loadConfig(
        { ...service, STREAM_ANOMALY_GUARD: 'off', STREAM_ANOMALY_MIN_SHARE: '0.5', STREAM_ANOMALY_MIN_STREAMS: '50' },
        { service: true },
      ),
    ).toMatchObject({
      STREAM_ANOMALY_GUARD: false,
      STREAM_ANOMALY_MIN_SHARE: 0.5,
      STREAM_ANOMALY_MIN_STREAMS: 50,
    });
    for (const [name, value] of [
      ['STREAM_ANOMALY_MIN_SHARE', '0'],
      ['STREAM_ANOMALY_MIN_SHARE', '1.5'],
      ['STREAM_ANOMALY_MIN_SHARE', 'half'],
      ['STREAM_ANOMALY_MIN_STREAMS', '1'],
      ['STREAM_ANOMALY_MIN_STREAMS', '2.5'],
    ] as const) {
      expect(
        problems({ ...service, [name]: value }).map((p) => p.split(':')[0]),
        `${name}=${value}`,
      ).toEqual([name]);
    }
  });

  it('validates the sweep slice (STREAM_SWEEP_SLICE: default 2000, an integer 10–50,000)', () => {
    expect(loadConfig(service, { service: true }).STREAM_SWEEP_SLICE).toBe(2000);
    expect(loadConfig({ ...service, STREAM_SWEEP_SLICE: '500' }, { service: true }).STREAM_SWEEP_SLICE).toBe(500);
    for (const value of ['0', '9', '50001', '1.5', 'many']) {
      expect(
        problems({ ...service, STREAM_SWEEP_SLICE: value }).map((p) => p.split(':')[0]),
        value,
      ).toEqual(['STREAM_SWEEP_SLICE']);
    }
  });

  it('applies the seed defaults', () => {
    const c = loadConfig(service, { service: true });
    expect(c).toMatchObject({
      READY_DEADLINE_MS: 300_000,
      POLL_EVERY_MS: 4000,
      OFFLINE_GRACE_MS: 90_000,
      MAX_BODY_BYTES: 65_536,
      MAX_SKEW_MS: 60_000,
      KAFKA_GROUP_ID: 'flocknode-workers',
      KAFKA_SESSION_TIMEOUT_MS: 30_000,
      PORT: 8080,
      LOG_LEVEL: 'info',
      OVERLAY_KEY_TTL_MS: 6 * 3600_000,
      STREAM_MIN_FPS: 30,
      STREAM_MIN_BITRATE_KBPS: 2500,
      STREAM_CHECK_EVERY_MS: 30_000,
      PTERO_RATE_LIMIT_PER_MIN: 240,
      TRUST_PROXY: [],
    });
    expect(c.HMAC_ALLOWED_CIDRS).toEqual(DEFAULT_HMAC_ALLOWED_CIDRS.split(','));
    expect(c.embedded).toEqual({ database: true, redis: true, kafka: true });
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('admin key variables: defaults, custom names, and names the panel would refuse — all reported at once', () => {
    const c = loadConfig(service, { service: true });
    expect(c).toMatchObject({
      ADMIN_KEY_ID_VARIABLE: 'FLOCK_ADMIN_KEY_ID',
      ADMIN_KEY_SECRET_VARIABLE: 'FLOCK_ADMIN_KEY_SECRET',
      ADMIN_KEY_DELIVERY_MAX_ATTEMPTS: 6,
      PANEL_SKIP_SCRIPTS: false,
    });
    expect(
      loadConfig({ ...service, ADMIN_KEY_ID_VARIABLE: 'MY_KEY_ID', ADMIN_KEY_SECRET_VARIABLE: 'MY_KEY' }).ADMIN_KEY_SECRET_VARIABLE,
    ).toBe('MY_KEY');
    const found = problems({
      ...service,
      ADMIN_KEY_ID_VARIABLE: 'has-dash',
      ADMIN_KEY_SECRET_VARIABLE: 'STARTUP',
      ADMIN_KEY_DELIVERY_MAX_ATTEMPTS: '0',
    });
    expect(found.some((p) => p.startsWith('ADMIN_KEY_ID_VARIABLE: must be letters'))).toBe(true);
    expect(found.some((p) => p.startsWith('ADMIN_KEY_SECRET_VARIABLE: is reserved by the panel'))).toBe(true);
    expect(found.some((p) => p.startsWith('ADMIN_KEY_DELIVERY_MAX_ATTEMPTS'))).toBe(true);
    expect(problems({ ...service, ADMIN_KEY_ID_VARIABLE: 'SAME', ADMIN_KEY_SECRET_VARIABLE: 'SAME' })).toEqual([
      'ADMIN_KEY_ID_VARIABLE / ADMIN_KEY_SECRET_VARIABLE: must name two different variables',
    ]);
  });

  it('reports every problem at once, naming the variable and never the secret', () => {
    const found = problems({
      PORT: 'abc',
      READY_DEADLINE_MS: '0',
      HMAC_ALLOWED_CIDRS: '10.0.0.0/8,300.1.1.1/8',
      TRUST_PROXY: 'true',
      KAFKA_BROKERS: 'a:1,b',
      KAFKA_SESSION_TIMEOUT_MS: '3000',
      DATABASE_URL: 'mysql://x',
      OVERLAY_MASTER_SECRET: 'too-short-secret',
      TWITCH_CLIENT_ID: 'abc',
      KICK_CLIENT_SECRET: 'kick-secret-without-its-id',
      MEDIAMTX_API_URL: 'not a url',
      STREAM_POLICIES: JSON.stringify({ slow: { checkIntervalMultiple: 4 }, cheap: { minFps: 0 } }),
    });
    const names = found.map((p) => p.split(':')[0]);
    expect(names).toEqual(
      expect.arrayContaining([
        'PORT',
        'READY_DEADLINE_MS',
        'HMAC_ALLOWED_CIDRS',
        'TRUST_PROXY',
        'KAFKA_BROKERS',
        'KAFKA_SESSION_TIMEOUT_MS',
        'DATABASE_URL',
        'OVERLAY_MASTER_SECRET',
        'PTERO_APP_URL',
        'INTERNAL_API_TOKEN',
        'TWITCH_CLIENT_ID / TWITCH_CLIENT_SECRET',
        'KICK_CLIENT_ID / KICK_CLIENT_SECRET',
        'MEDIAMTX_API_URL',
        'STREAM_POLICIES.slow.graceMs',
        'STREAM_POLICIES.cheap.minFps',
      ]),
    );
    expect(found.join('\n')).not.toContain('too-short-secret');
    expect(found.join('\n')).not.toContain('kick-secret-without-its-id');
  });

  it('allows short secrets and missing service settings in the demo only', () => {
    expect(problems({ DEMO_MODE: 'true', OVERLAY_MASTER_SECRET: 'short' })).toEqual([]);
    expect(problems({ OVERLAY_MASTER_SECRET: 'short' }, { service: false })).toEqual([
      'OVERLAY_MASTER_SECRET: must be at least 32 bytes outside the demo',
    ]);
  });

  it('wants a 32-byte EventSub secret outside the demo, with Twitch app credentials, and never shows it', () => {
    const twitch = { TWITCH_CLIENT_ID: 'cid', TWITCH_CLIENT_SECRET: SECRET };
    expect(problems({ ...service, ...twitch, TWITCH_EVENTSUB_SECRET: 'short-eventsub-value' })).toEqual([
      'TWITCH_EVENTSUB_SECRET: must be at least 32 bytes outside the demo',
    ]);
    expect(problems({ ...service, TWITCH_EVENTSUB_SECRET: SECRET })).toEqual([
      'TWITCH_EVENTSUB_SECRET: needs TWITCH_CLIENT_ID and TWITCH_CLIENT_SECRET (subscriptions use the app token)',
    ]);
    expect(problems({ ...service, ...twitch, TWITCH_EVENTSUB_SECRET: 'y'.repeat(101) })).toEqual([
      'TWITCH_EVENTSUB_SECRET: at most 100 printable ASCII characters',
    ]);
    expect(problems({ ...service, ...twitch, TWITCH_EVENTSUB_SECRET: SECRET })).toEqual([]);
    expect(problems({ ...twitch, TWITCH_EVENTSUB_SECRET: 'short-eventsub-value', DEMO_MODE: 'true' })).toEqual([]);
  });

  it('parses lists: brokers, CIDRs, trusted proxies', () => {
    const c = loadConfig(
      { ...service, KAFKA_BROKERS: 'k1:9092, k2:9092', TRUST_PROXY: '10.0.0.1,fd00::/8', HMAC_ALLOWED_CIDRS: '127.0.0.1/32' },
      { service: true },
    );
    expect(c.KAFKA_BROKERS).toEqual(['k1:9092', 'k2:9092']);
    expect(c.TRUST_PROXY).toEqual(['10.0.0.1/32', 'fd00::/8']);
    expect(c.HMAC_ALLOWED_CIDRS).toEqual(['127.0.0.1/32']);
    expect(c.embedded.kafka).toBe(false);
  });
});
