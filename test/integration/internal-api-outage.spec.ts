import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { OUTAGE_RETRY_AFTER_S } from '../../src/infra/faults/outage.js';
import { createLogger } from '../../src/observability/logger.js';
import { freshPostgresDatabase, requireRedis, randomName, TEST_SECRETS } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { internalApi, matchBody, startTestService } from '../support/service.js';

/** A TCP relay to PostgreSQL that the test can cut (every connection reset, new ones refused) and restore. */
class CuttableProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  port = 0;
  constructor(private readonly target: { host: string; port: number }) {}

  async open(port = 0): Promise<void> {
    this.server = net.createServer((client) => {
      const upstream = net.connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server!.address() as net.AddressInfo).port;
  }

  async cut(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server!.close(() => resolve()));
    for (const s of this.sockets) s.resetAndDestroy();
    await closed;
  }
}

describe('internal API during a PostgreSQL outage', () => {
  let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
  let proxy: CuttableProxy;
  let service: RunningService;
  const lines: Record<string, unknown>[] = [];

  beforeAll(async () => {
    db = await freshPostgresDatabase();
    const target = new URL(db.url);
    proxy = new CuttableProxy({ host: target.hostname, port: Number(target.port || 5432) });
    await proxy.open();
    const viaProxy = new URL(db.url);
    viaProxy.port = String(proxy.port);
    service = await startTestService(
      {
        ...TEST_SECRETS,
        PTERO_APP_URL: 'http://127.0.0.1:1',
        PTERO_APP_API_KEY: 'ptla_unused_in_this_test_0123456789abcdef',
        DATABASE_URL: viaProxy.toString(),
        REDIS_URL: await requireRedis(),
        REDIS_KEY_PREFIX: randomName('fw') + ':',
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'info',
      },
      { logger: createLogger('info', {}, { write: (line: string) => void lines.push(JSON.parse(line)) }) },
    );
  });
  afterAll(async () => {
    await service?.close();
    await db?.drop();
  });

  it('answers 503 with Retry-After while the database is unreachable, logs no error-level line, and recovers', async () => {
    const api = internalApi(service);
    expect((await api('PUT', '/v1/internal/matches/m-outage-1', matchBody('m-outage-1'))).status).toBe(201);

    const port = proxy.port;
    await proxy.cut();
    const response = await fetch(`${service.url}/v1/internal/matches/m-outage-1`, {
      headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}` },
    });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe(String(OUTAGE_RETRY_AFTER_S));
    expect(response.headers.get('content-type')).toBe('application/problem+json; charset=utf-8');
    expect(await response.json()).toMatchObject({
      status: 503,
      error: 'unavailable',
      reason: 'DATABASE_UNAVAILABLE',
      requestId: expect.any(String),
    });
    const put = await api('PUT', '/v1/internal/matches/m-outage-2', matchBody('m-outage-2'));
    expect(put.status).toBe(503);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    expect(metrics).toMatch(/flock_dependency_unavailable_total\{dependency="database"\} [2-9]/);
    expect(metrics).toContain('flock_unexpected_errors_total{where="http"} 0');
    expect(lines.filter((l) => l.level === 'error' && l.component === 'http')).toEqual([]);

    await proxy.open(port);
    await eventually(async () => (await api('GET', '/v1/internal/matches/m-outage-1')).status === 200, 20_000, 'the API answering again');
  });
});
