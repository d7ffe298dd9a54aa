import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { startFakePanel, type FakePanel, type FakePanelOptions } from '../../demo/simulated/pterodactyl-panel.js';
import { ManualClock, SystemClock } from '../../infra/clock.js';
import { MemoryKeyValueStore } from '../../infra/kv/memory-kv.js';
import { createLogger } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { readInstallState } from './install-status.js';
import { PanelError } from './panel-error.js';
import { PterodactylClient, type PterodactylClientOptions } from './pterodactyl-client.js';
import { PanelRateLimiter, type PanelRateLimiterOptions } from './rate-limiter.js';

const KEY = 'ptla_Zx9kQ2mP7vR4tY1uW8sN3bC6dF0gH5jKqLpMnBvCxZaS';
const NON_ADMIN_KEY = 'ptla_nonadminnonadminnonadminnonadminnonadmin00';

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

interface Harness {
  panel: FakePanel;
  panelClock: ManualClock;
  client: PterodactylClient;
  limiter: PanelRateLimiter;
  metrics: Metrics;
  logs: string[];
}

async function harness(
  options: {
    panel?: Partial<FakePanelOptions>;
    client?: Partial<PterodactylClientOptions>;
    limiter?: Partial<PanelRateLimiterOptions>;
  } = {},
): Promise<Harness> {
  const panelClock = new ManualClock(Date.UTC(2024, 9, 24, 18, 0, 0));
  const panel = await startFakePanel({
    apiKeys: { [KEY]: 'admin-1', [NON_ADMIN_KEY]: { owner: 'user-7', rootAdmin: false } },
    clock: panelClock,
    ...options.panel,
  });
  cleanups.push(() => panel.close());
  const built = buildClient(panel.url, options);
  return { panel, panelClock, ...built };
}

function buildClient(
  baseUrl: string,
  options: { client?: Partial<PterodactylClientOptions>; limiter?: Partial<PanelRateLimiterOptions> } = {},
) {
  const clock = new SystemClock();
  const metrics = new Metrics();
  const logs: string[] = [];
  const logger = createLogger('debug', {}, { write: (line: string) => void logs.push(line) });
  // A generous budget keeps these tests fast; the spacing itself is proven in rate-limiter*.spec.ts.
  const limiter = new PanelRateLimiter({ store: new MemoryKeyValueStore(clock), clock, budget: 6_000, ...options.limiter });
  const client = new PterodactylClient({
    baseUrl,
    apiKey: KEY,
    timeoutMs: 2_000,
    mutationTimeoutMs: 3_000,
    limiter,
    metrics,
    logger,
    ...options.client,
  });
  return { client, limiter, metrics, logs };
}

async function panelError(promise: Promise<unknown>): Promise<PanelError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(PanelError);
  return error as PanelError;
}

function expectNoKey(h: { logs: string[] }, ...errors: PanelError[]): void {
  for (const error of errors) {
    expect(error.message).not.toContain(KEY);
    expect(JSON.stringify(error)).not.toContain(KEY);
    expect(String(error.stack)).not.toContain(KEY);
  }
  expect(h.logs.join('\n')).not.toContain(KEY);
}

describe('PterodactylClient.getServer: readiness', () => {
  it('sees installing, then installed (status null, installed 1)', async () => {
    const h = await harness();
    const id = h.panel.addServer({ installAfterMs: 90_000 });
    const before = await h.client.getServer(id);
    expect(before.status).toBe('installing');
    expect(readInstallState(before).state).toBe('pending');
    h.panelClock.advance(90_000);
    const after = await h.client.getServer(id);
    expect(after).toMatchObject({ id, status: null, suspended: false });
    expect(after.container?.installed).toBe(1);
    expect(readInstallState(after)).toMatchObject({ state: 'installed', detail: 'status:null' });
    // Unknown extra fields pass through.
    expect(after).toHaveProperty('feature_limits');
  });

  it('reads install_failed as failed', async () => {
    const h = await harness();
    const id = h.panel.addServer({ installAfterMs: 1, outcome: 'install_failed' });
    h.panelClock.advance(1);
    expect(readInstallState(await h.client.getServer(id)).state).toBe('failed');
  });

  it('accepts the legacy shape: no status key, container.installed bool', async () => {
    const h = await harness();
    const id = h.panel.addServer({ installAfterMs: 5_000, legacy: true });
    const before = await h.client.getServer(id);
    expect('status' in before).toBe(false);
    expect(before.container?.installed).toBe(false);
    expect(readInstallState(before)).toMatchObject({ state: 'pending', status: undefined, detail: 'legacy:not_installed' });
    h.panelClock.advance(5_000);
    expect(readInstallState(await h.client.getServer(id)).state).toBe('installed');
  });

  it('accepts the Pelican shape (no nest)', async () => {
    const h = await harness();
    const id = h.panel.addServer({ flavor: 'pelican' });
    const server = await h.client.getServer(id);
    expect(server.nest).toBeUndefined();
    expect(readInstallState(server).state).toBe('installed');
  });

  it('finds a server by external id', async () => {
    const h = await harness();
    const id = h.panel.addServer({ externalId: 'match-0007' });
    expect((await h.client.getServerByExternalId('match-0007')).id).toBe(id);
    expect((await panelError(h.client.getServerByExternalId('match-missing'))).reason).toBe('NOT_FOUND');
  });

  it('sends Accept: application/json, so a bad key is a 401, not a login redirect', async () => {
    const h = await harness();
    const bad = buildClient(h.panel.url, { client: { apiKey: 'ptla_wrongwrongwrongwrongwrongwrongwrongwrongwr' } });
    const error = await panelError(bad.client.getServer(1));
    expect(error).toMatchObject({ reason: 'UNAUTHORIZED', retryable: false, status: 401, code: 'AuthenticationException' });
  });
});

