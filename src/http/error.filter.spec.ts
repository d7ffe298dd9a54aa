import 'reflect-metadata';
import { Controller, Get, HttpException, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KvUnavailableError } from '../infra/kv/kv-store.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { dependencyOutage, OUTAGE_RETRY_AFTER_S } from '../infra/faults/outage.js';
import { ErrorFilter } from './error.filter.js';
import { PROBLEM_TYPE_PREFIX, problemSchema } from './problem.js';
import { RouteTable } from './route-table.js';

/** A real connection failure from node-postgres (nothing listens on port 1). */
async function refusedPgError(): Promise<unknown> {
  const client = new pg.Client({ connectionString: 'postgres://nobody@127.0.0.1:1/none', connectionTimeoutMillis: 2_000 });
  try {
    await client.connect();
  } catch (error) {
    return error;
  }
  throw new Error('expected the connection to be refused');
}

describe('dependencyOutage', () => {
  it('names the database for refused connections and server shutdowns, redis for the KV error, nothing for bugs', async () => {
    expect(dependencyOutage(await refusedPgError())).toBe('database');
    expect(dependencyOutage(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(
      'database',
    );
    expect(dependencyOutage(new Error('Connection terminated unexpectedly'))).toBe('database');
    expect(dependencyOutage(new Error('query failed', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe('database');
    expect(dependencyOutage(new AggregateError([Object.assign(new Error('x'), { code: 'ECONNREFUSED' })], 'connect failed'))).toBe(
      'database',
    );
    expect(dependencyOutage(new Error('timeout exceeded when trying to connect'))).toBe('database');
    expect(dependencyOutage(new KvUnavailableError('redis down'))).toBe('redis');
    expect(dependencyOutage(new TypeError("Cannot read properties of undefined (reading 'id')"))).toBeNull();
    expect(dependencyOutage(Object.assign(new Error('duplicate key'), { code: '23505' }))).toBeNull();
    expect(dependencyOutage('a string')).toBeNull();
  });
});

let pgError: unknown;

@Controller('t')
class ThrowingController {
  @Get('bug')
  bug() {
    const missing = undefined as unknown as { id: string };
    return missing.id;
  }
  @Get('conflict')
  conflict() {
    throw new HttpException({ error: 'conflict', reason: 'TAKEN', detail: 'already there' }, 409);
  }
  @Get('db')
  db() {
    throw pgError;
  }
  @Get('kv')
  async kv() {
    throw new KvUnavailableError('redis unreachable');
  }
}

@Module({ controllers: [ThrowingController] })
class TestModule {}

describe('ErrorFilter (a real Nest application on Fastify)', () => {
  const lines: Record<string, unknown>[] = [];
  const metrics = new Metrics();
  let app: NestFastifyApplication;

  beforeAll(async () => {
    pgError = await refusedPgError();
    const logger = createLogger('info', {}, { write: (line: string) => void lines.push(JSON.parse(line)) });
    app = await NestFactory.create<NestFastifyApplication>(TestModule, new FastifyAdapter({ loggerInstance: logger }), { logger: false });
    const routes = RouteTable.listen(app.getHttpAdapter().getInstance());
    app.useGlobalFilters(new ErrorFilter(logger, metrics, routes));
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
  });
  afterAll(async () => {
    await app.close();
  });

  const get = (url: string, headers: Record<string, string> = {}) =>
    app.getHttpAdapter().getInstance().inject({ method: 'GET', url, headers });
  /** The answer is RFC 9457 problem details, with its media type. */
  const problem = (response: { headers: Record<string, unknown>; json(): unknown }) => {
    expect(response.headers['content-type']).toBe('application/problem+json; charset=utf-8');
    return problemSchema.parse(response.json());
  };

  it('answers an unexpected error 500 in the error shape, logs it once at error level with request id and stack, and counts it', async () => {
    const response = await get('/t/bug', { 'x-request-id': 'req-12345678' });
    expect(response.statusCode).toBe(500);
    const body = problem(response);
    expect(body).toMatchObject({ type: `${PROBLEM_TYPE_PREFIX}internal`, status: 500, error: 'internal', requestId: expect.any(String) });
    expect(response.body).not.toContain('Cannot read');
    const errors = lines.filter((l) => l.level === 'error');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ reason: 'UNEXPECTED_ERROR', requestId: body.requestId, route: '/t/bug' });
    expect((errors[0]!.err as { stack: string }).stack).toContain('ThrowingController.bug');
    expect(await metrics.registry.getSingleMetricAsString('flock_unexpected_errors_total')).toContain(
      'flock_unexpected_errors_total{where="http"} 1',
    );
  });

  it('answers an intended HttpException as problem details keeping its codes, and logs nothing at error level', async () => {
    const before = lines.filter((l) => l.level === 'error').length;
    const response = await get('/t/conflict');
    expect(response.statusCode).toBe(409);
    expect(problem(response)).toEqual({
      type: `${PROBLEM_TYPE_PREFIX}conflict`,
      title: 'Conflicts with the current state',
      status: 409,
      detail: 'already there',
      error: 'conflict',
      reason: 'TAKEN',
    });
    expect(lines.filter((l) => l.level === 'error')).toHaveLength(before);
  });

  it('answers a path no route has 404, and a routed path with another method 405 with Allow, without echoing the query', async () => {
    const missing = await get('/t/nothing?secret=abc');
    expect(missing.statusCode).toBe(404);
    expect(problem(missing)).toMatchObject({ status: 404, error: 'not_found', detail: 'no route GET /t/nothing' });
    expect(missing.body).not.toContain('abc');
    const wrongMethod = await app.getHttpAdapter().getInstance().inject({ method: 'DELETE', url: '/t/conflict?x=1' });
    expect(wrongMethod.statusCode).toBe(405);
    expect(wrongMethod.headers.allow).toBe('GET, HEAD');
    expect(problem(wrongMethod)).toMatchObject({ status: 405, error: 'method_not_allowed' });
  });

  it('answers a database or Redis outage 503 with Retry-After, not 500', async () => {
    for (const [path, reason, dependency] of [
      ['/t/db', 'DATABASE_UNAVAILABLE', 'database'],
      ['/t/kv', 'KV_UNAVAILABLE', 'redis'],
    ] as const) {
      const response = await get(path);
      expect(response.statusCode).toBe(503);
      expect(response.headers['retry-after']).toBe(String(OUTAGE_RETRY_AFTER_S));
      expect(problem(response)).toMatchObject({ status: 503, error: 'unavailable', reason });
      expect(await metrics.registry.getSingleMetricAsString('flock_dependency_unavailable_total')).toContain(
        `{dependency="${dependency}"} 1`,
      );
    }
    expect(await metrics.registry.getSingleMetricAsString('flock_unexpected_errors_total')).toContain(
      'flock_unexpected_errors_total{where="http"} 1',
    );
  });
});
