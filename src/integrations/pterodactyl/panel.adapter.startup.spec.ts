import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_EGG_VARIABLES, startFakePanel, type FakePanel } from '../../demo/simulated/pterodactyl-panel.js';
import { SystemClock } from '../../infra/clock.js';
import { MemoryKeyValueStore } from '../../infra/kv/memory-kv.js';
import { createLogger } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { PanelError } from './panel-error.js';
import { PterodactylPanel, RECENT_MS } from './panel.adapter.js';
import { PterodactylClient } from './pterodactyl-client.js';
import { PanelRateLimiter } from './rate-limiter.js';

// The startup-variables update (docs/panel.md) as the fake panel serves it after P UpdateServerStartupRequest and
// StartupModificationService, and the adapter that sends it: every field required, egg variables kept, unknown
// names ignored, the key read back; secrets never in an error or a log line.

const KEY = 'ptla_Zx9kQ2mP7vR4tY1uW8sN3bC6dF0gH5jKqLpMnBvCxZaS';
const READ_ONLY = 'ptla_readonlyreadonlyreadonlyreadonlyreadonly00';
const SECRET = 'kV3d8Qz0mN5pL2rT7wY1uB4cX6fH9jS0aE3gI8oK2qM';
const VARS = { FLOCK_ADMIN_KEY_ID: 'adm_m-1_1764490000000', FLOCK_ADMIN_KEY_SECRET: SECRET };

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()?.();
});

async function setup(apiKey = KEY) {
  const panel = await startFakePanel({
    apiKeys: { [KEY]: 'admin-1', [READ_ONLY]: { owner: 'admin-2', serversWrite: false } },
    eggs: {
      3: DEFAULT_EGG_VARIABLES,
      4: DEFAULT_EGG_VARIABLES.filter((v) => !v.env.startsWith('FLOCK_')),
      5: DEFAULT_EGG_VARIABLES.map((v) => (v.env === 'FLOCK_ADMIN_KEY_SECRET' ? { ...v, rules: 'required|string|max:10' } : v)),
    },
  });
  cleanups.push(() => panel.close());
  const clock = new SystemClock();
  const logs: string[] = [];
  const client = new PterodactylClient({
    baseUrl: panel.url,
    apiKey,
    timeoutMs: 2_000,
    mutationTimeoutMs: 2_000,
    limiter: new PanelRateLimiter({ store: new MemoryKeyValueStore(clock), clock, budget: 6_000 }),
    metrics: new Metrics(),
    logger: createLogger('debug', {}, { write: (line: string) => void logs.push(line) }),
  });
  return { panel, client, adapter: new PterodactylPanel(client), logs };
}

interface PanelAnswer {
  object?: string;
  attributes: { container: { startup_command: string; environment: Record<string, string> } };
  errors: { code: string; status: string; detail: string; meta: { source_field: string; rule: string } }[];
}

