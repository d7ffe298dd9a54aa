import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig } from '../config/config.js';
import { openDatabase } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { INPUT_TOPICS } from '../events/topics.js';
import { TERMINAL_STATUSES } from '../matches/match.schemas.js';
import { describeFailure, InternalApiClient } from './api-client.js';
import { parse, UsageError, type CliIo } from './io.js';

const USAGE = `flock-workers — FLOCKNODE worker service

Usage: flock-workers <command> [options]

Service:
  start                         run the service (configuration from the environment; see docs/configuration.md)
  demo [--port N] [--once]      run on embedded defaults with a simulated panel and scripted matches
  migrate                       apply database migrations (DATABASE_URL, or the embedded database in DATA_DIR)
  kafka topics [--create]       check (or create) the Kafka topics on KAFKA_BROKERS, at deploy time

Through a running service's internal API (--url, default http://127.0.0.1:$PORT; --token or INTERNAL_API_TOKEN):
  matches create ID [--file F]  create or update a match from JSON (file or stdin)
  matches show ID [--watch [--timeout-ms N]]  status, checklist, provisioning, refunds, enforcement and evidence
                                (--watch follows it until it ends, or for at most N ms: then exit 1)
  matches list [--status S] [--provisioning P] [--enforcement any|none] [--limit N] [--cursor C]
  events publish TOPIC [--new-id]  publish an input event (JSON on stdin): ${INPUT_TOPICS.join(', ')}
  dead-letters list [--topic T] [--state pending|replayed|discarded] [--limit N] [--cursor C]
  dead-letters replay ID | dead-letters discard ID
  keys issue --match ID --kind overlay|admin [--ttl-ms N] [--json]
  keys revoke KEYID

For the people who write callers:
  sign --key-id K --secret S [--file F] [--ts MS] [--nonce N] [--json] [--show-canonical] [< body.json]
  canonicalize < any.json      RFC 8785 canonical form of stdin

Every command and subcommand takes --help; API commands take --json. --version prints the version.
Exit codes: 0 ok, 1 failure, 2 bad input.`;

export type Command = (args: string[], io: CliIo) => Promise<number>;

const apiOptions = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

