import { parseArgs } from 'node:util';
import { loadConfig } from '../config/config.js';
import { ensureTopics } from '../infra/bus/kafka-bus.js';
import { checkTopics, wantedTopics } from '../infra/bus/topic-check.js';

export { compareTopics, inspectTopics, type TopicSpec, type TopicState, type TopicVerdict } from '../infra/bus/topic-check.js';
import { ALL_TOPICS } from '../events/topics.js';
import { UsageError, type CliIo } from './io.js';

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
  const wanted = wantedTopics(ALL_TOPICS, {
    prefix: config.KAFKA_TOPIC_PREFIX,
    partitions: config.KAFKA_TOPIC_PARTITIONS,
    replicas: config.KAFKA_REPLICATION_FACTOR,
  });
  let created: string[] = [];
  if (values.create) {
    created = await ensureTopics(config.KAFKA_BROKERS, ALL_TOPICS, {
      prefix: config.KAFKA_TOPIC_PREFIX,
      partitions: config.KAFKA_TOPIC_PARTITIONS,
      replicas: config.KAFKA_REPLICATION_FACTOR,
    });
  }
  // A topic just created can take a moment to appear in the metadata the broker answers with: ask again briefly.
  let report = await checkTopics(config.KAFKA_BROKERS, wanted);
  for (
    let attempt = 0;
    created.length > 0 && attempt < 20 && report.some((r) => created.includes(r.name) && r.verdict === 'missing');
    attempt++
  ) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    report = await checkTopics(config.KAFKA_BROKERS, wanted);
  }
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
