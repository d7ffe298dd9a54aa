import { configSchema, type Config } from './config.js';

export type EmbeddedPart = 'database' | 'redis' | 'kafka';
const PARTS: readonly EmbeddedPart[] = ['database', 'redis', 'kafka'];
const URL_OF: Record<EmbeddedPart, string> = { database: 'DATABASE_URL', redis: 'REDIS_URL', kafka: 'KAFKA_BROKERS' };

/** Prefixes of the variables this service reads: an unknown name with one of them is most likely a typo. */
const OUR_PREFIXES =
  /^(FLOCK|PTERO|KAFKA|REDIS|DATABASE|DATA|HMAC|OVERLAY|ADMIN|INTERNAL|STREAM|TWITCH|INGEST|TELEMETRY|PROVISION|READY|POLL|OFFLINE|MAX|RETENTION|SHUTDOWN|DRAIN|TRUST|ALLOW|DEMO|INSTANCE|LOG)_/;

/** Kubernetes (and Docker links) add <SERVICE>_PORT… and <SERVICE>_SERVICE_HOST for every service in the namespace. */
const SERVICE_LINKS = /_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP)(_\w+)?)?)$/;

export interface StartCheck {
  /** Reasons to refuse to start. */
  problems: string[];
  /** Things worth a warning line (the service starts). */
  warnings: string[];
}

/**
 * What `start` checks beyond the schema: a half-embedded configuration (one misspelt URL would run that part
 * in-process, silently unshared between instances) and variables that look like ours but are not.
 */
export function checkStart(config: Pick<Config, 'embedded' | 'ALLOW_EMBEDDED'>, env: Record<string, string | undefined>): StartCheck {
  const problems: string[] = [];
  const warnings: string[] = [];
  const allowed = new Set(
    config.ALLOW_EMBEDDED.split(',')
      .map((s) => s.trim().toLowerCase())
      .filter(Boolean),
  );
  for (const name of allowed) {
    if (name !== 'all' && !PARTS.includes(name as EmbeddedPart))
      problems.push(`ALLOW_EMBEDDED: unknown part "${name}" (use database, redis, kafka or all)`);
  }
  const embedded = PARTS.filter((p) => config.embedded[p]);
  if (embedded.length > 0 && embedded.length < PARTS.length) {
    const unasked = embedded.filter((p) => !allowed.has(p) && !allowed.has('all'));
    if (unasked.length > 0) {
      problems.push(
        `half-embedded configuration: ${unasked.map((p) => URL_OF[p]).join(', ')} unset while ${PARTS.filter((p) => !config.embedded[p])
          .map((p) => URL_OF[p])
          .join(', ')} set; ${unasked.join(', ')} would run in-process and not be shared between instances. ` +
          `Set ${unasked.map((p) => URL_OF[p]).join(', ')}, or ALLOW_EMBEDDED=${unasked.join(',')} to mean it.`,
      );
    }
  }
  const known = Object.keys(configSchema.shape);
  for (const name of Object.keys(env).sort()) {
    if (!OUR_PREFIXES.test(name) || known.includes(name) || SERVICE_LINKS.test(name)) continue;
    const guess = closest(name, known);
    warnings.push(`${name} is not a setting of this service${guess ? ` (did you mean ${guess}?)` : ''}; it is ignored`);
  }
  return { problems, warnings };
}

/** The known name within edit distance 3 of `name`, if any. */
function closest(name: string, known: readonly string[]): string | undefined {
  let best: { name: string; d: number } | undefined;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d <= 3 && (!best || d < best.d)) best = { name: candidate, d };
  }
  return best?.name;
}

function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length]!;
}
