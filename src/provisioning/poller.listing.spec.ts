import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startFakePanel, type FakePanel } from '../demo/simulated/pterodactyl-panel.js';
import { PterodactylPanel } from '../integrations/pterodactyl/panel.adapter.js';
import { PterodactylClient } from '../integrations/pterodactyl/pterodactyl-client.js';
import { PanelRateLimiter } from '../integrations/pterodactyl/rate-limiter.js';
import { SystemClock } from '../infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { upsertMatch } from '../matches/match.repository.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { LISTING_HEALTHY_KEY, LISTING_QUIET_KEY } from './poller.js';
import { DEFAULT_PROVISION_SETTINGS, ServerProvisionWorker } from './server-provision.worker.js';

// Coalesced polling end to end below the service: the worker on PGlite, the fake panel over real HTTP. Every
// listing fault must end in "unknown, poll again": the provision stays INSTALLING, nothing is cancelled.

const KEY = 'ptla_pollpollpollpollpollpollpollpollpollpollpoll';
let database: DatabaseHandle;
let panel: FakePanel;
let kv: MemoryKeyValueStore;
let worker: ServerProvisionWorker;
const clock = new SystemClock();

beforeEach(async () => {
  database = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(database.db);
  panel = await startFakePanel({ apiKeys: { [KEY]: 'admin' } });
  kv = new MemoryKeyValueStore(clock);
  const client = new PterodactylClient({
    baseUrl: panel.url,
    apiKey: KEY,
    timeoutMs: 2_000,
    mutationTimeoutMs: 2_000,
    limiter: new PanelRateLimiter({ store: kv, clock, budget: 10_000, windowMs: 60_000, instanceId: 'w1' }),
    metrics: new Metrics(),
    logger: createLogger('silent'),
  });
  worker = new ServerProvisionWorker({
    db: database.db,
    panel: new PterodactylPanel(client),
    clock,
    logger: createLogger('silent'),
    metrics: new Metrics(),
    instanceId: 'w1',
    settings: { ...DEFAULT_PROVISION_SETTINGS, readyDeadlineMs: 300_000, pollEveryMs: 4000 },
    // A 12-request budget makes one listing's quiet period 10 s, longer than any pause of a loaded test machine.
    listing: {
      kv,
      everyMs: 2000,
      fallbackMs: 10_000,
      budget: 12,
      windowMs: 60_000,
      budgetShare: 0.5,
      maxWatched: 2000,
      unusableCooldownMs: 300_000,
    },
  });
}, 60_000); // an embedded PostgreSQL per test: migrating it is slow on a loaded machine

afterEach(async () => {
  await panel.close();
  await database.close();
});

async function reserve(matchId: string, panelServerId: number) {
  await database.db.transaction().execute(async (trx) => {
    await upsertMatch(
      trx,
      matchId,
      {
        mode: 'STANDARD',
        entryFee: { amountCents: 500, currency: 'USD' },
        overlayRequired: false,
        players: [
          { side: 'p1', playerId: 'alice', streamChannels: [] },
          { side: 'p2', playerId: 'bob', streamChannels: [] },
        ],
      },
      clock.now(),
    );
    await worker
      .reservedHandler()
      .handle(
        { v: 'v1', eventId: `e-${matchId}`, matchId, panelServerId },
        { trx, eventId: `e-${matchId}`, topic: 'server.reserved', logger: createLogger('silent'), now: clock.now() },
      );
  });
}

const provision = (matchId: string) =>
  database.db.selectFrom('provisions').selectAll().where('match_id', '=', matchId).executeTakeFirstOrThrow();
/** The next tick: the fleet-wide quiet period of the previous listing is over. */
async function listingTick(): Promise<number> {
  await kv.del(LISTING_QUIET_KEY);
  return worker.pollListed();
}
const listings = () => panel.stats.log.filter((e) => e.path === '/api/application/servers').length;
const gets = () => panel.stats.log.filter((e) => /^\/api\/application\/servers\/\d+$/.test(e.path)).length;

