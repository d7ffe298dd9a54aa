import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/observability/logger.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { registeredRoutes } from '../../src/http/http.wiring.js';
import { freshPostgresDatabase, randomName, requireRedis, TEST_SECRETS } from '../support/infra.js';
import { OpenApiCheck } from '../support/openapi-check.js';
import { matchBody, startTestService } from '../support/service.js';

// The internal API's operator routes on real PostgreSQL: match and dead-letter lists with filters and cursors,
// dead-letter replay and discard, each once. Every answer the tests below get from /v1/internal is checked against
// the service's own OpenAPI document (its response schemas, by ajv), and the file ends by asserting that every
// documented success answer was seen.

let service: RunningService;
let drop: () => Promise<void>;
let document: { paths: Record<string, Record<string, unknown>> };
let openApi: OpenApiCheck;
const PROBLEM = 'application/problem+json; charset=utf-8';

// biome-ignore lint/suspicious/noExplicitAny: tests read the API's answers loosely
type Answer = { status: number; json: any; headers: Headers };

async function send(method: string, path: string, init: { body?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const response = await fetch(`${service.url}${path}`, { method, headers: init.headers ?? {}, body: init.body });
  const text = await response.text();
  return { status: response.status, json: text ? JSON.parse(text) : null, headers: response.headers };
}

/** A call with the token, its answer checked against the OpenAPI document. */
async function api(method: string, path: string, body?: unknown): Promise<Answer> {
  const answer = await send(method, path, {
    headers: {
      authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}`,
      ...(body === undefined ? {} : { 'content-type': 'application/json' }),
    },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
  });
  openApi.check(method, path, { status: answer.status, contentType: answer.headers.get('content-type'), json: answer.json });
  return answer;
}
const logLines: string[] = [];

beforeAll(async () => {
  const [db, redisUrl] = await Promise.all([freshPostgresDatabase(), requireRedis()]);
  drop = db.drop;
  service = await startTestService(
    {
      ...TEST_SECRETS,
      DATABASE_URL: db.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: `${randomName('ia')}:`,
      PTERO_APP_URL: 'http://127.0.0.1:9',
      PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
      PORT: '0',
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
    },
    {
      logger: createLogger(
        'info',
        {},
        new Writable({
          write(chunk, _enc, done) {
            logLines.push(...chunk.toString().split('\n').filter(Boolean));
            done();
          },
        }),
      ),
    },
  );
  const served = await send('GET', '/v1/internal/openapi.json', {
    headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}` },
  });
  expect(served.status).toBe(200);
  document = served.json;
  openApi = new OpenApiCheck(served.json);
});

afterAll(async () => {
  await service?.close();
  await drop?.();
});

async function deadLetter(raw: string, topic = 'stream.health.check') {
  const id = randomUUID();
  await service.services.db
    .insertInto('dead_letters')
    .values({
      id,
      topic,
      partition: 0,
      offset: String(Math.floor(Math.random() * 1e9)),
      key: 'm-x',
      event_id: 'evt-x',
      reason: 'SCHEMA_INVALID',
      detail: 'test',
      raw,
      created_at: new Date(),
    })
    .execute();
  return id;
}

describe('requests and their log lines', () => {
  it("echoes x-request-id (the caller's when well formed), logs probes below info and API calls with requestId once", async () => {
    const given = 'req-0123456789abcdef';
    const echoed = await fetch(`${service.url}/v1/internal/matches/nope-1`, {
      headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}`, 'x-request-id': given },
    });
    expect([echoed.status, echoed.headers.get('x-request-id')]).toEqual([404, given]);
    const probe = await fetch(`${service.url}/healthz`);
    const generated = probe.headers.get('x-request-id');
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    await new Promise((resolve) => setTimeout(resolve, 200));
    const lines = logLines.map((line) => ({ line, json: JSON.parse(line) as Record<string, unknown> }));
    expect(lines.filter(({ json }) => json.requestId === generated)).toEqual([]);
    const apiLines = lines.filter(({ json }) => json.requestId === given);
    expect(apiLines.map(({ json }) => json.msg)).toContain('request completed');
    for (const { line } of apiLines) expect(line.match(/"requestId":/g)).toHaveLength(1);
    expect(lines.some(({ json }) => 'reqId' in json)).toBe(false);
  });
});

describe('GET /v1/internal/matches', () => {
  it('filters by status and pages with a cursor until every match was seen once', async () => {
    const ids = ['lst-a', 'lst-b', 'lst-c'];
    for (const id of ids)
      expect((await api('PUT', `/v1/internal/matches/${id}`, { ...matchBody(id), status: 'IN_PROGRESS' })).status).toBe(201);
    expect((await api('PUT', '/v1/internal/matches/lst-d', { ...matchBody('lst-d'), status: 'COMPLETED' })).status).toBe(201);

    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const page = await api('GET', `/v1/internal/matches?status=IN_PROGRESS&limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(page.status).toBe(200);
      expect(page.json.items.length).toBeLessThanOrEqual(2);
      seen.push(...page.json.items.map((m: { id: string; status: string }) => `${m.id}:${m.status}`));
      cursor = page.json.nextCursor;
    } while (cursor);
    expect(seen).toEqual(ids.map((id) => `${id}:IN_PROGRESS`));

    const done = await api('GET', '/v1/internal/matches?status=COMPLETED,CANCELLED&enforcement=none');
    expect(done.json.items.map((m: { id: string }) => m.id)).toEqual(['lst-d']);
    expect((await api('GET', '/v1/internal/matches?enforcement=any')).json.items).toEqual([]);
  });

  it.each([['status=PAUSED'], ['limit=0'], ['limit=101'], ['cursor=nonsense'], ['bogus=1']])('answers 400 to %s', async (query) => {
    const r = await api('GET', `/v1/internal/matches?${query}`);
    expect(r.status).toBe(400);
    expect(r.json.issues[0].field).toMatch(/^query(\.|$)/);
  });
});