describe('PterodactylClient: 404 and deletion', () => {
  it('a GET of an unknown id is NOT_FOUND (not retryable)', async () => {
    const h = await harness();
    const error = await panelError(h.client.getServer(4242));
    expect(error).toMatchObject({
      reason: 'NOT_FOUND',
      retryable: false,
      status: 404,
      code: 'NotFoundHttpException',
      detail: 'The requested resource could not be found on the server.',
      operation: 'get_server',
      serverId: 4242,
    });
  });

  it('deletes (204), then reports already_gone; force delete too', async () => {
    const h = await harness();
    const id = h.panel.addServer();
    expect(await h.client.deleteServer(id)).toBe('deleted');
    expect(h.panel.has(id)).toBe(false);
    expect(await h.client.deleteServer(id)).toBe('already_gone');
    expect(await h.client.deleteServer(id, { force: true })).toBe('already_gone');
    expect((await panelError(h.client.getServer(id))).reason).toBe('NOT_FOUND');
    const other = h.panel.addServer();
    expect(await h.client.deleteServer(other, { force: true })).toBe('deleted');
    expect(h.panel.stats.byPathStatus[`DELETE /api/application/servers/${other}/force 204`]).toBe(1);
  });

  it('a 504 DaemonConnectionException on delete is DAEMON_UNAVAILABLE (retryable); force still deletes', async () => {
    const h = await harness();
    const id = h.panel.addServer();
    h.panel.injectFault({ kind: 'daemon_unreachable' });
    const error = await panelError(h.client.deleteServer(id));
    expect(error).toMatchObject({ reason: 'DAEMON_UNAVAILABLE', retryable: true, status: 504, code: 'DaemonConnectionException' });
    expect(await h.client.deleteServer(id, { force: true })).toBe('deleted');
  });

  it('rejects an invalid id without calling the panel', async () => {
    const h = await harness();
    for (const id of [0, -1, 1.5, Number.NaN]) {
      expect((await panelError(h.client.getServer(id))).reason).toBe('BAD_REQUEST');
    }
    expect(h.panel.stats.requestsTotal).toBe(0);
  });
});

describe('PterodactylClient: rate limiting', () => {
  it('a 429 is RATE_LIMITED with Retry-After, pauses the whole fleet, and later calls wait instead of hitting the panel', async () => {
    const h = await harness({ panel: { rateLimitPerMin: 2 }, limiter: { exhaustedPauseMs: 10 } });
    const id = h.panel.addServer();
    await h.client.getServer(id);
    await h.client.getServer(id);
    await new Promise((r) => setTimeout(r, 20)); // let the brief "remaining 0" pause pass
    const before = Date.now();
    const error = await panelError(h.client.getServer(id));
    expect(error).toMatchObject({ reason: 'RATE_LIMITED', retryable: true, status: 429, code: 'ThrottleRequestsException' });
    expect(error.retryAfterMs).toBe(60_000);
    const pausedUntil = await h.limiter.pausedUntil();
    expect(pausedUntil).toBeGreaterThanOrEqual(before + 59_000);
    expect(pausedUntil).toBeLessThanOrEqual(Date.now() + 60_000);
    // Another client of the same fleet (same store) now waits; with a short deadline it gives up locally.
    const requests = h.panel.stats.requestsTotal;
    const waited = await panelError(h.client.getServer(id, { deadline: Date.now() + 1_000 }));
    expect(waited).toMatchObject({ reason: 'RATE_LIMIT_WAIT', retryable: true });
    expect(h.panel.stats.requestsTotal).toBe(requests);
    expect(h.panel.stats.throttled).toBe(1);
    expect(h.logs.join('\n')).toContain('pausing the fleet');
  });

  it('X-RateLimit-Remaining 0 on a success pauses the fleet briefly', async () => {
    const h = await harness({ panel: { rateLimitPerMin: 1 }, limiter: { exhaustedPauseMs: 5_000 } });
    const id = h.panel.addServer();
    const before = Date.now();
    await h.client.getServer(id);
    expect(await h.limiter.pausedUntil()).toBeGreaterThanOrEqual(before + 5_000);
  });
});