describe('coalesced panel polling', () => {
  it('one listing answers for every installing server; only the installed one moves on, nothing per server', async () => {
    const ids = Array.from({ length: 30 }, () => panel.addServer({ installAfterMs: 600_000 }));
    for (const [i, id] of ids.entries()) await reserve(`m-${i}`, id);
    panel.completeInstall(ids[3]!);
    panel.resetStats();

    expect(await listingTick()).toBe(30);
    expect(listings()).toBe(1);
    expect(gets()).toBe(0);
    expect((await provision('m-3')).state).toBe('WAITING_SIGNALS');
    const waiting = await provision('m-0');
    expect(waiting).toMatchObject({ state: 'INSTALLING', last_panel_status: 'installing', lease_owner: null });
    // The per-server poll is only the fallback, pushed past the next listings.
    expect(waiting.next_poll_at!.getTime()).toBeGreaterThan(clock.now() + 5_000);
    expect(await worker.pollDue()).toBe(0);
    // The quiet period holds the fleet to its share of the budget: a second pass in the same tick does nothing.
    expect(await worker.pollListed()).toBe(0);
    expect(listings()).toBe(1);
  });

  it('while listings answer, per-server polling stays off; when they stop, it takes over', async () => {
    const id = panel.addServer({ installAfterMs: 600_000 });
    await reserve('m-1', id);
    expect(await listingTick()).toBe(1);
    // Its own poll is due (as after a long pass), but the listings cover it: no GET competes for the budget.
    await database.db
      .updateTable('provisions')
      .set({ next_poll_at: new Date(clock.now() - 1) })
      .execute();
    panel.resetStats();
    expect(await worker.pollDue()).toBe(0);
    expect(gets()).toBe(0);
    // The healthy mark lapses (no listing within the fallback time): the server is polled on its own.
    await kv.del(LISTING_HEALTHY_KEY);
    expect(await worker.pollDue()).toBe(1);
    expect(gets()).toBe(1);
  });

  it.each([403, 404] as const)('listing answered %i: nothing decided, per-server polling takes over', async (status) => {
    const id = panel.addServer({ installAfterMs: 600_000 });
    await reserve('m-1', id);
    panel.injectFault({ kind: 'listing_error', status });
    panel.resetStats();
    expect(await listingTick()).toBe(0);
    expect(await provision('m-1')).toMatchObject({ state: 'RESERVED', lease_owner: null, failure_reason: null });
    // Unusable: this instance stops listing for the cooldown instead of spending budget on it.
    expect(await listingTick()).toBe(0);
    expect(listings()).toBe(1);
  });

  it('listing answered 500: nothing decided, the next tick lists again', async () => {
    const id = panel.addServer({ installAfterMs: 600_000 });
    await reserve('m-1', id);
    panel.injectFault({ kind: 'listing_error', status: 500, times: 1 });
    expect(await listingTick()).toBe(0);
    expect(await provision('m-1')).toMatchObject({ state: 'RESERVED', failure_reason: null });
    panel.completeInstall(id);
    expect(await listingTick()).toBe(1);
    expect((await provision('m-1')).state).toBe('WAITING_SIGNALS');
  });

  it('a listing that changes between pages: the shifted server is confirmed by one GET, not decided from absence', async () => {
    const ids = Array.from({ length: 150 }, () => panel.addServer({ installAfterMs: 600_000 }));
    const watched = ids[49]!; // shifted onto the page already read when a page-1 row is deleted
    await reserve('m-shifted', watched);
    await reserve('m-top', ids[140]!);
    const unhook = panel.onListPage((page) => {
      if (page === 2) panel.remove(ids[120]!);
    });
    panel.resetStats();
    expect(await listingTick()).toBe(2);
    unhook();
    expect(listings()).toBe(2);
    expect(gets()).toBe(1);
    expect(await provision('m-shifted')).toMatchObject({ state: 'INSTALLING', last_panel_status: 'installing', failure_reason: null });
  });

  it('a server that vanishes (404) while installing: unknown, poll again — no cancellation from the listing pass', async () => {
    const id = panel.addServer({ installAfterMs: 600_000 });
    await reserve('m-gone', id);
    expect(await listingTick()).toBe(1);
    panel.remove(id);
    expect(await listingTick()).toBe(1);
    const p = await provision('m-gone');
    expect(p).toMatchObject({ state: 'INSTALLING', last_panel_status: 'error', failure_reason: null, poll_failures: 1 });
    expect(await database.db.selectFrom('outbox').selectAll().execute()).toHaveLength(0);
  });
});
