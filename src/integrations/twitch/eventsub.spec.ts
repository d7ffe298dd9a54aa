import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FakeTwitchEventSub, type SentMessage } from '../../demo/simulated/twitch-eventsub.js';
import { FakeTwitchHelix } from '../../demo/simulated/twitch-helix.js';
import { ManualClock } from '../../infra/clock.js';
import { MemoryKeyValueStore } from '../../infra/kv/memory-kv.js';
import { checkSample } from '../../stream-health/policy.js';
import { composeSideSample, UNKNOWN } from '../../stream-health/telemetry.js';
import { EventSubReceiver, EventSubStateStore, signEventSub, type EventSubOutcome } from './eventsub.js';
import { EventSubTelemetryProvider, planHelixReconciliation } from './eventsub-provider.js';
import { HelixClient, TwitchTelemetryProvider } from './helix-client.js';

const SECRET = 'eventsub-secret-0123456789abcdef-0123456789';
const ALICE = { id: '141981764', login: 'alice_tv' };

let clock: ManualClock;
let kv: MemoryKeyValueStore;
let store: EventSubStateStore;
let twitch: FakeTwitchEventSub;
let helixFake: FakeTwitchHelix;
let callback: Server;
let callbackUrl: string;
const outcomes: EventSubOutcome[] = [];

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1, 12));
  kv = new MemoryKeyValueStore(clock);
  store = new EventSubStateStore(kv);
  const receiver = new EventSubReceiver(SECRET, store, () => clock.now());
  outcomes.length = 0;
  // The receiver behind a real HTTP port, reading the raw bytes as the service's route does.
  callback = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      void receiver.receive(req.headers, Buffer.concat(chunks)).then((o) => {
        outcomes.push(o);
        if (o.status === 200) res.writeHead(200, { 'content-type': 'text/plain' }).end(o.text);
        else res.writeHead(o.status).end(o.status === 204 ? undefined : JSON.stringify({ reason: o.reason }));
      });
    });
  });
  await new Promise<void>((resolve) => callback.listen(0, '127.0.0.1', resolve));
  callbackUrl = `http://127.0.0.1:${(callback.address() as AddressInfo).port}/v1/twitch/eventsub`;
  twitch = await FakeTwitchEventSub.start({ clock });
  helixFake = await FakeTwitchHelix.start({ clock });
});
afterEach(async () => {
  await twitch.close();
  await helixFake.close();
  await new Promise<void>((resolve) => callback.close(() => resolve()));
});

async function subscribeAll(user = ALICE): Promise<void> {
  for (const type of ['stream.online', 'stream.offline', 'channel.update']) {
    const res = await fetch(`${twitch.apiUrl}/eventsub/subscriptions`, {
      method: 'POST',
      headers: { 'client-id': 'cid', authorization: 'Bearer app-token', 'content-type': 'application/json' },
      body: JSON.stringify({
        type,
        version: '1',
        condition: { broadcaster_user_id: user.id },
        transport: { method: 'webhook', callback: callbackUrl, secret: SECRET },
      }),
    });
    expect(res.status).toBe(202);
  }
  await expect.poll(() => [...twitch.subscriptions.values()].filter((s) => s.status === 'enabled').length).toBe(3);
  await store.rememberLogin(user.login, user.id);
}

function helixProvider() {
  return new TwitchTelemetryProvider(
    new HelixClient({
      clientId: helixFake.clientId,
      clientSecret: helixFake.clientSecret,
      apiUrl: helixFake.apiUrl,
      authUrl: helixFake.authUrl,
      timeoutMs: 2_500,
      clock,
    }),
    clock,
  );
}

function provider(maxHelixRequests: number, sampleRequests = 0) {
  return new EventSubTelemetryProvider(store, helixProvider(), clock, { maxHelixRequests, sampleRequests });
}

