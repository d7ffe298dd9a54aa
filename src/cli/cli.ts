import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError, loadConfig } from '../config/config.js';
import { openDatabase } from '../infra/db/database.js';
import { migrateToLatest } from '../infra/db/migrations.js';
import { INPUT_TOPICS } from '../events/topics.js';
import { describeFailure, InternalApiClient } from './api-client.js';
import { UsageError, type CliIo } from './io.js';

const USAGE = `flock-workers — FLOCKNODE worker service

Usage: flock-workers <command> [options]

Service:
  start                         run the service (configuration from the environment; see docs/configuration.md)
  demo [--port N] [--fast]      run on embedded defaults with a simulated panel and scripted matches
  migrate                       apply database migrations (DATABASE_URL, or the embedded database in DATA_DIR)
  kafka topics [--create]       check (or create) the Kafka topics on KAFKA_BROKERS, at deploy time

Through a running service's internal API (--url, default http://127.0.0.1:$PORT; --token or INTERNAL_API_TOKEN):
  matches create ID [--file F]  create or update a match from JSON (file or stdin)
  matches show ID [--json]      status, checklist, provisioning, refunds, enforcement and evidence
  events publish TOPIC          publish an input event (JSON on stdin): ${INPUT_TOPICS.join(', ')}
  keys issue --match ID --kind overlay|admin [--ttl-ms N] [--json]
  keys revoke KEYID

For the people who write callers:
  sign --key-id K --secret S [--ts MS] [--nonce N] [--json] [--show-canonical] < body.json
  canonicalize < any.json      RFC 8785 canonical form of stdin

Every command takes --help. Exit codes: 0 ok, 1 failure, 2 bad input.`;

export type Command = (args: string[], io: CliIo) => Promise<number>;

