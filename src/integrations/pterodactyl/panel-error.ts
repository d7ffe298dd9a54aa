/**
 * Every failure of a panel call, classified once (pterodactyl-api.md §4.3) so callers decide on `reason` and
 * `retryable` alone. The message never contains the API key or request headers.
 */
export type PanelErrorReason =
  /** 429 from the panel; `retryAfterMs` says when the budget is back (the limiter is already paused). */
  | 'RATE_LIMITED'
  /** No fleet-wide request slot before the caller's deadline; nothing was sent. */
  | 'RATE_LIMIT_WAIT'
  /** The key-value store behind the limiter failed; nothing was sent. */
  | 'LIMITER_UNAVAILABLE'
  /** 404 `NotFoundHttpException`: the server is not in the panel (for DELETE: already gone). */
  | 'NOT_FOUND'
  /** 404 `DaemonConnectionException`: the panel has the server, Wings does not. */
  | 'DAEMON_NOT_FOUND'
  /** 5xx `DaemonConnectionException` (504: Wings unreachable or timed out). Reconcile with a GET. */
  | 'DAEMON_UNAVAILABLE'
  /** Another 4xx passed on from Wings. */
  | 'DAEMON_REJECTED'
  /** 409: a transfer is running, or Wings is busy with a power action. Try again later. */
  | 'CONFLICT'
  /** 503 maintenance mode. */
  | 'MAINTENANCE'
  /** 500 and any other 5xx (panel bug, database, a proxy in front of the panel). */
  | 'SERVER_ERROR'
  /** No answer within the timeout. For a mutation the outcome is unknown: re-GET. */
  | 'TIMEOUT'
  /** Connection refused, reset, DNS failure … */
  | 'CONNECTION'
  /** 401, or the redirect to the login page a panel sends when it does not see a JSON Accept. */
  | 'UNAUTHORIZED'
  /** 403: the key owner is not a root admin, the key lacks the servers permission, or the IP is not allowed. */
  | 'FORBIDDEN'
  /** 400, 405, 422: the request itself is wrong. */
  | 'BAD_REQUEST'
  /**
   * A 2xx whose body is not the expected JSON. Retryable: it is usually a truncated body or a proxy's error page
   * served with 200; a panel that is permanently incompatible runs into the caller's deadline instead.
   */
  | 'MALFORMED_RESPONSE'
  /** The caller's abort signal fired; nothing is known about the outcome. */
  | 'ABORTED'
  /** Any other status (including a 404 without the panel's error body: a wrong base URL). */
  | 'UNEXPECTED_STATUS';

const RETRYABLE: Record<PanelErrorReason, boolean> = {
  RATE_LIMITED: true,
  RATE_LIMIT_WAIT: true,
  LIMITER_UNAVAILABLE: true,
  NOT_FOUND: false,
  DAEMON_NOT_FOUND: false,
  DAEMON_UNAVAILABLE: true,
  DAEMON_REJECTED: false,
  CONFLICT: true,
  MAINTENANCE: true,
  SERVER_ERROR: true,
  TIMEOUT: true,
  CONNECTION: true,
  UNAUTHORIZED: false,
  FORBIDDEN: false,
  BAD_REQUEST: false,
  MALFORMED_RESPONSE: true,
  ABORTED: true,
  UNEXPECTED_STATUS: false,
};

export type PanelOperation =
  | 'get_server'
  | 'get_server_by_external_id'
  | 'list_servers'
  | 'delete_server'
  | 'force_delete_server'
  | 'update_startup';

export interface PanelErrorInit {
  reason: PanelErrorReason;
  operation: PanelOperation;
  serverId?: number | string;
  status?: number;
  /** `errors[0].code` of the panel's error body (exception short name). */
  code?: string;
  /** `errors[0].detail` of the panel's error body. */
  detail?: string;
  retryAfterMs?: number;
  cause?: unknown;
}

export class PanelError extends Error {
  readonly reason: PanelErrorReason;
  readonly retryable: boolean;
  readonly operation: PanelOperation;
  readonly serverId: number | string | undefined;
  readonly status: number | undefined;
  readonly code: string | undefined;
  readonly detail: string | undefined;
  readonly retryAfterMs: number | undefined;

  constructor(init: PanelErrorInit) {
    const http = init.status === undefined ? '' : ` HTTP ${init.status}`;
    const code = init.code === undefined ? '' : ` ${init.code}`;
    const detail = init.detail === undefined || init.detail === '' ? '' : `: ${init.detail}`;
    const target = init.serverId === undefined ? '' : ` ${init.serverId}`;
    super(`pterodactyl ${init.operation}${target} failed: ${init.reason}${http}${code}${detail}`, { cause: init.cause });
    this.name = 'PanelError';
    this.reason = init.reason;
    this.retryable = RETRYABLE[init.reason];
    this.operation = init.operation;
    this.serverId = init.serverId;
    this.status = init.status;
    this.code = init.code;
    this.detail = init.detail;
    this.retryAfterMs = init.retryAfterMs;
  }

  /** The fields worth a log line or an event (never the cause's internals). */
  toJSON(): Record<string, unknown> {
    return {
      name: this.name,
      reason: this.reason,
      retryable: this.retryable,
      operation: this.operation,
      serverId: this.serverId,
      status: this.status,
      code: this.code,
      retryAfterMs: this.retryAfterMs,
      message: this.message,
    };
  }
}

/** Which reason an HTTP error status (≥ 300) and the panel's `errors[0].code` mean. Pure. */
export function classifyStatus(status: number, code: string | undefined, location?: string | null): PanelErrorReason {
  if (code === 'DaemonConnectionException') {
    if (status === 404) return 'DAEMON_NOT_FOUND';
    if (status === 409) return 'CONFLICT';
    if (status >= 500) return 'DAEMON_UNAVAILABLE';
    return 'DAEMON_REJECTED';
  }
  if (status === 429) return 'RATE_LIMITED';
  if (status === 401) return 'UNAUTHORIZED';
  if (status >= 300 && status < 400) return location && /\/auth\/login\b/.test(location) ? 'UNAUTHORIZED' : 'UNEXPECTED_STATUS';
  if (status === 403) return 'FORBIDDEN';
  if (status === 404) return code === 'NotFoundHttpException' ? 'NOT_FOUND' : 'UNEXPECTED_STATUS';
  if (status === 409) return 'CONFLICT';
  if (status === 400 || status === 405 || status === 422) return 'BAD_REQUEST';
  if (status === 503 && code !== undefined && code !== 'DaemonConnectionException') return 'MAINTENANCE';
  if (status >= 500) return 'SERVER_ERROR';
  return 'UNEXPECTED_STATUS';
}

/**
 * `Retry-After` (delta seconds or an HTTP date), else `X-RateLimit-Reset` (epoch seconds), in ms from `now`.
 * Undefined when neither is usable.
 */
export function parseRetryAfterMs(retryAfter: string | null, rateLimitReset: string | null, now: number): number | undefined {
  if (retryAfter !== null && retryAfter.trim() !== '') {
    const value = retryAfter.trim();
    if (/^\d+$/.test(value)) return Number(value) * 1000;
    const date = Date.parse(value);
    if (Number.isFinite(date)) return Math.max(0, date - now);
  }
  if (rateLimitReset !== null && /^\d+$/.test(rateLimitReset.trim())) {
    return Math.max(0, Number(rateLimitReset.trim()) * 1000 - now);
  }
  return undefined;
}
