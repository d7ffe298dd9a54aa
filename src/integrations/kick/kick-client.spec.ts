import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeKick } from '../../demo/simulated/kick.js';
import { ManualClock } from '../../infra/clock.js';
import { createLogger } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { KickClient, KickTelemetryProvider, type KickClientOptions } from './kick-client.js';

/** Generous per-request timeout: a loaded machine must not turn an answered request into `timeout`. */
const TIMEOUT_MS = 2_500;

let clock: ManualClock;
let fake: FakeKick;
let metrics: Metrics;
let logLines: string[];

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  fake = await FakeKick.start({ clock });
  metrics = new Metrics();
  logLines = [];
});
afterEach(async () => {
  await fake.close();
});

function kick(overrides: Partial<KickClientOptions> = {}) {
  const client = new KickClient({
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
  return new KickTelemetryProvider(client, clock);
}

describe('KickTelemetryProvider against the fake Kick API', () => {
  it('reads live + title by slug and by broadcaster user id, one token, not mixed in one request', async () => {
    fake.setChannel('alice', { live: true, title: 'Finals #m-1' });
    const bobId = fake.setChannel('bob', { live: true, title: 'bob [m-1]' });
    fake.setChannel('carol', { live: false, title: 'yesterday #m-1' });
    const daveId = fake.setChannel('dave', { live: false });
    const result = await kick().fetch(['kick:Alice', `kick:${bobId}`, 'kick:carol', `kick:${daveId}`]);

    expect(result.get('kick:Alice')).toMatchObject({ live: true, title: 'Finals #m-1', fps: 'unknown', bitrateKbps: 'unknown' });
    expect(result.get(`kick:${bobId}`)).toMatchObject({ live: true, title: 'bob [m-1]' });
    expect(result.get('kick:carol')).toMatchObject({ live: false, title: 'unknown' });
    expect(result.get(`kick:${daveId}`)).toMatchObject({ live: false, title: 'unknown' });
    expect(fake.tokensIssued).toBe(1);
    const lookups = fake.requests.filter((r) => r.route !== 'token');
    expect(lookups.map((r) => [r.route, r.ids.length, r.slugs.length])).toEqual([
      ['livestreams', 2, 0],
      ['channels', 0, 2],
    ]);
    expect(lookups.every((r) => r.status === 200)).toBe(true);
  });

  it('batches 50 per request', async () => {
    const slugs = Array.from({ length: 120 }, (_, i) => `player_${i}`);
    for (const s of slugs) fake.setChannel(s, { live: true, title: 't' });
    const result = await kick().fetch(slugs.map((s) => `kick:${s}`));
    expect([...result.values()].every((t) => t.live === true)).toBe(true);
    expect(fake.requests.filter((r) => r.route === 'channels').map((r) => r.slugs.length)).toEqual([50, 50, 20]);
  });

  it('an unknown slug fails its whole batch on Kick: the batch is split and only that channel is invalid', async () => {
    fake.setChannel('alice', { live: true, title: 'a' });
    fake.setChannel('bob', { live: false });
    const result = await kick().fetch(['kick:alice', 'kick:ghost', 'kick:bob']);
    expect(result.get('kick:alice')?.live).toBe(true);
    expect(result.get('kick:bob')?.live).toBe(false);
    expect(result.get('kick:ghost')).toMatchObject({ live: 'unknown', unknownReason: 'invalid_channel' });
  });

  it.each([
    ['a 503', { kind: 'status', status: 503 } as const, 'http_5xx'],
    ['a connection reset', { kind: 'reset' } as const, 'network_error'],
    ['an unparseable body', { kind: 'status', status: 200, body: { data: 'nope' } } as const, 'bad_response'],
  ])('%s leaves the batch unknown, never offline', async (_name, fault, reason) => {
    fake.setChannel('alice', { live: false });
    fake.failNext('channels', fault);
    const result = await kick().fetch(['kick:alice']);
    expect(result.get('kick:alice')).toMatchObject({ live: 'unknown', title: 'unknown', unknownReason: reason });
  });

  it('a 429 (no rate-limit headers on Kick) backs off: the next sweep inside the back-off sends nothing', async () => {
    fake.setChannel('alice', { live: true, title: 'x' });
    const provider = kick({ backoffMs: 30_000 });
    fake.failNext('channels', { kind: 'status', status: 429, body: { message: 'Too Many Requests' } });
    expect((await provider.fetch(['kick:alice'])).get('kick:alice')?.unknownReason).toBe('rate_limited');
    const sent = fake.requests.length;
    clock.advance(10_000);
    expect((await provider.fetch(['kick:alice'])).get('kick:alice')?.unknownReason).toBe('rate_limited');
    expect(fake.requests.length).toBe(sent);
    clock.advance(25_000);
    expect((await provider.fetch(['kick:alice'])).get('kick:alice')?.live).toBe(true);
  });

  it('an expired token is refreshed once after a 401; a refused token reads auth_failed and no secret is logged', async () => {
    fake.setChannel('alice', { live: true, title: 'x' });
    const provider = kick();
    await provider.fetch(['kick:alice']);
    fake.expireTokens();
    expect((await provider.fetch(['kick:alice'])).get('kick:alice')?.live).toBe(true);
    expect(fake.tokensIssued).toBe(2);

    const wrong = kick({ clientSecret: 'wrong-secret-never-logged-0123456789' });
    expect((await wrong.fetch(['kick:alice'])).get('kick:alice')?.unknownReason).toBe('auth_failed');
    const logs = logLines.join('\n');
    expect(logs).toContain('kick token request failed');
    expect(logs).not.toContain('wrong-secret-never-logged');
    expect(logs).not.toContain(fake.clientSecret);
  });

  it('a channel id that is neither a user id nor a slug is invalid without a request', async () => {
    const result = await kick().fetch(['kick:not a slug!']);
    expect(result.get('kick:not a slug!')?.unknownReason).toBe('invalid_channel');
    expect(fake.requests).toHaveLength(0);
  });
});
