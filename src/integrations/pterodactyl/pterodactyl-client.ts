import type { Logger } from 'pino';
import type { Metrics } from '../../observability/metrics.js';
import { PanelError, classifyStatus, parseRetryAfterMs, type PanelErrorReason, type PanelOperation } from './panel-error.js';
import { panelErrorBodySchema, serverEnvelopeSchema, serverListSchema, type PanelServer, type ServerPage } from './panel-server.js';
import { RateLimitDeadlineError, type PanelRateLimiter, type SlotLane } from './rate-limiter.js';

export interface PterodactylClientOptions {
  /** PTERO_APP_URL, e.g. `https://panel.example.com` (a path prefix is kept). */
  baseUrl: string;
  /** PTERO_APP_API_KEY; only ever placed in the Authorization header. */
  apiKey: string;
  /** PTERO_TIMEOUT_MS: GETs never reach Wings, 10 s is ample. */
  timeoutMs: number;
  /** PTERO_MUTATION_TIMEOUT_MS: the panel waits up to 15 s on Wings, so ≥ 30 s. */
  mutationTimeoutMs: number;
  limiter: PanelRateLimiter;
  metrics: Pick<Metrics, 'panelRequests' | 'panelRequestSeconds'>;
  logger: Logger;
  /** Longest wait for a fleet-wide slot when the caller gives no deadline (default: 65 s, one 429 pause). */
  maxSlotWaitMs?: number;
  fetch?: typeof fetch;
}

export interface CallOptions {
  /** Absolute time on the limiter's clock; a request slot later than this fails with RATE_LIMIT_WAIT. */
  deadline?: number;
  signal?: AbortSignal;
  /** The limiter lane this request waits in (default `detection`; rate-limiter.ts). */
  lane?: SlotLane;
}

export type DeleteResult = 'deleted' | 'already_gone';

interface RawResponse {
  status: number;
  headers: Headers;
  body: string;
}

/**
 * A thin typed client of the application API (pterodactyl-api.md). Every request first takes a fleet-wide slot
 * from the limiter; every failure is a classified `PanelError`. It never retries: callers decide from `retryable`
 * and `retryAfterMs`, and after a mutation TIMEOUT they re-GET to learn what happened.
 */
export class PterodactylClient {
  private readonly base: string;
  private readonly apiKey: string;
  private readonly timeoutMs: number;
  private readonly mutationTimeoutMs: number;
  private readonly limiter: PanelRateLimiter;
  private readonly metrics: PterodactylClientOptions['metrics'];
  private readonly logger: Logger;
  private readonly maxSlotWaitMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(options: PterodactylClientOptions) {
    this.base = options.baseUrl.replace(/\/+$/, '');
    this.apiKey = options.apiKey;
    this.timeoutMs = options.timeoutMs;
    this.mutationTimeoutMs = options.mutationTimeoutMs;
    this.limiter = options.limiter;
    this.metrics = options.metrics;
    this.logger = options.logger;
    this.maxSlotWaitMs = options.maxSlotWaitMs ?? 65_000;
    this.fetchImpl = options.fetch ?? fetch;
  }

  /** GET /api/application/servers/{id}: the server's attributes (read readiness with `readInstallState`). */
  async getServer(id: number, options: CallOptions = {}): Promise<PanelServer> {
    const operation = 'get_server';
    assertServerId(id, operation);
    const response = await this.send(operation, 'GET', `/api/application/servers/${id}`, id, this.timeoutMs, options);
    if (response.status !== 200) throw this.failure(operation, id, response);
    const server = this.parseServer(operation, id, response);
    if (server.id !== id) {
      throw new PanelError({
        reason: 'MALFORMED_RESPONSE',
        operation,
        serverId: id,
        status: 200,
        detail: `answered for server ${server.id}`,
      });
    }
    return server;
  }

  /** GET /api/application/servers/external/{externalId}. */
  async getServerByExternalId(externalId: string, options: CallOptions = {}): Promise<PanelServer> {
    const operation = 'get_server_by_external_id';
    if (externalId === '') throw new PanelError({ reason: 'BAD_REQUEST', operation, detail: 'empty external id' });
    const path = `/api/application/servers/external/${encodeURIComponent(externalId)}`;
    const response = await this.send(operation, 'GET', path, externalId, this.timeoutMs, options);
    if (response.status !== 200) throw this.failure(operation, externalId, response);
    return this.parseServer(operation, externalId, response);
  }

