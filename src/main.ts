import 'reflect-metadata';
import { type Config, loadConfig } from './config/config.js';
import { checkStart } from './config/start-checks.js';
import { createLogger, type Logger } from './observability/logger.js';
import { startService, type RunningService } from './app.module.js';
import { runCli, type Command } from './cli/cli.js';
import { parse, processIo, UsageError } from './cli/io.js';

/**
 * Stops the service on SIGTERM/SIGINT. SIGTERM (an orchestrator) first drains: /readyz answers 503 for DRAIN_MS
 * while work goes on, so load balancers move away; SIGINT (a terminal) skips that. Then stop consuming, commit,
 * leave the group; a hard deadline ends a stuck stop. A repeated signal (a terminal's Ctrl-C reaches both the bin
 * wrapper, which forwards it, and this process) does not start a second stop.
 */
function stopOnSignals(service: RunningService, timeoutMs: number): Promise<number> {
  const drainMs = service.services.config.DRAIN_MS;
  return new Promise((resolve) => {
    let stopping = false;
    const stop = async (signal: NodeJS.Signals) => {
      if (stopping) return void service.services.logger.info({ signal }, 'signal received again; already stopping');
      stopping = true;
      service.services.logger.info({ signal }, 'signal received');
      if (signal === 'SIGTERM') await service.drain(drainMs);
      const timer = setTimeout(() => {
        service.services.logger.error({ reason: 'SHUTDOWN_TIMEOUT', timeoutMs }, 'shutdown did not finish in time; exiting');
        resolve(1);
      }, timeoutMs);
      timer.unref();
      await service.close();
      clearTimeout(timer);
      resolve(0);
    };
    process.on('SIGTERM', () => void stop('SIGTERM'));
    process.on('SIGINT', () => void stop('SIGINT'));
  });
}

/** Names the topics that are missing or too small, once at start (`flock-workers kafka topics --create` fixes them). */
async function logTopicProblems(config: Config, logger: Logger): Promise<void> {
  const { ALL_TOPICS } = await import('./events/topics.js');
  const { checkTopics, topicProblems, wantedTopics } = await import('./infra/bus/topic-check.js');
  const wanted = wantedTopics(ALL_TOPICS, { prefix: config.KAFKA_TOPIC_PREFIX, partitions: config.KAFKA_TOPIC_PARTITIONS, replicas: 1 });
  try {
    const { missing, tooSmall } = topicProblems(await checkTopics(config.KAFKA_BROKERS ?? [], wanted));
    if (missing.length > 0)
      logger.error({ reason: 'TOPICS_MISSING', missing }, 'Kafka topics missing: run `flock-workers kafka topics --create`');
    if (tooSmall.length > 0)
      logger.warn(
        { reason: 'TOPICS_TOO_FEW_PARTITIONS', topics: tooSmall, wanted: config.KAFKA_TOPIC_PARTITIONS },
        'Kafka topics with fewer partitions than KAFKA_TOPIC_PARTITIONS',
      );
  } catch (error) {
    logger.warn({ err: error, reason: 'TOPICS_UNCHECKED' }, 'could not check the Kafka topics at start');
  }
}

const start: Command = async (args, io) => {
  const { values } = parse(args, { help: { type: 'boolean', short: 'h', default: false } }, false);
  if (values.help) {
    io.stdout('Usage: flock-workers start   (configuration from the environment; see docs/configuration.md)');
    return 0;
  }
  const config = loadConfig(io.env, { service: true });
  const { problems, warnings } = checkStart(config, io.env);
  if (problems.length > 0) throw new UsageError(`refusing to start:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  const logger = createLogger(config.LOG_LEVEL, { instanceId: config.instanceId });
  for (const warning of warnings) logger.warn({ reason: 'UNKNOWN_SETTING' }, warning);
  // Not awaited: a broker that is down or restarting must not hold back /healthz (the check only logs).
  if (config.KAFKA_BROKERS) void logTopicProblems(config, logger);
  const service = await startService(config, { logger });
  return stopOnSignals(service, config.SHUTDOWN_TIMEOUT_MS);
};

const demo: Command = async (args, io) => {
  const { runDemo } = await import('./demo/demo.js');
  return runDemo(args, io, stopOnSignals);
};

const lazy =
  (load: () => Promise<Command>): Command =>
  async (args, io) =>
    (await load())(args, io);

const sign = lazy(async () => {
  const { runSign } = await import('./security/cli.js');
  return async (args, io) => runSign(args, { stdin: await io.readStdinBytes(), stdout: io.write, stderr: io.stderr, env: io.env });
});
const canonicalize = lazy(async () => {
  const { runCanonicalize } = await import('./security/cli.js');
  return async (args, io) => runCanonicalize(args, { stdin: await io.readStdinBytes(), stdout: io.write, stderr: io.stderr, env: io.env });
});

const kafka = lazy(async () => (await import('./cli/kafka-topics.js')).runKafka);

const io = processIo();
try {
  process.exitCode = await runCli(process.argv.slice(2), io, { start, demo, sign, canonicalize, kafka });
} catch (error) {
  io.stderr(`flock-workers: ${error instanceof UsageError ? error.message : (error as Error).stack}`);
  process.exitCode = error instanceof UsageError ? 2 : 1;
}
// Timers of stopped clients must not keep a finished command alive.
setTimeout(() => process.exit(), 200).unref();
