import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import type { FakePanel } from '../fakes/pterodactyl-panel.js';
import { randomName } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { internalApi, matchBody, realStack, serviceEnv, startTestService, type RealStack } from '../support/service.js';

// The panel misbehaves: 429 with Retry-After (our configured budget is wrong on purpose), 500s, hangs.
// Provisioning must still succeed, honour Retry-After (no 429 storm), and back off on errors.

// These tests pin the per-server poller (the coalesced listing's fallback); the listing has its own tests (docs/panel.md).
const PER_SERVER = { PANEL_LIST_EVERY_MS: '0' };
let real: RealStack;
let panel: FakePanel;
let service: RunningService;
let api: ReturnType<typeof internalApi>;

beforeAll(async () => {
  // The real panel allows 6 requests per 2 s window; the worker is told 600 per 2 s, so it will hit 429s.
  real = await realStack({ rateLimitPerMin: 6, rateLimitWindowMs: 2000 });
  panel = real.panel;
  service = await startTestService(
    serviceEnv(real.stack, {
      ...PER_SERVER,
      PTERO_RATE_LIMIT_PER_MIN: '600',
      PTERO_RATE_LIMIT_WINDOW_MS: '2000',
      PTERO_TIMEOUT_MS: '700',
      READY_DEADLINE_MS: '30000',
      POLL_EVERY_MS: '100',
    }),
  );
  api = internalApi(service);
});

afterAll(async () => {
  await service?.close();
  await real?.close();
});

async function state(matchId: string) {
  const { json } = await api('GET', `/v1/internal/matches/${matchId}`);
  return json?.provisioning?.state as string | undefined;
}

describe('provisioning against a misbehaving panel', () => {
  it('429 with Retry-After, 500s and a hanging request → still ready, and no 429 storm', async () => {
    const matchIds = Array.from({ length: 4 }, (_, i) => `fault-${i}-${randomName('')}`);
    const serverIds = matchIds.map(() => panel.addServer({ installAfterMs: 1500 }));
    panel.injectFault({ kind: 'server_error', serverId: serverIds[0], times: 3 });
    panel.injectFault({ kind: 'hang', serverId: serverIds[1], times: 1 });
    for (const [i, matchId] of matchIds.entries()) {
      await api('PUT', `/v1/internal/matches/${matchId}`, matchBody(matchId));
      await service.services.provisioning.recordReadinessSignal(matchId, { adminHooksOk: true });
      const { status } = await api('POST', '/v1/internal/events/server.reserved', {
        v: 'v1',
        eventId: randomUUID(),
        matchId,
        panelServerId: serverIds[i],
      });
      expect(status).toBe(202);
    }
    for (const matchId of matchIds) await eventually(async () => (await state(matchId)) === 'READY', 30_000, `${matchId} ready`);

    expect(panel.stats.throttled).toBeGreaterThan(0); // the wrong budget did run into the panel's limit …
    // … but each 429 paused the whole fleet until Retry-After: at most one 429 per throttle window, not a storm.
    const windows = panel.stats.windows.length;
    expect(panel.stats.throttled).toBeLessThanOrEqual(windows + 1);
    expect(panel.stats.byPathStatus[`GET /api/application/servers/${serverIds[0]} 500`]).toBe(3);
    const metrics = await (await fetch(`${service.url}/metrics`)).text();
    // The 429s may land on the per-server GET or on the coalesced listing (#12), whichever asked while the budget was
    // spent.
    const counted429 = [...metrics.matchAll(/flock_pterodactyl_requests_total\{operation="[a-z_]+",status="429"\} (\d+)/g)].reduce(
      (sum, m) => sum + Number(m[1]),
      0,
    );
    // (A 429 that arrives after the client's own timeout is counted as a timeout, hence ≤ rather than =.)
    expect(counted429).toBeGreaterThan(0);
    expect(counted429).toBeLessThanOrEqual(panel.stats.throttled);
    expect(metrics).toMatch(/flock_pterodactyl_requests_total\{operation="get_server",status="500"\} 3/);
    // The injected hang never answers, so the client gave up on it by its timeout. Not exactly one: on a loaded
    // machine an ordinary GET may also outlast PTERO_TIMEOUT_MS, which is the same retryable TIMEOUT path.
    expect(panel.stats.log.some((e) => e.method === 'GET' && e.path === `/api/application/servers/${serverIds[1]}` && e.status === 0)).toBe(
      true,
    );
    expect(metrics).toMatch(/flock_pterodactyl_requests_total\{operation="get_server",status="timeout"\} [1-9]/);
  });

  it('a server the panel does not know (404) fails at once as PANEL_NOT_FOUND, never retried', async () => {
    const matchId = `fault-403-${randomName('')}`;
    await api('PUT', `/v1/internal/matches/${matchId}`, matchBody(matchId));
    // Unknown server → 404 NotFoundHttpException → PANEL_NOT_FOUND (terminal, no retries).
    await api('POST', '/v1/internal/events/server.reserved', { v: 'v1', eventId: randomUUID(), matchId, panelServerId: 999_999 });
    await eventually(async () => (await state(matchId)) === 'FAILED', 20_000, 'failed');
    const { json } = await api('GET', `/v1/internal/matches/${matchId}`);
    expect(json.provisioning.failureReason).toBe('PANEL_NOT_FOUND');
    expect(json.status).toBe('CANCELLED');
    expect(json.refunds).toHaveLength(2);
    expect(panel.stats.byPath['GET /api/application/servers/999999']).toBe(1);
  });
});
