import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { KafkaMessageSink } from '../../src/infra/bus/kafka-bus.js';
import { Topics } from '../../src/events/topics.js';
import { upsertMatch } from '../../src/matches/match.repository.js';
import type { RunningService } from '../../src/app.module.js';
import type { FakePanel } from '../fakes/pterodactyl-panel.js';
import { randomName } from '../support/infra.js';
import { eventually, KafkaTap } from '../support/kafka-tap.js';
import {
  matchBody,
  platformProducer,
  realStack,
  serviceEnv,
  startTestService,
  type RealStack,
  type TestStack,
} from '../support/service.js';

// Several instances in one consumer group, a fleet-wide panel budget, and restarts — on the real stack.
// The panel's throttle window is scaled from 60 s to 6 s (PTERO_RATE_LIMIT_WINDOW_MS, as Pelican allows) so the
// 200-server case runs in seconds; the budget arithmetic is the same.

// These tests pin the per-server poller (the coalesced listing's fallback); the listing has its own tests (docs/panel.md).
const PER_SERVER = { PANEL_LIST_EVERY_MS: '0' };
const WINDOW_MS = 6000;
// Longer than the 60 s allowed for detecting all 200 installs, with room left for the 100 readiness signals, so a
// slow (loaded) detection can never let the deadline overtake the ready half. The late half waits it out.
const READY_DEADLINE_MS = 75_000;
let real: RealStack;
let panel: FakePanel;
let stack: TestStack;
let tap: KafkaTap;
let producer: KafkaMessageSink;
const instances: RunningService[] = [];

beforeAll(async () => {
  real = await realStack({ rateLimitPerMin: 240, rateLimitWindowMs: WINDOW_MS });
  panel = real.panel;
  stack = real.stack;
  producer = platformProducer(real);
  tap = await KafkaTap.start(real.brokers, real.prefix, [Topics.serverReady, Topics.serverFailed, Topics.matchCancelled]);
});

afterAll(async () => {
  await tap?.stop();
  await producer?.close();
  for (const i of instances) await i.close();
  await real?.close();
});

const env = (extra: Record<string, string> = {}) =>
  serviceEnv(stack, {
    ...PER_SERVER,
    PTERO_RATE_LIMIT_PER_MIN: '240',
    PTERO_RATE_LIMIT_WINDOW_MS: String(WINDOW_MS),
    READY_DEADLINE_MS: String(READY_DEADLINE_MS),
    ...extra,
  });

async function reserveAll(matchIds: string[], serverIds: number[]) {
  const db = instances[0]!.services.db;
  for (const id of matchIds) await db.transaction().execute((trx) => upsertMatch(trx, id, matchBody(id) as never, Date.now()));
  await producer.send(
    matchIds.map((matchId, i) => {
      const eventId = randomUUID();
      return {
        topic: Topics.serverReserved,
        key: matchId,
        value: JSON.stringify({ v: 'v1', eventId, matchId, panelServerId: serverIds[i] }),
        headers: { 'event-id': eventId, 'event-type': Topics.serverReserved },
      };
    }),
  );
}

async function states(matchIds: string[]): Promise<Record<string, number>> {
  const rows = await instances[0]!.services.db
    .selectFrom('provisions')
    .select(['match_id', 'state'])
    .where('match_id', 'in', matchIds)
    .execute();
  const counts: Record<string, number> = {};
  for (const r of rows) counts[r.state] = (counts[r.state] ?? 0) + 1;
  return counts;
}

