import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../../infra/clock.js';
import { eventually } from '../../../test/support/kafka-tap.js';
import { startFakePanel, type FakePanel, type FakePanelOptions } from './pterodactyl-panel.js';

const KEY = 'ptla_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa';
const KEY_SAME_OWNER = 'ptla_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb';
const KEY_OTHER_OWNER = 'ptla_cccccccccccccccccccccccccccccccccccccccccccc';

let panel: FakePanel | undefined;
let clock: ManualClock;

afterEach(async () => {
  await panel?.close();
  panel = undefined;
});

async function start(options: Partial<FakePanelOptions> = {}): Promise<FakePanel> {
  clock = new ManualClock(Date.UTC(2024, 9, 24, 18, 4, 30));
  panel = await startFakePanel({
    apiKeys: { [KEY]: 'admin-1', [KEY_SAME_OWNER]: 'admin-1', [KEY_OTHER_OWNER]: 'admin-2' },
    clock,
    ...options,
  });
  return panel;
}

interface Reply {
  status: number;
  headers: Headers;
  text: string;
  // biome-ignore lint/suspicious/noExplicitAny: tests read the fake's answers loosely
  json: () => any;
}

async function call(
  method: string,
  path: string,
  { key = KEY, accept = 'application/json', signal }: { key?: string | null; accept?: string | null; signal?: AbortSignal } = {},
): Promise<Reply> {
  const headers: Record<string, string> = {};
  if (key !== null) headers.Authorization = `Bearer ${key}`;
  if (accept !== null) headers.Accept = accept;
  const res = await fetch(`${panel!.url}${path}`, { method, headers, redirect: 'manual', signal });
  const text = await res.text();
  return { status: res.status, headers: res.headers, text, json: () => JSON.parse(text) };
}

const server = (id: number | string, suffix = '') => `/api/application/servers/${id}${suffix}`;
const notFound = {
  errors: [{ code: 'NotFoundHttpException', status: '404', detail: 'The requested resource could not be found on the server.' }],
};