const apiOptions = {
  url: { type: 'string' },
  token: { type: 'string' },
  json: { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
} as const satisfies ParseArgsConfig['options'];

function parse<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O, allowPositionals = true) {
  try {
    return parseArgs({ args, options, allowPositionals, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message.split('\n')[0] ?? 'bad arguments');
  }
}

function readJson(text: string, what: string): unknown {
  if (text.trim() === '') throw new UsageError(`${what}: no JSON given (pipe it on stdin)`);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${what}: not JSON: ${(error as Error).message}`);
  }
}

const matches: Command = async (args, io) => {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, { ...apiOptions, file: { type: 'string' } });
  if (values.help || !sub) {
    io.stdout('Usage: flock-workers matches create ID [--file F] | matches show ID [--json]   (--url, --token)');
    return values.help ? 0 : 2;
  }
  const id = positionals[0];
  if (!id) throw new UsageError(`matches ${sub}: missing match ID`);
  const api = InternalApiClient.from(values, io);
  if (sub === 'create') {
    const text = values.file ? await readFile(values.file, 'utf8').catch(() => { throw new UsageError(`cannot read ${values.file}`); }) : await io.readStdin();
    const body = readJson(text, 'matches create');
    const { status, json } = await api.request('PUT', `/v1/internal/matches/${encodeURIComponent(id)}`, body);
    if (status >= 300) return fail(io, status, json);
    io.stdout(values.json ? JSON.stringify(json) : `match ${id} ${status === 201 ? 'created' : 'updated'}`);
    return 0;
  }
  if (sub === 'show') {
    const { status, json } = await api.request('GET', `/v1/internal/matches/${encodeURIComponent(id)}`);
    if (status >= 300) return fail(io, status, json);
    io.stdout(values.json ? JSON.stringify(json, null, 2) : summarizeMatch(json as Record<string, unknown>));
    return 0;
  }
  throw new UsageError(`matches: unknown subcommand "${sub}"`);
};

const events: Command = async (args, io) => {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, apiOptions);
  if (values.help || sub !== 'publish') {
    io.stdout(`Usage: flock-workers events publish TOPIC < event.json   (topics: ${INPUT_TOPICS.join(', ')})`);
    return values.help ? 0 : 2;
  }
  const topic = positionals[0];
  if (!topic || !(INPUT_TOPICS as readonly string[]).includes(topic)) throw new UsageError(`events publish: TOPIC must be one of ${INPUT_TOPICS.join(', ')}`);
  const body = readJson(await io.readStdin(), 'events publish');
  const api = InternalApiClient.from(values, io);
  const { status, json } = await api.request('POST', `/v1/internal/events/${topic}`, body);
  if (status >= 300) return fail(io, status, json);
  const result = json as { eventId: string; duplicate: boolean };
  io.stdout(values.json ? JSON.stringify(json) : `accepted ${topic} ${result.eventId}${result.duplicate ? ' (duplicate: already published)' : ''}`);
  return 0;
};

const keys: Command = async (args, io) => {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, { ...apiOptions, match: { type: 'string' }, kind: { type: 'string' }, 'ttl-ms': { type: 'string' } });
  if (values.help || !sub) {
    io.stdout('Usage: flock-workers keys issue --match ID --kind overlay|admin [--ttl-ms N] [--json] | keys revoke KEYID');
    return values.help ? 0 : 2;
  }
  const api = InternalApiClient.from(values, io);
  if (sub === 'issue') {
    if (!values.match) throw new UsageError('keys issue: --match is required');
    if (values.kind !== 'overlay' && values.kind !== 'admin') throw new UsageError('keys issue: --kind must be overlay or admin');
    let ttlMs: number | undefined;
    if (values['ttl-ms'] !== undefined) {
      ttlMs = Number(values['ttl-ms']);
      if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new UsageError('keys issue: --ttl-ms must be a positive integer');
    }
    const { status, json } = await api.request('POST', '/v1/internal/keys', { matchId: values.match, kind: values.kind, ...(ttlMs ? { ttlMs } : {}) });
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
  const { values } = parse(args, { help: { type: 'boolean', short: 'h', default: false }, json: { type: 'boolean', default: false } }, false);
  if (values.help) {
    io.stdout('Usage: flock-workers migrate   (uses DATABASE_URL, or the embedded database under DATA_DIR)');
    return 0;
  }
  const config = loadConfig(io.env);
  const database = await openDatabase({ url: config.DATABASE_URL, dataDir: config.DATA_DIR, queryTimeoutMs: config.DB_QUERY_TIMEOUT_MS });
  try {
    const report = await migrateToLatest(database.db);
    io.stdout(values.json ? JSON.stringify({ database: database.kind, ...report }) : `${database.kind}: applied ${report.applied.length} migration(s)${report.applied.length ? `: ${report.applied.join(', ')}` : ''}`);
    return 0;
  } finally {
    await database.close();
  }
};

function fail(io: CliIo, status: number, json: unknown): number {
  io.stderr(`error: ${describeFailure(status, json)}`);
  return status === 400 || status === 404 ? 2 : 1;
}

function summarizeMatch(view: Record<string, unknown>): string {
  const v = view as {
    id: string;
    status: string;
    mode: string;
    checklist: Record<string, boolean>;
    provisioning: { state: string; failureReason: string | null } | null;
    refunds: unknown[];
    enforcement: unknown[];
    streamWaiver?: { reason: string; grantedBy: string; gaps: { side: string; missing: string[] }[] } | null;
  };
  const waiver = v.streamWaiver
    ? [`stream rules waived by ${v.streamWaiver.grantedBy}: ${v.streamWaiver.reason} (${v.streamWaiver.gaps.map((g) => `${g.side}: ${g.missing.join(', ')}`).join('; ') || 'no gaps'})`]
    : [];
  const checks = Object.entries(v.checklist)
    .map(([k, ok]) => `${ok ? '✓' : '·'} ${k}`)
    .join('  ');
  return [
    `match ${v.id}  ${v.mode}  status ${v.status}`,
    `provisioning: ${v.provisioning ? `${v.provisioning.state}${v.provisioning.failureReason ? ` (${v.provisioning.failureReason})` : ''}` : 'none'}`,
    `checklist: ${checks}`,
    `refunds: ${v.refunds.length}  enforcement: ${v.enforcement.length}`,
    ...waiver,
  ].join('\n');
}

/** Runs one CLI command and returns its exit code; `start`/`demo` resolve only when the service stops. */
export async function runCli(argv: string[], io: CliIo, services: { start: Command; demo: Command; sign?: Command; canonicalize?: Command; kafka?: Command }): Promise<number> {
  const [command, ...args] = argv;
  const commands: Record<string, Command | undefined> = {
    start: services.start,
    demo: services.demo,
    migrate,
    matches,
    events,
    keys,
    sign: services.sign,
    canonicalize: services.canonicalize,
    kafka: services.kafka,
  };
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    io.stdout(USAGE);
    return command ? 0 : 2;
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
