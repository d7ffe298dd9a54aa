import {
  Admin,
  Consumer,
  FetchIsolationLevels,
  MessagesStreamFallbackModes,
  MessagesStreamModes,
  ProduceAcks,
  Producer,
  compatibilityPartitioner,
  stringDeserializer,
  stringSerializer,
  type Message,
  type MessagesStream,
} from '@platformatic/kafka';
import { backoffDelay } from '../backoff.js';
import { SystemClock } from '../clock.js';
import { WakeableSleep } from '../poll-loop.js';
import type { Logger } from '../../observability/logger.js';
import type { BatchHandler, InboundMessage, MessageSink, MessageSource, OutboundMessage, SourceState } from './bus.js';

/**
 * Kafka adapters for the bus ports, on @platformatic/kafka 2.x.
 *
 * Sink: idempotent producer (acks=all), key = message key, Java-compatible murmur2 partitioning so any other
 * producer of the same keys lands on the same partitions.
 *
 * Source: one consumer group member with `autocommit: false`, stream `mode: COMMITTED` + `fallbackMode: EARLIEST`
 * (the library's default LATEST would skip whatever was produced while no member was up), READ_COMMITTED.
 * Fetched messages are queued per partition ("lanes"); lanes run concurrently, each hands the handler a batch of
 * its queued messages in offset order (so order within a partition, hence within a key, is kept) and commits the
 * batch's last offset + 1 only after the handler resolved. A rejected batch is retried whole with a capped
 * exponential backoff; the source never skips a message: dead-lettering poison messages is the handler's job.
 * Delivery is at-least-once (a rebalance or a crash between the handler and the commit redelivers): handlers dedupe
 * on the `event-id` header.
 */

type KafkaConsumer = Consumer<string, Buffer, string, string>;
type KafkaStream = MessagesStream<string, Buffer, string, string>;
type KafkaMessage = Message<string, Buffer, string, string>;

export interface KafkaClientOptions {
  brokers: string[];
  clientId: string;
  /** Prepended to every logical topic name (e.g. `t1234.`); stripped again from inbound messages. */
  topicPrefix?: string;
  logger: Logger;
}

export interface KafkaSinkOptions extends KafkaClientOptions {
  /** Per-request timeout in ms (library default 5000). */
  timeoutMs?: number;
}

export class KafkaMessageSink implements MessageSink {
  readonly #producer: Producer<string, string, string, string>;
  readonly #prefix: string;
  readonly #logger: Logger;
  #closed = false;

  constructor(options: KafkaSinkOptions) {
    this.#prefix = options.topicPrefix ?? '';
    this.#logger = options.logger.child({ component: 'kafka-sink' });
    this.#producer = new Producer({
      clientId: options.clientId,
      bootstrapBrokers: options.brokers,
      idempotent: true,
      acks: ProduceAcks.ALL,
      partitioner: compatibilityPartitioner,
      autocreateTopics: false,
      serializers: { key: stringSerializer, value: stringSerializer, headerKey: stringSerializer, headerValue: stringSerializer },
      ...(options.timeoutMs !== undefined ? { timeout: options.timeoutMs } : {}),
    });
  }

  async send(messages: OutboundMessage[]): Promise<void> {
    if (this.#closed) throw new Error('KafkaMessageSink is closed');
    if (messages.length === 0) return;
    await this.#producer.send({
      messages: messages.map((m) => ({
        topic: this.#prefix + m.topic,
        key: m.key,
        value: m.value,
        headers: { ...m.headers },
      })),
    });
    this.#logger.debug({ count: messages.length }, 'kafka messages sent');
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#producer.close();
  }
}

export interface KafkaSourceOptions extends KafkaClientOptions {
  groupId: string;
  /**
   * Static group membership (KIP-345): a stable name per instance (e.g. the pod name). A restarted instance with
   * the same name takes its partitions back without a rebalance; two live instances must never share one.
   */
  groupInstanceId?: string;
  /** Group session timeout in ms (library default 60000; the broker accepts 6000..300000 by default). */
  sessionTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  rebalanceTimeoutMs?: number;
  /** Max time the broker holds an empty fetch (library default 5000 ms; lower = faster stop/startup in tests). */
  maxWaitTimeMs?: number;
  /** Most messages handed to the handler at once (one partition; default 500). */
  maxBatchSize?: number;
  /** Most fetched messages held in the lanes (queued or being handled) before fetching pauses (default 2000). */
  maxBufferedMessages?: number;
  /** Backoff between handler attempts on the same batch: min(initial * 2^(n-1), max). */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Upper bound for stop(): waiting for the in-flight handler + commit, then closing the stream and leaving. */
  stopTimeoutMs?: number;
  /** Receives the lag of every assigned partition every `lagSampleMs` (default 10 s) while joined. */
  onLag?: (lags: PartitionLag[]) => void;
  lagSampleMs?: number;
}

