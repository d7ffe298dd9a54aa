import { Admin } from '@platformatic/kafka';
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { ensureTopics } from '../infra/bus/kafka-bus.js';
import { ALL_TOPICS } from '../events/topics.js';
import { UsageError, type CliIo } from './io.js';

export interface TopicSpec {
  name: string;
  partitions: number;
  replicas: number;
}
export interface TopicState {
  partitions: number;
  replicas: number;
}
export type TopicVerdict = 'ok' | 'missing' | 'too_few_partitions' | 'too_few_replicas';

/** Compares what the service needs with what the cluster has; more partitions or replicas than asked is fine. */
export function compareTopics(
  wanted: readonly TopicSpec[],
  actual: ReadonlyMap<string, TopicState>,
): { name: string; verdict: TopicVerdict; actual?: TopicState }[] {
  return wanted.map((spec) => {
    const found = actual.get(spec.name);
    if (!found) return { name: spec.name, verdict: 'missing' };
    const verdict: TopicVerdict =
      found.partitions < spec.partitions ? 'too_few_partitions' : found.replicas < spec.replicas ? 'too_few_replicas' : 'ok';
    return { name: spec.name, verdict, actual: found };
  });
}

/** Partition count and (smallest) replica count of each named topic that exists. */
export async function inspectTopics(brokers: string[], names: readonly string[]): Promise<Map<string, TopicState>> {
  const admin = new Admin({ clientId: 'flocknode-workers-topics', bootstrapBrokers: brokers, retries: 2, retryDelay: 500 });
  try {
    const existing = new Set(await admin.listTopics());
    const present = names.filter((n) => existing.has(n));
    const result = new Map<string, TopicState>();
    if (present.length === 0) return result;
    const metadata = await admin.metadata({ topics: present });
    for (const name of present) {
      const topic = metadata.topics.get(name);
      if (!topic) continue;
      result.set(name, { partitions: topic.partitionsCount, replicas: Math.min(...topic.partitions.map((p) => p.replicas.length)) });
    }
    return result;
  } finally {
    await admin.close().catch(() => undefined);
  }
}

const USAGE = `Usage: flock-workers kafka topics [--create] [--json]
Checks that the ${ALL_TOPICS.length} topics exist (KAFKA_TOPIC_PREFIX + name) with at least KAFKA_TOPIC_PARTITIONS
partitions and KAFKA_REPLICATION_FACTOR replicas on KAFKA_BROKERS; --create creates the missing ones.
Exit 0 when every topic is fine, 1 otherwise.`;

function parseTopicsArgs(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        create: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }).values;
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
}

/** `flock-workers kafka topics [--create]`: run at deploy time, before the first instance starts. */
export async function runKafka(args: string[], io: CliIo): Promise<number> {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h') {
    io.stdout(USAGE);
    return sub ? 0 : 2;
  }
  if (sub !== 'topics') throw new UsageError(`kafka: unknown subcommand "${sub}"`);
  const values = parseTopicsArgs(rest);
  if (values.help) {
    io.stdout(USAGE);
    return 0;
  }
  const config = loadConfig(io.env);
  if (!config.KAFKA_BROKERS) throw new UsageError('kafka topics: KAFKA_BROKERS is not set');
  const wanted = ALL_TOPICS.map((t) => ({
    name: config.KAFKA_TOPIC_PREFIX + t,
    partitions: config.KAFKA_TOPIC_PARTITIONS,
    replicas: config.KAFKA_REPLICATION_FACTOR,
  }));
  let created: string[] = [];
  if (values.create) {
    created = await ensureTopics(config.KAFKA_BROKERS, ALL_TOPICS, {
      prefix: config.KAFKA_TOPIC_PREFIX,
      partitions: config.KAFKA_TOPIC_PARTITIONS,
      replicas: config.KAFKA_REPLICATION_FACTOR,
    });
  }
  const report = compareTopics(
    wanted,
    await inspectTopics(
      config.KAFKA_BROKERS,
      wanted.map((w) => w.name),
    ),
  );
  const ok = report.every((r) => r.verdict === 'ok');
  if (values.json) {
    io.stdout(JSON.stringify({ ok, created, topics: report }));
  } else {
    for (const r of report) {
      const detail = r.actual ? ` (${r.actual.partitions} partitions, ${r.actual.replicas} replicas)` : '';
      io.stdout(`${r.verdict === 'ok' ? '✓' : '✗'} ${r.name}: ${created.includes(r.name) ? 'created' : r.verdict}${detail}`);
    }
    if (!ok)
      io.stdout(
        report.some((r) => r.verdict === 'missing') && !values.create
          ? 'missing topics: run `flock-workers kafka topics --create`'
          : 'fix the topics above (partitions can be raised with kafka-topics.sh --alter)',
      );
  }
  return ok ? 0 : 1;
}
