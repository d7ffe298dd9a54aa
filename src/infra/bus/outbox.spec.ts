import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topics } from '../../events/topics.js';
import { openDatabase, type DatabaseHandle } from '../db/database.js';
import { migrateToLatest } from '../db/migrations.js';
import { enqueueEvent } from './outbox.js';

let database: DatabaseHandle;

beforeAll(async () => {
  database = await openDatabase({ dataDir: 'memory://' });
  await migrateToLatest(database.db);
}, 60_000);
afterAll(async () => {
  await database?.close();
});

const failed = {
  panelServerId: 7,
  reason: 'TIMEOUT',
  detail: 'deadline passed',
  reservedEventId: 'evt-1',
} as const;

describe('enqueueEvent: one payload type per topic', () => {
  it('writes the envelope around the payload, with the header matching the body', async () => {
    const envelope = await enqueueEvent(database.db, {
      topic: Topics.serverFailed,
      matchId: 'm-1',
      now: Date.UTC(2026, 0, 1),
      payload: failed,
    });
    expect(envelope).toMatchObject({ v: 'v1', type: 'server.failed', matchId: 'm-1', occurredAt: '2026-01-01T00:00:00.000Z', ...failed });
    const row = await database.db.selectFrom('outbox').selectAll().where('id', '=', envelope!.eventId).executeTakeFirstOrThrow();
    expect(row.payload).toEqual(envelope);
    expect(row.headers).toMatchObject({ 'event-id': envelope!.eventId, 'event-type': 'server.failed' });
  });

  it('never lets payload fields override eventId, type, v or matchId, even past the compiler', async () => {
    const forged = { ...failed, eventId: 'forged', type: 'match.forfeit', v: 'v9', matchId: 'other' };
    // @ts-expect-error envelope fields are refused by the payload type
    const envelope = await enqueueEvent(database.db, { topic: Topics.serverFailed, matchId: 'm-2', now: 0, payload: forged });
    expect(envelope).toMatchObject({ v: 'v1', type: 'server.failed', matchId: 'm-2' });
    expect(envelope!.eventId).not.toBe('forged');
  });

  it('refuses, at compile time, a payload of another topic', () => {
    const enqueueWrong = () =>
      // @ts-expect-error a server.failed payload is not a server.ready payload
      enqueueEvent(database.db, { topic: Topics.serverReady, matchId: 'm-3', now: 0, payload: failed });
    expect(typeof enqueueWrong).toBe('function');
  });

  it('makes a second enqueue with the same dedupe key a no-op', async () => {
    const request = { topic: Topics.serverFailed, matchId: 'm-4', now: 0, payload: failed, dedupeKey: 'server.failed:m-4' } as const;
    expect(await enqueueEvent(database.db, request)).not.toBeNull();
    expect(await enqueueEvent(database.db, request)).toBeNull();
  });
});