/** Messages between this group's committed offset and the end of one assigned partition. */
export interface PartitionLag {
  /** Logical topic name (prefix removed). */
  topic: string;
  partition: number;
  lag: number;
}

export interface KafkaSourceStats {
  /** Messages handed to the handler, retries included. */
  deliveries: number;
  /** Handler calls (one per batch attempt). */
  batches: number;
  handlerFailures: number;
  /** Offset commits (one per handled batch). */
  commits: number;
  commitFailures: number;
  streamRestarts: number;
}

/** The fetched, not yet committed messages of one assigned partition. */
interface Lane {
  key: string;
  topic: string;
  partition: number;
  queue: KafkaMessage[];
  /** Offset after the last message queued: a lower offset arriving again is a refetch of a queued one. */
  next: bigint;
  active: boolean;
  /** The batch being handled and committed right now, if any. */
  inFlight: Promise<void> | null;
}

class StopSignal {
  stopped = false;
  /** Retry pauses, cut short by stop(). */
  readonly sleeper = new WakeableSleep(new SystemClock());
  fire(): void {
    this.stopped = true;
    this.sleeper.close();
  }
}

export class KafkaMessageSource implements MessageSource {
  readonly #options: KafkaSourceOptions;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #retryInitialMs: number;
  readonly #retryMaxMs: number;
  readonly #stopTimeoutMs: number;
  readonly #sessionTimeoutMs: number;
  #consumer: KafkaConsumer | null = null;
  #stream: KafkaStream | null = null;
  #topics: string[] = [];
  #loop: Promise<void> | null = null;
  readonly #lanes = new Map<string, Lane>();
  /** Messages in the lanes, queued or in flight. */
  #buffered = 0;
  /** The fetch loop's pause while the lanes are full; woken when a batch is done, closed by stop(). */
  readonly #spaceFreed = new WakeableSleep(new SystemClock());
  readonly #maxBatchSize: number;
  readonly #maxBuffered: number;
  #stop = new StopSignal();
  #stopping: Promise<void> | null = null;
  /** Set once stop() gave up waiting: a late handler result is then neither committed nor retried. */
  #abandoned = false;
  /** Per topic-partition: the offset this member last committed, in the current stream (skips buffered replays). */
  #committed = new Map<string, bigint>();
  #joinedAt = 0;
  #joined = false;
  #lagTimer: NodeJS.Timeout | undefined;
  #rebalancing = false;
  #watchdog: NodeJS.Timeout | undefined;
  #disconnectedSince = 0;
  /** Set by the watchdog: the consume loop replaces the consumer before it reopens the stream. */
  #recreate = false;
  readonly #stats: KafkaSourceStats = { deliveries: 0, batches: 0, handlerFailures: 0, commits: 0, commitFailures: 0, streamRestarts: 0 };

  constructor(options: KafkaSourceOptions) {
    this.#options = options;
    this.#prefix = options.topicPrefix ?? '';
    this.#logger = options.logger.child({ component: 'kafka-source', groupId: options.groupId });
    this.#retryInitialMs = options.retryInitialMs ?? 200;
    this.#retryMaxMs = options.retryMaxMs ?? 5000;
    this.#stopTimeoutMs = options.stopTimeoutMs ?? 20_000;
    this.#sessionTimeoutMs = options.sessionTimeoutMs ?? 30_000;
    this.#maxBatchSize = options.maxBatchSize ?? 500;
    this.#maxBuffered = Math.max(this.#maxBatchSize, options.maxBufferedMessages ?? 2000);
  }

