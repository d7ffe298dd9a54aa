import { afterEach, describe, expect, it } from 'vitest';
import { startFakePanel, type FakePanel } from '../../../test/fakes/pterodactyl-panel.js';
import { SystemClock } from '../../infra/clock.js';
import { MemoryKeyValueStore } from '../../infra/kv/memory-kv.js';
import { createLogger } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { PanelError } from './panel-error.js';
import { PterodactylClient } from './pterodactyl-client.js';
import { PanelRateLimiter } from './rate-limiter.js';

/**
 * Real HTTP, real time: a fleet of three instances (one shared store), twelve pollers hammering the fake panel.
 * The panel's window is shortened to 2 s (budget 20) so a few seconds cover several windows.
 */
const KEY = 'ptla_fleetfleetfleetfleetfleetfleetfleetfleetflee';
const WINDOW_MS = 2_000;
const BUDGET = 20;

let panel: FakePanel | undefined;
afterEach(async () => {
  await panel?.close();
  panel = undefined;
});

async function hammer(limiterBudget: number, runMs: number): Promise<{ panel: FakePanel; ok: number; errors: PanelError[] }> {
  panel = await startFakePanel({ apiKeys: { [KEY]: 'fleet-admin' }, rateLimitPerMin: BUDGET, rateLimitWindowMs: WINDOW_MS });
  const serverIds = Array.from({ length: 4 }, () => panel!.addServer());
  const clock = new SystemClock();
  const store = new MemoryKeyValueStore(clock);
  const logger = createLogger('silent');
  const clients = ['i-1', 'i-2', 'i-3'].map((instanceId) => {
    const limiter = new PanelRateLimiter({
      store,
      clock,
      budget: limiterBudget,
      windowMs: WINDOW_MS,
      safetyMargin: 0.8,
      instanceId,
      exhaustedPauseMs: 200,
    });
    return new PterodactylClient({ baseUrl: panel!.url, apiKey: KEY, timeoutMs: 2_000, mutationTimeoutMs: 2_000, limiter, metrics: new Metrics(), logger });
  });
  const stopAt = Date.now() + runMs;
  let ok = 0;
  const errors: PanelError[] = [];
  await Promise.all(
    Array.from({ length: 12 }, async (_, n) => {
      const client = clients[n % clients.length] as PterodactylClient;
      const id = serverIds[n % serverIds.length] as number;
      while (Date.now() < stopAt) {
        try {
          await client.getServer(id, { deadline: stopAt });
          ok++;
        } catch (error) {
          if (!(error instanceof PanelError)) throw error;
          if (error.reason !== 'RATE_LIMIT_WAIT') errors.push(error);
        }
      }
    }),
  );
  return { panel, ok, errors };
}

describe('PanelRateLimiter against the fake panel (real HTTP, real time)', () => {
  it('a fleet of 3 instances × 12 pollers never gets a 429 and never exceeds the budget in any sliding window', async () => {
    const { panel: p, ok, errors } = await hammer(BUDGET, 4_500);
    expect(errors).toEqual([]);
    expect(p.stats.throttled).toBe(0);
    expect(p.maxInSlidingWindow({ windowMs: WINDOW_MS })).toBeLessThanOrEqual(BUDGET);
    for (const window of p.stats.windows) expect(window.count).toBeLessThanOrEqual(BUDGET);
    // ~16 per 2 s window for 4.5 s: the limiter is not just refusing everything.
    expect(ok).toBeGreaterThanOrEqual(25);
  });

  it('control: the same load with a 10× too generous limiter is throttled by the fake', async () => {
    const { panel: p, errors } = await hammer(BUDGET * 10, 1_000);
    expect(p.stats.throttled).toBeGreaterThan(0);
    expect(errors.some((e) => e.reason === 'RATE_LIMITED')).toBe(true);
  });
});