describe('provisioning across a fleet', () => {
  it('200 servers at once under the panel budget, two instances: no 429, every install detected, each outcome once', async () => {
    instances.push(await startTestService(env({ INSTANCE_ID: 'fleet-a' })), await startTestService(env({ INSTANCE_ID: 'fleet-b' })));
    const matchIds = Array.from({ length: 200 }, (_, i) => `fleet-${i}-${randomName('')}`);
    const serverIds = matchIds.map((_, i) => panel.addServer({ installAfterMs: 1000 + (i % 20) * 100 }));
    panel.resetStats();
    await reserveAll(matchIds, serverIds);

    await eventually(async () => (await states(matchIds)).WAITING_SIGNALS === 200, 60_000, 'all 200 installs detected');
    expect(panel.stats.throttled).toBe(0);
    expect(panel.maxInSlidingWindow({ windowMs: WINDOW_MS })).toBeLessThanOrEqual(240);
    // The last poller of each server still holds its lease, and it is one of the fleet's instances. (With poll
    // passes of 200 (pollPlan) one instance may claim all 200 before the other asks; the fleet's shared budget is
    // what this test pins, and rate-limiter.fake-panel.spec.ts pins 3 instances sharing it.)
    const owners = await instances[0]!.services.db
      .selectFrom('provisions')
      .select('lease_owner')
      .where('match_id', 'in', matchIds)
      .execute();
    for (const o of owners) expect(['fleet-a', 'fleet-b']).toContain(o.lease_owner);
    // Leases keep a server with one poller at a time: nobody polled a server more often than POLL_EVERY_MS allows.
    // The admin key delivery (#10) may read the server too, once, before its PATCH /startup: that read is not a poll.
    // Which GET it was the panel cannot tell (the delivery waits in its own limiter lane, so a poll can land between
    // its GET and its PATCH): the spacing must hold once SOME one GET before the server's PATCH is set aside.
    const log = panel.stats.log;
    const patchAt = new Map<string, number>();
    for (const e of log) if (e.method === 'PATCH' && e.path.endsWith('/startup')) patchAt.set(e.path.slice(0, -'/startup'.length), e.at);
    expect(patchAt.size).toBeGreaterThan(0);
    const byServer = new Map<string, number[]>();
    for (const e of log) if (e.method === 'GET') byServer.set(e.path, [...(byServer.get(e.path) ?? []), e.at]);
    const spaced = (times: readonly number[]) => times.every((t, i) => i === 0 || t - times[i - 1]! >= 250);
    let setAside = 0;
    for (const [server, times] of byServer) {
      if (spaced(times)) continue;
      const patched = patchAt.get(server);
      const fits = patched !== undefined && times.some((t, i) => t <= patched && spaced([...times.slice(0, i), ...times.slice(i + 1)]));
      expect(fits, `${server}: GETs at ${times.join(', ')}, PATCH at ${patched}`).toBe(true);
      setAside++;
    }
    expect(setAside).toBeLessThanOrEqual(patchAt.size);

    // Half get their admin hook (through either instance); the other half run into the deadline.
    const ready = matchIds.slice(0, 100);
    const late = matchIds.slice(100);
    const verdicts = await Promise.all(
      ready.map((id, i) => instances[i % 2]!.services.provisioning.recordReadinessSignal(id, { adminHooksOk: true })),
    );
    expect(verdicts.every((v) => v === 'ready')).toBe(true); // each signal landed before its deadline
    await eventually(() => ready.every((id) => tap.distinct(Topics.serverReady, id).length === 1), 30_000, '100 server.ready');
    await eventually(
      () => late.every((id) => tap.distinct(Topics.matchCancelled, id).length === 1),
      READY_DEADLINE_MS + 15_000,
      '100 match.cancelled',
    );
    await new Promise((r) => setTimeout(r, 2000));
    for (const id of ready) {
      expect(tap.distinct(Topics.serverReady, id)).toHaveLength(1);
      expect(tap.distinct(Topics.serverFailed, id)).toHaveLength(0);
    }
    for (const id of late) {
      expect(tap.distinct(Topics.serverFailed, id)).toHaveLength(1);
      expect(tap.distinct(Topics.serverReady, id)).toHaveLength(0);
    }
    const refunds = await instances[0]!.services.db
      .selectFrom('ledger_entries')
      .select(['match_id'])
      .where('kind', '=', 'REFUND')
      .where('match_id', 'in', matchIds)
      .execute();
    expect(refunds).toHaveLength(200); // two players × 100 failed matches
    expect(panel.stats.throttled).toBe(0);
  }, 180_000); // the late half waits out the deadline

  it('a restart with provisions in flight resumes them and keeps their deadlines', async () => {
    const matchIds = Array.from({ length: 5 }, (_, i) => `restart-${i}-${randomName('')}`);
    // Long enough that the restart (two graceful stops, one start) surely lands mid-install on a loaded machine.
    const serverIds = matchIds.map(() => panel.addServer({ installAfterMs: 12_000 }));
    await reserveAll(matchIds, serverIds);
    await eventually(async () => (await states(matchIds)).INSTALLING === 5, 30_000, 'installing');
    const before = await instances[0]!.services.db
      .selectFrom('provisions')
      .select(['match_id', 'deadline_at'])
      .where('match_id', 'in', matchIds)
      .execute();

    while (instances.length) await instances.pop()!.close();
    // A graceful stop hands the leases back: the next instance takes over at once, not after the 20 s lease lapses.
    const client = new pg.Client({ connectionString: stack.DATABASE_URL });
    await client.connect();
    try {
      const { rows } = await client.query(
        `select count(*) filter (where state = 'INSTALLING')::int installing, count(lease_owner)::int leased from provisions where match_id = any($1)`,
        [matchIds],
      );
      expect(rows[0]).toEqual({ installing: 5, leased: 0 }); // stopped mid-install, nothing left leased
    } finally {
      await client.end();
    }
    instances.push(await startTestService(env({ INSTANCE_ID: 'fleet-c' })));

    const after = await instances[0]!.services.db
      .selectFrom('provisions')
      .select(['match_id', 'deadline_at'])
      .where('match_id', 'in', matchIds)
      .execute();
    expect(Object.fromEntries(after.map((r) => [r.match_id, r.deadline_at!.toISOString()]))).toEqual(
      Object.fromEntries(before.map((r) => [r.match_id, r.deadline_at!.toISOString()])),
    );
    await eventually(async () => (await states(matchIds)).WAITING_SIGNALS === 5, 30_000, 'resumed and detected after restart');
    const owners = await instances[0]!.services.db
      .selectFrom('provisions')
      .select('lease_owner')
      .where('match_id', 'in', matchIds)
      .execute();
    expect(owners.every((o) => o.lease_owner === 'fleet-c')).toBe(true);
  });
});