function readJson(text: string, what: string): unknown {
  if (text.trim() === '') throw new UsageError(`${what}: no JSON given (pipe it on stdin)`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${what}: not JSON: ${(error as Error).message}`);
  }
}

const MATCHES_USAGE = `Usage: flock-workers matches create ID [--file F] | show ID [--watch] | list [filters]   (--url, --token, --json)
  list filters: --status S  --provisioning STATE  --enforcement any|none  --limit N  --cursor C
  show --watch [--interval-ms N] [--timeout-ms N]: print the match again whenever it changes, until it ends (exit 0);
    with --timeout-ms, a match still running after N ms exits 1 (Ctrl-C stops it any time)`;

const matches: Command = async (args, io) => {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h') {
    io.stdout(MATCHES_USAGE);
    return sub ? 0 : 2;
  }
  const { values, positionals } = parse(rest, {
    ...apiOptions,
    file: { type: 'string' },
    watch: { type: 'boolean', default: false },
    'interval-ms': { type: 'string' },
    'timeout-ms': { type: 'string' },
    ...listOptions,
    status: { type: 'string' },
    provisioning: { type: 'string' },
    enforcement: { type: 'string' },
  });
  if (values.help) {
    io.stdout(MATCHES_USAGE);
    return 0;
  }
  if (sub === 'list') {
    const api = InternalApiClient.from(values, io);
    const query = listQuery(values, ['status', 'provisioning', 'enforcement']);
    const { status, json } = await api.request('GET', `/v1/internal/matches${query}`);
    if (status >= 300) return fail(io, status, json);
    const page = json as { items: Record<string, unknown>[]; nextCursor: string | null };
    if (values.json) io.stdout(JSON.stringify(page));
    else {
      io.stdout(
        page.items
          .map(
            (m) =>
              `${String(m.id)}  ${String(m.status)}  provisioning ${(m.provisioning as { state?: string } | null)?.state ?? 'none'}  enforcement ${(m.enforcement as unknown[] | undefined)?.length ?? 0}`,
          )
          .join('\n') || '(no matches)',
      );
      if (page.nextCursor) io.stdout(`more: --cursor ${page.nextCursor}`);
    }
    return 0;
  }
  if (sub !== 'create' && sub !== 'show') throw new UsageError(`matches: unknown subcommand "${sub}"`);
  const id = positionals[0];
  if (!id) throw new UsageError(`matches ${sub}: missing match ID`);
  const api = InternalApiClient.from(values, io);
  if (sub === 'create') {
    const text = values.file
      ? await readFile(values.file, 'utf8').catch(() => {
          throw new UsageError(`cannot read ${values.file}`);
        })
      : await io.readStdin();
    const body = readJson(text, 'matches create');
    const { status, json } = await api.request('PUT', `/v1/internal/matches/${encodeURIComponent(id)}`, body);
    if (status >= 300) return fail(io, status, json);
    io.stdout(values.json ? JSON.stringify(json) : `match ${id} ${status === 201 ? 'created' : 'updated'}`);
    return 0;
  }
  const intervalMs = positiveInt(values['interval-ms'], '--interval-ms') ?? 2000;
  const timeoutMs = positiveInt(values['timeout-ms'], '--timeout-ms');
  if (timeoutMs !== undefined && !values.watch) throw new UsageError('matches show: --timeout-ms needs --watch');
  const deadline = timeoutMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    const { status, json } = await api.request('GET', `/v1/internal/matches/${encodeURIComponent(id)}`);
    if (status >= 300) return fail(io, status, json);
    const text = values.json ? JSON.stringify(json, null, values.watch ? undefined : 2) : summarizeMatch(json as Record<string, unknown>);
    if (text !== last) io.stdout(values.watch && !values.json ? `— ${new Date().toISOString()}\n${text}` : text);
    last = text;
    const matchStatus = String((json as { status?: unknown }).status);
    if (!values.watch || TERMINAL_STATUSES.includes(matchStatus)) return 0;
    const left = deadline - Date.now();
    if (left <= 0) {
      io.stderr(`matches show --watch: ${id} is still ${matchStatus} after ${timeoutMs} ms`);
      return 1;
    }
    await new Promise((resolve) => setTimeout(resolve, Math.min(intervalMs, left)));
  }
};

const listOptions = { limit: { type: 'string' }, cursor: { type: 'string' } } as const;

function positiveInt(raw: string | undefined, flag: string): number | undefined {
  if (raw === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(raw)) throw new UsageError(`${flag} must be a positive integer`);
  return Number(raw);
}

/** The query string of a list call: its filters plus limit and cursor, only those given. */
function listQuery(values: Record<string, unknown>, filters: string[]): string {
  const query = new URLSearchParams();
  for (const name of [...filters, 'cursor']) if (typeof values[name] === 'string') query.set(name, values[name] as string);
  const limit = positiveInt(values.limit as string | undefined, '--limit');
  if (limit !== undefined) query.set('limit', String(limit));
  const text = query.toString();
  return text ? `?${text}` : '';
}

const DEAD_LETTERS_USAGE = `Usage: flock-workers dead-letters list [--topic T] [--state pending|replayed|discarded] [--limit N] [--cursor C]
       flock-workers dead-letters replay ID | discard ID      (--url, --token, --json)
A replay republishes the stored event once (a second replay answers 409); discard marks it handled without replaying.`;

const deadLetters: Command = async (args, io) => {
  const [sub, ...rest] = args;
  if (!sub || sub === '--help' || sub === '-h') {
    io.stdout(DEAD_LETTERS_USAGE);
    return sub ? 0 : 2;
  }
  const { values, positionals } = parse(rest, { ...apiOptions, ...listOptions, topic: { type: 'string' }, state: { type: 'string' } });
  if (values.help) {
    io.stdout(DEAD_LETTERS_USAGE);
    return 0;
  }
  if (sub === 'list') {
    const api = InternalApiClient.from(values, io);
    const { status, json } = await api.request('GET', `/v1/internal/dead-letters${listQuery(values, ['topic', 'state'])}`);
    if (status >= 300) return fail(io, status, json);
    const page = json as {
      items: { id: string; topic: string; reason: string; state: string; createdAt: string }[];
      nextCursor: string | null;
    };
    if (values.json) io.stdout(JSON.stringify(page));
    else {
      io.stdout(page.items.map((d) => `${d.id}  ${d.createdAt}  ${d.topic}  ${d.state}  ${d.reason}`).join('\n') || '(no dead letters)');
      if (page.nextCursor) io.stdout(`more: --cursor ${page.nextCursor}`);
    }
    return 0;
  }
  if (sub !== 'replay' && sub !== 'discard') throw new UsageError(`dead-letters: unknown subcommand "${sub}"`);
  const id = positionals[0];
  if (!id) throw new UsageError(`dead-letters ${sub}: missing dead-letter ID`);
  const api = InternalApiClient.from(values, io);
  const { status, json } = await api.request('POST', `/v1/internal/dead-letters/${encodeURIComponent(id)}/${sub}`, {});
  if (status >= 300) return fail(io, status, json);
  io.stdout(values.json ? JSON.stringify(json) : `${sub === 'replay' ? 'replayed' : 'discarded'} dead letter ${id}`);
  return 0;
};

const events: Command = async (args, io) => {
  const [sub, ...rest] = args;
  const usage = `Usage: flock-workers events publish TOPIC [--new-id] < event.json   (topics: ${INPUT_TOPICS.join(', ')})
  --new-id   fill in a missing envelope: "v":"v1" and a fresh random "eventId" (a retry then publishes again)`;
  if (!sub || sub === '--help' || sub === '-h') {
    io.stdout(usage);
    return sub ? 0 : 2;
  }
  const { values, positionals } = parse(rest, { ...apiOptions, 'new-id': { type: 'boolean', default: false } });
  if (values.help) {
    io.stdout(usage);
    return 0;
  }
  if (sub !== 'publish') throw new UsageError(`events: unknown subcommand "${sub}"`);
  const topic = positionals[0];
  if (!topic || !(INPUT_TOPICS as readonly string[]).includes(topic))
    throw new UsageError(`events publish: TOPIC must be one of ${INPUT_TOPICS.join(', ')}`);
  let body = readJson(await io.readStdin(), 'events publish');
  if (values['new-id']) {
    if (!body || typeof body !== 'object' || Array.isArray(body)) throw new UsageError('events publish: the event must be a JSON object');
    body = { v: 'v1', eventId: randomUUID(), ...(body as object) };
  }
  const api = InternalApiClient.from(values, io);
  const { status, json } = await api.request('POST', `/v1/internal/events/${topic}`, body);
  if (status >= 300) return fail(io, status, json);
  const result = json as { eventId: string; duplicate: boolean };
  io.stdout(
    values.json ? JSON.stringify(json) : `accepted ${topic} ${result.eventId}${result.duplicate ? ' (duplicate: already published)' : ''}`,
  );
  return 0;
};

const keys: Command = async (args, io) => {
  const [sub, ...rest] = args;
  const usage = 'Usage: flock-workers keys issue --match ID --kind overlay|admin [--ttl-ms N] [--json] | keys revoke KEYID';
  if (!sub || sub === '--help' || sub === '-h') {
    io.stdout(usage);
    return sub ? 0 : 2;
  }
  const { values, positionals } = parse(rest, {
    ...apiOptions,
    match: { type: 'string' },
    kind: { type: 'string' },
    'ttl-ms': { type: 'string' },
  });
  if (values.help) {
    io.stdout(usage);
    return 0;
  }
  if (sub !== 'issue' && sub !== 'revoke') throw new UsageError(`keys: unknown subcommand "${sub}"`);
  const api = InternalApiClient.from(values, io);
  if (sub === 'issue') {
    if (!values.match) throw new UsageError('keys issue: --match is required');
    if (values.kind !== 'overlay' && values.kind !== 'admin') throw new UsageError('keys issue: --kind must be overlay or admin');
    let ttlMs: number | undefined;
    if (values['ttl-ms'] !== undefined) {
      ttlMs = Number(values['ttl-ms']);
      if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new UsageError('keys issue: --ttl-ms must be a positive integer');
    }
    const { status, json } = await api.request('POST', '/v1/internal/keys', {
      matchId: values.match,
      kind: values.kind,
      ...(ttlMs ? { ttlMs } : {}),
    });
    if (status >= 300) return fail(io, status, json);
    const key = json as { keyId: string; secret: string; expiresAt: string };
    io.stdout(values.json ? JSON.stringify(key) : `keyId: ${key.keyId}\nsecret: ${key.secret}\nexpiresAt: ${key.expiresAt}`);
    return 0;
  }
  if (sub === 'revoke') {
    const keyId = positionals[0];
    if (!keyId) throw new UsageError('keys revoke: missing KEYID');
    const { status, json } = await api.request('DELETE', `/v1/internal/keys/${encodeURIComponent(keyId)}`);
    if (status >= 300) return fail(io, status, json);
    io.stdout(values.json ? JSON.stringify(json) : `revoked ${keyId}`);
    return 0;
  }
  throw new UsageError(`keys: unknown subcommand "${sub}"`);
};

const migrate: Command = async (args, io) => {
  const { values } = parse(
    args,
    { help: { type: 'boolean', short: 'h', default: false }, json: { type: 'boolean', default: false } },
    false,
  );
  if (values.help) {
    io.stdout('Usage: flock-workers migrate   (uses DATABASE_URL, or the embedded database under DATA_DIR)');
    return 0;
  }
  const config = loadConfig(io.env);
  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS });
  try {
    const report = await migrateToLatest(database.db);
    io.stdout(
      values.json
        ? JSON.stringify({ database: database.kind, ...report })
        : `${database.kind}: applied ${report.applied.length} migration(s)${report.applied.length ? `: ${report.applied.join(', ')}` : ''}`,
    );
    return 0;
  } finally {
    await database.close();
  }
};

function fail(io: CliIo, status: number, json: unknown): number {
  io.stderr(`error: ${describeFailure(status, json)}`);
  return status === 400 || status === 404 ? 2 : 1;
}

/** The `matches show` text of a match view. */
export function summarizeMatch(view: Record<string, unknown>): string {
  const v = view as {
    id: string;
    status: string;
    mode: string;
    checklist: Record<string, boolean>;
    provisioning: {
      state: string;
      failureReason: string | null;
      adminKey?: { keyId: string | null; delivery: string; revoked: boolean; adminHookBlocked: string | null } | null;
    } | null;
    refunds: unknown[];
    enforcement: unknown[];
    streamWaiver?: { reason: string; grantedBy: string; gaps: { side: string; missing: string[] }[] } | null;
  };
  const waiver = v.streamWaiver
    ? [
        `stream rules waived by ${v.streamWaiver.grantedBy}: ${v.streamWaiver.reason} (${v.streamWaiver.gaps.map((g) => `${g.side}: ${g.missing.join(', ')}`).join('; ') || 'no gaps'})`,
      ]
    : [];
  const key = v.provisioning?.adminKey;
  const adminKey = key
    ? [
        `admin key: ${key.keyId ?? 'none'}  delivery ${key.delivery}${key.revoked ? '  revoked' : ''}`,
        ...(key.adminHookBlocked ? [`admin hook cannot arrive: ${key.adminHookBlocked}`] : []),
      ]
    : [];
  const checks = Object.entries(v.checklist)
    .map(([k, ok]) => `${ok ? '✓' : '·'} ${k}`)
    .join('  ');
  return [
    `match ${v.id}  ${v.mode}  status ${v.status}`,
    `provisioning: ${v.provisioning ? `${v.provisioning.state}${v.provisioning.failureReason ? ` (${v.provisioning.failureReason})` : ''}` : 'none'}`,
    ...adminKey,
    `checklist: ${checks}`,
    `refunds: ${v.refunds.length}  enforcement: ${v.enforcement.length}`,
    ...waiver,
  ].join('\n');
}

/** The version in the nearest package.json above this file (dist/src/cli or src/cli). */
function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'flocknode-workers' && pkg.version) return pkg.version;
    } catch {
      // not at this level
    }
  }
  return 'unknown';
}

/** Runs one CLI command and returns its exit code; `start`/`demo` resolve only when the service stops. */
export async function runCli(
  argv: string[],
  io: CliIo,
  services: { start: Command; demo: Command; sign?: Command; canonicalize?: Command; kafka?: Command },
): Promise<number> {
  const [command, ...args] = argv;
  const commands: Record<string, Command | undefined> = {
    start: services.start,
    demo: services.demo,
    migrate,
    matches,
    events,
    keys,
    'dead-letters': deadLetters,
    sign: services.sign,
    canonicalize: services.canonicalize,
    kafka: services.kafka,
  };
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    io.stdout(USAGE);
    return command ? 0 : 2;
  }
  if (command === '--version' || command === '-V') {
    io.stdout(packageVersion());
    return 0;
  }
  const run = commands[command];
  if (!run) {
    io.stderr(`flock-workers: unknown command "${command}" (see flock-workers --help)`);
    return 2;
  }
  try {
    return await run(args, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.stderr(`flock-workers ${command}: ${error.message}`);
      return 2;
    }
    if (error instanceof ConfigError) {
      io.stderr(error.message);
      return 1;
    }
    io.stderr(`flock-workers ${command}: ${(error as Error).message}`);
    return 1;
  }
}