async function patch(panel: FakePanel, id: number, body: unknown, key = KEY) {
  const response = await fetch(`${panel.url}/api/application/servers/${id}/startup`, {
    method: 'PATCH',
    headers: { Accept: 'application/json', Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { status: response.status, json: (await response.json()) as PanelAnswer };
}

describe('fake panel: PATCH /api/application/servers/{id}/startup', () => {
  it('an empty body → 422, one ValidationException per required field, with source_field and rule', async () => {
    const { panel } = await setup();
    const id = panel.addServer();
    const { status, json } = await patch(panel, id, {});
    expect(status).toBe(422);
    expect(json.errors.map((e) => [e.code, e.status, e.meta.source_field, e.meta.rule])).toEqual([
      ['ValidationException', '422', 'startup', 'required'],
      ['ValidationException', '422', 'environment', 'present'],
      ['ValidationException', '422', 'egg', 'required'],
      ['ValidationException', '422', 'image', 'required'],
      ['ValidationException', '422', 'skip_scripts', 'present'],
    ]);
    expect(panel.startupOf(id)).toBeUndefined();
  });

  it('stores every egg variable (one left out becomes ""), ignores names the egg lacks, answers 200 with the server', async () => {
    const { panel } = await setup();
    const id = panel.addServer({ variables: { SERVER_JARFILE: 'paper.jar', FLOCK_ADMIN_KEY_ID: 'adm_old_1764490000000' } });
    const environment = { SERVER_JARFILE: 'spigot.jar', VANILLA_VERSION: '1.21', NOT_IN_EGG: 'x' };
    const body = { startup: 'java -jar x', environment, egg: 3, image: 'img:1', skip_scripts: true };
    const { status, json } = await patch(panel, id, body);
    expect(status).toBe(200);
    expect(json.object).toBe('server');
    expect(json.attributes.container.startup_command).toBe('java -jar x');
    expect(json.attributes.container.environment).not.toHaveProperty('NOT_IN_EGG');
    // FLOCK_ADMIN_KEY_ID was left out: the panel blanked it (why the adapter always sends the whole environment).
    expect(panel.variables(id)).toEqual({
      SERVER_JARFILE: 'spigot.jar',
      VANILLA_VERSION: '1.21',
      FLOCK_ADMIN_KEY_ID: '',
      FLOCK_ADMIN_KEY_SECRET: '',
    });
    expect(panel.startupOf(id)).toEqual({ startup: 'java -jar x', image: 'img:1', egg: 3, skipScripts: true });
  });

  it("validates the environment against the egg's rules (required variable missing → 422 environment.X)", async () => {
    const { panel } = await setup();
    const id = panel.addServer();
    const body = { startup: 's', environment: { SERVER_JARFILE: 'a.jar' }, egg: 3, image: 'img', skip_scripts: false };
    const { status, json } = await patch(panel, id, body);
    expect(status).toBe(422);
    expect(json.errors).toEqual([
      {
        code: 'ValidationException',
        status: '422',
        detail: 'The Server Version variable field is required.',
        meta: { source_field: 'environment.VANILLA_VERSION', rule: 'required' },
      },
    ]);
    expect(panel.variables(id).SERVER_JARFILE).toBe('server.jar');
  });

  it('an unknown egg → 422 exists; malformed JSON → 400; GET → 405; a key without servers write → 403', async () => {
    const { panel } = await setup();
    const id = panel.addServer();
    const ok = { startup: 's', environment: {}, image: 'img', skip_scripts: false };
    expect((await patch(panel, id, { ...ok, egg: 99 })).json.errors[0]?.meta).toEqual({ source_field: 'egg', rule: 'exists' });
    expect((await patch(panel, id, '{"startup":')).status).toBe(400);
    const get = await fetch(`${panel.url}/api/application/servers/${id}/startup`, {
      headers: { Accept: 'application/json', Authorization: `Bearer ${KEY}` },
    });
    expect(get.status).toBe(405);
    expect((await patch(panel, id, { ...ok, egg: 3 }, READ_ONLY)).status).toBe(403);
    expect((await patch(panel, 999, { ...ok, egg: 3 })).status).toBe(404);
  });
});

describe('PterodactylPanel.updateVariables', () => {
  it('GETs the server, PATCHes it back with the key merged in: other variables and startup fields unchanged', async () => {
    const { panel, adapter, logs } = await setup();
    const id = panel.addServer({ status: 'installing', variables: { SERVER_JARFILE: 'paper.jar' } });
    const before = panel.attributes(id) as PanelAnswer['attributes'] & { container: { image: string } };
    expect(await adapter.updateVariables(id, VARS, Date.now() + 10_000)).toEqual({ kind: 'updated' });
    expect(panel.variables(id)).toEqual({ SERVER_JARFILE: 'paper.jar', VANILLA_VERSION: 'latest', ...VARS });
    expect(panel.startupOf(id)).toEqual({
      startup: before.container.startup_command,
      image: before.container.image,
      egg: 3,
      skipScripts: false,
    });
    expect(panel.status(id)).toBe('installing');
    // Again with the same values (a retry after a timeout): same result, nothing else changes.
    expect(await adapter.updateVariables(id, VARS, Date.now() + 10_000)).toEqual({ kind: 'updated' });
    expect(panel.variables(id)).toEqual({ SERVER_JARFILE: 'paper.jar', VANILLA_VERSION: 'latest', ...VARS });
    expect(logs.join('')).toContain('update_startup');
    expect(logs.join('')).not.toContain(SECRET);
  });

  it('right after a poll read the server, the update is a single PATCH (the poll stands in for the GET)', async () => {
    const { panel, adapter } = await setup();
    const id = panel.addServer({ status: 'installing', variables: { SERVER_JARFILE: 'paper.jar' } });
    expect(await adapter.observe(id, Date.now() + 10_000)).toMatchObject({ kind: 'install', state: 'pending' });
    panel.resetStats();
    expect(await adapter.updateVariables(id, VARS, Date.now() + 10_000)).toEqual({ kind: 'updated' });
    expect(panel.stats.byPath).toEqual({ [`PATCH /api/application/servers/${id}/startup`]: 1 });
    expect(panel.variables(id)).toEqual({ SERVER_JARFILE: 'paper.jar', VANILLA_VERSION: 'latest', ...VARS });
    // Used once: a retry reads the server again.
    expect(await adapter.updateVariables(id, VARS, Date.now() + 10_000)).toEqual({ kind: 'updated' });
    expect(panel.stats.byPath[`GET /api/application/servers/${id}`]).toBe(1);
  });

  it('a listing stands in for the GET of every server it showed, watched or not (an installed server is no longer watched)', async () => {
    const { panel, adapter } = await setup();
    const watched = panel.addServer({ status: 'installing' });
    const installed = panel.addServer({ variables: { SERVER_JARFILE: 'paper.jar' } });
    const listing = await adapter.observeMany([watched], Date.now() + 10_000);
    expect(listing.kind).toBe('listed');
    panel.resetStats();
    expect(await adapter.updateVariables(installed, VARS, Date.now() + 10_000)).toEqual({ kind: 'updated' });
    expect(panel.stats.byPath).toEqual({ [`PATCH /api/application/servers/${installed}/startup`]: 1 });
    expect(panel.variables(installed)).toEqual({ SERVER_JARFILE: 'paper.jar', VANILLA_VERSION: 'latest', ...VARS });
  });

  it('a poll older than RECENT_MS does not stand in for the GET', async () => {
    const { panel, client } = await setup();
    let now = 1_000_000;
    const adapter = new PterodactylPanel(client, 20, false, () => now);
    const id = panel.addServer({ status: 'installing', variables: { SERVER_JARFILE: 'paper.jar' } });
    expect(await adapter.observe(id, Date.now() + 10_000)).toMatchObject({ kind: 'install', state: 'pending' });
    now += RECENT_MS + 1;
    panel.resetStats();
    expect(await adapter.updateVariables(id, VARS, Date.now() + 10_000)).toEqual({ kind: 'updated' });
    expect(panel.stats.byPath).toEqual({
      [`GET /api/application/servers/${id}`]: 1,
      [`PATCH /api/application/servers/${id}/startup`]: 1,
    });
    // Within the window it does.
    expect(await adapter.observe(id, Date.now() + 10_000)).toMatchObject({ kind: 'install' });
    now += RECENT_MS;
    panel.resetStats();
    expect(await adapter.updateVariables(id, VARS, Date.now() + 10_000)).toEqual({ kind: 'updated' });
    expect(panel.stats.byPath).toEqual({ [`PATCH /api/application/servers/${id}/startup`]: 1 });
  });

  it('an egg without the variables: the panel answers 200 but stores nothing → VARIABLE_NOT_IN_EGG, not retryable', async () => {
    const { panel, adapter } = await setup();
    const id = panel.addServer({ egg: 4 });
    const result = await adapter.updateVariables(id, VARS, Date.now() + 10_000);
    expect(result).toMatchObject({ kind: 'error', retryable: false, reason: 'VARIABLE_NOT_IN_EGG', status: 200 });
    expect(JSON.stringify(result)).toContain('FLOCK_ADMIN_KEY_ID, FLOCK_ADMIN_KEY_SECRET');
    expect(JSON.stringify(result)).not.toContain(SECRET);
  });

  it('422 from the egg rules, 403, 404 and 500 are classified; none carries the secret', async () => {
    const { panel, adapter } = await setup();
    const strict = panel.addServer({ egg: 5 });
    const r422 = await adapter.updateVariables(strict, VARS, Date.now() + 10_000);
    expect(r422).toMatchObject({ kind: 'error', retryable: false, reason: 'BAD_REQUEST', status: 422 });
    expect(r422.kind === 'error' && r422.detail).toBe('The Flock admin key secret variable field must not be greater than 10 characters.');
    const forbidden = panel.addServer();
    panel.injectFault({ kind: 'forbidden', serverId: forbidden, methods: ['PATCH'] });
    expect(await adapter.updateVariables(forbidden, VARS, Date.now() + 10_000)).toMatchObject({
      reason: 'FORBIDDEN',
      status: 403,
      retryable: false,
    });
    expect(await adapter.updateVariables(4242, VARS, Date.now() + 10_000)).toMatchObject({
      reason: 'NOT_FOUND',
      status: 404,
      retryable: false,
    });
    const broken = panel.addServer();
    panel.injectFault({ kind: 'server_error', serverId: broken, methods: ['PATCH'] });
    expect(await adapter.updateVariables(broken, VARS, Date.now() + 10_000)).toMatchObject({
      reason: 'SERVER_ERROR',
      status: 500,
      retryable: true,
    });
  });

  it('a panel detail that echoes the secret is redacted before it reaches an error', async () => {
    const clock = new SystemClock();
    const echo: typeof fetch = async () =>
      new Response(
        JSON.stringify({ errors: [{ code: 'ValidationException', status: '422', detail: `The value ${SECRET} is invalid.` }] }),
        {
          status: 422,
          headers: { 'Content-Type': 'application/json' },
        },
      );
    const client = new PterodactylClient({
      baseUrl: 'http://panel.invalid',
      apiKey: KEY,
      timeoutMs: 1000,
      mutationTimeoutMs: 1000,
      limiter: new PanelRateLimiter({ store: new MemoryKeyValueStore(clock), clock, budget: 6_000 }),
      metrics: new Metrics(),
      logger: createLogger('silent'),
      fetch: echo,
    });
    const error = await client
      .updateStartup(1, { startup: 's', environment: VARS, egg: 3, image: 'i', skip_scripts: false }, { secrets: [SECRET] })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PanelError);
    expect((error as PanelError).detail).toBe('The value [redacted] is invalid.');
    expect(JSON.stringify((error as PanelError).toJSON())).not.toContain(SECRET);
  });
});

describe('PterodactylPanel: request lanes under a tight budget', () => {
  it('a readiness poll queued behind key deliveries and a delete reaches the panel first; the lanes then take turns', async () => {
    const panel = await startFakePanel({ apiKeys: { [KEY]: 'admin-1' }, eggs: { 3: DEFAULT_EGG_VARIABLES } });
    cleanups.push(() => panel.close());
    const clock = new SystemClock();
    // 20 slots a second: slow enough that every request below waits for its slot, fast enough for a unit test.
    const limiter = new PanelRateLimiter({ store: new MemoryKeyValueStore(clock), clock, budget: 22, windowMs: 1_000 });
    const client = new PterodactylClient({
      baseUrl: panel.url,
      apiKey: KEY,
      timeoutMs: 2_000,
      mutationTimeoutMs: 2_000,
      limiter,
      metrics: new Metrics(),
      logger: createLogger('silent'),
    });
    const adapter = new PterodactylPanel(client);
    const ids = Array.from({ length: 7 }, () => panel.addServer({ installAfterMs: 60_000 }));
    const [polled, removed, ...delivered] = ids as [number, number, ...number[]];
    panel.resetStats();
    const deadline = Date.now() + 10_000;
    const results = await Promise.all([
      adapter.remove(removed, deadline),
      ...delivered.map((id) => adapter.updateVariables(id, VARS, deadline)),
      adapter.observe(polled, deadline),
    ]);
    expect(results.map((r) => r.kind)).toEqual(['deleted', 'updated', 'updated', 'updated', 'updated', 'updated', 'install']);
    const order = panel.stats.log.map((e) => `${e.method} ${e.path.replace(/\/\d+/, '/{id}')}`);
    // Queued last, sent first (its lane's turn comes first); then the first delivery's GET, then the delete, queued
    // first but in the cleanup lane; then the deliveries (a GET each, then its PATCH).
    expect(panel.stats.log[0]?.path).toBe(`/api/application/servers/${polled}`);
    expect(order.slice(0, 3)).toEqual([
      'GET /api/application/servers/{id}',
      'GET /api/application/servers/{id}',
      'DELETE /api/application/servers/{id}',
    ]);
    expect(panel.stats.log[1]?.path).toBe(`/api/application/servers/${delivered[0]}`);
    expect(order.filter((o) => o.startsWith('PATCH'))).toHaveLength(5);
  });
});
