import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { createLogger } from '../../src/observability/logger.js';
import { freshPostgresDatabase, TEST_SECRETS } from '../support/infra.js';
import { startTestService } from '../support/service.js';
import { tcpProxy, type TcpProxy } from '../support/tcp-proxy.js';

// A restart during a PostgreSQL outage: the instance waits for the database (DB_STARTUP_WAIT_MS, backoff) instead of
// exiting at once, and exits with the reason when the outage outlasts the wait. Real PostgreSQL behind a TCP proxy.

let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
let proxy: TcpProxy;
let viaProxy: string;

beforeAll(async () => {
  db = await freshPostgresDatabase();
  const u = new URL(db.url);
  proxy = await tcpProxy(u.hostname, Number(u.port || 5432));
  u.host = `127.0.0.1:${proxy.port}`;
  viaProxy = u.toString();
});

afterAll(async () => {
  await proxy?.close();
  await db?.drop();
});

function env(extra: Record<string, string>): Record<string, string> {
  return {
    ...TEST_SECRETS,
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    DATABASE_URL: viaProxy,
    PTERO_APP_URL: 'http://127.0.0.1:9',
    PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    ...extra,
  };
}

function capture(): { lines: string[]; stream: Writable } {
  const lines: string[] = [];
  return {
    lines,
    stream: new Writable({
      write(chunk, _enc, done) {
        lines.push(chunk.toString());
        done();
      },
    }),
  };
}

describe('start-up during a database outage', () => {
  it('waits for an unreachable database and starts once it answers', async () => {
    proxy.cut();
    const logs = capture();
    setTimeout(() => proxy.restore(), 1_500);
    let service: RunningService | undefined;
    try {
      const started = Date.now();
      service = await startTestService(env({ DB_STARTUP_WAIT_MS: '30000' }), { logger: createLogger('warn', {}, logs.stream) });
      expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
      expect((await fetch(`${service.url}/healthz`)).status).toBe(200);
      const waits = logs.lines.map((l) => JSON.parse(l)).filter((l) => l.reason === 'DATABASE_UNAVAILABLE_AT_START');
      expect(waits.length).toBeGreaterThanOrEqual(1);
      expect(waits[0].attempt).toBe(1);
    } finally {
      proxy.restore();
      await service?.close();
    }
  });

  it('exits with the reason when the outage outlasts DB_STARTUP_WAIT_MS', async () => {
    proxy.cut();
    try {
      const started = Date.now();
      await expect(startTestService(env({ DB_STARTUP_WAIT_MS: '1000' }))).rejects.toThrow(
        /database unreachable at start for \d+ s \(DB_STARTUP_WAIT_MS=1000\)/,
      );
      expect(Date.now() - started).toBeLessThan(10_000);
    } finally {
      proxy.restore();
    }
  });

  it('a database that answers with an error that is not an outage (wrong password) is not waited for', async () => {
    const u = new URL(viaProxy);
    u.username = 'no_such_role_for_flock';
    const started = Date.now();
    await expect(startTestService(env({ DATABASE_URL: u.toString(), DB_STARTUP_WAIT_MS: '30000' }))).rejects.toThrow(
      /no_such_role_for_flock/,
    );
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
