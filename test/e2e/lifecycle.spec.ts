import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshPostgresDatabase, randomName, requireRedis, ROOT, TEST_SECRETS } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { freePort } from '../support/process.js';

// `flock-workers start` through the bin wrapper, started by the `node` on PATH as a user would (on this machine the
// system Node 20: the wrapper re-runs the command on the pinned Node 24 and must pass signals and exit codes on).

const BIN = join(ROOT, 'bin', 'flock-workers.js');
const SYSTEM_NODE = spawnSync('sh', ['-c', 'command -v node'], { encoding: 'utf8' }).stdout.trim();

let db: Awaited<ReturnType<typeof freshPostgresDatabase>>;
let redisUrl: string;

beforeAll(async () => {
  [db, redisUrl] = await Promise.all([freshPostgresDatabase(), requireRedis()]);
});
afterAll(async () => {
  await db?.drop();
});

function wrapper(env: Record<string, string>) {
  const child = spawn(SYSTEM_NODE, [BIN, 'start'], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, exited, output: () => output };
}

const baseEnv = () => ({
  ...TEST_SECRETS,
  PTERO_APP_URL: 'http://127.0.0.1:9',
  PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
  DATABASE_URL: db.url,
  REDIS_URL: redisUrl,
  REDIS_KEY_PREFIX: randomName('life') + ':',
  HOST: '127.0.0.1',
  LOG_LEVEL: 'info',
});

describe('start, drain and stop through the bin wrapper', () => {
  it('refuses a half-embedded configuration with exit code 2, passed on by the wrapper', async () => {
    const run = wrapper({ ...baseEnv(), PORT: String(await freePort()) });
    expect((await run.exited).code).toBe(2);
    expect(run.output()).toContain('half-embedded configuration: KAFKA_BROKERS unset');
  });

  it('SIGTERM to the wrapper: /readyz 503 (draining) while /healthz stays up, then the service exits 0 and its port closes', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const run = wrapper({ ...baseEnv(), PORT: String(port), ALLOW_EMBEDDED: 'kafka', DRAIN_MS: '3000', REDIS_ULR: 'redis://typo' });
    await eventually(
      async () => {
        if (run.child.exitCode !== null) throw new Error(`exited early: ${run.output()}`);
        return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200;
      },
      60_000,
      'the service ready',
    );
    expect(run.output()).toMatch(/REDIS_ULR is not a setting of this service \(did you mean REDIS_URL\?\)/);

    const signalledAt = Date.now();
    run.child.kill('SIGTERM');
    const draining = await eventually(
      async () => {
        const r = await fetch(`${url}/readyz`).catch(() => undefined);
        return r?.status === 503 && ((await r.json()) as { checks: Record<string, string> });
      },
      2_500,
      '/readyz answering 503 while draining',
    );
    expect(draining.checks.lifecycle).toBe('draining');
    expect((await fetch(`${url}/healthz`)).status).toBe(200);

    const { code, signal } = await run.exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(3_000);
    // No service left behind, re-parented: nothing answers on its port.
    expect(
      await fetch(`${url}/healthz`).then(
        () => 'answered',
        () => 'closed',
      ),
    ).toBe('closed');
    expect(run.output()).toContain('draining: /readyz answers 503 before the service stops');
  });
});
