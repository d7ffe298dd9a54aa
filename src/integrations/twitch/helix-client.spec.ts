import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeTwitchHelix } from '../../demo/simulated/twitch-helix.js';
import { ManualClock } from '../../infra/clock.js';
import { createLogger } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { HelixClient, TwitchTelemetryProvider, type HelixClientOptions } from './helix-client.js';

/** A manual clock that tells the test when the client started to wait. */
class WatchedClock extends ManualClock {
  readonly sleeps: number[] = [];
  override sleep(ms: number, signal?: AbortSignal): Promise<void> {
    this.sleeps.push(ms);
    return super.sleep(ms, signal);
  }
}

/**
 * Per-request timeout. Generous: a request the fake answers must never read as `timeout` because a loaded machine
 * stalled it for a few hundred milliseconds. Only the hang case uses HANG_TIMEOUT_MS, to stay quick; there the
 * fake's log proves that the request which timed out was held and never answered.
 */
const TIMEOUT_MS = 2_500;
const HANG_TIMEOUT_MS = 1_000;

let clock: WatchedClock;
let fake: FakeTwitchHelix;
let metrics: Metrics;
let logLines: string[];

beforeEach(async () => {
  clock = new WatchedClock(Date.UTC(2026, 0, 1));
  fake = await FakeTwitchHelix.start({ clock, tokenTtlSeconds: 3600, clientSecret: 'S3cr3t-never-in-logs-0123456789abcdef' });
  metrics = new Metrics();
  logLines = [];
});
afterEach(async () => {
  await fake.close();
});

function provider(overrides: Partial<HelixClientOptions> = {}) {
  const client = new HelixClient({
    clientId: fake.clientId,
    clientSecret: fake.clientSecret,
    apiUrl: fake.apiUrl,
    authUrl: fake.authUrl,
    timeoutMs: TIMEOUT_MS,
    clock,
    metrics,
    logger: createLogger('trace', {}, { write: (line: string) => void logLines.push(line) }),
    ...overrides,
  });
  return { client, twitch: new TwitchTelemetryProvider(client, clock) };
}

const channels = (n: number) => Array.from({ length: n }, (_, i) => `twitch:user_${i}`);

async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 5));
  expect(condition()).toBe(true);
}