describe('PterodactylClient: failures are classified', () => {
  it('500 QueryException → SERVER_ERROR, 503 maintenance → MAINTENANCE, both retryable', async () => {
    const h = await harness();
    const id = h.panel.addServer();
    h.panel.injectFault({ kind: 'server_error', times: 1 });
    expect(await panelError(h.client.getServer(id))).toMatchObject({
      reason: 'SERVER_ERROR',
      retryable: true,
      status: 500,
      code: 'QueryException',
    });
    h.panel.setMaintenance(true);
    expect(await panelError(h.client.getServer(id))).toMatchObject({ reason: 'MAINTENANCE', retryable: true, status: 503 });
  });

  it('a hanging GET times out after timeoutMs → TIMEOUT (retryable)', async () => {
    const h = await harness({ client: { timeoutMs: 200 } });
    const id = h.panel.addServer();
    h.panel.injectFault({ kind: 'hang', times: 1 });
    const started = performance.now();
    const error = await panelError(h.client.getServer(id));
    expect(error).toMatchObject({ reason: 'TIMEOUT', retryable: true });
    expect(performance.now() - started).toBeGreaterThanOrEqual(190);
    expectNoKey(h, error);
  });

  it('a DELETE uses mutationTimeoutMs', async () => {
    // Far apart on purpose: the fake and the client share one event loop, so on a loaded machine a 300 ms answer
    // may arrive much later than 300 ms. It is 3× the GET timeout and well inside the mutation timeout.
    const h = await harness({ client: { timeoutMs: 100, mutationTimeoutMs: 2_000 } });
    const id = h.panel.addServer();
    h.panel.injectFault({ kind: 'latency', ms: 300, times: 1 });
    expect(await h.client.deleteServer(id)).toBe('deleted');
    const other = h.panel.addServer();
    h.panel.injectFault({ kind: 'hang', times: 1 });
    const started = performance.now();
    const error = await panelError(h.client.deleteServer(other));
    expect(error).toMatchObject({ reason: 'TIMEOUT', operation: 'delete_server', detail: 'no answer within 2000 ms' });
    // A hang can only end by the timer, which never fires before its delay; the slack only covers timer
    // coarseness, and the bound still sits 15× above the 100 ms GET timeout.
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_500);
  });

  it('connection refused → CONNECTION (retryable)', async () => {
    const h = await harness();
    const url = h.panel.url;
    await h.panel.close();
    const c = buildClient(url);
    const error = await panelError(c.client.getServer(1));
    expect(error).toMatchObject({ reason: 'CONNECTION', retryable: true });
    expect(error.detail).toBe('ECONNREFUSED');
    expectNoKey(c, error);
  });

  it('401 and 403 are not retryable, and the key appears nowhere', async () => {
    const h = await harness();
    const id = h.panel.addServer();
    const bad = buildClient(h.panel.url, { client: { apiKey: 'ptla_0000000000000000000000000000000000000000000' } });
    const unauthorized = await panelError(bad.client.getServer(id));
    expect(unauthorized).toMatchObject({ reason: 'UNAUTHORIZED', retryable: false });
    const nonAdmin = buildClient(h.panel.url, { client: { apiKey: NON_ADMIN_KEY } });
    const forbidden = await panelError(nonAdmin.client.deleteServer(id));
    expect(forbidden).toMatchObject({
      reason: 'FORBIDDEN',
      retryable: false,
      status: 403,
      code: 'AccessDeniedHttpException',
      detail: 'This account does not have permission to access the API.',
    });
    expect(forbidden.message).not.toContain(NON_ADMIN_KEY);
    expect(nonAdmin.logs.join('\n')).not.toContain(NON_ADMIN_KEY);
    expectNoKey(h, unauthorized, forbidden);
  });

  it('a truncated 200 body is MALFORMED_RESPONSE (retryable)', async () => {
    const h = await harness();
    const id = h.panel.addServer();
    h.panel.injectFault({ kind: 'malformed_body', times: 1 });
    expect(await panelError(h.client.getServer(id))).toMatchObject({ reason: 'MALFORMED_RESPONSE', retryable: true, status: 200 });
    expect((await h.client.getServer(id)).id).toBe(id);
  });

  it('records every request by operation and status', async () => {
    const h = await harness();
    const id = h.panel.addServer();
    await h.client.getServer(id);
    await panelError(h.client.getServer(999));
    await h.client.deleteServer(id);
    const text = await h.metrics.registry.metrics();
    expect(text).toContain('flock_pterodactyl_requests_total{operation="get_server",status="200"} 1');
    expect(text).toContain('flock_pterodactyl_requests_total{operation="get_server",status="404"} 1');
    expect(text).toContain('flock_pterodactyl_requests_total{operation="delete_server",status="204"} 1');
    expect(text).toContain('flock_pterodactyl_request_seconds_count{operation="get_server"} 2');
    expect(text).toContain('flock_pterodactyl_rate_limit_wait_seconds_count 0');
  });
});

