import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { SystemClock, type Clock } from '../../infra/clock.js';

/**
 * A protocol-faithful fake of the Pterodactyl application API (shared/spec/pterodactyl-api.md, "Checklist for the
 * fake server"), served over real HTTP. Server state is scripted through the returned handle; install timelines
 * resolve lazily against the injected clock, so a ManualClock drives them without timers.
 *
 * Request pipeline, in the panel's order (§4.3): maintenance 503 → route match (404/405, no auth) → auth 401 →
 * throttle 429 → [hang] → route binding 404 → root admin / key ACL 403 → [500 fault] → controller (Wings faults).
 *
 * Startup variables (`PATCH /servers/{id}/startup`) follow P `UpdateServerStartupRequest` and
 * `StartupModificationService` (docs/panel.md): `startup`, `environment`, `egg`, `image`, `skip_scripts` all required
 * (422 `ValidationException` per field otherwise), the environment validated against the egg's variables, every egg
 * variable stored (a variable left out becomes ""), names the egg does not define ignored; 200 with the server.
 */

/** An egg variable (P `EggVariable`): `rules` understands required, nullable, string, max:N, regex:/…/. */
export interface FakeEggVariable {
  name: string;
  env: string;
  defaultValue: string;
  rules: string;
}

/** Egg 3 of the fake: a Minecraft-like egg plus the variables the admin plugin reads its key from (docs/panel.md). */
export const DEFAULT_EGG_VARIABLES: readonly FakeEggVariable[] = [
  { name: 'Server Jar File', env: 'SERVER_JARFILE', defaultValue: 'server.jar', rules: 'required|string|max:20' },
  { name: 'Server Version', env: 'VANILLA_VERSION', defaultValue: 'latest', rules: 'required|string|max:20' },
  { name: 'Flock admin key id', env: 'FLOCK_ADMIN_KEY_ID', defaultValue: '', rules: 'nullable|string|max:191' },
  { name: 'Flock admin key secret', env: 'FLOCK_ADMIN_KEY_SECRET', defaultValue: '', rules: 'nullable|string|max:191' },
];

/** Egg 4: the same egg without the Flock variables (the panel then ignores them: the key never arrives). */
export const PLAIN_EGG_VARIABLES: readonly FakeEggVariable[] = DEFAULT_EGG_VARIABLES.filter((v) => !v.env.startsWith('FLOCK_'));

export type PanelStatus = null | 'installing' | 'install_failed' | 'reinstall_failed' | 'suspended' | 'restoring_backup' | (string & {});

/**
 * What the panel's transformer looks like: `1.11` (default), `1.10` (a failed reinstall reads `install_failed`),
 * `legacy` (≤1.2: no `status` key, `container.installed` bool), `pelican` (no `nest`, reinstall_failed → installed 0).
 */
export type PanelFlavor = '1.11' | '1.10' | 'legacy' | 'pelican';

export type InstallOutcome = 'installed' | 'install_failed';

export interface FakeServerInit {
  id?: number;
  externalId?: string | null;
  name?: string;
  /** Initial status; defaults to `installing` when `installAfterMs` is given, else `null` (installed). */
  status?: PanelStatus;
  /** Wings reports the install result this long after creation (on the fake's clock). */
  installAfterMs?: number;
  /** The reported result (default `installed`). */
  outcome?: InstallOutcome;
  /** Shorthand for `flavor: 'legacy'`. */
  legacy?: boolean;
  flavor?: PanelFlavor;
  /** How a reinstall through the API plays out (default: succeeds after `installAfterMs ?? 0`). */
  reinstall?: { afterMs?: number; outcome?: InstallOutcome };
  user?: number;
  node?: number;
  allocation?: number;
  nest?: number;
  egg?: number;
  /** Server-level values of egg variables (others read the egg's defaults). */
  variables?: Record<string, string>;
}

export interface FakeApiKey {
  owner: string;
  /** Key owner is a root admin (else 403 "This account does not have permission to access the API."). */
  rootAdmin?: boolean;
  serversRead?: boolean;
  serversWrite?: boolean;
}

export interface FakePanelOptions {
  port?: number;
  host?: string;
  /** API key → key owner id (or a full key description). Keys of the same owner share one rate-limit bucket. */
  apiKeys: Record<string, string | number | FakeApiKey>;
  /** Requests per window and owner (default 240). */
  rateLimitPerMin?: number;
  /** The throttle window; 60 s on a real panel, shorter only to keep tests fast. */
  rateLimitWindowMs?: number;
  clock?: Clock;
  /** Egg id → its variables (default: egg 3 with DEFAULT_EGG_VARIABLES, egg 4 with PLAIN_EGG_VARIABLES). */
  eggs?: Record<number, readonly FakeEggVariable[]>;
}

