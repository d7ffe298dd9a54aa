import {
  LISTING_PAGE_SIZE,
  type CleanupResult,
  type ListingResult,
  type PanelPort,
  type VariableUpdateResult,
} from '../../provisioning/panel.port.js';
import type { PanelObservation } from '../../provisioning/policy.js';
import { readInstallState } from './install-status.js';
import { PanelError } from './panel-error.js';
import type { PanelServer } from './panel-server.js';
import type { PterodactylClient } from './pterodactyl-client.js';

const PER_PAGE = LISTING_PAGE_SIZE;
/**
 * A server object read this recently (by a poll or a listing) stands in for the startup update's GET. 60 s: at a
 * fleet of 200 installs a delivery waits tens of seconds for its panel slot, and a shorter window made most of
 * them pay the GET again (docs/panel.md, "Startup variables"). Nothing but an admin edits a server that is still
 * installing, and the PATCH would overwrite a concurrent edit with a fresh GET too.
 */
export const RECENT_MS = 60_000;
const RECENT_MAX = 5_000;
/** Reasons after which listing cannot work on this panel until someone changes it (403 ACL, no route, no sort). */
const UNUSABLE: ReadonlySet<string> = new Set(['FORBIDDEN', 'NOT_FOUND', 'BAD_REQUEST', 'UNAUTHORIZED', 'MALFORMED_RESPONSE']);

/** Provisioning's PanelPort on the Pterodactyl client: every outcome becomes plain data for the policy. */
export class PterodactylPanel implements PanelPort {
  /** Server objects this process read lately (id → object, when): the startup update reuses them (docs/panel.md). */
  private readonly recent = new Map<number, { server: PanelServer; at: number }>();

  constructor(
    private readonly client: PterodactylClient,
    private readonly maxListPages = 20,
    /** PANEL_SKIP_SCRIPTS: the startup update must name it; the panel's API never shows the server's value. */
    private readonly skipScripts = false,
    private readonly now: () => number = Date.now,
  ) {}

  private remember(server: PanelServer): void {
    if (this.recent.size >= RECENT_MAX) {
      const oldest = this.recent.keys().next();
      if (!oldest.done) this.recent.delete(oldest.value);
    }
    this.recent.delete(server.id);
    this.recent.set(server.id, { server, at: this.now() });
  }

  /** The server as a poll or listing saw it within RECENT_MS, else a fresh GET (one panel request saved per delivery). */
  private async startupSource(panelServerId: number, deadline: number): Promise<PanelServer> {
    const seen = this.recent.get(panelServerId);
    this.recent.delete(panelServerId);
    if (seen && this.now() - seen.at <= RECENT_MS) return seen.server;
    return this.client.getServer(panelServerId, { deadline, lane: 'delivery' });
  }

  /**
   * GET the server (its startup command, egg, image and environment), then PATCH its startup with the same values and
   * these variables merged in: the panel requires every field and blanks the egg variables a request leaves out.
   * The answer is read back; a variable it does not show means the egg does not define it (the panel ignores it).
   */
  async updateVariables(
    panelServerId: number,
    variables: Readonly<Record<string, string>>,
    deadline: number,
  ): Promise<VariableUpdateResult> {
    const secrets = Object.values(variables);
    try {
      const server = await this.startupSource(panelServerId, deadline);
      const container = server.container;
      if (!container || typeof container.startup_command !== 'string' || typeof container.image !== 'string' || server.egg === undefined) {
        return {
          kind: 'error',
          retryable: false,
          reason: 'MALFORMED_RESPONSE',
          detail: 'the server object has no startup command, image or egg',
        };
      }
      const updated = await this.client.updateStartup(
        panelServerId,
        {
          startup: container.startup_command,
          environment: { ...eggEnvironment(container.environment), ...variables },
          egg: server.egg,
          image: container.image,
          skip_scripts: this.skipScripts,
        },
        { deadline, secrets, lane: 'delivery' },
      );
      const stored = updated.container?.environment ?? {};
      const missing = Object.entries(variables)
        .filter(([name, value]) => stored[name] !== value)
        .map(([name]) => name);
      if (missing.length > 0) {
        return {
          kind: 'error',
          retryable: false,
          reason: 'VARIABLE_NOT_IN_EGG',
          status: 200,
          detail: `the panel did not store ${missing.join(', ')}: the server's egg (${server.egg}) has no such variable`,
        };
      }
      return { kind: 'updated' };
    } catch (error) {
      if (!(error instanceof PanelError)) throw error;
      return {
        kind: 'error',
        retryable: error.retryable,
        reason: error.reason,
        ...(error.status === undefined ? {} : { status: error.status }),
        ...(error.detail === undefined ? {} : { detail: error.detail }),
        ...(error.retryAfterMs === undefined ? {} : { retryAfterMs: error.retryAfterMs }),
      };
    }
  }

