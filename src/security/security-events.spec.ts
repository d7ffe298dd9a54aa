import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../infra/clock.js';
import { openDatabase, type DatabaseHandle } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { createLogger } from '../observability/logger.js';
import { OutboxSecurityEventSink } from './security-events.js';

describe('OutboxSecurityEventSink', () => {
  let database: DatabaseHandle;
  beforeAll(async () => {
    database = await openDatabase({ dataDir: 'memory://' });
    await migrateToLatest(database.db);
  }, 60_000); // PGlite's start is slow on a loaded machine
  afterAll(() => database.close());

  it('caps hmac.verification.failed events per minute, and a new window admits again', async () => {
    const clock = new ManualClock(1_000_000);
    const sink = new OutboxSecurityEventSink(database.db, clock, createLogger('silent'), () => undefined, 3);
    const failure = (i: number) => ({
      reason: 'ADDRESS_NOT_ALLOWED' as const,
      status: 403 as const,
      remoteAddress: `2001:db8::${i}`,
      route: 'overlay' as const,
      requestId: `r${i}`,
      at: clock.now(),
    });
    for (let i = 0; i < 10; i++) await sink.onVerificationFailed(failure(i));
    const count = async () =>
      (await database.db.selectFrom('outbox').select('id').where('topic', '=', 'hmac.verification.failed').execute()).length;
    expect(await count()).toBe(3);
    clock.advance(60_000);
    await sink.onVerificationFailed(failure(99));
    expect(await count()).toBe(4);
  });

  it('publishes a replay summary as replay.attack.detected with summary: true, once per key and first replay', async () => {
    const clock = new ManualClock(2_000_000);
    const sink = new OutboxSecurityEventSink(database.db, clock, createLogger('silent'), () => undefined, 0);
    const summary = {
      keyId: 'ovl_m-1_1767225600000',
      matchId: 'm-1',
      route: 'overlay' as const,
      count: 42,
      firstAt: 1_990_000,
      lastAt: 1_999_000,
      remoteAddresses: ['10.42.0.1'],
    };
    await sink.onReplaysSummarized(summary);
    await sink.onReplaysSummarized(summary);
    const rows = await database.db.selectFrom('outbox').select('payload').where('topic', '=', 'replay.attack.detected').execute();
    expect(rows.map((r) => r.payload)).toEqual([
      expect.objectContaining({ keyId: summary.keyId, summary: true, count: 42, remoteAddresses: ['10.42.0.1'] }),
    ]);
  });
});