describe('EventSub webhook verification', () => {
  it('answers the challenge with the plain text and the subscription becomes enabled and confirmed', async () => {
    await subscribeAll();
    const challenges = twitch.sent.filter((m) => m.type === 'webhook_callback_verification');
    expect(challenges).toHaveLength(3);
    expect(outcomes.filter((o) => o.reason === 'CHALLENGE_ANSWERED')).toHaveLength(3);
    expect((await store.read(ALICE.id)).confirmed).toBe(true);
  });

  it('refuses a bad signature with 403 and applies nothing', async () => {
    await subscribeAll();
    const [sent] = await twitch.notify('stream.online', ALICE);
    await twitch.notify('stream.offline', ALICE);
    const forged: SentMessage = { ...(sent as { message: SentMessage }).message, id: 'forged-1', secret: 'some-other-secret-value' };
    expect((await twitch.resend(forged)).status).toBe(403);
    expect(outcomes.at(-1)?.reason).toBe('BAD_SIGNATURE');
    expect((await store.read(ALICE.id)).live?.value).toBe(false);
  });

  it('refuses a timestamp older than the 10-minute replay window with 403, even when correctly signed', async () => {
    await subscribeAll();
    const [r] = await twitch.notify('stream.online', ALICE, {}, { sentAt: clock.now() - 10 * 60_000 - 1_000 });
    expect(r?.status).toBe(403);
    expect(outcomes.at(-1)?.reason).toBe('STALE_TIMESTAMP');
    expect((await store.read(ALICE.id)).live).toBeNull();
  });

  it('applies a duplicate delivery once', async () => {
    await subscribeAll();
    const [online] = await twitch.notify('channel.update', ALICE, { title: 'Finals #m-1' });
    clock.advance(1_000);
    await twitch.notify('channel.update', ALICE, { title: 'changed later' });
    const again = await twitch.resend((online as { message: SentMessage }).message);
    expect(again.status).toBe(204);
    expect(outcomes.at(-1)?.reason).toBe('DUPLICATE');
    expect((await store.read(ALICE.id)).title?.value).toBe('changed later');
  });

  it('signs exactly as Twitch documents: HMAC-SHA256 over id + timestamp + body, hex, sha256= prefix', () => {
    // Vector computed independently: printf '%s' 'id1' '2026-01-01T00:00:00Z' '{}' | openssl dgst -sha256 -hmac secret
    expect(signEventSub('secret', 'id1', '2026-01-01T00:00:00Z', Buffer.from('{}'))).toBe(
      'sha256=b7dfeab263bad26fb912c8573d866e5bef7d2d0a9de3de2e37f99f751436ef34',
    );
    expect(signEventSub('secret', 'id1', '2026-01-01T00:00:00Z', Buffer.from('{}'))).not.toBe(
      signEventSub('secret', 'id1', '2026-01-01T00:00:00Z', Buffer.from('{ }')),
    );
  });

  it('answers 400 for a signed body without the documented shape', async () => {
    const receiver = new EventSubReceiver(SECRET, store, () => clock.now());
    const body = Buffer.from('{"subscription":{}}');
    const timestamp = new Date(clock.now()).toISOString();
    const headers = {
      'twitch-eventsub-message-id': 'm1',
      'twitch-eventsub-message-timestamp': timestamp,
      'twitch-eventsub-message-type': 'notification',
      'twitch-eventsub-message-signature': signEventSub(SECRET, 'm1', timestamp, body),
    };
    expect(await receiver.receive(headers, body)).toEqual({ status: 400, reason: 'BAD_MESSAGE' });
    expect(await receiver.receive({ ...headers, 'twitch-eventsub-message-signature': undefined }, body)).toEqual({
      status: 403,
      reason: 'MISSING_HEADERS',
    });
  });
});

