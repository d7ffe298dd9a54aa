import { randomBytes, randomUUID } from 'node:crypto';
import { loadConfig } from '../config/config.js';
import { startService, type RunningService } from '../app.module.js';
import type { CliIo } from '../cli/io.js';
import { parse, UsageError } from '../cli/io.js';
import type { OutboundMessage } from '../infra/bus/bus.js';
import { startFakePanel, type FakePanel } from './simulated/pterodactyl-panel.js';
import { DemoPeers } from './peers.js';
import { runScenarios, SCENARIO_NAMES } from './scenarios.js';

const HELP = `Usage: flock-workers demo [--port N] [--once] [--scenario NAME[,NAME…]] [--data-dir DIR]

Runs the service on its embedded defaults (PGlite, in-process store and bus) beside a simulated Pterodactyl
panel, stream platform, ingest server and overlay, and drives scripted matches through it:
  provisioning: a server that becomes ready (its admin key arrives through the panel's startup variables and the
  simulated admin plugin signs its first hook with it; released → the key is refused), one that never installs
  (timeout → cancelled, refunded), one whose install fails, one whose egg cannot take the key (the match view says
  why the admin hook cannot arrive); stream health: healthy, short dip, offline with gameplay → forfeit (policy
  "default") or dispute (mode "final", STREAM_POLICIES), offline without → dispute, provider outage → nothing.
The demo shortens the deadlines (READY_DEADLINE_MS 20 s, OFFLINE_GRACE_MS 20 s …) unless set in the environment.
--once exits when the scenarios are done: 0 when each got its expected outcome, 1 when any did not (the demo as a
check); otherwise the service keeps running for you to explore (Ctrl-C stops).
--scenario runs only the named ones: ${SCENARIO_NAMES.join(', ')}.`;

export type StopOnSignals = (service: RunningService, timeoutMs: number) => Promise<number>;

export async function runDemo(args: string[], io: CliIo, stopOnSignals: StopOnSignals): Promise<number> {
  const { values } = parse(
    args,
    {
      port: { type: 'string' },
      once: { type: 'boolean', default: false },
      scenario: { type: 'string' },
      'data-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    false,
  );
  if (values.help) {
    io.stdout(HELP);
    return 0;
  }
  if (values.port !== undefined && !/^\d{1,5}$/.test(values.port)) throw new UsageError('--port must be a number');
  const only = values.scenario === undefined ? SCENARIO_NAMES : values.scenario.split(',').filter(Boolean);
  const unknown = only.filter((name) => !SCENARIO_NAMES.includes(name));
  if (only.length === 0 || unknown.length > 0)
    throw new UsageError(`--scenario: unknown "${unknown.join(',')}" (known: ${SCENARIO_NAMES.join(', ')})`);

  const say = (line: string) => io.stdout(`[demo ${new Date().toISOString().slice(11, 19)}] ${line}`);
  const panelKey = `ptla_${randomBytes(22).toString('base64url')}`;
  const panel: FakePanel = await startFakePanel({ apiKeys: { [panelKey]: 'demo-admin' } });
  const peers = await DemoPeers.start();
  const token = randomBytes(24).toString('base64url');
  const env = {
    ...io.env,
    DEMO_MODE: 'true',
    PORT: values.port ?? io.env.PORT ?? '8080',
    HOST: io.env.HOST ?? '127.0.0.1',
    LOG_LEVEL: io.env.LOG_LEVEL ?? 'error',
    DATA_DIR: values['data-dir'] ?? io.env.DATA_DIR ?? '.data/demo',
    PTERO_APP_URL: panel.url,
    PTERO_APP_API_KEY: panelKey,
    OVERLAY_MASTER_SECRET: io.env.OVERLAY_MASTER_SECRET ?? randomBytes(32).toString('base64url'),
    ADMIN_HOOK_SECRET: io.env.ADMIN_HOOK_SECRET ?? randomBytes(32).toString('base64url'),
    INTERNAL_API_TOKEN: io.env.INTERNAL_API_TOKEN ?? token,
    READY_DEADLINE_MS: io.env.READY_DEADLINE_MS ?? '20000',
    POLL_EVERY_MS: io.env.POLL_EVERY_MS ?? '1000',
    PROVISION_MONITOR_EVERY_MS: io.env.PROVISION_MONITOR_EVERY_MS ?? '2000',
    DRAIN_MS: io.env.DRAIN_MS ?? '0',
    // A per-mode policy: a match in mode `final` gets the same evidence, but a human decides (never a forfeit).
    STREAM_POLICIES: io.env.STREAM_POLICIES ?? '{"final":{"verdictRule":"dispute"}}',
    ...peers.env(io.env),
  };
  const config = loadConfig(env, { service: true });
  const service = await startService(config);
  // The data dir outlives a run, the simulated panel does not: a run stopped midway leaves provisions of its
  // panel's servers, which this service resumes. This run's servers get ids above every id the database knows, so
  // a resumed provision meets a 404 (and is cancelled and refunded) instead of polling, keying or deleting a server
  // of this run.
  const known = await service.services.db
    .selectFrom('provisions')
    .select((eb) => eb.fn.max('panel_server_id').as('last'))
    .executeTakeFirst();
  panel.skipIdsThrough(Number(known?.last ?? 0));
  say(`service on ${service.url} (embedded: PGlite in ${config.DATA_DIR}, in-process store and bus)`);
  say(`simulated Pterodactyl panel on ${panel.url}`);
  say(`explore: INTERNAL_API_TOKEN=${config.INTERNAL_API_TOKEN} npx flock-workers matches show <id> --url ${service.url}`);
  say(`operator console: ${service.url}/console (token: ${config.INTERNAL_API_TOKEN})`);

  const unsubscribe = service.services.embeddedBus?.onMessage((m: OutboundMessage) => say(`◀ ${describeEvent(m)}`));
  const run = `${new Date().toISOString().slice(11, 19).replaceAll(':', '')}`;
  const api = async (method: string, path: string, body?: unknown) => {
    const response = await fetch(`${service.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${config.INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const json = (await response.json()) as Record<string, unknown>;
    if (response.status >= 300) throw new Error(`${method} ${path} → ${response.status} ${JSON.stringify(json)}`);
    return json;
  };

  const done = runScenarios({ api, panel, peers, say, run, service, config }, only).then(
    () => {
      say('all scenarios finished — the service keeps running; Ctrl-C to stop');
      return true;
    },
    (error: unknown) => {
      say(`✘ ${(error as Error).message}`);
      return false;
    },
  );

  let code: number;
  if (values.once) {
    // --once is the demo as a check: a failed scenario fails the command.
    code = (await done) ? 0 : 1;
    await service.close();
  } else {
    code = await stopOnSignals(service, config.SHUTDOWN_TIMEOUT_MS);
  }
  unsubscribe?.();
  await peers.close();
  await panel.close();
  return code;
}

function describeEvent(message: OutboundMessage): string {
  const event = JSON.parse(message.value) as Record<string, unknown>;
  const extra: string[] = [];
  for (const field of ['reason', 'failureReason', 'side', 'verdict', 'panelServerId']) {
    if (event[field] !== undefined) extra.push(`${field}=${String(event[field])}`);
  }
  if (Array.isArray(event.refunds)) {
    extra.push(
      `refunds=${(event.refunds as { playerId: string; amountCents: number; currency: string }[]).map((r) => `${r.playerId}:${r.amountCents / 100} ${r.currency}`).join(',') || 'none'}`,
    );
  }
  return `${message.topic} ${String(event.matchId)} ${extra.join(' ')}`.trim();
}

export const demoEventId = () => randomUUID();