describe('fake panel: the server object (§1.2)', () => {
  it('serves the 1.11 field set in order, with status null and installed 1 when installed', async () => {
    const p = await start();
    const id = p.addServer({ id: 57, externalId: 'match-0007', name: 'match-0007' });
    const r = await call('GET', server(id));
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toBe('application/json');
    expect(r.headers.get('x-ratelimit-limit')).toBe('240');
    expect(r.headers.get('x-ratelimit-remaining')).toBe('239');
    const body = r.json();
    expect(body.object).toBe('server');
    const a = body.attributes;
    expect(Object.keys(a)).toEqual([
      'id',
      'external_id',
      'uuid',
      'identifier',
      'name',
      'description',
      'status',
      'suspended',
      'limits',
      'feature_limits',
      'user',
      'node',
      'allocation',
      'nest',
      'egg',
      'container',
      'updated_at',
      'created_at',
    ]);
    expect(a).toMatchObject({ id: 57, external_id: 'match-0007', name: 'match-0007', description: '', status: null, suspended: false });
    expect(a.uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(a.identifier).toBe(a.uuid.slice(0, 8));
    expect(a.limits).toEqual({ memory: 2048, swap: 0, disk: 5120, io: 500, cpu: 200, threads: null, oom_disabled: true });
    expect(a.feature_limits).toEqual({ databases: 0, allocations: 0, backups: 0 });
    expect(a.container.installed).toBe(1);
    expect(a.container.environment).toMatchObject({ P_SERVER_UUID: a.uuid, P_SERVER_LOCATION: 'eu1', P_SERVER_ALLOCATION_LIMIT: 0 });
    expect(typeof a.container.environment.STARTUP).toBe('string');
    expect(a.created_at).toBe('2024-10-24T18:04:30+00:00');
    expect(a.updated_at).toBe('2024-10-24T18:04:30+00:00');
  });

  it('runs the scripted install timeline on its clock: installing → null', async () => {
    const p = await start();
    const id = p.addServer({ installAfterMs: 82_000 });
    let a = (await call('GET', server(id))).json().attributes;
    expect(a.status).toBe('installing');
    expect(a.container.installed).toBe(0);
    clock.advance(81_999);
    expect((await call('GET', server(id))).json().attributes.status).toBe('installing');
    clock.advance(1);
    a = (await call('GET', server(id))).json().attributes;
    expect(a.status).toBeNull();
    expect('status' in a).toBe(true);
    expect(a.container.installed).toBe(1);
    expect(a.updated_at).toBe('2024-10-24T18:05:52+00:00');
  });

  it('install_failed reads installed 0', async () => {
    const p = await start();
    const id = p.addServer({ installAfterMs: 1_000, outcome: 'install_failed' });
    clock.advance(5_000);
    const a = (await call('GET', server(id))).json().attributes;
    expect(a.status).toBe('install_failed');
    expect(a.container.installed).toBe(0);
    expect(a.updated_at).toBe('2024-10-24T18:04:31+00:00');
  });

  it('legacy mode: no status key, container.installed is a bool', async () => {
    const p = await start();
    const id = p.addServer({ installAfterMs: 10_000, legacy: true });
    let a = (await call('GET', server(id))).json().attributes;
    expect('status' in a).toBe(false);
    expect(a.suspended).toBe(false);
    expect(a.container.installed).toBe(false);
    expect(a.limits).not.toHaveProperty('oom_disabled');
    clock.advance(10_000);
    a = (await call('GET', server(id))).json().attributes;
    expect(a.container.installed).toBe(true);
    const failed = p.addServer({ installAfterMs: 1, outcome: 'install_failed', legacy: true });
    clock.advance(1);
    expect((await call('GET', server(failed))).json().attributes.container.installed).toBe(false);
  });

  it('pelican flavour drops nest and reads reinstall_failed as installed 0', async () => {
    const p = await start();
    const id = p.addServer({ flavor: 'pelican', status: 'reinstall_failed' });
    const a = (await call('GET', server(id))).json().attributes;
    expect(a).not.toHaveProperty('nest');
    expect(a.status).toBe('reinstall_failed');
    expect(a.container.installed).toBe(0);
  });

  it('looks servers up by external id', async () => {
    const p = await start();
    const id = p.addServer({ externalId: 'match-42' });
    const r = await call('GET', '/api/application/servers/external/match-42');
    expect(r.status).toBe(200);
    expect(r.json().attributes.id).toBe(id);
    const missing = await call('GET', '/api/application/servers/external/nope');
    expect(missing.status).toBe(404);
    expect(missing.json()).toEqual(notFound);
  });

  it('include=transfer is a 500 (no includeTransfer method)', async () => {
    const p = await start();
    const id = p.addServer();
    const r = await call('GET', `${server(id)}?include=allocations,transfer`);
    expect(r.status).toBe(500);
    expect(r.json().errors[0]).toMatchObject({ code: 'BadMethodCallException', status: '500' });
    expect((await call('GET', `${server(id)}?include=allocations`)).status).toBe(200);
  });
});

describe('fake panel: transitions (§2)', () => {
  it('reinstall → installing → null, or reinstall_failed with installed 1 on 1.11', async () => {
    const p = await start();
    const ok = p.addServer({ reinstall: { afterMs: 3_000 } });
    const r = await call('POST', server(ok, '/reinstall'));
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expect(p.status(ok)).toBe('installing');
    clock.advance(3_000);
    expect(p.status(ok)).toBeNull();

    const bad = p.addServer({ reinstall: { afterMs: 1_000, outcome: 'install_failed' } });
    await call('POST', server(bad, '/reinstall'));
    clock.advance(1_000);
    const a = (await call('GET', server(bad))).json().attributes;
    expect(a.status).toBe('reinstall_failed');
    expect(a.container.installed).toBe(1);
  });

  it('before 1.11 a failed reinstall reads install_failed', async () => {
    const p = await start();
    const id = p.addServer({ flavor: '1.10' });
    p.reinstall(id, { afterMs: 10, outcome: 'install_failed' });
    clock.advance(10);
    expect(p.status(id)).toBe('install_failed');
  });

  it('suspend / unsuspend are 204, idempotent, and mirror the deprecated suspended bool', async () => {
    const p = await start();
    const id = p.addServer();
    expect((await call('POST', server(id, '/suspend'))).status).toBe(204);
    let a = (await call('GET', server(id))).json().attributes;
    expect(a).toMatchObject({ status: 'suspended', suspended: true });
    expect(a.container.installed).toBe(1);
    expect((await call('POST', server(id, '/suspend'))).status).toBe(204);
    expect((await call('POST', server(id, '/unsuspend'))).status).toBe(204);
    a = (await call('GET', server(id))).json().attributes;
    expect(a).toMatchObject({ status: null, suspended: false });
    expect((await call('POST', server(id, '/unsuspend'))).status).toBe(204);
  });

  it('a server suspended while installing stays suspended when the install completes (either outcome)', async () => {
    const p = await start();
    for (const outcome of ['installed', 'install_failed'] as const) {
      const id = p.addServer({ installAfterMs: 5_000, outcome });
      await call('POST', server(id, '/suspend'));
      clock.advance(5_000);
      const a = (await call('GET', server(id))).json().attributes;
      expect(a.status).toBe('suspended');
      expect(a.container.installed).toBe(1);
    }
  });

  it('unsuspending mid-install sets null, and a later failure report still lands', async () => {
    const p = await start();
    const id = p.addServer({ installAfterMs: 5_000, outcome: 'install_failed' });
    p.suspend(id);
    p.unsuspend(id);
    expect(p.status(id)).toBeNull();
    clock.advance(5_000);
    expect(p.status(id)).toBe('install_failed');
  });

  it('reinstalling a suspended server ends unsuspended', async () => {
    const p = await start();
    const id = p.addServer({ reinstall: { afterMs: 100 } });
    p.suspend(id);
    await call('POST', server(id, '/reinstall'));
    expect(p.status(id)).toBe('installing');
    clock.advance(100);
    expect(p.status(id)).toBeNull();
  });

  it('setStatus is explicit and cancels the timeline; restartWings resets installing/restoring_backup to null', async () => {
    const p = await start();
    const a = p.addServer({ installAfterMs: 1_000, outcome: 'install_failed' });
    p.setStatus(a, 'installing');
    clock.advance(2_000);
    expect(p.status(a)).toBe('installing');
    const b = p.addServer({ status: 'restoring_backup' });
    const c = p.addServer({ status: 'installing', node: 2 });
    p.restartWings(1);
    expect(p.status(a)).toBeNull();
    expect(p.status(b)).toBeNull();
    expect(p.status(c)).toBe('installing');
    p.completeInstall(c, 'install_failed');
    expect(p.status(c)).toBe('install_failed');
  });

  it('suspend during a transfer is a 409 ConflictHttpException', async () => {
    const p = await start();
    const id = p.addServer();
    p.setTransferring(id, true);
    const r = await call('POST', server(id, '/suspend'));
    expect(r.status).toBe(409);
    expect(r.json()).toEqual({
      errors: [
        {
          code: 'ConflictHttpException',
          status: '409',
          detail: 'Cannot toggle suspension status on a server that is currently being transferred.',
        },
      ],
    });
  });
});

describe('fake panel: cleanup endpoints (§3)', () => {
  it('DELETE is 204 with an empty body, then 404 NotFoundHttpException for every route', async () => {
    const p = await start();
    const id = p.addServer();
    const r = await call('DELETE', server(id));
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expect(r.headers.get('content-type')).toBeNull();
    expect(r.headers.get('x-ratelimit-remaining')).toBe('239');
    expect(p.has(id)).toBe(false);
    for (const [method, suffix] of [
      ['GET', ''],
      ['DELETE', ''],
      ['DELETE', '/force'],
      ['POST', '/suspend'],
      ['POST', '/reinstall'],
    ] as const) {
      const again = await call(method, server(id, suffix));
      expect(again.status).toBe(404);
      expect(again.json()).toEqual(notFound);
      expect(again.headers.get('x-ratelimit-remaining')).not.toBeNull();
    }
  });

  it('force delete succeeds while Wings is down; a normal delete gets 504 and keeps the row', async () => {
    const p = await start();
    const id = p.addServer();
    p.injectFault({ kind: 'daemon_unreachable' });
    const r = await call('DELETE', server(id));
    expect(r.status).toBe(504);
    expect(r.json()).toEqual({
      errors: [
        {
          code: 'DaemonConnectionException',
          status: '504',
          detail: 'Could not establish a connection to the machine running this server. Please try again.',
        },
      ],
    });
    expect(r.headers.get('x-ratelimit-limit')).toBe('240');
    expect(p.has(id)).toBe(true);
    expect((await call('GET', server(id))).status).toBe(200); // GETs never reach Wings
    expect((await call('DELETE', server(id, '/force'))).status).toBe(204);
    expect(p.has(id)).toBe(false);
  });

  it('only the literal "force" forces; a Wings 404 on delete is swallowed', async () => {
    const p = await start();
    const id = p.addServer();
    p.injectFault({ kind: 'daemon_unreachable', times: 1 });
    expect((await call('DELETE', server(id, '/forced'))).status).toBe(504);
    p.injectFault({ kind: 'daemon_error', status: 404 });
    expect((await call('DELETE', server(id))).status).toBe(204);
  });

  it('a failed suspend on an installing server rolls back to null, not installing', async () => {
    const p = await start();
    const id = p.addServer({ installAfterMs: 60_000 });
    p.injectFault({ kind: 'daemon_unreachable', serverId: id, times: 1 });
    expect((await call('POST', server(id, '/suspend'))).status).toBe(504);
    expect(p.status(id)).toBeNull();
  });

  it('reinstall while Wings is busy: 409 DaemonConnectionException with the real text, nothing changes', async () => {
    const p = await start();
    const id = p.addServer();
    p.injectFault({ kind: 'daemon_error', status: 409, serverId: id });
    const r = await call('POST', server(id, '/reinstall'));
    expect(r.status).toBe(409);
    expect(r.json().errors[0]).toEqual({
      code: 'DaemonConnectionException',
      status: '409',
      detail:
        'An error occurred on the remote host: Cannot execute server reinstall event while another power action is running.. (request id: fake-req)',
    });
    expect(p.status(id)).toBeNull();
  });

  it('a Wings 404 on suspend is a DaemonConnectionException 404 (server still in the panel)', async () => {
    const p = await start();
    const id = p.addServer();
    p.injectFault({ kind: 'daemon_error', status: 404, serverId: id, times: 1 });
    const r = await call('POST', server(id, '/suspend'));
    expect(r.status).toBe(404);
    expect(r.json().errors[0].code).toBe('DaemonConnectionException');
    expect(p.has(id)).toBe(true);
  });

  it('wrong verb is a 405 MethodNotAllowedHttpException; unknown routes 404 without auth', async () => {
    const p = await start();
    const id = p.addServer();
    const r = await call('POST', server(id));
    expect(r.status).toBe(405);
    expect(r.json().errors[0]).toMatchObject({ code: 'MethodNotAllowedHttpException', status: '405' });
    const unknown = await call('GET', '/api/application/nodes', { key: null });
    expect(unknown.status).toBe(404);
    expect(unknown.headers.get('x-ratelimit-limit')).toBeNull();
  });
});

describe('fake panel: authentication and permissions (§4.2–4.3)', () => {
  it('401 AuthenticationException before the throttle, without rate-limit headers, consuming nothing', async () => {
    const p = await start({ rateLimitPerMin: 2 });
    const id = p.addServer();
    for (const key of [null, 'ptla_wrong']) {
      const r = await call('GET', server(id), { key });
      expect(r.status).toBe(401);
      expect(r.json()).toEqual({ errors: [{ code: 'AuthenticationException', status: '401', detail: 'Unauthenticated.' }] });
      expect(r.headers.get('x-ratelimit-limit')).toBeNull();
      expect(r.headers.get('x-ratelimit-remaining')).toBeNull();
    }
    expect((await call('GET', server(999), { key: 'nope' })).status).toBe(401); // auth before binding
    expect((await call('GET', server(id))).headers.get('x-ratelimit-remaining')).toBe('1');
  });

  it('without a JSON Accept a 401 is a 302 to /auth/login, other errors are HTML', async () => {
    const p = await start();
    const r = await call('GET', server(1), { key: null, accept: 'text/html' });
    expect(r.status).toBe(302);
    expect(r.headers.get('location')).toBe(`${p.url}/auth/login`);
    const noAccept = await call('GET', server(1), { key: null, accept: null });
    expect(noAccept.status).toBe(302);
    const vendor = await call('GET', server(1), { key: null, accept: 'Application/vnd.pterodactyl.v1+json' });
    expect(vendor.status).toBe(401);
    const html = await call('GET', server(1), { accept: 'text/html' });
    expect(html.status).toBe(404);
    expect(html.headers.get('content-type')).toContain('text/html');
    // The most preferred type decides.
    expect((await call('GET', server(1), { key: null, accept: 'text/html;q=0.5, application/json' })).status).toBe(401);
  });

  it('403 for a non-admin owner and for a key without the servers permission', async () => {
    const p = await start({
      apiKeys: {
        [KEY]: { owner: 'u1', rootAdmin: false },
        [KEY_SAME_OWNER]: { owner: 'u2', serversWrite: false },
      },
    });
    const id = p.addServer();
    const notAdmin = await call('GET', server(id));
    expect(notAdmin.status).toBe(403);
    expect(notAdmin.json().errors[0]).toEqual({
      code: 'AccessDeniedHttpException',
      status: '403',
      detail: 'This account does not have permission to access the API.',
    });
    expect(notAdmin.headers.get('x-ratelimit-remaining')).toBe('239');
    expect((await call('GET', server(id), { key: KEY_SAME_OWNER })).status).toBe(200);
    const readOnly = await call('DELETE', server(id), { key: KEY_SAME_OWNER });
    expect(readOnly.status).toBe(403);
    expect(readOnly.json().errors[0].detail).toBe('This action is unauthorized.');
    expect(p.has(id)).toBe(true);
  });
});

describe('fake panel: rate limiting (§4.4)', () => {
  it('fixed window per owner from the first hit; 429 with Retry-After, Reset, Remaining 0; a 429 consumes nothing', async () => {
    const p = await start({ rateLimitPerMin: 3 });
    const id = p.addServer();
    const remaining: (string | null)[] = [];
    for (let i = 0; i < 3; i++) {
      const r = await call('GET', server(i === 1 ? 999 : id)); // a 404 counts too
      remaining.push(r.headers.get('x-ratelimit-remaining'));
      clock.advance(1_000);
    }
    expect(remaining).toEqual(['2', '1', '0']);
    // Same owner through another key: same bucket.
    const r = await call('GET', server(id), { key: KEY_SAME_OWNER });
    expect(r.status).toBe(429);
    expect(r.json()).toEqual({ errors: [{ code: 'ThrottleRequestsException', status: '429', detail: 'Too Many Attempts.' }] });
    expect(r.headers.get('retry-after')).toBe('57');
    expect(r.headers.get('x-ratelimit-limit')).toBe('3');
    expect(r.headers.get('x-ratelimit-remaining')).toBe('0');
    const windowStart = Date.UTC(2024, 9, 24, 18, 4, 30);
    expect(r.headers.get('x-ratelimit-reset')).toBe(String((windowStart + 60_000) / 1000));
    // Another owner has its own budget.
    expect((await call('GET', server(id), { key: KEY_OTHER_OWNER })).status).toBe(200);
    // Several 429s in a row consume nothing: the next window grants the full budget again.
    expect((await call('GET', server(id))).status).toBe(429);
    clock.advance(56_999);
    expect((await call('GET', server(id))).headers.get('retry-after')).toBe('1');
    clock.advance(1);
    const fresh = await call('GET', server(id));
    expect(fresh.status).toBe(200);
    expect(fresh.headers.get('x-ratelimit-remaining')).toBe('2');
    expect(p.stats.throttled).toBe(3);
    expect(p.stats.windows.map((w) => [w.owner, w.count])).toEqual([
      ['admin-1', 3],
      ['admin-2', 1],
      ['admin-1', 1],
    ]);
  });

  it('the window length is configurable for fast tests, and maxInSlidingWindow sees bursts across fixed windows', async () => {
    const p = await start({ rateLimitPerMin: 4, rateLimitWindowMs: 1_000 });
    const id = p.addServer();
    await call('GET', server(id)); // the first hit opens the window [0, 1000)
    clock.advance(900);
    for (let i = 0; i < 3; i++) await call('GET', server(id)); // 4 in the first window, 3 of them at its end
    clock.advance(200); // a new fixed window opens at 1100
    for (let i = 0; i < 4; i++) expect((await call('GET', server(id))).status).toBe(200);
    expect((await call('GET', server(id))).status).toBe(429);
    expect(p.stats.throttled).toBe(1);
    // 7 requests within 200 ms straddle the fixed boundary: the panel allowed them, a sliding view sees 7.
    expect(p.maxInSlidingWindow({ owner: 'admin-1' })).toBe(7);
  });
});

describe('fake panel: fault injection', () => {
  it('500 QueryException after the throttle (with rate-limit headers), limited by times and serverId', async () => {
    const p = await start();
    const a = p.addServer();
    const b = p.addServer();
    p.injectFault({ kind: 'server_error', serverId: a, times: 1 });
    const r = await call('GET', server(a));
    expect(r.status).toBe(500);
    expect(r.json()).toEqual({
      errors: [
        {
          code: 'QueryException',
          status: '500',
          detail: 'An unexpected error was encountered while processing this request, please try again.',
        },
      ],
    });
    expect(r.headers.get('x-ratelimit-remaining')).toBe('239');
    expect((await call('GET', server(b))).status).toBe(200);
    expect((await call('GET', server(a))).status).toBe(200);
  });

  it('503 maintenance comes before auth and the throttle', async () => {
    const p = await start();
    const id = p.addServer();
    p.setMaintenance(true);
    const r = await call('GET', server(id), { key: null });
    expect(r.status).toBe(503);
    expect(r.json().errors[0]).toEqual({ code: 'HttpException', status: '503', detail: 'Service Unavailable' });
    expect(r.headers.get('x-ratelimit-limit')).toBeNull();
    p.setMaintenance(false);
    const remove = p.injectFault({ kind: 'maintenance', methods: ['DELETE'] });
    expect((await call('GET', server(id))).status).toBe(200);
    expect((await call('DELETE', server(id))).status).toBe(503);
    remove();
    expect((await call('DELETE', server(id))).status).toBe(204);
  });

  it('hang never answers (the client times out) but consumes budget; close() releases it', async () => {
    const p = await start();
    const id = p.addServer();
    p.injectFault({ kind: 'hang', times: 1 });
    // Abort only once the panel holds the request (logged past the throttle, fault consumed, never answered).
    const abort = new AbortController();
    const hung = call('GET', server(id), { signal: abort.signal });
    const settled = hung.then(
      () => true,
      () => true,
    );
    await eventually(() => p.stats.log.length === 1, 10_000, 'the fake holding the request');
    expect(p.stats.log[0]).toMatchObject({ status: 0, counted: true });
    expect(await Promise.race([settled, new Promise((r) => setTimeout(() => r(false), 50))])).toBe(false);
    abort.abort();
    await expect(hung).rejects.toThrow();
    expect((await call('GET', server(id))).headers.get('x-ratelimit-remaining')).toBe('238');
    p.injectFault({ kind: 'hang', times: 1 });
    const pending = call('GET', server(id)).catch((e: unknown) => e);
    await eventually(() => p.stats.log.length === 3, 10_000, 'the fake holding the request'); // hanging inside the panel, not still on its way
    expect(p.stats.log[2]).toMatchObject({ status: 0, counted: true });
    await p.close();
    panel = undefined;
    expect(await pending).toBeInstanceOf(Error);
  });

  it('latency delays in real time; malformed_body cuts the JSON', async () => {
    const p = await start();
    const id = p.addServer();
    p.injectFault({ kind: 'latency', ms: 120, times: 1 });
    const t0 = performance.now();
    await call('GET', server(id));
    expect(performance.now() - t0).toBeGreaterThanOrEqual(100);
    p.injectFault({ kind: 'malformed_body', times: 1 });
    const r = await call('GET', server(id));
    expect(r.status).toBe(200);
    expect(() => r.json()).toThrow();
  });
});

describe('fake panel: counters', () => {
  it('counts requests in total, per path, per status and per path+status', async () => {
    const p = await start({ rateLimitPerMin: 2 });
    const id = p.addServer();
    await call('GET', server(id));
    await call('GET', server(id), { key: null });
    await call('DELETE', server(id));
    await call('GET', server(id));
    const s = p.stats;
    expect(s.requestsTotal).toBe(4);
    expect(s.byPath).toEqual({ [`GET ${server(id)}`]: 3, [`DELETE ${server(id)}`]: 1 });
    expect(s.byStatus).toEqual({ '200': 1, '401': 1, '204': 1, '429': 1 });
    expect(s.byPathStatus[`GET ${server(id)} 429`]).toBe(1);
    expect(s.throttled).toBe(1);
    expect(s.log.map((e) => [e.status, e.counted, e.owner])).toEqual([
      [200, true, 'admin-1'],
      [401, false, null],
      [204, true, 'admin-1'],
      [429, false, 'admin-1'],
    ]);
    p.resetStats();
    expect(p.stats.requestsTotal).toBe(0);
    expect(p.stats.windows).toHaveLength(1);
  });
});

describe('fake panel: server ids', () => {
  it('skipIdsThrough: later servers get ids above it (never lower than the next id), and bad ids are refused', async () => {
    const p = await start();
    expect(p.addServer()).toBe(1);
    p.skipIdsThrough(41);
    expect(p.addServer()).toBe(42);
    p.skipIdsThrough(7); // lower than what was handed out: no effect
    expect(p.addServer()).toBe(43);
    expect(() => p.skipIdsThrough(-1)).toThrow(RangeError);
    expect(() => p.skipIdsThrough(1.5)).toThrow(RangeError);
  });
});
