/**
 * The readiness signal from a panel server object (pterodactyl-api.md §2.2), as a pure function of its attributes.
 * `status` is the authority whenever the key exists (1.3+ and Pelican); `container.installed` only on ≤1.2,
 * because on 1.3+ it reads 1 for `suspended` and, on 1.11, for `reinstall_failed`.
 */

export type InstallState = 'installed' | 'pending' | 'failed' | 'indeterminate';

/** Why the verdict was reached; stable strings for logs and metrics. */
export type InstallDetail =
  | 'status:null'
  | 'status:installing'
  | 'status:install_failed'
  | 'status:reinstall_failed'
  | 'status:restoring_backup'
  | 'status:suspended'
  | 'status:unknown'
  | 'legacy:installed'
  | 'legacy:not_installed'
  | 'no_signal';

export interface InstallVerdict {
  state: InstallState;
  /** The raw `status` value: a string, null (installed), or undefined when the key is absent (legacy panel). */
  status: string | null | undefined;
  detail: InstallDetail;
  /** True for `restoring_backup`: installed, but the panel is busy with the server right now. */
  busy: boolean;
}

/** The parts of the server attributes this decision reads; everything else is ignored. */
export interface InstallSignals {
  status?: unknown;
  container?: { installed?: unknown } | null;
  [field: string]: unknown;
}

export function readInstallState(attributes: InstallSignals): InstallVerdict {
  if (Object.hasOwn(attributes, 'status')) {
    const status = attributes.status;
    if (status === null) return verdict('installed', null, 'status:null');
    if (typeof status !== 'string') {
      // A non-string status is outside every known panel; keep polling until the deadline, like an unknown string.
      return verdict('pending', String(status), 'status:unknown');
    }
    switch (status) {
      case 'installing':
        return verdict('pending', status, 'status:installing');
      case 'install_failed':
        return verdict('failed', status, 'status:install_failed');
      case 'reinstall_failed':
        return verdict('failed', status, 'status:reinstall_failed');
      case 'restoring_backup':
        // Only reachable from null, so the install itself succeeded.
        return { state: 'installed', status, detail: 'status:restoring_backup', busy: true };
      case 'suspended':
        // Suspension overwrites the status, hiding whether the install finished or failed (§2.3).
        return verdict('indeterminate', status, 'status:suspended');
      default:
        return verdict('pending', status, 'status:unknown');
    }
  }
  const installed = attributes.container?.installed;
  if (installed === undefined || installed === null) return verdict('pending', undefined, 'no_signal');
  // ≤1.2 cannot tell "failed" from "still installing": the caller's deadline is the only way out.
  return isTruthyFlag(installed)
    ? verdict('installed', undefined, 'legacy:installed')
    : verdict('pending', undefined, 'legacy:not_installed');
}

function verdict(state: InstallState, status: string | null | undefined, detail: InstallDetail): InstallVerdict {
  return { state, status, detail, busy: false };
}

/** `container.installed` is a bool before 1.3 and an int 0/1 after; anything else counts by JS truthiness. */
function isTruthyFlag(value: unknown): boolean {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'string') return value !== '' && value !== '0' && value.toLowerCase() !== 'false';
  return Boolean(value);
}
