import { LISTING_PAGE_SIZE, type CleanupResult, type ListingResult, type PanelPort } from '../../provisioning/panel.port.js';
import type { PanelObservation } from '../../provisioning/policy.js';
import { readInstallState } from './install-status.js';
import { PanelError } from './panel-error.js';
import type { PanelServer } from './panel-server.js';
import type { PterodactylClient } from './pterodactyl-client.js';

const PER_PAGE = LISTING_PAGE_SIZE;
/** Reasons after which listing cannot work on this panel until someone changes it (403 ACL, no route, no sort). */
const UNUSABLE: ReadonlySet<string> = new Set(['FORBIDDEN', 'NOT_FOUND', 'BAD_REQUEST', 'UNAUTHORIZED', 'MALFORMED_RESPONSE']);

/** Provisioning's PanelPort on the Pterodactyl client: every outcome becomes plain data for the policy. */
export class PterodactylPanel implements PanelPort {
  constructor(
    private readonly client: PterodactylClient,
    private readonly maxListPages = 20,
  ) {}

  async observe(panelServerId: number, deadline: number): Promise<PanelObservation> {
    try {
      return installObservation(await this.client.getServer(panelServerId, { deadline }));
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
        result = await this.client.listServersNewestFirst(page, PER_PAGE, { deadline });
      } catch (error) {
        if (!(error instanceof PanelError)) throw error;
        return { kind: UNUSABLE.has(error.reason) ? 'unusable' : 'retry', reason: error.reason, requests };
      }
      for (const [index, server] of result.servers.entries()) {
        const previous = index === 0 ? lastId : (result.servers[index - 1] as PanelServer).id;
        if (index === 0 ? server.id > previous : server.id >= previous) return { kind: 'unusable', reason: 'LISTING_NOT_SORTED', requests };
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
      const result = await this.client.deleteServer(panelServerId, { deadline });
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
