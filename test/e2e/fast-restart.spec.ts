import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomName } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { freePort, ServiceProcess } from '../support/process.js';
import { realStack, serviceEnv, type RealStack } from '../support/service.js';

// After a kill -9 the replacement must answer /healthz at once (a liveness probe would otherwise restart it in a
// loop), even while its consumer-group join waits out the dead member's session timeout; with a stable
// INSTANCE_ID (static membership) it takes the partitions back without waiting at all.

const SESSION_TIMEOUT_MS = 30_000;
let real: RealStack;
const procs: ServiceProcess[] = [];

beforeAll(async () => {
  real = await realStack();
});

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) await p.kill('SIGKILL');
  await real?.close();
});

async function readyz(proc: ServiceProcess): Promise<{ status: number; checks: Record<string, string> }> {
  const response = await fetch(`${proc.url}/readyz`);
  return { status: response.status, checks: ((await response.json()) as { checks: Record<string, string> }).checks };
}

async function restartAfterKill(env: Record<string, string>): Promise<{ replacement: ServiceProcess; healthzMs: number }> {
  const first = await ServiceProcess.start(env, await freePort());
  procs.push(first);
  expect(await first.kill('SIGKILL')).toBe(null);
  const t0 = Date.now();
  const replacement = await ServiceProcess.start(env, await freePort(), '/healthz');
  procs.push(replacement);
  return { replacement, healthzMs: Date.now() - t0 };
}

describe('fast restart after SIGKILL', () => {
  it('dynamic membership: /healthz answers while /readyz says the group join is still waiting for the dead member', async () => {
    const env = serviceEnv(real.stack, { KAFKA_GROUP_ID: randomName('g-dyn'), KAFKA_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS) });
    const { replacement, healthzMs } = await restartAfterKill(env);
    // Node start, migrations and Redis connect only; the margin is for a loaded machine, far below the 30 s wait.
    expect(healthzMs).toBeLessThan(15_000);
    const early = await readyz(replacement);
    expect(early.status).toBe(503);
    expect(early.checks.bus).toBe('joining');
    expect(early.checks.database).toBe('ok');
    await eventually(
      async () => (await readyz(replacement)).status === 200,
      SESSION_TIMEOUT_MS + 60_000,
      'the join after the session timeout',
    );
    expect(await replacement.kill('SIGTERM')).toBe(0);
  });

  it('static membership (stable INSTANCE_ID): the replacement is consuming well before the session timeout', async () => {
    const env = serviceEnv(real.stack, {
      KAFKA_GROUP_ID: randomName('g-static'),
      KAFKA_SESSION_TIMEOUT_MS: String(SESSION_TIMEOUT_MS),
      INSTANCE_ID: randomName('pod-'),
    });
    const { replacement, healthzMs } = await restartAfterKill(env);
    expect(healthzMs).toBeLessThan(15_000);
    const t0 = Date.now();
    await eventually(async () => (await readyz(replacement)).status === 200, SESSION_TIMEOUT_MS, 'ready with the old partitions');
    // Dynamic membership would wait out the dead member's whole 30 s session; half of it is a generous margin.
    expect(Date.now() - t0 + healthzMs).toBeLessThan(SESSION_TIMEOUT_MS / 2);
    expect(await replacement.kill('SIGTERM')).toBe(0);
  });
});
