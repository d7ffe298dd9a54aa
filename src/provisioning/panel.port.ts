import type { CleanupResult, PanelObservation } from './policy.js';

export type { CleanupResult };

/**
 * One coalesced look at many servers. `listed`: what the listing showed for the servers it saw (a server not in
 * `seen` proves nothing: confirm it with `observe`). `unusable`: the panel cannot answer by listing (permissions,
 * no such route, no sorting, odd body): fall back to per-server polling for a while. `retry`: a passing fault.
 */
export type ListingResult =
  | { kind: 'listed'; seen: Map<number, PanelObservation>; requests: number }
  | { kind: 'unusable' | 'retry'; reason: string; requests: number };

/** Servers per listing page (the most the panel's client API allows; docs/panel.md). */
export const LISTING_PAGE_SIZE = 100;

/**
 * One attempt to set startup variables on a server. `updated`: the panel stored every variable given (read back
 * from its answer). `error`: it did not; `retryable` says whether trying again can help, `reason` is the classified
 * cause (`VARIABLE_NOT_IN_EGG` when the panel accepted the update but the server's egg has no such variable).
 */
export type VariableUpdateResult =
  | { kind: 'updated' }
  | { kind: 'error'; retryable: boolean; reason: string; status?: number; detail?: string; retryAfterMs?: number };

/** What provisioning needs from the game-server panel (implemented in integrations/pterodactyl/panel.adapter.ts). */
export interface PanelPort {
  /** One look at the server; waits for a fleet-wide request slot no later than `deadline`. */
  observe(panelServerId: number, deadline: number): Promise<PanelObservation>;
  /** Looks at many servers with as few listing requests as the panel allows (docs/panel.md); every page's slot by `deadline`. */
  observeMany?(panelServerIds: readonly number[], deadline: number): Promise<ListingResult>;
  /** Deletes the server; a server the panel does not know counts as already gone. */
  remove(panelServerId: number, deadline: number): Promise<CleanupResult>;
  /**
   * Sets these startup variables on the server, keeping every other variable, its startup command, egg and image as
   * the panel has them (docs/panel.md). The values may be secrets: they appear in no log line or error detail.
   * Absent: the panel cannot deliver variables (admin keys are then never delivered).
   */
  updateVariables?(panelServerId: number, variables: Readonly<Record<string, string>>, deadline: number): Promise<VariableUpdateResult>;
}

export const PANEL_PORT = Symbol('PanelPort');
