import { afterEach, describe, expect, it } from 'vitest';
import { maxInSlidingWindow, startFakePanel, type FakePanel } from '../../demo/simulated/pterodactyl-panel.js';
import { SystemClock } from '../../infra/clock.js';
import { MemoryKeyValueStore } from '../../infra/kv/memory-kv.js';
import { createLogger } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { PanelError } from './panel-error.js';
import { PterodactylClient } from './pterodactyl-client.js';
import { PanelRateLimiter } from './rate-limiter.js';

/**
 * Real HTTP, real time: a fleet of three instances (one shared store), twelve pollers hammering the fake panel.
 * The panel's window is shortened to 4 s (budget 20) so a few seconds cover a couple of windows. With a 0.8 safety
 * margin the limiter hands out at most 16 + 1 slots per window, one per 250 ms; the 3 requests of the budget left
 * over are all that absorbs latency between a grant and the panel counting it, so the panel-side checks tolerate a
 * request arriving ~750 ms later than the ones granted after it (a loaded CI machine stalls for a few hundred ms).
 * The limiter's own spacing is checked on its grant times, which no stall after the grant can bunch.
 */
const KEY = 'ptla_fleetfleetfleetfleetfleetfleetfleetfleetflee';
const WINDOW_MS = 4_000;
const BUDGET = 20;
const SAFETY_MARGIN = 0.8;
/** What the limiter may grant in any sliding window: floor(budget · margin) slots, plus one at the window's edge. */
const MAX_GRANTS_PER_WINDOW = Math.floor(BUDGET * SAFETY_MARGIN) + 1;

let panel: FakePanel | undefined;
afterEach(async () => {
  await panel?.close();
  panel = undefined;
});

async function hammer(
  limiterBudget: number,
  runMs: number,
): Promise<{ panel: FakePanel; ok: number; errors: PanelError[]; grants: number[] }> {
  panel = await startFakePanel({ apiKeys: { [KEY]: 'fleet-admin' }, rateLimitPerMin: BUDGET, rateLimitWindowMs: WINDOW_MS });
  const serverIds = Array.from({ length: 4 }, () => panel!.addServer());
  const clock = new SystemClock();
  const store = new MemoryKeyValueStore(clock);
  const logger = createLogger('silent');
  /** When each acquire() resolved, i.e. when a request was allowed to go out (before any HTTP latency). */
  const grants: number[] = [];
  const clients = ['i-1', 'i-2', 'i-3'].map((instanceId) => {
    const limiter = new PanelRateLimiter({
      store,
      clock,
      budget: limiterBudget,
      windowMs: WINDOW_MS,
      safetyMargin: SAFETY_MARGIN,
      instanceId,
      exhaustedPauseMs: WINDOW_MS / 10,
    });
    const acquire = limiter.acquire.bind(limiter);
    limiter.acquire = async (options) => {
      const waited = await acquire(options);
      grants.push(clock.now());
      return waited;
    };
    return new PterodactylClient({
      baseUrl: panel!.url,
      apiKey: KEY,
      timeoutMs: 2_000,
      mutationTimeoutMs: 2_000,
      limiter,
      metrics: new Metrics(),
      logger,
    });
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
  return { panel, ok, errors, grants };
}

describe('PanelRateLimiter against the fake panel (real HTTP, real time)', () => {
  it('a fleet of 3 instances × 12 pollers never gets a 429 and never exceeds the budget in any sliding window', async () => {
    const { panel: p, ok, errors, grants } = await hammer(BUDGET, 2.25 * WINDOW_MS);
    // The limiter's spacing itself, immune to latency after the grant: ≤ 17 grants in any 4 s.
    expect(maxInSlidingWindow(grants, WINDOW_MS)).toBeLessThanOrEqual(MAX_GRANTS_PER_WINDOW);
    // What the panel saw: no 429, and no sliding window over the budget (3 requests ≈ 750 ms of slack for latency).
    expect(errors).toEqual([]);
    expect(p.stats.throttled).toBe(0);
    expect(p.maxInSlidingWindow({ windowMs: WINDOW_MS })).toBeLessThanOrEqual(BUDGET);
    for (const window of p.stats.windows) expect(window.count).toBeLessThanOrEqual(BUDGET);
    // ~16 per 4 s window for 9 s (36 slots): the limiter is not just refusing everything.
    expect(ok).toBeGreaterThanOrEqual(25);
    expect(grants.length).toBe(ok);
  });

  it('control: the same load with a 10× too generous limiter is throttled by the fake', async () => {
    // 10× the budget is a slot every 25 ms: ~80 requests offered in 2 s against a budget of 20, even with stalls.
    const { panel: p, errors } = await hammer(BUDGET * 10, WINDOW_MS / 2);
    expect(p.stats.throttled).toBeGreaterThan(0);
    expect(errors.some((e) => e.reason === 'RATE_LIMITED')).toBe(true);
  });
});
