import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeKick } from '../demo/simulated/kick.js';
import { FakeMediaMtx } from '../demo/simulated/mediamtx.js';
import { FakeSrs } from '../demo/simulated/srs.js';
import { FakeTwitchHelix } from '../demo/simulated/twitch-helix.js';
import { loadConfig } from '../config/config.js';
import { ManualClock } from '../infra/clock.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { telemetryProvidersFromConfig } from './telemetry-providers.js';
import { collectTelemetry, composeSideSample } from '../stream-health/telemetry.js';

/** The four providers as the configuration builds them, against their fakes, merged per side. */
let clock: ManualClock;
let twitch: FakeTwitchHelix;
let kick: FakeKick;
let srs: FakeSrs;
let mediamtx: FakeMediaMtx;

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  [twitch, kick, srs, mediamtx] = await Promise.all([
    FakeTwitchHelix.start({ clock }),
    FakeKick.start({ clock }),
    FakeSrs.start({ clock }),
    FakeMediaMtx.start({ clock }),
  ]);
});
afterEach(async () => {
  await Promise.all([twitch.close(), kick.close(), srs.close(), mediamtx.close()]);
});

function providers(env: Record<string, string> = {}) {
  const config = loadConfig({
    TWITCH_CLIENT_ID: twitch.clientId,
    TWITCH_CLIENT_SECRET: twitch.clientSecret,
    TWITCH_API_URL: twitch.apiUrl,
    TWITCH_AUTH_URL: twitch.authUrl,
    KICK_CLIENT_ID: kick.clientId,
    KICK_CLIENT_SECRET: kick.clientSecret,
    KICK_API_URL: kick.apiUrl,
    KICK_AUTH_URL: kick.authUrl,
    INGEST_STATS_URL: srs.url,
    MEDIAMTX_API_URL: mediamtx.url,
    TELEMETRY_TIMEOUT_MS: '2500',
    ...env,
  });
  return telemetryProvidersFromConfig(config, { clock, logger: createLogger('silent'), metrics: new Metrics() });
}

describe('telemetry composition: Twitch, Kick, SRS and MediaMTX from configuration', () => {
  it('builds one provider per configured platform, and none for an unset one', () => {
    expect(
      providers()
        .map((p) => p.platform)
        .sort(),
    ).toEqual(['kick', 'mediamtx', 'srs', 'twitch']);
    expect(
      providers({ KICK_CLIENT_ID: '', KICK_CLIENT_SECRET: '', MEDIAMTX_API_URL: '' })
        .map((p) => p.platform)
        .sort(),
    ).toEqual(['srs', 'twitch']);
  });

  it('a Kick + MediaMTX side and a Twitch + SRS side are both observed in one sweep', async () => {
    twitch.setChannel('alice_tv', { live: true, title: 'Finals #m-1' });
    srs.publish('live', 'alice', { fps: 60, kbps: 6000 });
    kick.setChannel('bob', { live: true, title: 'bob [m-1]' });
    mediamtx.publish('live/bob', 1500);
    const list = providers();
    const sides = { p1: ['twitch:alice_tv', 'srs:live/alice'], p2: ['kick:bob', 'mediamtx:live/bob'] };
    const all = [...sides.p1, ...sides.p2];
    await collectTelemetry(list, all, clock.now());
    clock.advance(30_000);
    const telemetry = await collectTelemetry(list, all, clock.now());

    expect(composeSideSample(sides.p1, telemetry, clock.now())).toMatchObject({ live: true, title: 'Finals #m-1', bitrateKbps: 6000 });
    expect(composeSideSample(sides.p1, telemetry, clock.now()).fps).toBeCloseTo(60, 0);
    const p2 = composeSideSample(sides.p2, telemetry, clock.now());
    expect(p2).toMatchObject({ live: true, title: 'bob [m-1]', fps: 'unknown', ingestLive: true });
    expect(p2.bitrateKbps).toBeCloseTo(1500, 0);
  });

  it("a Kick outage makes only the Kick side's live and title unknown", async () => {
    twitch.setChannel('alice_tv', { live: true, title: 'x' });
    kick.setChannel('bob', { live: true, title: 'y' });
    kick.failNext('channels', { kind: 'status', status: 502 });
    const telemetry = await collectTelemetry(providers(), ['twitch:alice_tv', 'kick:bob'], clock.now());
    expect(telemetry.get('twitch:alice_tv')?.live).toBe(true);
    expect(telemetry.get('kick:bob')).toMatchObject({ live: 'unknown', title: 'unknown', unknownReason: 'http_5xx' });
  });
});