  async observe(panelServerId: number, deadline: number): Promise<PanelObservation> {
    try {
      const server = await this.client.getServer(panelServerId, { deadline, lane: 'detection' });
      this.remember(server);
      return installObservation(server);
    } catch (error) {
      if (!(error instanceof PanelError)) throw error;
      if (error.reason === 'NOT_FOUND') return { kind: 'not_found' };
      return error.retryable
        ? {
            kind: 'error',
            retryable: true,
            reason: error.reason,
            ...(error.retryAfterMs !== undefined ? { retryAfterMs: error.retryAfterMs } : {}),
          }
        : { kind: 'error', retryable: false, reason: error.reason };
    }
  }

  /**
   * Pages `sort=-id` (newest first) until past the oldest watched id. Ids must fall strictly page over page (equal
   * allowed across a page boundary: a server created between pages shifts one row down); otherwise the panel
   * does not sort and the listing is unusable. A server deleted between pages can shift a watched row past us:
   * it is then merely not seen, and the caller confirms it with a GET.
   */
  async observeMany(panelServerIds: readonly number[], deadline: number): Promise<ListingResult> {
    const watched = new Set(panelServerIds);
    const oldest = Math.min(...panelServerIds);
    const seen = new Map<number, PanelObservation>();
    let requests = 0;
    let lastId = Number.POSITIVE_INFINITY;
    for (let page = 1; page <= this.maxListPages && watched.size > 0; page++) {
      let result: Awaited<ReturnType<typeof this.client.listServersNewestFirst>>;
      try {
        requests++;
        result = await this.client.listServersNewestFirst(page, PER_PAGE, { deadline, lane: 'listing' });
      } catch (error) {
        if (!(error instanceof PanelError)) throw error;
        return { kind: UNUSABLE.has(error.reason) ? 'unusable' : 'retry', reason: error.reason, requests };
      }
      for (const [index, server] of result.servers.entries()) {
        const previous = index === 0 ? lastId : (result.servers[index - 1] as PanelServer).id;
        if (index === 0 ? server.id > previous : server.id >= previous) return { kind: 'unusable', reason: 'LISTING_NOT_SORTED', requests };
        // Every listed server is remembered, watched or not: a server detected as installed is no longer watched,
        // but its key delivery may still be waiting for a slot, and the listing keeps its object fresh for free.
        this.remember(server);
        if (watched.has(server.id)) seen.set(server.id, installObservation(server));
      }
      const last = result.servers.at(-1);
      if (!last || last.id <= oldest || result.page >= result.totalPages) break;
      lastId = last.id;
    }
    return { kind: 'listed', seen, requests };
  }

  async remove(panelServerId: number, deadline: number): Promise<CleanupResult> {
    try {
      const result = await this.client.deleteServer(panelServerId, { deadline, lane: 'cleanup' });
      return { kind: result };
    } catch (error) {
      if (!(error instanceof PanelError)) throw error;
      return { kind: 'error', retryable: error.retryable, reason: error.reason };
    }
  }
}

/** The listing and the single GET serve the same transformer (docs/panel.md), so both read the same way. */
function installObservation(server: PanelServer): PanelObservation {
  const verdict = readInstallState(server);
  return {
    kind: 'install',
    state: verdict.state,
    status: typeof verdict.status === 'string' || verdict.status === null ? verdict.status : undefined,
  };
}

/** The egg variables' values as the panel shows them: its own additions (STARTUP, P_SERVER_*) are not variables. */
function eggEnvironment(environment: Record<string, unknown> | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(environment ?? {})) {
    if (name === 'STARTUP' || name.startsWith('P_SERVER_')) continue;
    out[name] = value === null || value === undefined ? '' : String(value);
  }
  return out;
}
