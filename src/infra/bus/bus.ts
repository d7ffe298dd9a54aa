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

export interface MessageSource {
  /**
   * Starts delivering messages of `topics`, one at a time per partition. The source commits a message's
   * offset only after `handler` resolved for it; when `handler` rejects, the message is delivered again.
   */
  start(topics: readonly string[], handler: MessageHandler): Promise<void>;
  /** Stops taking messages, waits for the one in flight and its commit, then leaves the group. */
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