describe('TwitchTelemetryProvider over real HTTP', () => {
  it('maps live, non-live types, Twitch error type, offline, and a literal "unknown" title', async () => {
    fake.setChannel('alice_tv', { live: true, title: 'Finals #m-1' });
    fake.setChannel('rerun_guy', { live: true, type: 'rerun', title: 'yesterday #m-1' });
    fake.setChannel('glitchy', { live: true, type: '', title: 'x' });
    fake.setChannel('literal', { live: true, title: 'unknown' });
    const { twitch } = provider();
    const result = await twitch.fetch([
      'twitch:Alice_TV',
      'twitch:rerun_guy',
      'twitch:glitchy',
      'twitch:literal',
      'twitch:offline_one',
      'twitch:not a login',
    ]);
    expect(result.get('twitch:Alice_TV')).toMatchObject({
      live: true,
      title: 'Finals #m-1',
      fps: 'unknown',
      bitrateKbps: 'unknown',
      observedAt: clock.now(),
    });
    expect(result.get('twitch:rerun_guy')).toMatchObject({ live: false, title: 'yesterday #m-1', detail: { type: 'rerun' } });
    expect(result.get('twitch:glitchy')).toMatchObject({ live: 'unknown', unknownReason: 'platform_error' });
    expect(result.get('twitch:literal')).toMatchObject({ live: true, title: '"unknown"' });
    expect(result.get('twitch:offline_one')).toMatchObject({ live: false, title: 'unknown' });
    expect(result.get('twitch:offline_one')?.unknownReason).toBeUndefined();
    expect(result.get('twitch:not a login')).toMatchObject({ live: 'unknown', unknownReason: 'invalid_channel' });
  });

  it('batches 250 channels into 3 requests of at most 100 logins, asking for first=100', async () => {
    for (let i = 0; i < 250; i += 2) fake.setChannel(`user_${i}`, { live: true, title: `#m-${i}` });
    const { twitch } = provider();
    const result = await twitch.fetch(channels(250));
    const requests = fake.streamsRequests();
    expect(requests.map((r) => r.logins.length).sort((a, b) => b - a)).toEqual([100, 100, 50]);
    expect(requests.every((r) => r.first === '100')).toBe(true);
    expect(result.size).toBe(250);
    // 50 live users in one batch: more than Helix's default page of 20, none lost.
    for (let i = 0; i < 250; i++) expect(result.get(`twitch:user_${i}`)?.live).toBe(i % 2 === 0);
    expect(fake.tokensIssued).toBe(1);
  });

  it('reuses the token across sweeps and refreshes it shortly before it expires, without a 401', async () => {
    fake.setChannel('user_0', { live: true, title: 't' });
    const { twitch } = provider();
    await twitch.fetch(channels(1));
    clock.advance(30_000);
    await twitch.fetch(channels(1));
    expect(fake.tokensIssued).toBe(1);
    clock.advance(3600_000 - 30_000 - 60_000); // one minute before expiry, inside the refresh margin
    const result = await twitch.fetch(channels(1));
    expect(fake.tokensIssued).toBe(2);
    expect(fake.streamsRequests().map((r) => r.status)).toEqual([200, 200, 200]);
    expect(result.get('twitch:user_0')?.live).toBe(true);
  });

  it('refreshes once on a 401 (token revoked early) and retries', async () => {
    fake.setChannel('user_0', { live: true, title: 't' });
    const { twitch } = provider();
    await twitch.fetch(channels(1));
    fake.expireTokens();
    const result = await twitch.fetch(channels(1));
    expect(result.get('twitch:user_0')?.live).toBe(true);
    expect(fake.tokensIssued).toBe(2);
    expect(fake.streamsRequests().map((r) => r.status)).toEqual([200, 401, 200]);
  });

  it('a second 401 leaves the batch unknown (unauthorized) instead of looping', async () => {
    fake.failNext('streams', { kind: 'status', status: 401 }, 2);
    const { twitch } = provider();
    const result = await twitch.fetch(channels(2));
    expect(result.get('twitch:user_0')).toMatchObject({ live: 'unknown', unknownReason: 'unauthorized' });
    expect(fake.streamsRequests()).toHaveLength(2);
  });

  it('token endpoint down → everything unknown (auth_failed); the next sweep recovers', async () => {
    fake.setChannel('user_0', { live: true, title: 't' });
    fake.failNext('token', { kind: 'status', status: 503 });
    const { twitch } = provider();
    expect((await twitch.fetch(channels(150))).get('twitch:user_0')).toMatchObject({ live: 'unknown', unknownReason: 'auth_failed' });
    expect(fake.streamsRequests()).toHaveLength(0);
    expect((await twitch.fetch(channels(150))).get('twitch:user_0')?.live).toBe(true);
  });

  it.each([
    ['429', { kind: 'status', status: 429 } as const, 'rate_limited'],
    ['500', { kind: 'status', status: 500 } as const, 'http_5xx'],
    ['503', { kind: 'status', status: 503 } as const, 'http_5xx'],
    ['a hung request (timeout)', { kind: 'hang' } as const, 'timeout'],
    ['a reset connection', { kind: 'reset' } as const, 'network_error'],
    ['an unparseable body', { kind: 'status', status: 200, body: { nope: true } } as const, 'bad_response'],
  ])('%s → that batch unknown, the other batches fine', async (_name, fault, reason) => {
    for (let i = 0; i < 250; i++) fake.setChannel(`user_${i}`, { live: true, title: 't' });
    fake.failNext('streams', fault);
    const hang = fault.kind === 'hang';
    const { twitch } = provider({ concurrency: 1, ...(hang ? { timeoutMs: HANG_TIMEOUT_MS } : {}) });
    const result = await twitch.fetch(channels(250));
    // The hung request reached the fake and was never answered (status 0); the two others were answered.
    if (hang) expect(fake.streamsRequests().map((r) => r.status)).toEqual([0, 200, 200]);
    const unknown = [...result.values()].filter((t) => t.live === 'unknown');
    expect(unknown).toHaveLength(100);
    expect(unknown.every((t) => t.unknownReason === reason)).toBe(true);
    expect([...result.values()].filter((t) => t.live === true)).toHaveLength(150);
  });

  it('an empty bucket (Ratelimit-Remaining 0) with a distant reset → unknown without sending, never a 429', async () => {
    fake.setChannel('user_0', { live: true, title: 't' });
    fake.setRemaining(1);
    const { twitch, client } = provider();
    await twitch.fetch(channels(1));
    expect(client.rateLimit()).toEqual({ remaining: 0, resetAt: Math.ceil((clock.now() + 60_000) / 1000) * 1000 });
    const result = await twitch.fetch(channels(1));
    expect(result.get('twitch:user_0')).toMatchObject({ live: 'unknown', unknownReason: 'rate_limited' });
    expect(fake.streamsRequests().map((r) => r.status)).toEqual([200]);
    expect(metrics.registry.getSingleMetric('flock_telemetry_requests_total')).toBeDefined();
    expect(await metrics.registry.getSingleMetricAsString('flock_telemetry_requests_total')).toContain('status="skipped_rate_limit"');
  });

  it('an empty bucket whose reset is within the allowed wait → waits for the reset, then asks', async () => {
    fake.setChannel('user_0', { live: true, title: 't' });
    fake.setRemaining(1);
    const { twitch } = provider({ maxRateLimitWaitMs: 120_000 });
    await twitch.fetch(channels(1));
    const pending = twitch.fetch(channels(1));
    await until(() => clock.sleeps.length > 0);
    expect(clock.sleeps[0]).toBeGreaterThan(59_000);
    expect(fake.streamsRequests()).toHaveLength(1);
    clock.advance(60_000);
    expect((await pending).get('twitch:user_0')?.live).toBe(true);
    expect(fake.streamsRequests().map((r) => r.status)).toEqual([200, 200]);
  });

  it('never logs the client secret or an access token', async () => {
    fake.failNext('token', { kind: 'status', status: 500 });
    const { twitch } = provider();
    await twitch.fetch(channels(1));
    await twitch.fetch(channels(1));
    fake.expireTokens();
    fake.failNext('streams', { kind: 'status', status: 401 }, 2);
    await twitch.fetch(channels(1));
    fake.failNext('streams', { kind: 'status', status: 400 });
    await twitch.fetch(channels(1));
    const bad = provider({ clientSecret: 'wrong-secret-also-never-logged-xxxxxxxx' });
    await bad.twitch.fetch(channels(1));

    const text = logLines.join('');
    expect(logLines.length).toBeGreaterThan(3);
    expect(text).toContain('twitch refused the app access token');
    expect(text).not.toContain(fake.clientSecret);
    expect(text).not.toContain('wrong-secret-also-never-logged');
    const tokens = fake.requests.map((r) => r.bearer).filter((t): t is string => t !== null);
    expect(tokens.length).toBeGreaterThan(0);
    for (const t of tokens) expect(text).not.toContain(t);
  });

  it('counts requests by provider and status', async () => {
    fake.setChannel('user_0', { live: true, title: 't' });
    fake.failNext('streams', { kind: 'status', status: 503 });
    const { twitch } = provider();
    await twitch.fetch(channels(1));
    await twitch.fetch(channels(1));
    const text = await metrics.registry.getSingleMetricAsString('flock_telemetry_requests_total');
    expect(text).toContain('flock_telemetry_requests_total{provider="twitch_auth",status="200"} 1');
    expect(text).toContain('flock_telemetry_requests_total{provider="twitch",status="503"} 1');
    expect(text).toContain('flock_telemetry_requests_total{provider="twitch",status="200"} 1');
  });
});