/** Faults, each matching a server (by route id) or every server, for `times` requests (default: until removed). */
export type FakeFault =
  /** Real-time delay before the request is handled (the panel clock is not involved). */
  | { kind: 'latency'; ms: number }
  /** Never answer; the socket stays open until the client gives up or the fake closes. Passes the throttle first. */
  | { kind: 'hang' }
  /** 500 `QueryException` with the generic detail, after the throttle (so it carries rate-limit headers). */
  | { kind: 'server_error' }
  /** 503 maintenance mode, before authentication and the throttle. */
  | { kind: 'maintenance' }
  /** Wings unreachable: 504 `DaemonConnectionException` on non-force delete, suspend, unsuspend, reinstall. */
  | { kind: 'daemon_unreachable' }
  /** Wings answered `status` (409 busy on reinstall, 404, 500 …); passed on as `DaemonConnectionException`. */
  | { kind: 'daemon_error'; status: number; detail?: string }
  /** 403 "This action is unauthorized." at the key-ACL step, as for a key without that permission (scope with `methods`). */
  | { kind: 'forbidden' }
  /** A 200 whose body is cut off mid-JSON (a broken proxy), on GET. */
  | { kind: 'malformed_body' }
  /** The listing (`GET /servers`) answers 403 (key ACL), 404 (a proxy without the route) or 500, after the throttle. */
  | { kind: 'listing_error'; status: 403 | 404 | 500 };

export type FaultScope = { serverId?: number; times?: number; methods?: string[] };

export interface RequestLogEntry {
  /** Arrival time on the fake's clock. */
  at: number;
  method: string;
  path: string;
  /** HTTP status sent; 0 while pending or for a hang that never answered. */
  status: number;
  owner: string | null;
  /** Passed the throttle, i.e. consumed budget. */
  counted: boolean;
}

export interface RateWindow {
  owner: string;
  startedAt: number;
  /** Requests admitted in this window. */
  count: number;
}

export interface FakePanelStats {
  requestsTotal: number;
  /** `"<METHOD> <path>"` → count. */
  byPath: Record<string, number>;
  /** `"<status>"` → count. */
  byStatus: Record<string, number>;
  /** `"<METHOD> <path> <status>"` → count. */
  byPathStatus: Record<string, number>;
  /** 429s served. */
  throttled: number;
  /** Every fixed throttle window opened so far, per owner. */
  windows: RateWindow[];
  log: RequestLogEntry[];
}

export interface FakePanel {
  readonly url: string;
  readonly rateLimit: number;
  readonly rateLimitWindowMs: number;
  /** Creates a server (as POST /servers would) and returns its id. */
  addServer(init?: FakeServerInit): number;
  /** The server's egg variables as the game server's environment sees them (its values, else the egg's defaults). */
  variables(id: number): Record<string, string>;
  /** The startup fields a startup update last stored (undefined before any). */
  startupOf(id: number): { startup: string; image: string; egg: number; skipScripts: boolean } | undefined;
  /** The attributes the API would serve right now, or undefined when the server does not exist. */
  attributes(id: number): Record<string, unknown> | undefined;
  /** Current status (after resolving any due timeline); throws for an unknown server. */
  status(id: number): PanelStatus;
  has(id: number): boolean;
  /** Explicit status; cancels any scheduled install result. */
  setStatus(id: number, status: PanelStatus): void;
  /** Wings will report the result of the running (re)install after `afterMs`. */
  scheduleInstall(id: number, plan: { afterMs: number; outcome?: InstallOutcome; reinstall?: boolean }): void;
  /** Wings reports the install result now (a suspended server stays suspended). */
  completeInstall(id: number, outcome?: InstallOutcome): void;
  suspend(id: number): void;
  unsuspend(id: number): void;
  /** As the API reinstall: `installing`, then the server's reinstall plan (or the one given). */
  reinstall(id: number, plan?: { afterMs?: number; outcome?: InstallOutcome }): void;
  /** Removes the row as a force delete would. */
  remove(id: number): void;
  /** While transferring, suspend/unsuspend answer 409. */
  setTransferring(id: number, on: boolean): void;
  /** Wings boot: every `installing`/`restoring_backup` server on the node (or all) becomes `null`. */
  restartWings(node?: number): void;
  setMaintenance(on: boolean): void;
  /** Runs before each listing page is served (tests change the panel between pages with it); returns an unhook. */
  onListPage(hook: (page: number) => void): () => void;
  /** Adds a fault; returns a function that removes it. */
  injectFault(fault: FakeFault & FaultScope): () => void;
  clearFaults(): void;
  readonly stats: FakePanelStats;
  /** Largest number of budget-consuming requests of one owner (or all) in any sliding window of `windowMs`. */
  maxInSlidingWindow(options?: { owner?: string; windowMs?: number }): number;
  resetStats(): void;
  /** Servers created from now on get ids above `id` (the demo resumes a database that knew an earlier panel's servers). */
  skipIdsThrough(id: number): void;
  close(): Promise<void>;
}

const NOT_FOUND_DETAIL = 'The requested resource could not be found on the server.';
const GENERIC_DETAIL = 'An unexpected error was encountered while processing this request, please try again.';
const DAEMON_UNREACHABLE_DETAIL = 'Could not establish a connection to the machine running this server. Please try again.';
const DAEMON_BUSY_DETAIL =
  'An error occurred on the remote host: Cannot execute server reinstall event while another power action is running.. (request id: fake-req)';
const TRANSFER_CONFLICT_DETAIL = 'Cannot toggle suspension status on a server that is currently being transferred.';

interface ServerRecord {
  id: number;
  externalId: string | null;
  uuid: string;
  name: string;
  status: PanelStatus;
  flavor: PanelFlavor;
  user: number;
  node: number;
  allocation: number;
  nest: number;
  egg: number;
  transferring: boolean;
  createdAt: number;
  updatedAt: number;
  /** The install result Wings will report, and when. */
  pending: { at: number; outcome: InstallOutcome; reinstall: boolean } | null;
  reinstallPlan: { afterMs: number; outcome: InstallOutcome };
  startup: string;
  image: string;
  skipScripts: boolean;
  /** Server-level variable values (ServerVariable rows); unset ones read the egg default. */
  values: Map<string, string>;
  startupUpdated: boolean;
}

