import { describe, expect, it } from 'vitest';
import { compareTopics, runKafka } from '../../src/cli/kafka-topics.js';
import { checkTopics, TopicWatch, wantedTopics } from '../../src/infra/bus/topic-check.js';
import type { CliIo } from '../../src/cli/io.js';
import { ALL_TOPICS } from '../../src/events/topics.js';
import { kafkaBrokers, randomName } from '../support/infra.js';

function io(env: Record<string, string>) {
  const out: string[] = [];
  const value: CliIo = {
    env,
    readStdin: async () => '',
    readStdinBytes: async () => Buffer.alloc(0),
    write: (t) => void out.push(t),
    stdout: (t) => void out.push(t),
    stderr: (t) => void out.push(t),
  };
  return { io: value, out };
}

describe('compareTopics', () => {
  it('reports missing and undersized topics; more than asked is fine', () => {
    const wanted = [
      { name: 'a', partitions: 6, replicas: 3 },
      { name: 'b', partitions: 6, replicas: 3 },
      { name: 'c', partitions: 6, replicas: 3 },
      { name: 'd', partitions: 6, replicas: 3 },
    ];
    const actual = new Map([
      ['a', { partitions: 12, replicas: 3 }],
      ['b', { partitions: 3, replicas: 3 }],
      ['c', { partitions: 6, replicas: 1 }],
    ]);
    expect(compareTopics(wanted, actual).map((r) => r.verdict)).toEqual(['ok', 'too_few_partitions', 'too_few_replicas', 'missing']);
  });
});

describe('flock-workers kafka topics (real broker)', () => {
  it('names the missing topics and exits 1; --create creates all 13 with the configured partitions; then exits 0', async () => {
    const env = {
      KAFKA_BROKERS: kafkaBrokers().join(','),
      KAFKA_TOPIC_PREFIX: randomName('kt') + '.',
      KAFKA_TOPIC_PARTITIONS: '2',
      KAFKA_REPLICATION_FACTOR: '1',
    };
    const before = io(env);
    expect(await runKafka(['topics', '--json'], before.io)).toBe(1);
    const missing = JSON.parse(before.out.join('')) as { ok: boolean; topics: { name: string; verdict: string }[] };
    expect(missing.ok).toBe(false);
    expect(missing.topics.map((t) => t.verdict)).toEqual(ALL_TOPICS.map(() => 'missing'));

    const create = io(env);
    expect(await runKafka(['topics', '--create'], create.io)).toBe(0);
    expect(create.out.filter((l) => l.includes('created (2 partitions, 1 replicas)'))).toHaveLength(ALL_TOPICS.length);

    const after = io(env);
    expect(await runKafka(['topics', '--json'], after.io)).toBe(0);
    const report = JSON.parse(after.out.join('')) as {
      ok: boolean;
      created: string[];
      topics: { name: string; verdict: string; actual: { partitions: number } }[];
    };
    expect(report).toMatchObject({ ok: true, created: [] });
    expect(report.topics.map((t) => t.name)).toEqual(ALL_TOPICS.map((t) => env.KAFKA_TOPIC_PREFIX + t));
    expect(report.topics.every((t) => t.verdict === 'ok' && t.actual.partitions === 2)).toBe(true);
  });
});

describe('/readyz topic check (TopicWatch on a real broker)', () => {
  it('names every missing topic, then says ok once they exist (after its short re-check interval)', async () => {
    const brokers = kafkaBrokers();
    const prefix = randomName('rz') + '.';
    let now = 0;
    const watch = new TopicWatch(
      () => checkTopics(brokers, wantedTopics(ALL_TOPICS, { prefix, partitions: 1, replicas: 1 })),
      () => now,
      { okMs: 60_000, problemMs: 5_000 },
    );
    const before = await watch.state();
    expect(before.startsWith('missing: ')).toBe(true);
    expect(before.slice('missing: '.length).split(', ')).toEqual(ALL_TOPICS.map((t) => prefix + t));

    const env = {
      KAFKA_BROKERS: brokers.join(','),
      KAFKA_TOPIC_PREFIX: prefix,
      KAFKA_TOPIC_PARTITIONS: '1',
      KAFKA_REPLICATION_FACTOR: '1',
    };
    expect(await runKafka(['topics', '--create'], io(env).io)).toBe(0);
    now += 4_999;
    expect(await watch.state()).toBe(before); // still the cached answer: metadata is not fetched on every probe
    now += 1;
    expect(await watch.state()).toBe('ok');
  });

  it('says unchecked when the cluster cannot be asked', async () => {
    const watch = new TopicWatch(
      () => checkTopics(['127.0.0.1:1'], wantedTopics(['x'], { prefix: '', partitions: 1, replicas: 1 })),
      () => 0,
    );
    expect(await watch.state()).toBe('unchecked');
  });
});