  /**
   * GET /api/application/servers?sort=-id&per_page=…&page=…: newest servers first (docs/panel.md: `id` is one of the
   * two sorts the panel allows; `per_page` has no server-side cap, we keep it at 100).
   */
  async listServersNewestFirst(page: number, perPage: number, options: CallOptions = {}): Promise<ServerPage> {
    const operation = 'list_servers';
    if (!Number.isSafeInteger(page) || page < 1 || !Number.isSafeInteger(perPage) || perPage < 1 || perPage > 100) {
      throw new PanelError({ reason: 'BAD_REQUEST', operation, detail: `bad page ${page} / per_page ${perPage}` });
    }
    const path = `/api/application/servers?sort=-id&per_page=${perPage}&page=${page}`;
    const response = await this.send(operation, 'GET', path, `list:${page}`, this.timeoutMs, options);
    if (response.status !== 200) throw this.failure(operation, `list:${page}`, response);
    let json: unknown;
    try {
      json = JSON.parse(response.body);
    } catch {
      throw new PanelError({ reason: 'MALFORMED_RESPONSE', operation, status: 200, detail: 'body is not JSON' });
    }
    const parsed = serverListSchema.safeParse(json);
    if (!parsed.success) throw new PanelError({ reason: 'MALFORMED_RESPONSE', operation, status: 200, detail: 'not a server list' });
    const { pagination } = parsed.data.meta;
    return {
      servers: parsed.data.data.map((item) => item.attributes),
      page: pagination.current_page,
      totalPages: pagination.total_pages,
      total: pagination.total,
    };
  }

  /**
   * DELETE /api/application/servers/{id}[/force]. A panel 404 means the row is gone (Wings 404s are swallowed on
   * delete, §3), so it is `already_gone`, not an error. A non-force delete is safe to repeat after a TIMEOUT.
   */
  async deleteServer(id: number, options: CallOptions & { force?: boolean } = {}): Promise<DeleteResult> {
    const operation = options.force ? 'force_delete_server' : 'delete_server';
    assertServerId(id, operation);
    const path = `/api/application/servers/${id}${options.force ? '/force' : ''}`;
    const response = await this.send(operation, 'DELETE', path, id, this.mutationTimeoutMs, options);
    if (response.status >= 200 && response.status < 300) return 'deleted';
    const error = this.failure(operation, id, response);
    if (error.reason === 'NOT_FOUND') return 'already_gone';
    throw error;
  }

  /**
   * PATCH /api/application/servers/{id}/startup (StartupController, UpdateServerStartupRequest): `startup`, `environment`,
   * `egg`, `image` and `skip_scripts` are all required. The panel validates `environment` against the egg's variables,
   * stores a value for every one of them (a variable left out is blanked) and ignores names the egg does not define;
   * it answers 200 with the updated server. Repeating it with the same body is harmless (after a TIMEOUT too).
   * `secrets` are cut out of any panel detail that could echo them.
   */
  async updateStartup(
    id: number,
    update: StartupUpdate,
    options: CallOptions & { secrets?: readonly string[] } = {},
  ): Promise<PanelServer> {
    const operation = 'update_startup';
    assertServerId(id, operation);
    const path = `/api/application/servers/${id}/startup`;
    const body = JSON.stringify(update);
    const response = await this.send(operation, 'PATCH', path, id, this.mutationTimeoutMs, options, body);
    const secrets = options.secrets ?? [];
    if (response.status !== 200) throw this.failure(operation, id, response, secrets);
    return this.parseServer(operation, id, response);
  }