interface ActiveFault {
  fault: FakeFault;
  serverId: number | undefined;
  methods: string[] | undefined;
  remaining: number;
}

type Route =
  | { kind: 'server'; id: string; action: 'view' | 'delete' | 'force_delete' | 'suspend' | 'unsuspend' | 'reinstall' | 'startup' }
  | { kind: 'external'; externalId: string }
  | { kind: 'list' };

class HttpError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
  ) {}
}

/** 422 with one error per failed rule, as P `Handler::invalidJson` renders a ValidationException. */
class ValidationError {
  constructor(readonly failures: { field: string; rule: string; detail: string }[]) {}
}

export async function startFakePanel(options: FakePanelOptions): Promise<FakePanel> {
  const clock = options.clock ?? new SystemClock();
  const limit = options.rateLimitPerMin ?? 240;
  const windowMs = options.rateLimitWindowMs ?? 60_000;
  const keys = new Map<string, Required<FakeApiKey>>();
  for (const [key, value] of Object.entries(options.apiKeys)) {
    const spec: FakeApiKey = typeof value === 'object' ? value : { owner: String(value) };
    keys.set(key, { rootAdmin: true, serversRead: true, serversWrite: true, ...spec });
  }

  const eggs = new Map<number, readonly FakeEggVariable[]>(
    Object.entries(options.eggs ?? { 3: DEFAULT_EGG_VARIABLES, 4: PLAIN_EGG_VARIABLES }).map(([id, vars]) => [Number(id), vars]),
  );
  const servers = new Map<number, ServerRecord>();
  let nextId = 1;
  let maintenance = false;
  let faults: ActiveFault[] = [];
  const buckets = new Map<string, RateWindow>();
  const hanging = new Set<http.ServerResponse>();
  let stats = emptyStats();
  let listHooks: ((page: number) => void)[] = [];

  // ---- state ---------------------------------------------------------------------------------------------------

  function settle(server: ServerRecord): void {
    const pending = server.pending;
    if (!pending || clock.now() < pending.at) return;
    server.pending = null;
    server.updatedAt = pending.at;
    // ServerInstallController: a suspended server stays suspended whatever the outcome.
    if (server.status === 'suspended') return;
    if (pending.outcome === 'installed') server.status = null;
    else
      server.status =
        pending.reinstall && (server.flavor === '1.11' || server.flavor === 'pelican') ? 'reinstall_failed' : 'install_failed';
  }

  function find(id: number): ServerRecord | undefined {
    const server = servers.get(id);
    if (server) settle(server);
    return server;
  }

  function must(id: number): ServerRecord {
    const server = find(id);
    if (!server) throw new Error(`fake panel: no server ${id}`);
    return server;
  }

  function touch(server: ServerRecord, status: PanelStatus): void {
    server.status = status;
    server.updatedAt = clock.now();
  }

  function startReinstall(server: ServerRecord, plan?: { afterMs?: number; outcome?: InstallOutcome }): void {
    touch(server, 'installing');
    server.pending = {
      at: clock.now() + (plan?.afterMs ?? server.reinstallPlan.afterMs),
      outcome: plan?.outcome ?? server.reinstallPlan.outcome,
      reinstall: true,
    };
  }

  function render(server: ServerRecord): Record<string, unknown> {
    const s = server.status;
    const flavor = server.flavor;
    const installedInt = s === 'installing' || s === 'install_failed' || (flavor === 'pelican' && s === 'reinstall_failed') ? 0 : 1;
    const startup = server.startup;
    const environment: Record<string, unknown> = {
      ...environmentOf(server),
      STARTUP: startup,
      ...(flavor === 'pelican' ? {} : { P_SERVER_LOCATION: 'eu1' }),
      P_SERVER_UUID: server.uuid,
      ...(flavor === 'pelican' ? {} : { P_SERVER_ALLOCATION_LIMIT: 0 }),
    };
    const attributes: Record<string, unknown> = {
      id: server.id,
      external_id: server.externalId,
      uuid: server.uuid,
      identifier: server.uuid.slice(0, 8),
      name: server.name,
      description: '',
    };
    if (flavor !== 'legacy') attributes.status = s;
    attributes.suspended = s === 'suspended';
    attributes.limits =
      flavor === 'pelican'
        ? { memory: 2048, swap: 0, disk: 5120, io: 500, cpu: 200, threads: null, oom_disabled: false, oom_killer: true }
        : flavor === 'legacy'
          ? { memory: 2048, swap: 0, disk: 5120, io: 500, cpu: 200, threads: null }
          : { memory: 2048, swap: 0, disk: 5120, io: 500, cpu: 200, threads: null, oom_disabled: true };
    attributes.feature_limits = { databases: 0, allocations: 0, backups: 0 };
    attributes.user = server.user;
    attributes.node = server.node;
    attributes.allocation = server.allocation;
    if (flavor !== 'pelican') attributes.nest = server.nest;
    attributes.egg = server.egg;
    attributes.container = {
      startup_command: startup,
      image: server.image,
      // ≤1.2 stored 0 installing / 1 installed / 2 failed and exposed `column === 1` as a bool.
      installed: flavor === 'legacy' ? installedInt === 1 && s !== 'reinstall_failed' : installedInt,
      environment,
    };
    attributes.updated_at = panelTimestamp(server.updatedAt);
    attributes.created_at = panelTimestamp(server.createdAt);
    return attributes;
  }

  /** EnvironmentService: each egg variable's server value, else its default. */
  function environmentOf(server: ServerRecord): Record<string, string> {
    const out: Record<string, string> = {};
    for (const variable of eggs.get(server.egg) ?? []) out[variable.env] = server.values.get(variable.env) ?? variable.defaultValue;
    return out;
  }

  /** UpdateServerStartupRequest's rules, then VariableValidatorService over the egg's variables (admin level). */
  function updateStartup(server: ServerRecord, raw: string): { status: number; body: unknown } {
    let body: unknown;
    try {
      body = raw.trim() === '' ? {} : JSON.parse(raw);
    } catch {
      throw new HttpError(400, 'BadRequestHttpException', 'The JSON data passed in the request appears to be malformed: Syntax error');
    }
    const input = (body !== null && typeof body === 'object' && !Array.isArray(body) ? body : {}) as Record<string, unknown>;
    const failures: { field: string; rule: string; detail: string }[] = [];
    const fail = (field: string, rule: string, detail: string) => failures.push({ field, rule, detail });
    if (input.startup === undefined || input.startup === null || input.startup === '')
      fail('startup', 'required', 'The startup field is required.');
    else if (typeof input.startup !== 'string') fail('startup', 'string', 'The startup field must be a string.');
    if (!('environment' in input)) fail('environment', 'present', 'The environment field must be present.');
    else if (input.environment === null || typeof input.environment !== 'object')
      fail('environment', 'array', 'The environment field must be an array.');
    const eggId = input.egg;
    if (eggId === undefined || eggId === null || eggId === '') fail('egg', 'required', 'The egg field is required.');
    else if (!(typeof eggId === 'number' || (typeof eggId === 'string' && /^\d+$/.test(eggId))) || !eggs.has(Number(eggId)))
      fail('egg', 'exists', 'The selected egg is invalid.');
    const image = input.image;
    if (image === undefined || image === null || image === '') fail('image', 'required', 'The image field is required.');
    else if (typeof image !== 'string') fail('image', 'string', 'The image field must be a string.');
    else if (image.length > 191) fail('image', 'max', 'The image field must not be greater than 191 characters.');
    else if (!/^~?[\w./\-:@ ]*$/.test(image)) fail('image', 'regex', 'The image field format is invalid.');
    if (!('skip_scripts' in input)) fail('skip_scripts', 'present', 'The skip scripts field must be present.');
    else if (![true, false, 0, 1, '0', '1'].includes(input.skip_scripts as never))
      fail('skip_scripts', 'boolean', 'The skip scripts field must be true or false.');
    if (failures.length > 0) throw new ValidationError(failures);

    const environment = (Array.isArray(input.environment) ? {} : input.environment) as Record<string, unknown>;
    const egg = Number(eggId);
    const variables = Object.keys(environment).length > 0 ? (eggs.get(egg) ?? []) : [];
    for (const variable of variables) {
      const value = environment[variable.env];
      const problem = checkRules(variable, value);
      if (problem) fail(`environment.${variable.env}`, problem.rule, problem.detail);
    }
    if (failures.length > 0) throw new ValidationError(failures);
    // One transaction: every egg variable gets a row (`value ?? ''`), then the administrative settings.
    for (const variable of variables) {
      const value = environment[variable.env];
      server.values.set(variable.env, value === undefined || value === null ? '' : String(value));
    }
    server.egg = egg;
    server.startup = input.startup as string;
    server.image = image as string;
    server.skipScripts = input.skip_scripts === true || input.skip_scripts === 1 || input.skip_scripts === '1';
    server.startupUpdated = true;
    server.updatedAt = clock.now();
    return { status: 200, body: { object: 'server', attributes: render(server) } };
  }

  // ---- faults ----------------------------------------------------------------------------------------------------

  function takeFault<K extends FakeFault['kind']>(
    kinds: readonly K[],
    method: string,
    serverId: number | undefined,
  ): Extract<FakeFault, { kind: K }> | undefined {
    for (const active of faults) {
      if (!(kinds as readonly string[]).includes(active.fault.kind)) continue;
      if (active.serverId !== undefined && active.serverId !== serverId) continue;
      if (active.methods && !active.methods.includes(method)) continue;
      active.remaining--;
      if (active.remaining <= 0) faults = faults.filter((f) => f !== active);
      return active.fault as Extract<FakeFault, { kind: K }>;
    }
    return undefined;
  }

  /** A Wings call failed: the panel returns the daemon's error (DisplayException render). */
  function daemonFailure(fault: Extract<FakeFault, { kind: 'daemon_unreachable' | 'daemon_error' }>): HttpError {
    if (fault.kind === 'daemon_unreachable') return new HttpError(504, 'DaemonConnectionException', DAEMON_UNREACHABLE_DETAIL);
    const status = fault.status < 400 ? 502 : fault.status;
    const detail =
      fault.detail ??
      (status === 409
        ? DAEMON_BUSY_DETAIL
        : `An error occurred on the remote host: ${http.STATUS_CODES[status] ?? 'error'}. (request id: fake-req)`);
    return new HttpError(status, 'DaemonConnectionException', detail);
  }

  // ---- controller ------------------------------------------------------------------------------------------------

  function controller(
    route: Exclude<Route, { kind: 'list' }>,
    server: ServerRecord,
    method: string,
    body: string,
  ): { status: number; body?: unknown } {
    if (route.kind === 'external' || route.action === 'view')
      return { status: 200, body: { object: 'server', attributes: render(server) } };
    if (route.action === 'startup') return updateStartup(server, body);
    const wings = () => takeFault(['daemon_unreachable', 'daemon_error'], method, server.id);
    switch (route.action) {
      case 'delete': {
        const fault = wings();
        // A Wings 404 is swallowed on delete; anything else aborts and keeps the row.
        if (fault && !(fault.kind === 'daemon_error' && fault.status === 404)) throw daemonFailure(fault);
        servers.delete(server.id);
        return { status: 204 };
      }
      case 'force_delete':
        wings(); // errors are only logged
        servers.delete(server.id);
        return { status: 204 };
      case 'suspend': {
        if (server.transferring) throw new HttpError(409, 'ConflictHttpException', TRANSFER_CONFLICT_DETAIL);
        if (server.status === 'suspended') return { status: 204 };
        touch(server, 'suspended');
        const fault = wings();
        if (fault) {
          touch(server, null); // SuspensionService rolls back to null, not to the previous status
          throw daemonFailure(fault);
        }
        return { status: 204 };
      }
      case 'unsuspend': {
        if (server.transferring) throw new HttpError(409, 'ConflictHttpException', TRANSFER_CONFLICT_DETAIL);
        if (server.status !== 'suspended') return { status: 204 };
        touch(server, null);
        const fault = wings();
        if (fault) {
          touch(server, 'suspended');
          throw daemonFailure(fault);
        }
        return { status: 204 };
      }
      case 'reinstall': {
        const fault = wings();
        if (fault) throw daemonFailure(fault); // the DB transaction rolls back: nothing changed
        startReinstall(server);
        return { status: 204 };
      }
    }
  }

  /**
   * GET /servers as P `ServerController::index` (docs/panel.md): Spatie QueryBuilder with `allowedSorts(['id','uuid'])`
   * (any other sort → 400 InvalidSortQuery), `paginate(per_page ?? 50)` with no upper bound, Fractal list envelope.
   */
  function listing(url: URL): { status: number; body: unknown } {
    const sortParam = url.searchParams.get('sort') ?? '';
    const sorts = sortParam === '' ? [] : sortParam.split(',');
    const bad = sorts.filter((s) => !['id', 'uuid'].includes(s.replace(/^-/, '')));
    if (bad.length > 0) {
      throw new HttpError(
        400,
        'InvalidSortQuery',
        `Requested sort(s) \`${bad.join(', ')}\` is not allowed. Allowed sort(s) are \`id, uuid\`.`,
      );
    }
    const perPageRaw = Number(url.searchParams.get('per_page') ?? 50);
    const perPage = Number.isInteger(perPageRaw) && perPageRaw > 0 ? perPageRaw : 50;
    const pageRaw = Number(url.searchParams.get('page') ?? 1);
    const page = Number.isInteger(pageRaw) && pageRaw > 0 ? pageRaw : 1;
    for (const hook of listHooks) hook(page);
    const rows = [...servers.values()];
    for (const server of rows) settle(server);
    rows.sort((a, b) => {
      for (const sort of sorts) {
        const desc = sort.startsWith('-');
        const key = sort.replace(/^-/, '') as 'id' | 'uuid';
        const cmp = a[key] < b[key] ? -1 : a[key] > b[key] ? 1 : 0;
        if (cmp !== 0) return desc ? -cmp : cmp;
      }
      return a.id - b.id; // no ORDER BY: MySQL/PostgreSQL return primary-key order in practice
    });
    const data = rows.slice((page - 1) * perPage, page * perPage).map((server) => ({ object: 'server', attributes: render(server) }));
    const totalPages = Math.max(1, Math.ceil(rows.length / perPage));
    return {
      status: 200,
      body: {
        object: 'list',
        data,
        meta: {
          pagination: { total: rows.length, count: data.length, per_page: perPage, current_page: page, total_pages: totalPages, links: {} },
        },
      },
    };
  }

  // ---- HTTP ------------------------------------------------------------------------------------------------------

  async function handle(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    entry: RequestLogEntry,
    body: string,
  ): Promise<void> {
    const method = req.method ?? 'GET';
    const json = wantsJson(req.headers.accept);
    const matched = matchRoute(method, url.pathname);
    const route = matched?.kind === 'method_not_allowed' ? undefined : matched;
    const routeServerId =
      route?.kind === 'server' && /^\d+$/.test(route.id)
        ? Number(route.id)
        : route?.kind === 'external'
          ? [...servers.values()].find((s) => s.externalId === route.externalId)?.id
          : undefined;
    const rateHeaders: Record<string, string> = {};

    const latency = takeFault(['latency'], method, routeServerId);
    if (latency) await new Promise((r) => setTimeout(r, latency.ms));

    try {
      if (maintenance || takeFault(['maintenance'], method, routeServerId)) {
        throw new HttpError(503, 'HttpException', 'Service Unavailable');
      }
      if (matched?.kind === 'method_not_allowed') {
        throw new HttpError(
          405,
          'MethodNotAllowedHttpException',
          `The ${method} method is not supported for route ${url.pathname.replace(/^\//, '')}. Supported methods: ${matched.allowed.join(', ')}.`,
        );
      }
      if (!route) throw new HttpError(404, 'NotFoundHttpException', NOT_FOUND_DETAIL);

      const key = bearer(req.headers.authorization);
      const apiKey = key === undefined ? undefined : keys.get(key);
      if (!apiKey) {
        if (!json) {
          entry.status = 302;
          res.writeHead(302, { Location: `${baseUrl}/auth/login`, 'Content-Type': 'text/html; charset=UTF-8' });
          res.end('<!DOCTYPE html><title>Redirecting to /auth/login</title>');
          return;
        }
        throw new HttpError(401, 'AuthenticationException', 'Unauthenticated.');
      }
      entry.owner = apiKey.owner;

      // Throttle: a fixed window per key owner that starts at its first hit; a 429 consumes nothing.
      const now = clock.now();
      let bucket = buckets.get(apiKey.owner);
      if (!bucket || now >= bucket.startedAt + windowMs) {
        bucket = { owner: apiKey.owner, startedAt: now, count: 0 };
        buckets.set(apiKey.owner, bucket);
        stats.windows.push(bucket);
      }
      if (bucket.count >= limit) {
        const resetAt = bucket.startedAt + windowMs;
        stats.throttled++;
        throw Object.assign(new HttpError(429, 'ThrottleRequestsException', 'Too Many Attempts.'), {
          headers: {
            'Retry-After': String(Math.max(0, Math.ceil((resetAt - now) / 1000))),
            'X-RateLimit-Reset': String(Math.ceil(resetAt / 1000)),
            'X-RateLimit-Limit': String(limit),
            'X-RateLimit-Remaining': '0',
          },
        });
      }
      bucket.count++;
      entry.counted = true;
      rateHeaders['X-RateLimit-Limit'] = String(limit);
      rateHeaders['X-RateLimit-Remaining'] = String(limit - bucket.count);

      if (takeFault(['hang'], method, routeServerId)) {
        hanging.add(res);
        res.on('close', () => hanging.delete(res));
        return;
      }

      if (route.kind === 'list') {
        if (!apiKey.rootAdmin) {
          throw new HttpError(403, 'AccessDeniedHttpException', 'This account does not have permission to access the API.');
        }
        const listFault = takeFault(['listing_error'], method, undefined);
        if (!apiKey.serversRead || listFault?.status === 403)
          throw new HttpError(403, 'AccessDeniedHttpException', 'This action is unauthorized.');
        if (listFault?.status === 404) throw new HttpError(404, 'NotFoundHttpException', NOT_FOUND_DETAIL);
        if (listFault || takeFault(['server_error'], method, undefined)) throw new HttpError(500, 'QueryException', GENERIC_DETAIL);
        const result = listing(url);
        entry.status = result.status;
        res.writeHead(result.status, { 'Content-Type': 'application/json', ...rateHeaders });
        res.end(JSON.stringify(result.body));
        return;
      }
      const server = routeServerId === undefined ? undefined : find(routeServerId);
      if (!server) throw new HttpError(404, 'NotFoundHttpException', NOT_FOUND_DETAIL);
      if (!apiKey.rootAdmin) {
        throw new HttpError(403, 'AccessDeniedHttpException', 'This account does not have permission to access the API.');
      }
      const write = method === 'DELETE' || method === 'POST' || method === 'PATCH';
      if ((write ? !apiKey.serversWrite : !apiKey.serversRead) || takeFault(['forbidden'], method, server.id)) {
        throw new HttpError(403, 'AccessDeniedHttpException', 'This action is unauthorized.');
      }
      if (takeFault(['server_error'], method, server.id)) throw new HttpError(500, 'QueryException', GENERIC_DETAIL);
      if (method === 'GET' && (url.searchParams.get('include') ?? '').split(',').includes('transfer')) {
        // Fractal calls the missing includeTransfer method (§2.3).
        throw new HttpError(500, 'BadMethodCallException', GENERIC_DETAIL);
      }

      const result = controller(route, server, method, body);
      if (result.status === 204) {
        entry.status = 204;
        res.writeHead(204, rateHeaders);
        res.end();
        return;
      }
      if (method === 'GET' && takeFault(['malformed_body'], method, server.id)) {
        entry.status = 200;
        res.writeHead(200, { 'Content-Type': 'application/json', ...rateHeaders });
        res.end(JSON.stringify(result.body).slice(0, 40));
        return;
      }
      entry.status = result.status;
      res.writeHead(result.status, { 'Content-Type': 'application/json', ...rateHeaders });
      res.end(JSON.stringify(result.body));
    } catch (error) {
      if (error instanceof ValidationError) {
        entry.status = 422;
        res.writeHead(422, { 'Content-Type': 'application/json', ...rateHeaders });
        res.end(
          JSON.stringify({
            errors: error.failures.map((f) => ({
              code: 'ValidationException',
              status: '422',
              detail: f.detail,
              meta: { source_field: f.field, rule: f.rule },
            })),
          }),
        );
        return;
      }
      if (!(error instanceof HttpError)) throw error;
      const extra = (error as HttpError & { headers?: Record<string, string> }).headers ?? rateHeaders;
      entry.status = error.status;
      if (json) {
        res.writeHead(error.status, { 'Content-Type': 'application/json', ...extra });
        res.end(JSON.stringify({ errors: [{ code: error.code, status: String(error.status), detail: error.detail }] }));
      } else {
        res.writeHead(error.status, { 'Content-Type': 'text/html; charset=UTF-8', ...extra });
        res.end(`<!DOCTYPE html><title>${error.status}</title><h1>${escapeHtml(error.detail)}</h1>`);
      }
    }
  }

  const httpServer = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://fake-panel');
    const entry: RequestLogEntry = {
      at: clock.now(),
      method: req.method ?? 'GET',
      path: url.pathname,
      status: 0,
      owner: null,
      counted: false,
    };
    stats.requestsTotal++;
    stats.log.push(entry);
    bump(stats.byPath, `${entry.method} ${entry.path}`);
    res.on('finish', () => {
      bump(stats.byStatus, String(entry.status));
      bump(stats.byPathStatus, `${entry.method} ${entry.path} ${entry.status}`);
    });
    readBody(req)
      .then((body) => handle(req, res, url, entry, body))
      .catch((error: unknown) => {
        entry.status = 500;
        if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
        res.end(`fake panel bug: ${String(error)}`);
      });
  });

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = httpServer.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const baseUrl = `http://${host}:${address.port}`;

  return {
    url: baseUrl,
    rateLimit: limit,
    rateLimitWindowMs: windowMs,

    skipIdsThrough(id) {
      if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`fake panel: bad server id ${id}`);
      nextId = Math.max(nextId, id + 1);
    },

    addServer(init = {}) {
      const id = init.id ?? nextId;
      if (servers.has(id)) throw new Error(`fake panel: server ${id} exists`);
      nextId = Math.max(nextId, id + 1);
      const uuid = randomUUID();
      const now = clock.now();
      const outcome = init.outcome ?? 'installed';
      const server: ServerRecord = {
        id,
        externalId: init.externalId === undefined ? `match-${String(id).padStart(4, '0')}` : init.externalId,
        uuid,
        name: init.name ?? `server-${id}`,
        status: init.status !== undefined ? init.status : init.installAfterMs !== undefined ? 'installing' : null,
        flavor: init.flavor ?? (init.legacy ? 'legacy' : '1.11'),
        user: init.user ?? 1,
        node: init.node ?? 1,
        allocation: init.allocation ?? 100 + id,
        nest: init.nest ?? 1,
        egg: init.egg ?? 3,
        transferring: false,
        createdAt: now,
        updatedAt: now,
        pending: init.installAfterMs !== undefined ? { at: now + init.installAfterMs, outcome, reinstall: false } : null,
        reinstallPlan: { afterMs: init.reinstall?.afterMs ?? init.installAfterMs ?? 0, outcome: init.reinstall?.outcome ?? 'installed' },
        startup: 'java -Xms128M -Xmx{{SERVER_MEMORY}}M -jar {{SERVER_JARFILE}}',
        image: 'ghcr.io/pterodactyl/yolks:java_17',
        skipScripts: false,
        values: new Map(Object.entries(init.variables ?? {})),
        startupUpdated: false,
      };
      servers.set(id, server);
      return id;
    },
    variables(id) {
      return environmentOf(must(id));
    },
    startupOf(id) {
      const server = must(id);
      return server.startupUpdated
        ? { startup: server.startup, image: server.image, egg: server.egg, skipScripts: server.skipScripts }
        : undefined;
    },
    attributes(id) {
      const server = find(id);
      return server ? render(server) : undefined;
    },
    status(id) {
      return must(id).status;
    },
    has(id) {
      return find(id) !== undefined;
    },
    setStatus(id, status) {
      const server = must(id);
      server.pending = null;
      touch(server, status);
    },
    scheduleInstall(id, plan) {
      const server = must(id);
      server.pending = { at: clock.now() + plan.afterMs, outcome: plan.outcome ?? 'installed', reinstall: plan.reinstall ?? false };
    },
    completeInstall(id, outcome = 'installed') {
      const server = must(id);
      server.pending = { at: clock.now(), outcome, reinstall: server.pending?.reinstall ?? false };
      settle(server);
    },
    suspend(id) {
      const server = must(id);
      if (server.status !== 'suspended') touch(server, 'suspended');
    },
    unsuspend(id) {
      const server = must(id);
      if (server.status === 'suspended') touch(server, null);
    },
    reinstall(id, plan) {
      startReinstall(must(id), plan);
    },
    remove(id) {
      servers.delete(id);
    },
    setTransferring(id, on) {
      must(id).transferring = on;
    },
    restartWings(node) {
      for (const server of servers.values()) {
        if (node !== undefined && server.node !== node) continue;
        settle(server);
        if (server.status === 'installing' || server.status === 'restoring_backup') {
          server.pending = null;
          touch(server, null);
        }
      }
    },
    setMaintenance(on) {
      maintenance = on;
    },
    injectFault(spec) {
      const { serverId, times, methods, ...fault } = spec;
      const active: ActiveFault = { fault: fault as FakeFault, serverId, methods, remaining: times ?? Number.POSITIVE_INFINITY };
      faults.push(active);
      return () => {
        faults = faults.filter((f) => f !== active);
      };
    },
    onListPage(hook) {
      listHooks.push(hook);
      return () => {
        listHooks = listHooks.filter((h) => h !== hook);
      };
    },
    clearFaults() {
      faults = [];
    },
    get stats() {
      return stats;
    },
    maxInSlidingWindow({ owner, windowMs: span = windowMs } = {}) {
      const times = stats.log.filter((e) => e.counted && (owner === undefined || e.owner === owner)).map((e) => e.at);
      return maxInSlidingWindow(times, span);
    },
    resetStats() {
      stats = emptyStats();
      const current = [...buckets.values()];
      stats.windows.push(...current);
    },
    async close() {
      for (const res of hanging) res.destroy();
      hanging.clear();
      await new Promise<void>((resolve) => {
        httpServer.close(() => resolve());
        httpServer.closeAllConnections();
      });
    },
  };
}

