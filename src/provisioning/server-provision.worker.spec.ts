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
let panelSays: PanelObservation;
let worker: ServerProvisionWorker;

beforeEach(async () => {
  database = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(database.db);
  clock = new ManualClock(T0);
  panelSays = { kind: 'install', state: 'installed', status: null };
  const panel: PanelPort = { observe: async () => panelSays, remove: async () => ({ kind: 'deleted' }) };
  worker = new ServerProvisionWorker({
    db: database.db,
    panel,
    clock,
    logger: createLogger('silent'),
    metrics: new Metrics(),
    instanceId: 'w1',
    settings: { ...DEFAULT_PROVISION_SETTINGS, readyDeadlineMs: 300_000, pollEveryMs: 4000 },
  });
});

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
  await database.db.transaction().execute((trx) =>
    worker.reservedHandler().handle({ v: 'v1', eventId: `e-${matchId}`, matchId, panelServerId: 7 }, { trx, eventId: `e-${matchId}`, topic: 'server.reserved', logger: createLogger('silent'), now: clock.now() }),
  );
}

const state = async (matchId: string) => (await database.db.selectFrom('provisions').selectAll().where('match_id', '=', matchId).executeTakeFirstOrThrow());
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