describe('dead letters', () => {
  it('replays once: the message goes back to its topic through the outbox, a second replay or a discard is 409', async () => {
    const raw = JSON.stringify({ v: 'v1', eventId: 'evt-x', matchId: 'm-x', type: 'stream.health.check' });
    const id = await deadLetter(raw);
    const listed = await api('GET', '/v1/internal/dead-letters?state=pending');
    expect(listed.json.items.map((d: { id: string }) => d.id)).toContain(id);

    const first = await api('POST', `/v1/internal/dead-letters/${id}/replay`);
    expect(first.status).toBe(200);
    expect(first.json).toMatchObject({
      id,
      state: 'REPLAYED',
      resolution: { action: 'REPLAYED', actor: expect.stringMatching(/^internal-api request /) },
    });
    const second = await api('POST', `/v1/internal/dead-letters/${id}/replay`);
    expect([second.status, second.json.reason]).toEqual([409, 'ALREADY_REPLAYED']);
    expect((await api('POST', `/v1/internal/dead-letters/${id}/discard`)).status).toBe(409);

    const outbox = await service.services.db
      .selectFrom('outbox')
      .selectAll()
      .where('dedupe_key', '=', `dead-letter-replay:${id}`)
      .execute();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]).toMatchObject({
      topic: 'stream.health.check',
      key: 'm-x',
      payload: JSON.parse(raw),
      headers: { 'event-id': 'evt-x', 'replay-of': id },
    });
    const replayed = await api('GET', '/v1/internal/dead-letters?state=replayed');
    expect(replayed.json.items.map((d: { id: string }) => d.id)).toContain(id);
  });

  it('refuses to replay a message that is not a whole JSON object (422), which can still be discarded once', async () => {
    const id = await deadLetter('base64:AAEC');
    const replay = await api('POST', `/v1/internal/dead-letters/${id}/replay`);
    expect([replay.status, replay.json.error]).toEqual([422, 'not_replayable']);
    expect((await api('POST', `/v1/internal/dead-letters/${id}/discard`)).json).toMatchObject({ id, state: 'DISCARDED' });
    expect((await api('POST', `/v1/internal/dead-letters/${id}/discard`)).status).toBe(409);
    expect((await api('POST', `/v1/internal/dead-letters/${randomUUID()}/replay`)).status).toBe(404);
    expect((await api('POST', '/v1/internal/dead-letters/not-a-uuid/replay')).status).toBe(400);
  });

  it('pages newest first with a cursor', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      ids.push(await deadLetter('{}', 'server.reserved'));
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    const first = await api('GET', '/v1/internal/dead-letters?topic=server.reserved&limit=2');
    expect(first.json.items.map((d: { id: string }) => d.id)).toEqual([ids[2], ids[1]]);
    const rest = await api('GET', `/v1/internal/dead-letters?topic=server.reserved&limit=2&cursor=${first.json.nextCursor}`);
    expect(rest.json).toEqual({ items: [expect.objectContaining({ id: ids[0] })], nextCursor: null });
  });
});

