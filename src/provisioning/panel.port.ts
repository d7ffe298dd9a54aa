import type { CleanupResult, PanelObservation } from './policy.js';

export type { CleanupResult };

/** What provisioning needs from the game-server panel (implemented in integrations/pterodactyl/panel.adapter.ts). */
export interface PanelPort {
  /** One look at the server; waits for a fleet-wide request slot no later than `deadline`. */
  observe(panelServerId: number, deadline: number): Promise<PanelObservation>;
  /** Deletes the server; a server the panel does not know counts as already gone. */
  remove(panelServerId: number, deadline: number): Promise<CleanupResult>;
}

export const PANEL_PORT = Symbol('PanelPort');
