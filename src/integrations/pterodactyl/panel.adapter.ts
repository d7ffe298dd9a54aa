import type { CleanupResult, PanelPort } from '../../provisioning/panel.port.js';
import type { PanelObservation } from '../../provisioning/policy.js';
import { readInstallState } from './install-status.js';
import { PanelError } from './panel-error.js';
import type { PterodactylClient } from './pterodactyl-client.js';

/** Provisioning's PanelPort on the Pterodactyl client: every outcome becomes plain data for the policy. */
export class PterodactylPanel implements PanelPort {
  constructor(private readonly client: PterodactylClient) {}

  async observe(panelServerId: number, deadline: number): Promise<PanelObservation> {
    try {
      const server = await this.client.getServer(panelServerId, { deadline });
      const verdict = readInstallState(server);
      return {
        kind: 'install',
        state: verdict.state,
        status: typeof verdict.status === 'string' || verdict.status === null ? verdict.status : undefined,
      };
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
