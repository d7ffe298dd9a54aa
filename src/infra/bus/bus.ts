/**
 * Bus ports. The transactional outbox is the only way anything is published: a relay reads committed outbox
 * rows and hands them to a MessageSink (Kafka producer, or the embedded bus). Input arrives from a
 * MessageSource (Kafka consumer group, or the embedded bus) and is committed only after `handle` resolves.
 */
export interface OutboundMessage {
  /** Logical topic name (the sink adds any configured prefix). */
  topic: string;
  /** Partition key: the matchId. */
  key: string;
  /** JSON text of the event envelope. */
  value: string;
  /** Always carries `event-id` and `event-type`. */
  headers: Record<string, string>;
}

export interface InboundMessage {
  /** Logical topic name (prefix already removed). */
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  /** Raw bytes as received: validation happens in the consumer runtime, never in the source. */
  value: Buffer;
  headers: Record<string, string>;
}

export interface MessageSink {
  /** Resolves only when every message is durably accepted (Kafka: acks=all, idempotent producer). */
  send(messages: OutboundMessage[]): Promise<void>;
  close(): Promise<void>;
}

export type MessageHandler = (message: InboundMessage) => Promise<void>;

/** Messages of ONE partition, in offset order. Resolving commits them all; rejecting redelivers them all. */
export type BatchHandler = (messages: readonly InboundMessage[]) => Promise<void>;

/** A batch handler that handles one message after the other (tools and tests that think per message). */
export function oneByOne(handler: MessageHandler): BatchHandler {
  return async (messages) => {
    for (const message of messages) await handler(message);
  };
}

export interface MessageSource {
  /**
   * Starts delivering messages of `topics` in batches, partitions concurrently, one batch at a time per partition.
   * The source commits a batch's offsets only after `handler` resolved for it; when it rejects, the batch is
   * delivered again.
   */
  start(topics: readonly string[], handler: BatchHandler): Promise<void>;
  /** Stops taking messages, waits for the batches in flight and their commits, then leaves the group. */
  stop(): Promise<void>;
  /** False while joining, disconnected or rebalancing. */
  isHealthy(): boolean;
  /** What /readyz reports for the bus: `ok` only when consuming. */
  state(): SourceState;
}

/** `joining` until the first group join completed (the HTTP server already answers meanwhile). */
export type SourceState = 'ok' | 'joining' | 'rebalancing' | 'disconnected' | 'stopped';

export const MESSAGE_SINK = Symbol('MessageSink');
export const MESSAGE_SOURCE = Symbol('MessageSource');
