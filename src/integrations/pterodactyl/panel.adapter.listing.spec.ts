import { afterEach, describe, expect, it } from 'vitest';
import { startFakePanel, type FakePanel } from '../../demo/simulated/pterodactyl-panel.js';
import { SystemClock } from '../../infra/clock.js';
import { MemoryKeyValueStore } from '../../infra/kv/memory-kv.js';
import { createLogger } from '../../observability/logger.js';
import { Metrics } from '../../observability/metrics.js';
import { PterodactylPanel } from './panel.adapter.js';
import { PterodactylClient } from './pterodactyl-client.js';
import { PanelRateLimiter } from './rate-limiter.js';

// Coalesced observation (docs/panel.md) against the fake panel over real HTTP: listing semantics and its faults.
const KEY = 'ptla_listlistlistlistlistlistlistlistlistlistlist';
let panel: FakePanel | undefined;
afterEach(async () => {
  await panel?.close();
  panel = undefined;
});

async function setup(): Promise<{ panel: FakePanel; adapter: PterodactylPanel }> {
  panel = await startFakePanel({ apiKeys: { [KEY]: 'admin' } });
  const clock = new SystemClock();
  const limiter = new PanelRateLimiter({
    store: new MemoryKeyValueStore(clock),
    clock,
    budget: 10_000,
    windowMs: 60_000,
    instanceId: 'i-1',
  });
  const client = new PterodactylClient({
    baseUrl: panel.url,
    apiKey: KEY,
    timeoutMs: 2_000,
    mutationTimeoutMs: 2_000,
    limiter,
    metrics: new Metrics(),
    logger: createLogger('silent'),
  });
  return { panel, adapter: new PterodactylPanel(client) };
}

const deadline = () => Date.now() + 10_000;

describe('PterodactylPanel.observeMany (GET /servers?sort=-id)', () => {
  it('answers for many servers with one request per 100 newest, reading status like a GET', async () => {
    const { panel, adapter } = await setup();
    const old = Array.from({ length: 150 }, () => panel.addServer()); // installed long ago, never watched
    const installing = Array.from({ length: 120 }, () => panel.addServer({ installAfterMs: 60_000 }));
    const failed = panel.addServer({ status: 'install_failed' });
    const installed = panel.addServer({ installAfterMs: 60_000 });
    panel.completeInstall(installed);
    panel.resetStats();

    const result = await adapter.observeMany([...installing, failed, installed], deadline());
    expect(result.kind).toBe('listed');
    if (result.kind !== 'listed') return;
    expect(result.requests).toBe(2); // 122 watched, all among the 100·2 newest; the 150 old ones are not paged through
    expect(panel.stats.requestsTotal).toBe(2);
    expect(result.seen.size).toBe(122);
    expect(result.seen.get(installing[0]!)).toEqual({ kind: 'install', state: 'pending', status: 'installing' });
    expect(result.seen.get(failed)).toEqual({ kind: 'install', state: 'failed', status: 'install_failed' });
    expect(result.seen.get(installed)).toEqual({ kind: 'install', state: 'installed', status: null });
    expect(result.seen.has(old[0]!)).toBe(false);
  });

  it('the fake answers sort=status as the panel does: 400 InvalidSortQuery (allowedSorts is id, uuid)', async () => {
    const { panel } = await setup();
    const res = await fetch(`${panel.url}/api/application/servers?sort=-status&per_page=100`, {
      headers: { Authorization: `Bearer ${KEY}`, Accept: 'application/json' },
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('InvalidSortQuery');
  });

  it.each([403, 404] as const)('a listing answered %i is unusable (fall back to per-server GETs)', async (status) => {
    const { panel, adapter } = await setup();
    const id = panel.addServer({ installAfterMs: 60_000 });
    panel.injectFault({ kind: 'listing_error', status });
    const result = await adapter.observeMany([id], deadline());
    expect(result).toMatchObject({ kind: 'unusable', requests: 1 });
    expect(panel.status(id)).toBe('installing');
  });

  it('a listing answered 500 is a passing fault: retry, no observation', async () => {
    const { panel, adapter } = await setup();
    const id = panel.addServer({ installAfterMs: 60_000 });
    panel.injectFault({ kind: 'listing_error', status: 500, times: 1 });
    expect(await adapter.observeMany([id], deadline())).toMatchObject({ kind: 'retry', reason: 'SERVER_ERROR' });
    expect((await adapter.observeMany([id], deadline())).kind).toBe('listed');
  });

  it('a server deleted between pages shifts a watched row out of sight: it is not seen, never reported installed', async () => {
    const { panel, adapter } = await setup();
    const ids = Array.from({ length: 150 }, () => panel.addServer({ installAfterMs: 60_000 }));
    // ids descend over pages: page 1 holds ids[149..50], page 2 ids[49..0]. Deleting a page-1 row before page 2
    // moves ids[49] up onto page 1, which we have already read.
    const unhook = panel.onListPage((page) => {
      if (page === 2) panel.remove(ids[120]!);
    });
    const result = await adapter.observeMany(ids, deadline());
    unhook();
    expect(result.kind).toBe('listed');
    if (result.kind !== 'listed') return;
    expect(result.seen.has(ids[49]!)).toBe(false);
    expect([...result.seen.values()].every((o) => o.kind === 'install' && o.state === 'pending')).toBe(true);
  });

  it('a server created between pages repeats a row: still one pending observation each', async () => {
    const { panel, adapter } = await setup();
    const ids = Array.from({ length: 150 }, () => panel.addServer({ installAfterMs: 60_000 }));
    const unhook = panel.onListPage((page) => {
      if (page === 2) panel.addServer({ installAfterMs: 60_000 });
    });
    const result = await adapter.observeMany(ids, deadline());
    unhook();
    expect(result).toMatchObject({ kind: 'listed', requests: 2 });
    if (result.kind === 'listed') expect(result.seen.size).toBe(150);
  });

  it('a panel that ignores the sort is unusable', async () => {
    const { panel, adapter } = await setup();
    const ids = Array.from({ length: 3 }, () => panel.addServer({ installAfterMs: 60_000 }));
    const real = globalThis.fetch;
    // A proxy that strips the query string: the panel answers in primary-key (ascending) order.
    const stripped = new PterodactylPanel(
      new PterodactylClient({
        baseUrl: panel.url,
        apiKey: KEY,
        timeoutMs: 2_000,
        mutationTimeoutMs: 2_000,
        limiter: new PanelRateLimiter({
          store: new MemoryKeyValueStore(new SystemClock()),
          clock: new SystemClock(),
          budget: 1000,
          windowMs: 60_000,
          instanceId: 'i',
        }),
        metrics: new Metrics(),
        logger: createLogger('silent'),
        fetch: (input, init) => real(String(input).replace(/\?.*$/, ''), init),
      }),
    );
    expect(await stripped.observeMany(ids, deadline())).toMatchObject({ kind: 'unusable', reason: 'LISTING_NOT_SORTED' });
    expect((await adapter.observeMany(ids, deadline())).kind).toBe('listed');
  });
});