describe('TwitchTelemetryProvider: stale telemetry (issue 8)', () => {
  const logins = Array.from({ length: 25 }, (_, i) => `player_${i}`);
  const chans = logins.map((l) => `twitch:${l}`);

  it('a replayed snapshot (Helix `Date` did not advance) → every channel of the batch unknown, never offline; live again after', async () => {
    // Frozen while nobody was live yet (a cache from before the matches): replaying it would read "offline" for all.
    for (const l of logins) fake.setChannel(l, { live: false });
    const { twitch } = provider();
    await twitch.fetch(chans);
    fake.freeze();
    clock.advance(1_000);
    for (const l of logins) fake.setChannel(l, { live: true, title: 'cup #m-1' });
    clock.advance(29_000);
    for (let sweep = 0; sweep < 3; sweep++) {
      const frozen = await twitch.fetch(chans);
      for (const t of frozen.values()) expect(t).toMatchObject({ live: 'unknown', title: 'unknown', unknownReason: 'source_stale' });
      clock.advance(30_000);
    }
    fake.thaw();
    for (const t of (await twitch.fetch(chans)).values()) expect(t).toMatchObject({ live: true, title: 'cup #m-1' });
  });

  it('two sweeps within the Date resolution are not called stale', async () => {
    fake.setChannel('alice', { live: true, title: '#m-1' });
    const { twitch } = provider();
    await twitch.fetch(['twitch:alice']);
    fake.freeze();
    clock.advance(1_000);
    expect((await twitch.fetch(['twitch:alice'])).get('twitch:alice')).toMatchObject({ live: true });
  });

  it('an older snapshot (Date went backwards) is stale too', async () => {
    const start = clock.now();
    fake.setChannel('alice', { live: true, title: '#m-1' });
    const { twitch } = provider();
    clock.advance(30_000);
    expect((await twitch.fetch(['twitch:alice'])).get('twitch:alice')).toMatchObject({ live: true });
    clock.advance(30_000);
    fake.freeze(start); // answers as of 60 s ago
    expect((await twitch.fetch(['twitch:alice'])).get('twitch:alice')).toMatchObject({ live: 'unknown', unknownReason: 'source_stale' });
  });
});
