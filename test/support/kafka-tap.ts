import { oneByOne } from '../../src/infra/bus/bus.js';
import { KafkaMessageSource } from '../../src/infra/bus/kafka-bus.js';
import { createLogger } from '../../src/observability/logger.js';

export interface TappedEvent {
  topic: string;
  key: string | null;
  eventId: string;
  value: Record<string, unknown>;
}

/** Reads the service's output topics from the beginning with its own consumer group, for assertions. */
export class KafkaTap {
  readonly events: TappedEvent[] = [];
  private constructor(private readonly source: KafkaMessageSource) {}

  static async start(brokers: string[], prefix: string, topics: readonly string[]): Promise<KafkaTap> {
    const source = new KafkaMessageSource({
      brokers,
      clientId: 'test-tap',
      groupId: `tap-${Math.random().toString(36).slice(2)}`,
      topicPrefix: prefix,
      logger: createLogger('silent'),
      maxWaitTimeMs: 200,
    });
    const tap = new KafkaTap(source);
    await source.start(
      topics,
      oneByOne(async (m) => {
        const value = JSON.parse(m.value.toString('utf8')) as Record<string, unknown>;
        tap.events.push({ topic: m.topic, key: m.key, eventId: m.headers['event-id'] ?? String(value.eventId), value });
      }),
    );
    return tap;
  }

  of(topic: string, matchId?: string): TappedEvent[] {
    return this.events.filter((e) => e.topic === topic && (matchId === undefined || e.value.matchId === matchId));
  }

  /** Distinct event ids (the relay may deliver one event more than once; consumers dedupe on event-id). */
  distinct(topic: string, matchId?: string): TappedEvent[] {
    const seen = new Map<string, TappedEvent>();
    for (const e of this.of(topic, matchId)) seen.set(e.eventId, e);
    return [...seen.values()];
  }

  async stop(): Promise<void> {
    await this.source.stop();
  }
}

export async function eventually<T>(
  probe: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 30_000,
  what = 'condition',
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined && value !== false) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > until)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
