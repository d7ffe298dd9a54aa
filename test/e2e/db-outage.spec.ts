import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Topics } from '../../src/events/topics.js';
import type { KafkaMessageSink } from '../../src/infra/bus/kafka-bus.js';
import { randomName, TEST_SECRETS } from '../support/infra.js';
import { eventually, KafkaTap } from '../support/kafka-tap.js';
import { freePort, ServiceProcess } from '../support/process.js';
import { matchBody, platformProducer, type RealStack, realStack, serviceEnv } from '../support/service.js';
import { type TcpProxy, tcpProxy } from '../support/tcp-proxy.js';

// The database connections of a running instance are cut at a TCP proxy (every connection dropped, new ones
// refused) while reservations flow in, then restored. The process must stay up, report the database on /readyz
// meanwhile, and afterwards every reservation is applied exactly once: one outcome, one refund per player.

let real: RealStack;
let proxy: TcpProxy;
let tap: KafkaTap;
let producer: KafkaMessageSink;
let service: ServiceProcess | undefined;
let admin: pg.Client;

beforeAll(async () => {
  real = await realStack();
  const target = new URL(real.stack.DATABASE_URL);
  proxy = await tcpProxy(target.hostname, Number(target.port || 5432));
  const proxied = new URL(real.stack.DATABASE_URL);
  proxied.host = `127.0.0.1:${proxy.port}`;
  const env = serviceEnv({ ...real.stack, DATABASE_URL: proxied.toString() }, { READY_DEADLINE_MS: '60000', LOG_LEVEL: 'warn' });
  service = await ServiceProcess.start(env, await freePort());
  producer = platformProducer(real);
  tap = await KafkaTap.start(real.brokers, real.prefix, [Topics.serverFailed, Topics.matchCancelled]);
  admin = new pg.Client({ connectionString: real.stack.DATABASE_URL });
  await admin.connect();
});

afterAll(async () => {
  if (service && service.child.exitCode === null) await service.kill('SIGKILL');
  await admin?.end();
  await tap?.stop();
  await producer?.close();
  await proxy?.close();
  await real?.close();
});

async function readyz(url: string): Promise<{ status: number; checks: Record<string, string> }> {
  const r = await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(10_000) });
  return { status: r.status, checks: ((await r.json()) as { checks: Record<string, string> }).checks };
}

describe('database outage', () => {
  it('a cut of every database connection while events flow: the process stays up, reports it, and applies every event once afterwards', async () => {
    const proc = service!;
    const N = 40;
    const matchIds = Array.from({ length: N }, (_, i) => `dbcut-${i}-${randomName('')}`);
    for (const id of matchIds) {
      const r = await fetch(`${proc.url}/v1/internal/matches/${id}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(matchBody(id)),
      });
      expect(r.status).toBe(201);
    }
    // Installs fail over the next ~8 s, so polls, consumption and relaying all straddle the cut.
    const events = matchIds.map((matchId, i) => ({
      v: 'v1',
      eventId: randomUUID(),
      matchId,
      panelServerId: real.panel.addServer({ installAfterMs: 500 + i * 200, outcome: 'install_failed' }),
    }));
    const message = (e: (typeof events)[number]) => ({
      topic: Topics.serverReserved,
      key: e.matchId,
      value: JSON.stringify(e),
      headers: { 'event-id': e.eventId, 'event-type': Topics.serverReserved },
    });
    const half = N / 2;
    await producer.send(events.slice(0, half).map(message));
    const applied = async () => Number((await admin.query(`select count(*)::int n from processed_events`)).rows[0].n);
    await eventually(async () => (await applied()) >= 5, 60_000, 'some reservations applied before the cut');

    proxy.cut();
    // The second half (and duplicates of the first) arrive while the database is unreachable.
    await producer.send([...events.slice(half), ...events.slice(0, half)].map(message));
    await eventually(
      async () => {
        const r = await readyz(proc.url);
        return r.status === 503 && r.checks.database === 'unreachable';
      },
      30_000,
      '/readyz reporting the database unreachable',
    );
    await new Promise((r) => setTimeout(r, 4_000));
    expect(proc.child.exitCode, proc.output.join('').slice(-3000)).toBeNull();
    proxy.restore();

    await eventually(async () => (await readyz(proc.url)).status === 200, 60_000, '/readyz ok again after the restore');
    const failed = async () => Number((await admin.query(`select count(*)::int n from provisions where state = 'FAILED'`)).rows[0].n);
    await eventually(async () => (await failed()) === N, 120_000, `all ${N} provisions failed (install_failed) after the cut`);
    await eventually(
      () => matchIds.every((id) => tap.distinct(Topics.matchCancelled, id).length >= 1),
      60_000,
      'every match.cancelled relayed',
    );
    await new Promise((r) => setTimeout(r, 2_000));

    expect(proc.child.exitCode, proc.output.join('').slice(-3000)).toBeNull();
    expect(await applied()).toBe(N);
    for (const id of matchIds) {
      expect(tap.distinct(Topics.serverFailed, id), id).toHaveLength(1);
      expect(tap.distinct(Topics.matchCancelled, id), id).toHaveLength(1);
    }
    const refunds = await admin.query(
      `select match_id, player_id, count(*)::int n from ledger_entries where kind = 'REFUND' group by 1, 2`,
    );
    expect(refunds.rows).toHaveLength(2 * N);
    expect(refunds.rows.every((r: { n: number }) => r.n === 1)).toBe(true);
    const unpublished = await admin.query(`select count(*)::int n from outbox where published_at is null`);
    expect(unpublished.rows[0].n).toBe(0);
    // Nothing was dead-lettered: an outage is retried, never treated as a poison message.
    const dead = await admin.query(`select count(*)::int n from dead_letters`);
    expect(dead.rows[0].n).toBe(0);
    expect(await proc.kill('SIGTERM')).toBe(0);
  });
});