type RouteMatch = Route | { kind: 'method_not_allowed'; allowed: string[] } | undefined;

/** The routes of P `routes/api-application.php` this fake serves, resolved by path and verb. */
function matchRoute(method: string, path: string): RouteMatch {
  if (/^\/api\/application\/servers\/?$/.test(path)) {
    return method === 'GET' || method === 'HEAD' ? { kind: 'list' } : { kind: 'method_not_allowed', allowed: ['GET', 'HEAD', 'POST'] };
  }
  const m = /^\/api\/application\/servers\/([^/]+)(?:\/([^/]+))?\/?$/.exec(path);
  if (!m) return undefined;
  const [, first = '', second] = m;
  const verb = method === 'HEAD' ? 'GET' : method;
  if (first === 'external') {
    if (second === undefined) return undefined;
    return verb === 'GET'
      ? { kind: 'external', externalId: decodeURIComponent(second) }
      : { kind: 'method_not_allowed', allowed: ['GET', 'HEAD'] };
  }
  if (second === undefined) {
    if (verb === 'GET') return { kind: 'server', id: first, action: 'view' };
    if (verb === 'DELETE') return { kind: 'server', id: first, action: 'delete' };
    return { kind: 'method_not_allowed', allowed: ['GET', 'HEAD', 'DELETE'] };
  }
  // DELETE /{id}/{force?}: only the literal "force" forces; any other trailing segment is a normal delete.
  if (verb === 'DELETE') return { kind: 'server', id: first, action: second === 'force' ? 'force_delete' : 'delete' };
  if (second === 'startup') {
    return verb === 'PATCH'
      ? { kind: 'server', id: first, action: 'startup' }
      : { kind: 'method_not_allowed', allowed: ['PATCH', 'DELETE'] };
  }
  if (second === 'suspend' || second === 'unsuspend' || second === 'reinstall') {
    return verb === 'POST' ? { kind: 'server', id: first, action: second } : { kind: 'method_not_allowed', allowed: ['POST', 'DELETE'] };
  }
  return { kind: 'method_not_allowed', allowed: ['DELETE'] };
}

