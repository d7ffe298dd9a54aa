import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SystemClock } from '../../src/infra/clock.js';
import { RedisKeyValueStore } from '../../src/infra/kv/redis-kv.js';
import { createLogger } from '../../src/observability/logger.js';
import { Metrics } from '../../src/observability/metrics.js';
import { ScheduledTasksService } from '../../src/scheduling/scheduled-tasks.service.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const PREFIX = `flock-test:${randomUUID()}:`;
/**
 * Long enough that a loaded CI machine's stalls (300–500 ms) stay inside the scheduler's margins: a tick is only
 * lost when its wake-up is a whole period late, a tick key lives 2·EVERY (a loser claiming after its 100 ms head
 * start still finds it), and the running lease (1 s, renewed every 333 ms) survives a late renewal.
 */
const EVERY = 500;
const RUN_MS = 10 * EVERY;
/** Ticks that may go unrun over the run: the one at the stop boundary and one per stall longer than ~EVERY − jitter. */
const MISSED_FRACTION = 0.2;
const logger = createLogger('silent');
const stores: RedisKeyValueStore[] = [];
let unreachable: Error | undefined;

beforeAll(async () => {
  const probe = new RedisKeyValueStore({ url: REDIS_URL, keyPrefix: PREFIX, logger });
  try {
    await probe.connect();
  } catch (err) {
    unreachable = new Error(`Redis not reachable at ${new URL(REDIS_URL).host}: run \`npm run services:up\``, { cause: err });
  } finally {
    await probe.close();
  }
});

afterAll(async () => {
  await Promise.all(stores.map((s) => s.close()));
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    const keys = await redis.keys(`${PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
  } catch {
    // Redis unreachable: the test has already failed with the probe error.
  } finally {
    redis.disconnect();
  }
});

async function store(): Promise<RedisKeyValueStore> {
  if (unreachable) throw unreachable;
  const kv = new RedisKeyValueStore({ url: REDIS_URL, keyPrefix: PREFIX, logger });
  await kv.connect();
  stores.push(kv);
  return kv;
}

describe('ScheduledTasksService on Redis, two instances', () => {
  it('runs every tick exactly once across instances and never overlaps an overrunning task', async () => {
    const clock = new SystemClock();
    const ran: { instance: string; tickAt: number }[] = [];
    let slowConcurrent = 0;
    let slowMaxConcurrent = 0;
    let slowRuns = 0;
    const metrics = [new Metrics(), new Metrics()];

    const services = await Promise.all(
      ['a', 'b'].map(async (instanceId, i) => {
        const service = new ScheduledTasksService({ kv: await store(), clock, logger, metrics: metrics[i]!, instanceId });
        service.register({ name: 'sweep', everyMs: EVERY, run: async ({ tickAt }) => void ran.push({ instance: instanceId, tickAt }) });
        service.register({
          name: 'slow',
          everyMs: EVERY,
          run: async () => {
            slowRuns++;
            slowMaxConcurrent = Math.max(slowMaxConcurrent, ++slowConcurrent);
            await new Promise((r) => setTimeout(r, 2.5 * EVERY));
            slowConcurrent--;
          },
        });
        return service;
      }),
    );

    const startedAt = Date.now();
    for (const s of services) s.start();
    await new Promise((r) => setTimeout(r, RUN_MS));
    const stoppedAt = Date.now();
    await Promise.all(services.map((s) => s.stop()));

    const elapsedTicks = Math.floor(stoppedAt / EVERY) - Math.floor(startedAt / EVERY);
    const tickAts = ran.map((r) => r.tickAt);
    expect(new Set(tickAts).size, `a tick ran twice: ${tickAts.join(', ')}`).toBe(tickAts.length);
    // A busy machine may make a tick late enough to be skipped (never run twice): allow a fifth of them (2 of 10).
    expect(ran.length, `ran ${tickAts.join(', ')}`).toBeGreaterThanOrEqual(elapsedTicks - Math.ceil(elapsedTicks * MISSED_FRACTION));
    expect(ran.length).toBeLessThanOrEqual(elapsedTicks + 1);

    expect(slowMaxConcurrent).toBe(1);
    expect(slowRuns).toBeGreaterThanOrEqual(2);
    let overruns = 0;
    for (const m of metrics) {
      for (const v of (await m.scheduledTicks.get()).values) {
        if (v.labels.task === 'slow' && v.labels.result === 'skipped_overrun') overruns += v.value;
      }
    }
    expect(overruns).toBeGreaterThan(0);
  });
});