describe('the OpenAPI document', () => {
  it('describes exactly the routes Fastify registered under /v1/internal, and is itself behind the token', async () => {
    const routes = registeredRoutes(service.app)
      .filter((r) => r.url.startsWith('/v1/internal') && r.method !== 'HEAD')
      .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, '{$1}')}`)
      .sort();
    const documented = Object.entries(document.paths)
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    expect(routes.length).toBeGreaterThanOrEqual(11);
    expect(documented).toEqual(routes);
    expect((await api('GET', '/v1/internal/openapi.json')).json).toMatchObject({ openapi: '3.1.1', paths: document.paths });
    const anonymous = await send('GET', '/v1/internal/openapi.json');
    expect([anonymous.status, anonymous.headers.get('content-type')]).toEqual([401, PROBLEM]);
    openApi.check('GET', '/v1/internal/openapi.json', { status: 401, contentType: PROBLEM, json: anonymous.json });
  });
});

describe('errors are RFC 9457 problem details everywhere, with x-request-id', () => {
  it.each([
    ['no token', 'GET', '/v1/internal/matches', {}, undefined, 401, 'unauthorized'],
    ['unknown id', 'GET', '/v1/internal/matches/nope-2', { token: true }, undefined, 404, 'not_found'],
    ['bad field', 'PUT', '/v1/internal/matches/pd-1', { token: true, json: true }, '{"mode":"X"}', 400, 'invalid_request'],
    ['not I-JSON', 'PUT', '/v1/internal/matches/pd-1', { token: true, json: true }, '{"a":1,"a":2}', 400, 'invalid_json'],
    ['media type', 'PUT', '/v1/internal/matches/pd-1', { token: true, type: 'application/xml' }, '<a/>', 415, 'unsupported_media_type'],
    ['too large', 'PUT', '/v1/internal/matches/pd-1', { token: true, json: true }, `"${'x'.repeat(2_000_000)}"`, 413, 'payload_too_large'],
    ['no route', 'GET', '/v1/nothing-here?token=s3cret', {}, undefined, 404, 'not_found'],
    ['malformed URL', 'GET', '/v1/internal/matches/%E0%A4%A', { token: true }, undefined, 400, 'bad_request'],
    ['wrong method', 'DELETE', '/v1/internal/matches', { token: true }, undefined, 405, 'method_not_allowed'],
    ['unsigned hook', 'POST', '/v1/hooks/admin', { json: true }, '{"type":"admin.hooks.ok","matchId":"m-1"}', 401, 'unauthorized'],
  ] as const)('%s → %i', async (_label, method, path, opts, body, status, error) => {
    const o = opts as { token?: boolean; json?: boolean; type?: string };
    const answer = await send(method, path, {
      headers: {
        ...(o.token ? { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}` } : {}),
        ...(o.json ? { 'content-type': 'application/json' } : o.type ? { 'content-type': o.type } : {}),
        'x-request-id': 'req-problem-0001',
      },
      ...(body === undefined ? {} : { body }),
    });
    expect([answer.status, answer.headers.get('content-type'), answer.headers.get('x-request-id')]).toEqual([
      status,
      PROBLEM,
      'req-problem-0001',
    ]);
    expect(answer.json).toMatchObject({ type: `tag:flocknode-workers,2026:problem:${error}`, status, error, title: expect.any(String) });
    expect(JSON.stringify(answer.json)).not.toContain('s3cret');
    if (status === 405) expect(answer.headers.get('allow')).toBe('GET, HEAD');
    // Internal routes' answers are held to the document; the others to its Problem schema, which every error shares.
    const template = openApi.template(path);
    const documented = template && (document.paths[template] as Record<string, unknown> | undefined)?.[method.toLowerCase()];
    if (documented) openApi.check(method, path, { status, contentType: answer.headers.get('content-type'), json: answer.json });
    else openApi.checkProblem(answer.json);
  });
});

describe('every documented success answer', () => {
  it('matches what the routes return (checked above and here), and each was seen at least once', async () => {
    const id = 'oa-1';
    expect((await api('PUT', `/v1/internal/matches/${id}`, matchBody(id))).status).toBe(201);
    expect((await api('PUT', `/v1/internal/matches/${id}`, { ...matchBody(id), status: 'IN_PROGRESS' })).status).toBe(200);
    expect((await api('GET', `/v1/internal/matches/${id}`)).json).toMatchObject({ id, status: 'IN_PROGRESS' });
    const event = { v: 'v1', eventId: randomUUID(), matchId: id, panelServerId: 77 };
    expect((await api('POST', '/v1/internal/events/server.reserved', event)).json).toMatchObject({ accepted: true, duplicate: false });
    // The reservation makes the view carry provisioning; the panel is unreachable, so it stays early on.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await api('GET', `/v1/internal/matches/${id}`)).status).toBe(200);
    expect((await api('GET', '/v1/internal/matches?limit=100')).status).toBe(200);
    expect((await api('GET', `/v1/internal/matches/${id}/overlay-keys`)).json).toMatchObject({ matchId: id, issued: false });
    const key = await api('POST', '/v1/internal/keys', { matchId: id, kind: 'admin' });
    expect(key.status).toBe(201);
    expect((await api('DELETE', `/v1/internal/keys/${key.json.keyId}`)).json).toEqual({ revoked: true, keyId: key.json.keyId });
    expect((await api('DELETE', `/v1/internal/keys/${key.json.keyId}x`)).status).toBe(404);
    const letter = await deadLetter('{"v":"v1"}');
    expect((await api('GET', `/v1/internal/dead-letters/${letter}`)).json).toMatchObject({ id: letter, state: 'PENDING' });
    expect((await api('GET', `/v1/internal/dead-letters/${randomUUID()}`)).status).toBe(404);
    expect(openApi.unseenSuccesses()).toEqual([]);
  });
});
