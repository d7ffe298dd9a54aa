import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import type { KafkaMessageSink } from '../../src/infra/bus/kafka-bus.js';
import { Topics } from '../../src/events/topics.js';
import type { FakePanel } from '../fakes/pterodactyl-panel.js';
import { randomName, TEST_SECRETS } from '../support/infra.js';
import { eventually, KafkaTap } from '../support/kafka-tap.js';
import { freePort, ServiceProcess } from '../support/process.js';
import { matchBody, platformProducer, realStack, serviceEnv, type RealStack } from '../support/service.js';

// The worker process is killed with SIGKILL while it consumes, polls and relays; a new process picks up.
// Every match must still end with exactly one outcome and one refund per player.

let real: RealStack;
let dbUrl: string;
let panel: FakePanel;
let tap: KafkaTap;
let producer: KafkaMessageSink;
let env: Record<string, string>;
const procs: ServiceProcess[] = [];

beforeAll(async () => {
  real = await realStack();
  panel = real.panel;
  dbUrl = real.stack.DATABASE_URL;
  env = serviceEnv(real.stack, { READY_DEADLINE_MS: '30000', LOG_LEVEL: 'warn' });
  producer = platformProducer(real);
  tap = await KafkaTap.start(real.brokers, real.prefix, [Topics.serverFailed, Topics.matchCancelled]);
});

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null) await p.kill('SIGKILL');
  await tap?.stop();
  await producer?.close();
  await real?.close();
});

describe('crash recovery', () => {
  it('SIGKILL in the middle of processing, then a new process: one outcome and one refund per player, per match', async () => {
    const first = await ServiceProcess.start(env, await freePort());
    procs.push(first);
    const api = (path: string, body: unknown) =>
      fetch(`${first.url}${path}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    const matchIds = Array.from({ length: 40 }, (_, i) => `crash-${i}-${randomName('')}`);
    for (const id of matchIds) expect((await api(`/v1/internal/matches/${id}`, matchBody(id))).status).toBe(201);
    // Slow panel answers keep polls in flight when the process dies.
    panel.injectFault({ kind: 'latency', ms: 150 });
    // The first 20 installs fail within a second; the other 20 only after ~15 s. The kill (once 5 have failed)
    // therefore lands mid-work even if this test process is starved for many seconds, yet every install has ended
    // long before the 30 s deadline and before the dead process's 20 s leases lapse for the second one.
    const installAfterMs = (i: number) => (i < 20 ? 200 + i * 40 : 15_000 + (i - 20) * 40);
    const events = matchIds.map((matchId, i) => ({
      v: 'v1',
      eventId: randomUUID(),
      matchId,
      panelServerId: panel.addServer({ installAfterMs: installAfterMs(i), outcome: 'install_failed' }),
    }));
    // Every event twice: a duplicate delivery on top of the crash.
    const messages = [...events, ...events].map((e) => ({
      topic: Topics.serverReserved,
      key: e.matchId,
      value: JSON.stringify(e),
      headers: { 'event-id': e.eventId, 'event-type': Topics.serverReserved },
    }));
    await producer.send(messages);

    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    const failedCount = async () => Number((await client.query(`select count(*)::int n from provisions where state = 'FAILED'`)).rows[0].n);
    await eventually(async () => (await failedCount()) >= 5, 60_000, 'some matches failed before the kill');
    const atKill = await failedCount();
    expect(await first.kill('SIGKILL')).toBe(null);
    expect(atKill).toBeLessThanOrEqual(20); // killed mid-way: none of the slow installs had ended

    const second = await ServiceProcess.start(env, await freePort());
    procs.push(second);
    await eventually(async () => (await failedCount()) === 40, 90_000, 'all 40 failed after the restart');
    await eventually(
      () => matchIds.every((id) => tap.distinct(Topics.matchCancelled, id).length === 1),
      60_000,
      'every match.cancelled relayed',
    );
    await new Promise((r) => setTimeout(r, 2000));

    for (const id of matchIds) {
      expect(tap.distinct(Topics.serverFailed, id), id).toHaveLength(1);
      expect(tap.distinct(Topics.matchCancelled, id), id).toHaveLength(1);
    }
    const refunds = await client.query(
      `select match_id, player_id, count(*)::int n from ledger_entries where kind = 'REFUND' group by 1, 2`,
    );
    expect(refunds.rows).toHaveLength(80);
    expect(refunds.rows.every((r: { n: number }) => r.n === 1)).toBe(true);
    const processed = await client.query(`select count(*)::int n from processed_events`);
    expect(processed.rows[0].n).toBe(40);
    const unpublished = await client.query(`select count(*)::int n from outbox where published_at is null`);
    expect(unpublished.rows[0].n).toBe(0);
    await client.end();
    expect(await second.kill('SIGTERM')).toBe(0); // graceful stop: drains, commits, leaves the group
  });
});
