import { Admin } from '@platformatic/kafka';

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

/** Names of the topics the service needs that the cluster lacks (`missing`) or has with too few partitions. */
export function topicProblems(report: ReturnType<typeof compareTopics>): { missing: string[]; tooSmall: string[] } {
  return {
    missing: report.filter((r) => r.verdict === 'missing').map((r) => r.name),
    tooSmall: report.filter((r) => r.verdict === 'too_few_partitions' || r.verdict === 'too_few_replicas').map((r) => r.name),
  };
}

/**
 * What /readyz says about the topics: `ok`, `missing: a, b` naming them, or `unchecked` when metadata failed. Inspecting metadata costs a broker round
 * trip, so an answer is reused for `ttlMs` (a short one while something is missing, so a fix shows up quickly).
 */
export class TopicWatch {
  #answer: { value: string; at: number } | undefined;
  #inFlight: Promise<string> | undefined;

  constructor(
    private readonly inspect: () => Promise<ReturnType<typeof compareTopics>>,
    private readonly now: () => number,
    private readonly ttl = { okMs: 60_000, problemMs: 5_000 },
  ) {}

  async state(): Promise<string> {
    const cached = this.#answer;
    if (cached && this.now() - cached.at < (cached.value === 'ok' ? this.ttl.okMs : this.ttl.problemMs)) return cached.value;
    this.#inFlight ??= this.#refresh().finally(() => {
      this.#inFlight = undefined;
    });
    return this.#inFlight;
  }

  async #refresh(): Promise<string> {
    let value: string;
    try {
      // Only a missing topic stops the service; fewer partitions or replicas than configured is a start-log warning.
      const { missing } = topicProblems(await this.inspect());
      value = missing.length > 0 ? `missing: ${missing.join(', ')}` : 'ok';
    } catch {
      value = 'unchecked';
    }
    this.#answer = { value, at: this.now() };
    return value;
  }
}

/** The topics the service needs, as `compareTopics` takes them. */
export function wantedTopics(names: readonly string[], options: { prefix: string; partitions: number; replicas: number }): TopicSpec[] {
  return names.map((t) => ({ name: options.prefix + t, partitions: options.partitions, replicas: options.replicas }));
}

/** Inspects the cluster and compares: the one call /readyz, the start log and the CLI share. */
export async function checkTopics(brokers: string[], wanted: readonly TopicSpec[]): Promise<ReturnType<typeof compareTopics>> {
  return compareTopics(
    wanted,
    await inspectTopics(
      brokers,
      wanted.map((w) => w.name),
    ),
  );
}