describe('EventSub pushed state as telemetry', () => {
  it('answers live + title from pushes, and an offline push makes the side violate in the next sweep', async () => {
    await subscribeAll();
    await twitch.notify('channel.update', ALICE, { title: 'Finals #m-1' });
    await twitch.notify('stream.online', ALICE);
    const p = provider(0);
    const live = (await p.fetch(['twitch:alice_tv'])).get('twitch:alice_tv');
    expect(live).toMatchObject({ live: true, title: 'Finals #m-1' });

    clock.advance(5_000);
    await twitch.notify('stream.offline', ALICE);
    const telemetry = await p.fetch(['twitch:alice_tv']);
    expect(telemetry.get('twitch:alice_tv')?.live).toBe(false);
    const check = checkSample(composeSideSample(['twitch:alice_tv', 'srs:live/alice'], telemetry, clock.now()), {
      matchId: 'm-1',
      minFps: 30,
      minBitrateKbps: 2500,
    });
    expect(check.outcome).toBe('violating');
    expect(check.violations).toContain('STREAM_OFFLINE');
    expect(helixFake.streamsRequests()).toHaveLength(0);
  });

  it('is unknown after a revocation (no Helix budget) and never reads the old pushed state again', async () => {
    await subscribeAll();
    await twitch.notify('stream.online', ALICE);
    await twitch.notify('channel.update', ALICE, { title: 'Finals #m-1' });
    const online = [...twitch.subscriptions.values()].find((s) => s.type === 'stream.online');
    expect((await twitch.revoke(online?.id ?? '')).status).toBe(204);
    expect(outcomes.at(-1)?.reason).toBe('REVOKED');
    const t = (await provider(0).fetch(['twitch:alice_tv'])).get('twitch:alice_tv');
    expect(t?.live).toBe(UNKNOWN);
    expect(t?.unknownReason).toBe('rate_limited');
  });

  it('is unknown while the subscription is not confirmed, even when a push arrived', async () => {
    await store.rememberLogin(ALICE.login, ALICE.id);
    await store.writeLive(ALICE.id, true, 'live', clock.now());
    expect((await provider(0).fetch(['twitch:alice_tv'])).get('twitch:alice_tv')?.live).toBe(UNKNOWN);
  });

  it('asks Helix for unconfirmed channels and seeds a confirmed channel whose title never came', async () => {
    await subscribeAll();
    await twitch.notify('stream.online', ALICE);
    helixFake.setChannel('alice_tv', { live: true, title: 'Finals #m-1' });
    helixFake.setChannel('bob_tv', { live: false });
    const p = provider(5);
    const out = await p.fetch(['twitch:alice_tv', 'twitch:bob_tv']);
    expect(out.get('twitch:alice_tv')).toMatchObject({ live: true, title: 'Finals #m-1' });
    expect(out.get('twitch:bob_tv')?.live).toBe(false);
    expect((await store.read(ALICE.id)).title?.value).toBe('Finals #m-1');
    // Seeded: the next sweep needs no Helix for alice, only for the unconfirmed bob.
    await p.fetch(['twitch:alice_tv', 'twitch:bob_tv']);
    expect(helixFake.streamsRequests().at(-1)?.logins).toEqual(['bob_tv']);
  });

  it('never spends more Helix requests per sweep than the budget; the rest is unknown, rotating', async () => {
    const channels = Array.from({ length: 1_050 }, (_, i) => `twitch:user_${i}`);
    const p = provider(3, 1);
    const first = await p.fetch(channels);
    expect(helixFake.streamsRequests()).toHaveLength(3);
    expect([...first.values()].filter((t) => t.unknownReason === 'rate_limited')).toHaveLength(750);
    await p.fetch(channels);
    expect(helixFake.streamsRequests()).toHaveLength(6);
    const polled = new Set(helixFake.streamsRequests().flatMap((r) => r.logins));
    expect(polled.size).toBeGreaterThan(300); // the rotation reached channels the first sweep left out
  });
});

describe('planHelixReconciliation', () => {
  it('fills the unanswered first, then a sample of the confirmed, never beyond the budget', () => {
    const unanswered = Array.from({ length: 150 }, (_, i) => `u${i}`);
    const confirmed = Array.from({ length: 1_000 }, (_, i) => `c${i}`);
    const plan = planHelixReconciliation(unanswered, confirmed, { maxHelixRequests: 3, sampleRequests: 1 }, 0);
    expect(plan.poll).toHaveLength(250);
    expect(plan.starved).toHaveLength(0);
    const tight = planHelixReconciliation(unanswered, confirmed, { maxHelixRequests: 1, sampleRequests: 1 }, 0);
    expect(tight.poll).toHaveLength(100);
    expect(tight.starved).toHaveLength(50);
    expect(planHelixReconciliation(unanswered, confirmed, { maxHelixRequests: 0, sampleRequests: 5 }, 7).poll).toHaveLength(0);
  });
});