  get stats(): Readonly<KafkaSourceStats> {
    return { ...this.#stats };
  }

  async start(topics: readonly string[], handler: BatchHandler): Promise<void> {
    if (this.#consumer) throw new Error('KafkaMessageSource already started');
    if (topics.length === 0) throw new Error('KafkaMessageSource.start: no topics');
    this.#topics = topics.map((t) => this.#prefix + t);
    this.#consumer = this.#createConsumer();
    this.#watchdog = setInterval(() => this.#checkStuck(), 5_000);
    this.#watchdog.unref();
    // A broker that is down (or restarting) at start is an outage, not a reason to exit: the join is retried with
    // the backoff until it succeeds or stop() is called (state() says `joining` meanwhile).
    for (let attempt = 1; !this.#stream; attempt++) {
      try {
        this.#stream = await this.#openStream();
      } catch (err) {
        if (this.#stop.stopped) return;
        const retryInMs = this.#backoff(attempt);
        this.#logger.warn({ err, attempt, retryInMs, reason: 'KAFKA_JOIN_FAILED' }, 'kafka group join failed; retrying');
        await this.#sleep(retryInMs);
        if (this.#stop.stopped) return;
      }
    }
    this.#logger.info({ topics: this.#topics }, 'kafka consumer started');
    if (this.#options.onLag) {
      this.#lagTimer = setInterval(() => void this.#sampleLag(), this.#options.lagSampleMs ?? 10_000);
      this.#lagTimer.unref();
      void this.#sampleLag();
    }
    this.#loop = this.#run(handler).catch((err: unknown) => {
      this.#logger.error({ err }, 'kafka consume loop crashed');
    });
  }

  async stop(): Promise<void> {
    if (!this.#consumer) return;
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  isHealthy(): boolean {
    return this.state() === 'ok';
  }

  state(): SourceState {
    const consumer = this.#consumer;
    if (!consumer || this.#stop.stopped) return 'stopped';
    const stream = this.#stream;
    if (!stream || !this.#joined) return 'joining';
    if (this.#rebalancing) return 'rebalancing';
    if (stream.destroyed || stream.closed || !consumer.isActive()) return 'disconnected';
    const last = consumer.lastHeartbeat?.getTime() ?? this.#joinedAt;
    return Date.now() - last < this.#sessionTimeoutMs ? 'ok' : 'disconnected';
  }

  // ------------------------------------------------------------------------------------------------------------

  #createConsumer(): KafkaConsumer {
    const consumer: KafkaConsumer = new Consumer({
      clientId: this.#options.clientId,
      groupId: this.#options.groupId,
      ...(this.#options.groupInstanceId ? { groupInstanceId: this.#options.groupInstanceId } : {}),
      bootstrapBrokers: this.#options.brokers,
      autocommit: false,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      sessionTimeout: this.#sessionTimeoutMs,
      heartbeatInterval: this.#options.heartbeatIntervalMs ?? Math.max(500, Math.floor(this.#sessionTimeoutMs / 10)),
      rebalanceTimeout: this.#options.rebalanceTimeoutMs ?? Math.max(this.#sessionTimeoutMs, 30_000),
      ...(this.#options.maxWaitTimeMs !== undefined ? { maxWaitTime: this.#options.maxWaitTimeMs } : {}),
      deserializers: { key: stringDeserializer, headerKey: stringDeserializer, headerValue: stringDeserializer },
    });
    this.#attachEventLogging(consumer);
    return consumer;
  }

  /**
   * The last resort of recovery: a member that stays disconnected (no heartbeat, no usable stream) well past the
   * session timeout, e.g. a client left in a state it does not leave after a long broker outage, gets a new
   * consumer: the stream is ended and the consume loop reopens it on a fresh client (from the committed offsets).
   */
  #checkStuck(): void {
    if (this.#stop.stopped || !this.#consumer) return;
    if (this.state() !== 'disconnected') {
      this.#disconnectedSince = 0;
      return;
    }
    const now = Date.now();
    if (this.#disconnectedSince === 0) this.#disconnectedSince = now;
    const limit = Math.max(30_000, 3 * this.#sessionTimeoutMs);
    if (now - this.#disconnectedSince < limit || this.#recreate) return;
    this.#logger.warn(
      { disconnectedMs: now - this.#disconnectedSince, reason: 'KAFKA_CONSUMER_STUCK' },
      'kafka consumer stuck; replacing it',
    );
    this.#recreate = true;
    this.#disconnectedSince = 0;
    const stream = this.#stream;
    if (stream && !stream.destroyed && !stream.closed) stream.destroy(new Error('kafka consumer stuck; replacing it'));
  }

  /** Swaps in a new consumer when #checkStuck asked for one (the old one is closed in the background). */
  #replaceConsumerIfAsked(): void {
    if (!this.#recreate || this.#stop.stopped) return;
    this.#recreate = false;
    const old = this.#consumer;
    this.#joined = false;
    this.#rebalancing = false;
    this.#consumer = this.#createConsumer();
    // Its listeners ignore it from now on (they check it is still the current consumer).
    void old?.close(true).catch(() => undefined);
  }

  async #openStream(): Promise<KafkaStream> {
    const consumer = this.#consumer;
    if (!consumer) throw new Error('not started');
    const stream = await consumer.consume({
      topics: this.#topics,
      mode: MessagesStreamModes.COMMITTED,
      fallbackMode: MessagesStreamFallbackModes.EARLIEST,
      autocommit: false,
      isolationLevel: FetchIsolationLevels.READ_COMMITTED,
      sessionTimeout: this.#sessionTimeoutMs,
      heartbeatInterval: this.#options.heartbeatIntervalMs ?? Math.max(500, Math.floor(this.#sessionTimeoutMs / 10)),
      rebalanceTimeout: this.#options.rebalanceTimeoutMs ?? Math.max(this.#sessionTimeoutMs, 30_000),
    });
    this.#committed.clear();
    // An 'error' is also surfaced through the iterator; this listener only keeps it from being unhandled.
    stream.on('error', (err: Error) => {
      if (!this.#stop.stopped) this.#logger.warn({ err }, 'kafka message stream error');
    });
    return stream;
  }

  async #run(handler: BatchHandler): Promise<void> {
    let restartAttempt = 0;
    while (!this.#stop.stopped) {
      const stream = this.#stream;
      if (!stream) break;
      // No for-await: leaving a for-await loop destroys the stream, while stop() must close it gracefully.
      const iterator = stream[Symbol.asyncIterator]();
      try {
        for (;;) {
          if (this.#stop.stopped) return;
          if (this.#buffered >= this.#maxBuffered) {
            await this.#spaceFreed.sleep(1_000);
            continue;
          }
          const next = await iterator.next();
          if (next.done) break;
          restartAttempt = 0;
          this.#enqueue(next.value as KafkaMessage, handler);
        }
        if (this.#stop.stopped) return;
        this.#logger.warn('kafka message stream ended unexpectedly; reopening');
      } catch (err) {
        if (this.#stop.stopped) return;
        this.#logger.warn({ err }, 'kafka message stream failed; reopening (uncommitted messages will be redelivered)');
      }
      // Reopen the stream (it re-reads the committed offsets, so nothing uncommitted is lost).
      for (;;) {
        if (this.#stop.stopped) return;
        restartAttempt += 1;
        await this.#sleep(this.#backoff(restartAttempt));
        if (this.#stop.stopped) return;
        try {
          if (!stream.destroyed && !stream.closed) await stream.close().catch(() => undefined);
          this.#replaceConsumerIfAsked();
          // A consume() that never settles (the client stuck after a long outage) must not hold the loop: past the
          // bound the consumer is replaced on the next attempt.
          const bound = Math.max(60_000, (this.#options.rebalanceTimeoutMs ?? 30_000) + 10_000);
          const opened = await this.#race(this.#openStream(), bound);
          if (!opened || opened === true) {
            this.#recreate = true;
            throw new Error(`kafka consume() did not settle within ${bound} ms`);
          }
          this.#stream = opened;
          this.#stats.streamRestarts += 1;
          break;
        } catch (err) {
          this.#logger.warn({ err, attempt: restartAttempt }, 'kafka consume() failed; retrying');
        }
      }
    }
  }

  async #sampleLag(): Promise<void> {
    const consumer = this.#consumer;
    if (!consumer || !this.#joined || this.#stop.stopped || !this.#options.onLag) return;
    try {
      const lags: PartitionLag[] = [];
      for (const [topic, partitions] of await consumer.getLag({ topics: this.#topics })) {
        // Negative values mark partitions this member is not assigned.
        for (const [partition, lag] of partitions.entries())
          if (lag >= 0n) lags.push({ topic: this.#logical(topic), partition, lag: Number(lag) });
      }
      this.#options.onLag(lags);
    } catch (err) {
      this.#logger.debug({ err }, 'consumer lag sample failed');
    }
  }

  #logical(topic: string): string {
    return this.#prefix && topic.startsWith(this.#prefix) ? topic.slice(this.#prefix.length) : topic;
  }

  /** Queues a fetched message on its partition's lane and starts the lane if it is idle. */
  #enqueue(message: KafkaMessage, handler: BatchHandler): void {
    const key = `${message.topic}:${message.partition}`;
    const committed = this.#committed.get(key);
    let lane = this.#lanes.get(key);
    if ((committed !== undefined && message.offset < committed) || (lane && message.offset < lane.next)) {
      // Already committed or queued by this member: a replay of a buffered/refetched record after a rejoin.
      this.#logger.debug(
        { topic: message.topic, partition: message.partition, offset: String(message.offset) },
        'skipping a record already queued or committed',
      );
      return;
    }
    if (!lane) {
      lane = { key, topic: message.topic, partition: message.partition, queue: [], next: -1n, active: false, inFlight: null };
      this.#lanes.set(key, lane);
    }
    lane.queue.push(message);
    lane.next = message.offset + 1n;
    this.#buffered += 1;
    if (!lane.active) {
      lane.active = true;
      this.#drainLane(lane, handler).catch((err: unknown) =>
        this.#logger.error({ err, partition: lane.key }, 'kafka partition lane crashed'),
      );
    }
  }

  /** Hands the lane's queue to the handler batch by batch, until it is empty, revoked or the source stops. */
  async #drainLane(lane: Lane, handler: BatchHandler): Promise<void> {
    try {
      while (!this.#stop.stopped && lane.queue.length > 0 && this.#lanes.get(lane.key) === lane) {
        if (!this.#owns(lane.topic, lane.partition)) {
          this.#dropLane(lane);
          return;
        }
        const batch = lane.queue.splice(0, this.#maxBatchSize);
        lane.inFlight = this.#processBatch(batch, handler);
        try {
          await lane.inFlight;
        } finally {
          lane.inFlight = null;
          this.#release(batch.length);
        }
      }
    } finally {
      // Synchronously after the emptiness check above: #enqueue starts the lane again for the next message.
      lane.active = false;
    }
  }

  /** Forgets a revoked partition's queued messages (the new owner starts from its committed offset). */
  #dropLane(lane: Lane): void {
    if (this.#lanes.get(lane.key) === lane) this.#lanes.delete(lane.key);
    const dropped = lane.queue.length;
    lane.queue = [];
    this.#release(dropped);
  }

  #release(count: number): void {
    this.#buffered -= count;
    if (this.#buffered < this.#maxBuffered) this.#spaceFreed.wake();
  }

  async #processBatch(batch: KafkaMessage[], handler: BatchHandler): Promise<void> {
    const last = batch[batch.length - 1]!;
    const key = `${last.topic}:${last.partition}`;
    const inbound = batch.map((m) => this.#toInbound(m));
    const logCtx = {
      topic: inbound[0]!.topic,
      partition: last.partition,
      firstOffset: inbound[0]!.offset,
      lastOffset: inbound[inbound.length - 1]!.offset,
      size: batch.length,
    };

    // 1. Handler, retried on the same batch until it resolves (or the source stops, or the partition moved away:
    //    then it is not committed and the next owner of the partition receives it again).
    for (let attempt = 1; ; attempt++) {
      if (this.#stop.stopped && attempt > 1) return;
      this.#stats.deliveries += batch.length;
      this.#stats.batches += 1;
      try {
        await handler(inbound);
        break;
      } catch (err) {
        this.#stats.handlerFailures += 1;
        const delay = this.#backoff(attempt);
        this.#logger.warn({ ...logCtx, err, attempt, retryInMs: delay }, 'batch handler failed; retrying the same batch');
        await this.#sleep(delay);
        if (!this.#owns(last.topic, last.partition)) return;
      }
    }
    if (this.#abandoned) return;
    if (!this.#owns(last.topic, last.partition)) {
      // Buffered before a rebalance moved the partition away: committing now could move the new owner's
      // committed offset backwards. Not committing never loses anything (the owner starts from its own commit).
      this.#logger.debug(logCtx, 'partition revoked while handling; not committing (the new owner continues from its commit)');
      return;
    }

    // 2. Commit the last offset + 1. A failed commit is retried; if the stream died meanwhile (rejoin required) the
    //    batch is simply redelivered by the reopened stream.
    for (let attempt = 1; ; attempt++) {
      try {
        await last.commit();
        this.#stats.commits += 1;
        const previous = this.#committed.get(key);
        if (previous === undefined || previous < last.offset + 1n) this.#committed.set(key, last.offset + 1n);
        return;
      } catch (err) {
        this.#stats.commitFailures += 1;
        const stream = this.#stream;
        const streamDead = !stream || stream.destroyed || stream.closed;
        this.#logger.warn({ ...logCtx, err, attempt, streamDead }, 'offset commit failed');
        if (streamDead || this.#abandoned || (this.#stop.stopped && attempt >= 3)) return;
        await this.#sleep(this.#backoff(attempt));
      }
    }
  }

  /** False only when the current assignment is known and does not include the partition. */
  #owns(topic: string, partition: number): boolean {
    const assignments = this.#consumer?.assignments;
    if (!assignments) return true;
    return assignments.some((a) => a.topic === topic && a.partitions.includes(partition));
  }

  #toInbound(message: KafkaMessage): InboundMessage {
    const headers: Record<string, string> = {};
    for (const [k, v] of message.headerEntries) {
      if (k !== undefined && v !== undefined) headers[String(k)] = String(v);
    }
    return {
      topic: this.#logical(message.topic),
      partition: message.partition,
      offset: message.offset.toString(),
      key: message.key ?? null,
      value: Buffer.isBuffer(message.value) ? message.value : Buffer.alloc(0),
      headers,
    };
  }

  async #doStop(): Promise<void> {
    const consumer = this.#consumer;
    if (!consumer) return;
    this.#spaceFreed.close();
    const t0 = Date.now();
    this.#stop.fire();
    clearInterval(this.#lagTimer);
    clearInterval(this.#watchdog);
    // 1. No new batch is started from now on; wait for the ones in flight (handler + commit), bounded.
    const remaining = () => Math.max(0, this.#stopTimeoutMs - (Date.now() - t0));
    const inFlight = [...this.#lanes.values()].flatMap((lane) => (lane.inFlight ? [lane.inFlight] : []));
    if (inFlight.length > 0) {
      const finished = await this.#race(Promise.all(inFlight), Math.max(0, remaining() - 2000));
      if (!finished) {
        this.#abandoned = true;
        this.#logger.warn({ waitedMs: Date.now() - t0 }, 'in-flight batches did not finish in time; leaving them uncommitted');
      }
    }
    // 2. Close the stream, then leave the group (LeaveGroup makes the others rebalance at once).
    const stream = this.#stream;
    if (stream && !stream.destroyed && !stream.closed) {
      await this.#race(
        stream.close().catch((err: unknown) => this.#logger.warn({ err }, 'closing the message stream failed')),
        Math.max(500, remaining() / 2),
      );
    }
    const closed = await this.#race(
      consumer.close(true).then(
        () => true,
        (err: unknown) => {
          this.#logger.warn({ err }, 'closing the kafka consumer failed');
          return false;
        },
      ),
      Math.max(500, remaining()),
    );
    if (this.#loop && !this.#abandoned) await this.#race(this.#loop, 1000);
    this.#stream = null;
    this.#logger.info({ ms: Date.now() - t0, left: closed === true }, 'kafka consumer stopped');
  }

  #attachEventLogging(consumer: KafkaConsumer): void {
    const log = this.#logger;
    // The library emits 'error' when a rejoin after a heartbeat failure gave up (e.g. "joinGroup failed" while the
    // broker restarts): without a listener that kills the process. The member then heartbeats no more, so the
    // stream is ended here and the consume loop opens a new one with the backoff (consume() joins again). Nothing
    // is lost: the new stream starts from the committed offsets.
    consumer.on('error', (err: Error) => {
      if (this.#stop.stopped || this.#consumer !== consumer) return;
      log.warn({ err, reason: 'KAFKA_GROUP_LOST' }, 'kafka group membership lost; rejoining');
      const stream = this.#stream;
      if (stream && !stream.destroyed && !stream.closed) stream.destroy(err);
    });
    consumer.on('consumer:group:join', (p) => {
      if (this.#consumer !== consumer) return;
      this.#rebalancing = false;
      for (const lane of [...this.#lanes.values()]) if (!this.#owns(lane.topic, lane.partition)) this.#dropLane(lane);
      this.#joined = true;
      this.#joinedAt = Date.now();
      log.info(
        {
          memberId: p.memberId,
          generationId: p.generationId,
          isLeader: p.isLeader,
          assignments: p.assignments?.map((a) => ({ topic: a.topic, partitions: a.partitions })),
        },
        'kafka group joined',
      );
    });
    consumer.on('consumer:group:leave', (p) => {
      log.info({ memberId: p.memberId, generationId: p.generationId }, 'kafka group left');
    });
    // Emitted when a rejoin after a heartbeat failure has FINISHED (after 'consumer:group:join', or after 'error' when
    // it gave up): it must not mark the member as rebalancing, or /readyz would stay `rebalancing` for good.
    consumer.on('consumer:group:rejoin', () => {
      log.warn('kafka group rejoin finished');
    });
    consumer.on('consumer:group:rebalance', () => {
      if (this.#consumer !== consumer) return;
      this.#rebalancing = true;
      log.info('kafka group rebalance');
    });
    consumer.on('consumer:heartbeat:error', (p) => {
      if (!this.#stop.stopped) log.warn({ err: p.error, memberId: p.memberId }, 'kafka heartbeat error');
    });
    consumer.on('consumer:heartbeat:stalled', (p) => {
      log.warn({ stalledForMs: p.stalledFor, err: p.lastError }, 'kafka heartbeat stalled');
    });
    consumer.on('client:broker:disconnect', (p) => {
      if (!this.#stop.stopped) log.warn({ broker: p.broker }, 'kafka broker disconnected');
    });
    consumer.on('client:broker:failed', (p) => {
      if (!this.#stop.stopped) log.warn({ broker: p.broker }, 'kafka broker connection failed');
    });
  }

  #backoff(attempt: number): number {
    return backoffDelay(attempt - 1, { baseMs: this.#retryInitialMs, capMs: this.#retryMaxMs, jitter: 'none' }, 0);
  }

  /** Sleeps `ms`, or less if stop() is called. */
  #sleep(ms: number): Promise<void> {
    return this.#stop.sleeper.sleep(ms);
  }

  /** Resolves with the promise's value, or `undefined` (false-y) after `ms`. */
  async #race<T>(promise: Promise<T>, ms: number): Promise<T | true | undefined> {
    let timer: NodeJS.Timeout | undefined;
    try {
      return await Promise.race([
        promise.then((v) => (v === undefined ? true : v)),
        new Promise<undefined>((resolve) => {
          timer = setTimeout(() => resolve(undefined), ms);
        }),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

// ---------------------------------------------------------------------------------------------------------------

export interface EnsureTopicsOptions {
  partitions?: number;
  replicas?: number;
  prefix?: string;
}

/** Creates `prefix + topic` for each topic that does not exist yet; "already exists" is not an error. */
export async function ensureTopics(brokers: string[], topics: readonly string[], options: EnsureTopicsOptions = {}): Promise<string[]> {
  const { partitions = 3, replicas = 1, prefix = '' } = options;
  const admin = new Admin({ clientId: 'flocknode-workers-admin', bootstrapBrokers: brokers, retries: 5, retryDelay: 500 });
  try {
    const existing = new Set(await admin.listTopics());
    const created: string[] = [];
    for (const name of topics.map((t) => prefix + t)) {
      if (existing.has(name)) continue;
      try {
        await admin.createTopics({ topics: [name], partitions, replicas });
        created.push(name);
      } catch (err) {
        if (!isTopicAlreadyExists(err)) throw err;
      }
    }
    return created;
  } finally {
    await admin.close().catch(() => undefined);
  }
}

function isTopicAlreadyExists(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const withFind = err as Error & { findBy?: (property: string, value: unknown) => unknown; errors?: unknown[] };
  if (typeof withFind.findBy === 'function' && withFind.findBy('apiId', 'TOPIC_ALREADY_EXISTS')) return true;
  return /already exists/i.test(err.message) || (withFind.errors ?? []).some(isTopicAlreadyExists);
}

/** Readiness probe: true when a metadata call succeeds within `timeoutMs` and lists at least one broker. */
export async function pingKafka(brokers: string[], timeoutMs = 3000): Promise<boolean> {
  const admin = new Admin({
    clientId: 'flocknode-workers-ping',
    bootstrapBrokers: brokers,
    retries: 0,
    timeout: timeoutMs,
    connectTimeout: timeoutMs,
    requestTimeout: timeoutMs,
  });
  let timer: NodeJS.Timeout | undefined;
  try {
    const metadata = await Promise.race([
      admin.metadata({ topics: [] }),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`kafka metadata: timeout after ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return metadata.brokers.size > 0;
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
    await admin.close().catch(() => undefined);
  }
}
