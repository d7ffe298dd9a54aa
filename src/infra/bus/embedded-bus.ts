import { EventEmitter } from 'node:events';
import type { BatchHandler, InboundMessage, MessageSink, MessageSource, OutboundMessage, SourceState } from './bus.js';

/**
 * The in-process bus of the embedded default. It is fed only by the outbox relay, so input events are as
 * durable as outbox rows: a row stays unpublished until the consumer's handler has committed its effects.
 * Output events are handed to observers (the demo's log, tests) and are kept in the outbox table.
 */
export class EmbeddedBus implements MessageSink, MessageSource {
  private handler: BatchHandler | undefined;
  private readonly inputTopics: ReadonlySet<string>;
  private readonly observers = new EventEmitter();
  private stopped = false;

  /** `inputTopics` are held back (the relay retries) until a consumer is running for them. */
  constructor(inputTopics: readonly string[]) {
    this.inputTopics = new Set(inputTopics);
  }

  async start(topics: readonly string[], handler: BatchHandler): Promise<void> {
    const unknown = topics.filter((t) => !this.inputTopics.has(t));
    if (unknown.length > 0) throw new Error(`embedded bus was not built for topics: ${unknown.join(', ')}`);
    this.handler = handler;
    this.stopped = false;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.handler = undefined;
  }

  isHealthy(): boolean {
    return !this.stopped;
  }

  state(): SourceState {
    return this.stopped ? 'stopped' : 'ok';
  }

  /** Delivers each message in order; rejects (so the relay retries later) if an input topic has no consumer. */
  async send(messages: OutboundMessage[]): Promise<void> {
    for (const message of messages) {
      const inbound: InboundMessage = {
        topic: message.topic,
        partition: 0,
        offset: message.headers['event-id'] ?? '',
        key: message.key,
        value: Buffer.from(message.value, 'utf8'),
        headers: message.headers,
      };
      if (this.inputTopics.has(message.topic)) {
        if (!this.handler) throw new Error(`no consumer running for ${message.topic}`);
        await this.handler([inbound]);
      }
      this.observers.emit('message', message);
    }
  }

  /** Observes every message that passes through the bus (inputs after handling, outputs as relayed). */
  onMessage(listener: (message: OutboundMessage) => void): () => void {
    this.observers.on('message', listener);
    return () => this.observers.off('message', listener);
  }

  async close(): Promise<void> {
    this.observers.removeAllListeners();
  }
}