  private async send(
    operation: PanelOperation,
    method: 'GET' | 'DELETE' | 'PATCH',
    path: string,
    serverId: number | string,
    timeoutMs: number,
    options: CallOptions,
    body?: string,
  ): Promise<RawResponse> {
    await this.takeSlot(operation, serverId, options);

    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    const started = performance.now();
    let response: RawResponse;
    try {
      const res = await this.fetchImpl(`${this.base}${path}`, {
        method,
        headers: {
          Accept: 'application/json',
          Authorization: `Bearer ${this.apiKey}`,
          'User-Agent': 'flocknode-workers',
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        ...(body === undefined ? {} : { body }),
        redirect: 'manual',
        signal,
      });
      response = { status: res.status, headers: res.headers, body: await res.text() };
    } catch (cause) {
      const reason: PanelErrorReason = timeout.aborted ? 'TIMEOUT' : options.signal?.aborted ? 'ABORTED' : 'CONNECTION';
      const label = reason === 'TIMEOUT' ? 'timeout' : reason === 'ABORTED' ? 'aborted' : 'connection_error';
      this.record(operation, label, started);
      const detail =
        reason === 'TIMEOUT' ? `no answer within ${timeoutMs} ms` : reason === 'CONNECTION' ? describeNetworkError(cause) : undefined;
      this.logger.warn({ operation, serverId, reason }, 'pterodactyl request failed');
      throw new PanelError({ reason, operation, serverId, detail: detail && this.redact(detail) });
    }
    this.record(operation, String(response.status), started);
    await this.feedLimiter(operation, serverId, response);
    this.logger.debug({ operation, serverId, status: response.status }, 'pterodactyl request');
    return response;
  }

  private async takeSlot(operation: PanelOperation, serverId: number | string, options: CallOptions): Promise<void> {
    try {
      await this.limiter.acquire({
        deadline: options.deadline,
        maxWaitMs: this.maxSlotWaitMs,
        signal: options.signal,
        lane: options.lane,
      });
    } catch (cause) {
      if (options.signal?.aborted) {
        this.metrics.panelRequests.inc({ operation, status: 'aborted' });
        throw new PanelError({ reason: 'ABORTED', operation, serverId, cause });
      }
      const waitExpired = cause instanceof RateLimitDeadlineError;
      this.metrics.panelRequests.inc({ operation, status: waitExpired ? 'rate_limit_wait' : 'limiter_error' });
      throw new PanelError({
        reason: waitExpired ? 'RATE_LIMIT_WAIT' : 'LIMITER_UNAVAILABLE',
        operation,
        serverId,
        detail: waitExpired ? undefined : this.redact(cause instanceof Error ? cause.message : String(cause)),
        cause,
      });
    }
  }

  /** A 429 pauses the whole fleet until the panel's window resets; `Remaining: 0` pauses it briefly. */
  private async feedLimiter(operation: PanelOperation, serverId: number | string, response: RawResponse): Promise<void> {
    try {
      if (response.status === 429) {
        const retryAfterMs = this.retryAfterMs(response);
        this.logger.warn({ operation, serverId, retryAfterMs }, 'pterodactyl rate limit hit; pausing the fleet');
        await this.limiter.pauseFor(retryAfterMs);
        return;
      }
      const remaining = response.headers.get('x-ratelimit-remaining');
      if (remaining !== null && /^\d+$/.test(remaining.trim())) await this.limiter.observeRemaining(Number(remaining));
    } catch (error) {
      // The response itself is still good; a lost pause only risks one more 429.
      this.logger.warn({ operation, serverId, err: errorSummary(error) }, 'could not update the panel rate limiter');
    }
  }

  private retryAfterMs(response: RawResponse): number {
    const parsed = parseRetryAfterMs(response.headers.get('retry-after'), response.headers.get('x-ratelimit-reset'), Date.now());
    return parsed ?? this.limiter.windowMs;
  }

  private parseServer(operation: PanelOperation, serverId: number | string, response: RawResponse): PanelServer {
    let json: unknown;
    try {
      json = JSON.parse(response.body);
    } catch {
      this.logger.warn({ operation, serverId, status: response.status, bytes: response.body.length }, 'pterodactyl body is not JSON');
      throw new PanelError({ reason: 'MALFORMED_RESPONSE', operation, serverId, status: response.status, detail: 'body is not JSON' });
    }
    const parsed = serverEnvelopeSchema.safeParse(json);
    if (!parsed.success) {
      const where = parsed.error.issues
        .map((i) => i.path.join('.') || '(root)')
        .slice(0, 5)
        .join(', ');
      this.logger.warn({ operation, serverId, fields: where }, 'pterodactyl server object has an unexpected shape');
      throw new PanelError({
        reason: 'MALFORMED_RESPONSE',
        operation,
        serverId,
        status: response.status,
        detail: `unexpected shape at ${where}`,
      });
    }
    return parsed.data.attributes;
  }

  private failure(
    operation: PanelOperation,
    serverId: number | string,
    response: RawResponse,
    secrets: readonly string[] = [],
  ): PanelError {
    const first = parseErrorBody(response.body);
    const detail = first?.detail === undefined ? undefined : redactAll(this.redact(first.detail), secrets).slice(0, 500);
    const reason = classifyStatus(response.status, first?.code, response.headers.get('location'));
    return new PanelError({
      reason,
      operation,
      serverId,
      status: response.status,
      code: first?.code,
      detail,
      retryAfterMs: reason === 'RATE_LIMITED' ? this.retryAfterMs(response) : undefined,
    });
  }

  private record(operation: PanelOperation, status: string, started: number): void {
    this.metrics.panelRequests.inc({ operation, status });
    this.metrics.panelRequestSeconds.observe({ operation }, (performance.now() - started) / 1000);
  }

  /** Belt and braces: nothing the panel or the network stack says may echo the key into a message. */
  private redact(text: string): string {
    return this.apiKey === '' ? text : text.split(this.apiKey).join('[redacted]');
  }
}

/** The body of the startup update: every field UpdateServerStartupRequest requires. */
export interface StartupUpdate {
  startup: string;
  environment: Record<string, string>;
  egg: number;
  image: string;
  skip_scripts: boolean;
}

function redactAll(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const secret of secrets) if (secret !== '') out = out.split(secret).join('[redacted]');
  return out;
}

function assertServerId(id: number, operation: PanelOperation): void {
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new PanelError({ reason: 'BAD_REQUEST', operation, detail: `not a panel server id: ${String(id)}` });
  }
}

function parseErrorBody(body: string): { code?: string; detail?: string } | undefined {
  try {
    const parsed = panelErrorBodySchema.safeParse(JSON.parse(body));
    return parsed.success ? parsed.data.errors[0] : undefined;
  } catch {
    return undefined;
  }
}

/** undici reports "fetch failed" with the useful part (ECONNREFUSED, ECONNRESET, ENOTFOUND …) in the cause. */
function describeNetworkError(error: unknown): string {
  const cause = error instanceof Error ? (error.cause as { code?: unknown; message?: unknown } | undefined) : undefined;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return error instanceof Error ? error.message : String(error);
}

function errorSummary(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}
