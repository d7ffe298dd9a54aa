import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../infra/clock.js';
import { eventually } from '../../../test/support/kafka-tap.js';
import { FakeTwitchHelix } from './twitch-helix.js';

let clock: ManualClock;
let fake: FakeTwitchHelix;

beforeEach(async () => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  fake = await FakeTwitchHelix.start({ clock, tokenTtlSeconds: 3600 });
});
afterEach(async () => {
  await fake.close();
});

async function token(form: Record<string, string> = {}): Promise<Response> {
  return fetch(fake.authUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ client_id: fake.clientId, client_secret: fake.clientSecret, grant_type: 'client_credentials', ...form }),
  });
}

async function bearer(): Promise<string> {
  const body = (await (await token()).json()) as { access_token: string };
  return body.access_token;
}

async function streams(query: string, accessToken: string | null, clientId = fake.clientId): Promise<Response> {
  const headers: Record<string, string> = { 'Client-Id': clientId };
  if (accessToken) headers.Authorization = `Bearer ${accessToken}`;
  return fetch(`${fake.apiUrl}/streams?${query}`, { headers });
}

describe('FakeTwitchHelix token endpoint', () => {
  it('issues app tokens for the right client credentials', async () => {
    const res = await token();
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ expires_in: 3600, token_type: 'bearer', access_token: expect.any(String) });
    expect(fake.tokensIssued).toBe(1);
  });

  it.each([
    [{ client_id: 'other' }, 400],
    [{ client_secret: 'wrong' }, 403],
    [{ grant_type: 'authorization_code' }, 400],
  ])('refuses %j with %i', async (form, status) => {
    expect((await token(form)).status).toBe(status);
  });

  it('accepts the parameters in the query string too', async () => {
    const q = new URLSearchParams({ client_id: fake.clientId, client_secret: fake.clientSecret, grant_type: 'client_credentials' });
    expect((await fetch(`${fake.authUrl}?${q}`, { method: 'POST' })).status).toBe(200);
  });
});

describe('FakeTwitchHelix /helix/streams', () => {
  it('needs a valid, unexpired token matching the Client-Id', async () => {
    const t = await bearer();
    expect((await streams('user_login=a', null)).status).toBe(401);
    expect((await streams('user_login=a', 'nope')).status).toBe(401);
    expect((await streams('user_login=a', t, 'other-client')).status).toBe(401);
    expect((await streams('user_login=a', t)).status).toBe(200);
    clock.advance(3600_000);
    expect((await streams('user_login=a', t)).status).toBe(401);
  });

  it('expireTokens() expires every issued token now', async () => {
    const t = await bearer();
    fake.expireTokens();
    expect((await streams('user_login=a', t)).status).toBe(401);
  });

  it('lists only live users, follows scripted timelines on the clock, and is case-insensitive on logins', async () => {
    const t0 = clock.now();
    fake.script('Alice_TV', [
      { at: t0, live: true, title: 'Finals #m-1' },
      { at: t0 + 60_000, live: false },
      { at: t0 + 120_000, live: true, type: 'rerun', title: 'old' },
    ]);
    fake.setChannel('bob', { live: true, title: 'bob' });
    const t = await bearer();
    const read = async () =>
      (
        (await (await streams('user_login=alice_tv&user_login=BOB&user_login=carol', t)).json()) as {
          data: { user_login: string; type: string; title: string }[];
        }
      ).data;
    expect((await read()).map((s) => [s.user_login, s.type, s.title])).toEqual([
      ['alice_tv', 'live', 'Finals #m-1'],
      ['bob', 'live', 'bob'],
    ]);
    clock.advance(60_000);
    expect((await read()).map((s) => s.user_login)).toEqual(['bob']);
    clock.advance(60_000);
    expect((await read()).map((s) => [s.user_login, s.type])).toEqual([
      ['alice_tv', 'rerun'],
      ['bob', 'live'],
    ]);
  });

  it('refuses more than 100 user_login with 400', async () => {
    const t = await bearer();
    const q = (n: number) => Array.from({ length: n }, (_, i) => `user_login=u${i}`).join('&');
    expect((await streams(q(100), t)).status).toBe(200);
    expect((await streams(q(101), t)).status).toBe(400);
  });

  it('pages at 20 by default, like Helix, with a cursor', async () => {
    for (let i = 0; i < 30; i++) fake.setChannel(`u${i}`, { live: true, title: 't' });
    const t = await bearer();
    const q = Array.from({ length: 30 }, (_, i) => `user_login=u${i}`).join('&');
    const page1 = (await (await streams(q, t)).json()) as { data: unknown[]; pagination: { cursor?: string } };
    expect(page1.data).toHaveLength(20);
    expect(page1.pagination.cursor).toBeTruthy();
    const page2 = (await (await streams(`${q}&after=${page1.pagination.cursor}`, t)).json()) as { data: unknown[] };
    expect(page2.data).toHaveLength(10);
    const all = (await (await streams(`${q}&first=100`, t)).json()) as { data: unknown[]; pagination: object };
    expect(all.data).toHaveLength(30);
    expect(all.pagination).toEqual({});
  });

  it('reports the 800-point bucket in Ratelimit-* headers, answers 429 when empty, refills after a minute', async () => {
    const t = await bearer();
    const first = await streams('user_login=a', t);
    expect(first.headers.get('ratelimit-limit')).toBe('800');
    expect(first.headers.get('ratelimit-remaining')).toBe('799');
    expect(Number(first.headers.get('ratelimit-reset'))).toBe(Math.ceil((clock.now() + 60_000) / 1000));
    fake.setRemaining(0);
    const limited = await streams('user_login=a', t);
    expect(limited.status).toBe(429);
    expect(limited.headers.get('ratelimit-remaining')).toBe('0');
    clock.advance(60_000);
    expect((await streams('user_login=a', t)).headers.get('ratelimit-remaining')).toBe('799');
  });

  it('injects faults per route', async () => {
    const t = await bearer();
    fake.failNext('streams', { kind: 'status', status: 503 });
    expect((await streams('user_login=a', t)).status).toBe(503);
    fake.failNext('streams', { kind: 'reset' });
    await expect(streams('user_login=a', t)).rejects.toThrow();
    fake.failNext('streams', { kind: 'hang' });
    // Abort only once the fake holds the request (logged, fault consumed, never answered): no race with the fault.
    const abort = new AbortController();
    const hung = fetch(`${fake.apiUrl}/streams?user_login=a`, { signal: abort.signal });
    const settled = hung.then(
      () => true,
      () => true,
    );
    await eventually(() => fake.streamsRequests().length === 3, 10_000, 'the fake holding the request');
    expect(fake.streamsRequests()[2]?.status).toBe(0);
    expect(await Promise.race([settled, new Promise((r) => setTimeout(() => r(false), 50))])).toBe(false);
    abort.abort();
    await expect(hung).rejects.toThrow();
    expect((await streams('user_login=a', t)).status).toBe(200);
    expect(fake.streamsRequests().map((r) => r.status)).toEqual([503, -1, 0, 200]);
  });
});
