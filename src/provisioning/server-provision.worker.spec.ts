import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import { upsertMatch } from '../matches/match.repository.js';
import type { PanelPort } from './panel.port.js';
import type { PanelObservation } from './policy.js';
import { DEFAULT_PROVISION_SETTINGS, ServerProvisionWorker } from './server-provision.worker.js';

// The worker on the embedded PostgreSQL (PGlite) with a scripted panel and a manual clock.

const T0 = Date.UTC(2026, 10, 27, 12);
let database: DatabaseHandle;
let clock: ManualClock;
let panelSays: PanelObservation | Error;
let worker: ServerProvisionWorker;

function newWorker(instanceId: string): ServerProvisionWorker {
  const panel: PanelPort = {
    observe: async () => {
      if (panelSays instanceof Error) throw panelSays;
      return panelSays;
    },
    remove: async () => ({ kind: 'deleted' }),
  };
  return new ServerProvisionWorker({
    db: database.db,
    panel,
    clock,
    logger: createLogger('silent'),
    metrics: new Metrics(),
    instanceId,
    settings: { ...DEFAULT_PROVISION_SETTINGS, readyDeadlineMs: 300_000, pollEveryMs: 4000 },
  });
}

beforeEach(async () => {
  database = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(database.db);
  clock = new ManualClock(T0);
  panelSays = { kind: 'install', state: 'installed', status: null };
  worker = newWorker('w1');
}, 60_000); // an embedded PostgreSQL per test: migrating it takes far longer than 10 s on a loaded machine

afterEach(() => database.close());

async function reserve(matchId: string) {
  await database.db.transaction().execute((trx) =>
    upsertMatch(
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
    ),
  );
  await database.db
    .transaction()
    .execute((trx) =>
      worker
        .reservedHandler()
        .handle(
          { v: 'v1', eventId: `e-${matchId}`, matchId, panelServerId: 7 },
          { trx, eventId: `e-${matchId}`, topic: 'server.reserved', logger: createLogger('silent'), now: clock.now() },
        ),
    );
}

const state = async (matchId: string) =>
  await database.db.selectFrom('provisions').selectAll().where('match_id', '=', matchId).executeTakeFirstOrThrow();
const outbox = (topic: string) => database.db.selectFrom('outbox').select(['topic', 'payload']).where('topic', '=', topic).execute();

describe('ServerProvisionWorker deadlines', () => {
  it('a readiness signal after the deadline times the reservation out instead of making it ready', async () => {
    await reserve('m-late');
    await worker.pollDue();
    expect((await state('m-late')).state).toBe('WAITING_SIGNALS');
    clock.advance(300_000);
    expect(await worker.recordReadinessSignal('m-late', { adminHooksOk: true })).toBe('timed_out');
    expect(await state('m-late')).toMatchObject({ state: 'FAILED', failure_reason: 'TIMEOUT' });
    expect(await outbox('server.ready')).toHaveLength(0);
    expect(await outbox('server.failed')).toHaveLength(1);
    expect(await database.db.selectFrom('ledger_entries').selectAll().where('kind', '=', 'REFUND').execute()).toHaveLength(2);
  });

  it('a signal one millisecond before the deadline still makes it ready', async () => {
    await reserve('m-ok');
    await worker.pollDue();
    clock.advance(299_999);
    expect(await worker.recordReadinessSignal('m-ok', { adminHooksOk: true })).toBe('ready');
    expect((await state('m-ok')).state).toBe('READY');
  });

  it('the poller times out a provision waiting for signals past its deadline, without the scheduled monitor', async () => {
    await reserve('m-wait');
    await worker.pollDue();
    expect((await state('m-wait')).state).toBe('WAITING_SIGNALS');
    clock.advance(299_000);
    expect(await worker.pollDue()).toBe(0); // not due: the panel has nothing more to say
    clock.advance(1_000);
    expect(await worker.pollDue()).toBe(1);
    expect(await state('m-wait')).toMatchObject({ state: 'FAILED', failure_reason: 'TIMEOUT' });
  });

  it('an installing server is polled every POLL_EVERY_MS and fails fast when the install fails', async () => {
    panelSays = { kind: 'install', state: 'pending', status: 'installing' };
    await reserve('m-inst');
    expect(await worker.pollDue()).toBe(1);
    expect((await state('m-inst')).next_poll_at!.getTime()).toBe(T0 + 4000);
    clock.advance(3999);
    expect(await worker.pollDue()).toBe(0);
    clock.advance(1);
    panelSays = { kind: 'install', state: 'failed', status: 'install_failed' };
    expect(await worker.pollDue()).toBe(1);
    expect(await state('m-inst')).toMatchObject({ state: 'FAILED', failure_reason: 'INSTALL_FAILED', cleanup_state: 'PENDING' });
    expect(await worker.cleanupDue()).toBe(1);
    expect((await state('m-inst')).cleanup_state).toBe('DONE');
  });
});

describe('ServerProvisionWorker leases', () => {
  it('without a graceful stop (a crash) another instance takes a provision over only once the lease lapses', async () => {
    panelSays = { kind: 'install', state: 'pending', status: 'installing' };
    await reserve('m-crash');
    expect(await worker.pollDue()).toBe(1);
    const other = newWorker('w2');
    clock.advance(4000); // the next poll is due, but w1 still holds the lease
    expect(await other.pollDue()).toBe(0);
    clock.advance(DEFAULT_PROVISION_SETTINGS.leaseMs - 4000 + 1);
    expect(await other.pollDue()).toBe(1);
    expect((await state('m-crash')).lease_owner).toBe('w2');
  });

  it('a graceful stop releases every lease this instance holds, so another instance takes over at once', async () => {
    panelSays = { kind: 'install', state: 'pending', status: 'installing' };
    await reserve('m-a');
    await reserve('m-b');
    expect(await worker.pollDue()).toBe(2);
    // A failed pass leaves its claim parked at lease_until: released, it is due now, not when the lease would lapse.
    clock.advance(4000);
    panelSays = new Error('panel adapter bug');
    await expect(worker.pollDue()).rejects.toThrow('panel adapter bug');
    expect((await state('m-a')).next_poll_at!.getTime()).toBe(T0 + 4000 + DEFAULT_PROVISION_SETTINGS.leaseMs);
    panelSays = { kind: 'install', state: 'pending', status: 'installing' };
    const other = newWorker('w2');
    expect(await other.pollDue()).toBe(0);
    worker.start(); // the real loop: nothing is due for w1, so it idles until stopped
    await worker.stop();
    for (const id of ['m-a', 'm-b']) {
      expect(await state(id)).toMatchObject({ state: 'INSTALLING', lease_owner: null, lease_until: null });
      expect((await state(id)).next_poll_at!.getTime()).toBeLessThanOrEqual(clock.now());
    }
    expect(await other.pollDue()).toBe(2);
    expect((await state('m-a')).lease_owner).toBe('w2');
    // Stopping an instance leaves other instances' leases alone.
    await worker.stop();
    expect((await state('m-b')).lease_owner).toBe('w2');
  });
});