describe('PterodactylClient: odd upstream answers (a proxy, a wrong base URL)', () => {
  async function rawServer(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    );
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('classifies HTML errors, bare 404s, redirects and wrong shapes; redacts a key echoed by the upstream', async () => {
    const seen: http.IncomingHttpHeaders[] = [];
    const url = await rawServer((req, res) => {
      seen.push(req.headers);
      const path = req.url ?? '';
      if (path.endsWith('/1')) res.writeHead(502, { 'Content-Type': 'text/html' }).end('<h1>Bad Gateway</h1>');
      else if (path.endsWith('/2')) res.writeHead(404, { 'Content-Type': 'text/html' }).end('<h1>Not Found</h1>');
      else if (path.endsWith('/3')) res.writeHead(302, { Location: 'http://x/auth/login' }).end();
      else if (path.endsWith('/4'))
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"object":"server","attributes":{"id":"4"}}');
      else if (path.endsWith('/5'))
        res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"object":"server","attributes":{"id":6,"uuid":"u"}}');
      else if (path.endsWith('/6'))
        res
          .writeHead(400, { 'Content-Type': 'application/json' })
          .end(JSON.stringify({ errors: [{ code: 'BadRequestHttpException', status: '400', detail: `bad header Bearer ${KEY}` }] }));
      else if (path.endsWith('/7'))
        res.writeHead(429, { 'Retry-After': 'soon', 'X-RateLimit-Reset': String(Math.floor(Date.now() / 1000) + 30) }).end();
      else res.writeHead(418).end();
    });
    const c = buildClient(url);
    expect(await panelError(c.client.getServer(1))).toMatchObject({ reason: 'SERVER_ERROR', retryable: true, status: 502 });
    // Without the panel's error body a 404 is not proof the server is gone.
    expect(await panelError(c.client.deleteServer(2))).toMatchObject({ reason: 'UNEXPECTED_STATUS', retryable: false });
    expect(await panelError(c.client.getServer(3))).toMatchObject({ reason: 'UNAUTHORIZED', retryable: false, status: 302 });
    expect(await panelError(c.client.getServer(4))).toMatchObject({ reason: 'MALFORMED_RESPONSE', retryable: true });
    expect(await panelError(c.client.getServer(5))).toMatchObject({ reason: 'MALFORMED_RESPONSE', detail: 'answered for server 6' });
    const echoed = await panelError(c.client.getServer(6));
    expect(echoed).toMatchObject({ reason: 'BAD_REQUEST', retryable: false });
    expect(echoed.detail).toBe('bad header Bearer [redacted]');
    const throttled = await panelError(c.client.getServer(7));
    expect(throttled.reason).toBe('RATE_LIMITED');
    expect(throttled.retryAfterMs).toBeGreaterThan(25_000);
    expect(throttled.retryAfterMs).toBeLessThanOrEqual(31_000);
    const c2 = buildClient(url);
    expect(await panelError(c2.client.getServer(8))).toMatchObject({ reason: 'UNEXPECTED_STATUS', retryable: false, status: 418 });
    expectNoKey(c, echoed);
    expect(seen[0]).toMatchObject({ accept: 'application/json', authorization: `Bearer ${KEY}` });
    expect(seen[0]).not.toHaveProperty('content-type');
  });
});