/** Laravel `wantsJson`: the most preferred Accept type contains `/json` or `+json`. */
function wantsJson(accept: string | undefined): boolean {
  if (!accept) return false;
  const types = accept
    .split(',')
    .map((part, index) => {
      const [type = '', ...params] = part.trim().split(';');
      const q = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
      return { type: type.trim().toLowerCase(), q: q ? Number(q.slice(2)) : 1, index };
    })
    .filter((t) => t.type !== '')
    .sort((a, b) => b.q - a.q || a.index - b.index);
  const first = types[0]?.type ?? '';
  return first.includes('/json') || first.includes('+json');
}

/** Reads the request body (only the startup update takes one; a cap keeps it small). */
async function readBody(req: http.IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size <= 1_000_000) chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** The subset of Laravel rules egg variables use here; the first failing rule, or undefined. */
function checkRules(variable: FakeEggVariable, value: unknown): { rule: string; detail: string } | undefined {
  const rules = variable.rules.split('|');
  const label = `${variable.name} variable`;
  const empty = value === undefined || value === null || value === '';
  if (empty) return rules.includes('required') ? { rule: 'required', detail: `The ${label} field is required.` } : undefined;
  for (const rule of rules) {
    if (rule === 'string' && typeof value !== 'string') return { rule: 'string', detail: `The ${label} field must be a string.` };
    const max = /^max:(\d+)$/.exec(rule);
    if (max && String(value).length > Number(max[1])) {
      return { rule: 'max', detail: `The ${label} field must not be greater than ${max[1]} characters.` };
    }
    const regex = /^regex:\/(.*)\/$/.exec(rule);
    if (regex && !new RegExp(regex[1] as string).test(String(value)))
      return { rule: 'regex', detail: `The ${label} field format is invalid.` };
  }
  return undefined;
}

function bearer(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m?.[1];
}

/** `2024-10-24T18:04:31+00:00`, as BaseTransformer::formatTimestamp prints it. */
function panelTimestamp(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, '+00:00');
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function emptyStats(): FakePanelStats {
  return { requestsTotal: 0, byPath: {}, byStatus: {}, byPathStatus: {}, throttled: 0, windows: [], log: [] };
}

function escapeHtml(text: string): string {
  return text.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] ?? c);
}

/** The most timestamps inside any half-open window [t, t + spanMs): what a fixed window starting anywhere could count. */
export function maxInSlidingWindow(times: readonly number[], spanMs: number): number {
  const sorted = [...times].sort((a, b) => a - b);
  let max = 0;
  let start = 0;
  for (let end = 0; end < sorted.length; end++) {
    while ((sorted[end] as number) - (sorted[start] as number) >= spanMs) start++;
    max = Math.max(max, end - start + 1);
  }
  return max;
}
