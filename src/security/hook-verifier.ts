/**
 * HookVerifier: the whole of hmac-v1.md's "order of checks", independent of any HTTP framework.
 *
 * Give it what the transport saw (socket address, raw headers, raw body bytes) and it answers either the
 * verified, frozen body or a status with a reason code. Checks run cheap first; the nonce is spent last, so a
 * request that fails any other check never burns its nonce. The reason code goes to metrics, logs and the
 * security event sink; callers send every 401 with one identical body.
 *
 * Never logged or emitted: secrets, expected signatures, the received signature, request bodies.
 */
import { createHmac, createSecretKey, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../infra/clock.js';
import { type Dependency, dependencyOutage, OUTAGE_RETRY_AFTER_S } from '../infra/faults/outage.js';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { CidrList, resolveClientAddress } from './cidr.js';
import { KeyLookupUnavailable, kindOfPrefix, type KeyDirectory, type KeyKind, type KeyRecord } from './keys.js';
import {
  HEADER_KEY_ID,
  HEADER_NONCE,
  HEADER_SIGNATURE,
  HEADER_TS,
  KEY_ID_PATTERN,
  NONCE_PATTERN,
  SIGNATURE_PATTERN,
  TS_PATTERN,
  canonicalString,
  hmacDigest,
  checkBinding,
  parseKeyId,
  type KeyPrefix,
} from './signer.js';
import { CONTAINER, canonicalizeStrictJson, type CanonicalJson, type TopValue } from './strict-jcs.js';
import { StrictJsonError, parseStrictJson, type JsonObject, type StrictJsonReason } from './strict-json.js';

export { CONTAINER, type TopValue };

/** The two hook routes (SPEC §5). */
export type HookRoute = 'admin' | 'overlay';

/**
 * A verified call whose `body` tree and `fields` record are built only when someone reads them (verification
 * itself never does: on a body with many root members, making the record costs as much as the rest of the check).
 */
class LazyVerifiedHook implements VerifiedHook {
  readonly ok = true as const;
  readonly kind: KeyKind;
  readonly canonicalBody: string;
  readonly hasNul: boolean;
  #body: JsonObject | undefined;

  constructor(
    readonly keyId: string,
    prefix: KeyPrefix,
    readonly matchId: string,
    readonly type: string,
    private readonly parsed: CanonicalJson,
    readonly ts: number,
    readonly nonce: string,
    readonly remoteAddress: string,
    readonly requestId: string,
  ) {
    this.kind = kindOfPrefix(prefix);
    this.canonicalBody = parsed.canonical;
    this.hasNul = parsed.hasNul;
  }

  get body(): JsonObject {
    if (this.#body === undefined) this.#body = parseStrictJson(this.canonicalBody) as JsonObject;
    return this.#body;
  }

  get fields(): Readonly<Record<string, TopValue>> {
    return this.parsed.top;
  }
}

const EMPTY_BODY = Buffer.alloc(0);

/** Which keys and body types each route takes. */
export interface RoutePolicy {
  readonly keyPrefix: KeyPrefix;
  readonly types: ReadonlySet<string>;
}

/**
 * Admin route: only `admin.hooks.ok`, the readiness signal the provisioning worker waits for. No other admin
 * plugin message has a consumer yet; accepting types nobody handles would only widen the surface.
 */
export const ROUTE_POLICIES: Readonly<Record<HookRoute, RoutePolicy>> = Object.freeze({
  admin: { keyPrefix: 'adm', types: new Set(['admin.hooks.ok']) },
  overlay: {
    keyPrefix: 'ovl',
    types: new Set(['overlay.connected', 'overlay.heartbeat', 'overlay.disconnected', 'gameplay.progress']),
  },
});

export type FailureStatus = 400 | 401 | 403 | 413 | 415 | 429 | 503;

/** Every reason a request can be refused for (the `reason` label of flock_hmac_verifications_total). */
export type HmacFailureReason =
  // step 1 → 403
  | 'CLIENT_ADDRESS_UNKNOWN'
  | 'ADDRESS_NOT_ALLOWED'
  // step 2 → 415 / 413 / 400
  | 'CONTENT_ENCODING_UNSUPPORTED'
  | 'CONTENT_TYPE_UNSUPPORTED'
  | 'BODY_TOO_LARGE'
  | 'CONTENT_LENGTH_INVALID'
  // step 3 → 401
  | 'HEADER_MISSING'
  | 'HEADER_REPEATED'
  | 'KEY_ID_MALFORMED'
  | 'TS_MALFORMED'
  | 'NONCE_MALFORMED'
  | 'SIGNATURE_MALFORMED'
  | 'KEY_WRONG_ROUTE'
  // step 4 → 401
  | 'TS_OUT_OF_WINDOW'
  // step 5 → 401
  | 'KEY_UNKNOWN'
  | 'KEY_REVOKED'
  | 'KEY_EXPIRED'
  | 'KEY_NOT_YET_VALID'
  | 'KEY_KIND_DISABLED'
  // step 6 → 400, then binding → 401
  | `JSON_${StrictJsonReason}`
  | 'BODY_NOT_OBJECT'
  | 'BODY_TYPE_INVALID'
  | 'BODY_MATCH_ID_INVALID'
  | 'MATCH_ID_MISMATCH'
  | 'TYPE_NOT_ALLOWED'
  // step 7 → 401
  | 'SIGNATURE_MISMATCH'
  // step 8 → 401 / 503
  | 'REPLAY'
  | 'STORE_UNAVAILABLE';

/** Header values as Node gives them (`IncomingHttpHeaders`), or any record of them, names in any case. */
export type HeaderBag = Readonly<Record<string, string | readonly string[] | undefined>>;

/** One request, as the transport received it. */
export interface HookRequest {
  readonly route: HookRoute;
  /** The TCP peer address (`socket.remoteAddress`). */
  readonly remoteAddress: string | undefined;
  readonly headers: HeaderBag;
  /** Node's `rawHeaders` (name, value, name, value…): lets repeated headers be seen even when Node merged them. */
  readonly rawHeaders?: readonly string[];
  /** The body bytes exactly as received; undefined or empty when there was none. */
  readonly rawBody: Buffer | undefined;
  /** Set by the transport when it stopped reading a body past the limit (the body is then not available). */
  readonly bodyTooLarge?: boolean;
  /** Overrides for the declared values; by default they are read from `headers`. */
  readonly contentType?: string;
  readonly contentLength?: string;
  readonly contentEncoding?: string;
  /** Correlation id for logs and events; a UUID is generated when absent. */
  readonly requestId?: string;
}

export interface VerifiedHook {
  readonly ok: true;
  readonly keyId: string;
  readonly kind: KeyKind;
  readonly matchId: string;
  readonly type: string;
  /**
   * The verified body, deeply frozen, objects with a null prototype. Built on first use from `canonicalBody` (the
   * signed text) by the strict parser; never re-parse the raw body.
   */
  readonly body: JsonObject;
  /** RFC 8785 form of the body: exactly what was signed, and valid JSON to store. */
  readonly canonicalBody: string;
  /** The body's members whose values are scalars (containers as {@link CONTAINER}); null prototype. */
  readonly fields: Readonly<Record<string, TopValue>>;
  /** Some string or member name in the body holds U+0000. */
  readonly hasNul: boolean;
  readonly ts: number;
  readonly nonce: string;
  readonly remoteAddress: string;
  readonly requestId: string;
}

export interface VerificationFailure {
  readonly ok: false;
  readonly status: FailureStatus;
  readonly reason: HmacFailureReason | 'RATE_LIMITED';
  /** For 429: the reason the request itself failed. For header failures: the header's name. */
  readonly detail?: string;
  /** For 429: when the window ends; for 503: when to try again. */
  readonly retryAfterMs?: number;
  /** For 503: the dependency that failed (the key record's PostgreSQL row, or Redis: cache, nonces, counters). */
  readonly dependency?: Dependency;
  readonly requestId: string;
}

export type VerificationResult = VerifiedHook | VerificationFailure;

/** A refused request, as reported to the security event sink (and from there `hmac.verification.failed`). */
export interface VerificationFailedEvent {
  readonly reason: HmacFailureReason;
  readonly status: FailureStatus;
  readonly detail?: string;
  readonly keyId?: string;
  readonly matchId?: string;
  readonly remoteAddress: string;
  readonly route: HookRoute;
  readonly requestId: string;
  readonly at: number;
}

/** A correctly signed request whose nonce was already spent (→ `replay.attack.detected`). */
export interface ReplayDetectedEvent {
  readonly keyId: string;
  readonly matchId: string;
  readonly nonce: string;
  readonly type: string;
  readonly ts: number;
  readonly remoteAddress: string;
  readonly route: HookRoute;
  readonly requestId: string;
  readonly at: number;
}

/**
 * Replays of one key that arrived past the failure budget (answered 429), summed over one failure window: the
 * detection is never dropped, only the per-request event is (→ one `replay.attack.detected` with `summary: true`).
 */
export interface ReplaySummaryEvent {
  readonly keyId: string;
  readonly matchId: string;
  readonly route: HookRoute;
  readonly count: number;
  readonly firstAt: number;
  readonly lastAt: number;
  /** Up to 10 distinct client addresses the replays came from. */
  readonly remoteAddresses: readonly string[];
}

/**
 * Where security events go (the composition root wires it to the outbox). Called at most `failureLimit` times per
 * address or key id per window; errors it throws are logged and never change the answer. A replay is reported
 * through `onReplayDetected`, or, past the failure budget, summed into `onReplaysSummarized`.
 */
export interface SecurityEventSink {
  onVerificationFailed(event: VerificationFailedEvent): void | Promise<void>;
  onReplayDetected(event: ReplayDetectedEvent): void | Promise<void>;
  onReplaysSummarized(summary: ReplaySummaryEvent): void | Promise<void>;
}

export interface HookVerifierSettings {
  /** MAX_SKEW_MS */
  readonly maxSkewMs: number;
  /** MAX_BODY_BYTES */
  readonly maxBodyBytes: number;
  /** HMAC_ALLOWED_CIDRS */
  readonly allowedCidrs: readonly string[];
  /** TRUST_PROXY (empty: the socket address is the client). */
  readonly trustProxy: readonly string[];
  /** Failures per address or key id per window before failures are answered 429 (default 20). */
  readonly failureLimit?: number;
  /** Length of the failure-counting window (default 60 000 ms). */
  readonly failureWindowMs?: number;
  /** Valid calls per key id per budget window before further calls are answered 429 (HMAC_KEY_BUDGET, default 300). */
  readonly keyBudget?: number;
  /** Length of the per-key budget window (HMAC_KEY_BUDGET_WINDOW_MS, default 10 000 ms). */
  readonly keyBudgetWindowMs?: number;
}

export interface HookVerifierDeps {
  readonly keys: KeyDirectory;
  /** Nonces and failure counters. */
  readonly kv: KeyValueStore;
  readonly clock: Clock;
  readonly settings: HookVerifierSettings;
  readonly metrics?: Pick<Metrics, 'hmacVerifications' | 'replaysDetected' | 'dependencyUnavailable'>;
  readonly sink?: SecurityEventSink;
  readonly logger?: Logger;
}

/** Builds verifier settings from the service configuration. */
export function verifierSettingsFromConfig(config: {
  MAX_SKEW_MS: number;
  MAX_BODY_BYTES: number;
  HMAC_ALLOWED_CIDRS: readonly string[];
  TRUST_PROXY: readonly string[];
  HMAC_FAILURE_LIMIT_PER_MIN: number;
  HMAC_KEY_BUDGET: number;
  HMAC_KEY_BUDGET_WINDOW_MS: number;
}): HookVerifierSettings {
  return {
    maxSkewMs: config.MAX_SKEW_MS,
    maxBodyBytes: config.MAX_BODY_BYTES,
    allowedCidrs: config.HMAC_ALLOWED_CIDRS,
    trustProxy: config.TRUST_PROXY,
    failureLimit: config.HMAC_FAILURE_LIMIT_PER_MIN,
    keyBudget: config.HMAC_KEY_BUDGET,
    keyBudgetWindowMs: config.HMAC_KEY_BUDGET_WINDOW_MS,
  };
}

/** Nonces outlive every timestamp that could still pass the skew check: 2·skew plus 10 s (hmac-v1.md step 8). */
export function nonceTtlMs(maxSkewMs: number): number {
  return 2 * maxSkewMs + 10_000;
}

export function nonceKey(keyId: string, nonce: string): string {
  return `hmac:nonce:${keyId}:${nonce}`;
}

const DEFAULT_FAILURE_LIMIT = 20;
const DEFAULT_FAILURE_WINDOW_MS = 60_000;
const DEFAULT_KEY_BUDGET = 300;
const DEFAULT_KEY_BUDGET_WINDOW_MS = 10_000;
const MAX_SUMMARY_ADDRESSES = 10;
const MAX_MEMOISED_PEERS = 4096;

interface ReplayTally {
  readonly keyId: string;
  readonly matchId: string;
  readonly route: HookRoute;
  count: number;
  readonly firstAt: number;
  lastAt: number;
  readonly remoteAddresses: Set<string>;
}

/** What is known about a request so far, for reporting a failure. */
interface Context {
  readonly route: HookRoute;
  readonly requestId: string;
  remoteAddress: string;
  /** The address to count failures against (only once it is known). */
  counterAddress?: string;
  keyId?: string;
  matchId?: string;
}

type HeaderRead = { ok: true; value: string } | { ok: false; reason: 'HEADER_MISSING' | 'HEADER_REPEATED' };

export class HookVerifier {
  private readonly allowed: CidrList;
  private readonly trustedProxies: CidrList;
  private readonly failureLimit: number;
  private readonly failureWindowMs: number;
  private readonly keyBudget: number;
  private readonly keyBudgetWindowMs: number;
  /** Socket address → client address and allowlist decision (only without trusted proxies). */
  private readonly peers = new Map<string, { ok: false } | { ok: true; address: string; allowed: boolean }>();
  /** Replays past the failure budget, per key id, until the next summary. */
  private readonly suppressedReplays = new Map<string, ReplayTally>();
  private summaryTimer: NodeJS.Timeout | undefined;
  /**
   * Used for the dummy HMAC on key failures, so every key failure costs the same as a real check. A KeyObject, as
   * real secrets are: on Node 24 a Buffer key makes createHmac about 10 µs slower, which would set key failures apart.
   */
  private readonly dummyKey = createSecretKey(randomBytes(32));

  constructor(private readonly deps: HookVerifierDeps) {
    this.allowed = new CidrList(deps.settings.allowedCidrs);
    this.trustedProxies = new CidrList(deps.settings.trustProxy);
    this.failureLimit = deps.settings.failureLimit ?? DEFAULT_FAILURE_LIMIT;
    this.failureWindowMs = deps.settings.failureWindowMs ?? DEFAULT_FAILURE_WINDOW_MS;
    this.keyBudget = deps.settings.keyBudget ?? DEFAULT_KEY_BUDGET;
    this.keyBudgetWindowMs = deps.settings.keyBudgetWindowMs ?? DEFAULT_KEY_BUDGET_WINDOW_MS;
  }

  async verify(request: HookRequest): Promise<VerificationResult> {
    const { settings, clock } = this.deps;
    const policy = ROUTE_POLICIES[request.route];
    const ctx: Context = {
      route: request.route,
      requestId: request.requestId ?? randomUUID(),
      remoteAddress: request.remoteAddress ?? 'unknown',
    };

    // 1. Network: the client address must be allowlisted.
    const index = new HeaderIndex(request.headers, request.rawHeaders);
    const client = this.clientOf(request, index);
    if (!client.ok) return this.reject(ctx, 403, 'CLIENT_ADDRESS_UNKNOWN');
    ctx.remoteAddress = client.address;
    ctx.counterAddress = client.address;
    if (!client.allowed) return this.reject(ctx, 403, 'ADDRESS_NOT_ALLOWED');

    // 2. Media type and size, declared and actual. We never decompress: any content-coding is refused.
    const media = this.checkMedia(request, index);
    if (media) return this.reject(ctx, media.status, media.reason);

    // 3. Header grammar: each of the four exactly once, each matching its pattern.
    const headers: Record<string, string> = {};
    for (const [name, pattern, malformed] of HEADER_RULES) {
      const read = index.single(name);
      if (!read.ok) return this.reject(ctx, 401, read.reason, name);
      if (!pattern.test(read.value)) return this.reject(ctx, 401, malformed, name);
      headers[name] = read.value;
    }
    const keyId = headers[HEADER_KEY_ID] as string;
    const tsText = headers[HEADER_TS] as string;
    const nonce = headers[HEADER_NONCE] as string;
    const signature = headers[HEADER_SIGNATURE] as string;
    const key = parseKeyId(keyId);
    if (!key) return this.reject(ctx, 401, 'KEY_ID_MALFORMED', HEADER_KEY_ID);
    ctx.keyId = keyId;
    ctx.matchId = key.matchId;
    if (key.prefix !== policy.keyPrefix) return this.reject(ctx, 401, 'KEY_WRONG_ROUTE');

    // 4. Clock skew, inclusive at both ends.
    const ts = Number(tsText);
    if (Math.abs(clock.now() - ts) > settings.maxSkewMs) return this.reject(ctx, 401, 'TS_OUT_OF_WINDOW');

    // 5. Key record: issued, not revoked, in its window. On any miss, still spend an HMAC.
    let record: KeyRecord | null;
    try {
      record = await this.deps.keys.lookup(keyId);
    } catch (err) {
      // The record is cached in Redis and kept in PostgreSQL: name the one that failed.
      return this.unavailable(ctx, err, err instanceof KeyLookupUnavailable ? err.dependency : (dependencyOutage(err) ?? 'database'));
    }
    const keyFailure = this.checkKey(record, ts);
    const secret = keyFailure ? null : this.deps.keys.secretFor(keyId);
    if (keyFailure || !secret) {
      this.dummyHmac(keyId, tsText, nonce, request.rawBody);
      return this.reject(ctx, 401, keyFailure ?? 'KEY_KIND_DISABLED');
    }

    // 6. Strict I-JSON parse and JCS in one pass (no tree); then the body must be bound to this key and route.
    let parsed: CanonicalJson;
    try {
      parsed = canonicalizeStrictJson(request.rawBody ?? EMPTY_BODY);
    } catch (err) {
      if (err instanceof StrictJsonError) return this.reject(ctx, 400, `JSON_${err.reason}`);
      throw err;
    }
    const binding = checkBinding(parsed.isObject, bindingMembers(parsed));
    if (!binding.ok) return this.reject(ctx, 400, binding.reason);
    if (binding.matchId !== key.matchId) return this.reject(ctx, 401, 'MATCH_ID_MISMATCH');
    if (!policy.types.has(binding.type)) return this.reject(ctx, 401, 'TYPE_NOT_ALLOWED');
    const canonical = canonicalString({
      keyId,
      ts: tsText,
      nonce,
      matchId: binding.matchId,
      type: binding.type,
      canonicalBody: parsed.canonical,
    });

    // 7. Signature: both sides as 32 raw bytes, compared in constant time.
    const expected = hmacDigest(secret, canonical);
    const received = Buffer.from(signature, 'hex');
    if (expected.length !== 32 || received.length !== 32 || !timingSafeEqual(expected, received)) {
      return this.reject(ctx, 401, 'SIGNATURE_MISMATCH');
    }

    // 8. Spend the nonce, last: only a fully valid request can burn one. No store → fail closed. The key's budget
    // of valid calls is counted in the same round trip; a replay takes its count back, an over-budget call its nonce.
    const now = clock.now();
    const budgetWindow = Math.floor(now / this.keyBudgetWindowMs);
    const budgetKey = `hmac:budget:${keyId}:${budgetWindow}`;
    let fresh: boolean;
    let used: number;
    try {
      [fresh, used] = await Promise.all([
        this.deps.kv.set(nonceKey(keyId, nonce), '1', { nx: true, px: nonceTtlMs(settings.maxSkewMs) }),
        this.deps.kv.incr(budgetKey),
      ]);
      if (used === 1) await this.deps.kv.pexpire(budgetKey, this.keyBudgetWindowMs + 1_000);
      if (!fresh) await this.deps.kv.incr(budgetKey, -1);
      else if (used > this.keyBudget) await this.deps.kv.del(nonceKey(keyId, nonce));
    } catch (err) {
      return this.unavailable(ctx, err, 'redis');
    }
    if (fresh && used > this.keyBudget) {
      this.deps.metrics?.hmacVerifications.inc({ result: 'rate_limited', reason: 'KEY_BUDGET_EXCEEDED', route: ctx.route });
      if (used === this.keyBudget + 1) {
        this.deps.logger?.warn(
          { requestId: ctx.requestId, route: ctx.route, keyId, matchId: key.matchId, budget: this.keyBudget },
          'hook key over its call budget',
        );
      }
      const windowEnd = (budgetWindow + 1) * this.keyBudgetWindowMs;
      return {
        ok: false,
        status: 429,
        reason: 'RATE_LIMITED',
        detail: 'KEY_BUDGET_EXCEEDED',
        retryAfterMs: windowEnd - now,
        requestId: ctx.requestId,
      };
    }
    if (!fresh) {
      const replay: ReplayDetectedEvent = {
        keyId,
        matchId: key.matchId,
        nonce,
        type: binding.type,
        ts,
        remoteAddress: ctx.remoteAddress,
        route: ctx.route,
        requestId: ctx.requestId,
        at: clock.now(),
      };
      this.deps.metrics?.replaysDetected.inc({ route: ctx.route });
      return this.reject(ctx, 401, 'REPLAY', undefined, () => this.deps.sink?.onReplayDetected(replay));
    }

    this.deps.metrics?.hmacVerifications.inc({ result: 'accepted', reason: 'OK', route: ctx.route });
    this.deps.logger?.debug(
      { requestId: ctx.requestId, route: ctx.route, keyId, matchId: key.matchId, type: binding.type, remoteAddress: ctx.remoteAddress },
      'hook request verified',
    );
    return new LazyVerifiedHook(keyId, key.prefix, key.matchId, binding.type, parsed, ts, nonce, ctx.remoteAddress, ctx.requestId);
  }

  /**
   * The client address and whether it is allowlisted. Without trusted proxies it depends on the socket address
   * alone, so the answer is memoised per peer (a few gateways send most calls; parsing addresses is not free).
   */
  private clientOf(request: HookRequest, index: HeaderIndex): { ok: false } | { ok: true; address: string; allowed: boolean } {
    const peer = request.remoteAddress;
    const memoisable = this.trustedProxies.isEmpty && peer !== undefined;
    if (memoisable) {
      const known = this.peers.get(peer);
      if (known) return known;
    }
    const forwarded = index.all('x-forwarded-for');
    const client = resolveClientAddress({ socketAddress: peer, forwardedFor: forwarded }, this.trustedProxies);
    const result = client.ok
      ? { ok: true as const, address: client.address, allowed: this.allowed.contains(client.address) }
      : { ok: false as const };
    if (memoisable) {
      if (this.peers.size >= MAX_MEMOISED_PEERS) this.peers.clear();
      this.peers.set(peer, result);
    }
    return result;
  }

  /**
   * Publishes one summary per key id of the replays answered 429 since the last summary (runs by itself one failure
   * window after the first such replay, and at shutdown). Returns how many summaries were published.
   */
  async flushReplaySummaries(): Promise<number> {
    clearTimeout(this.summaryTimer);
    this.summaryTimer = undefined;
    const tallies = [...this.suppressedReplays.values()];
    this.suppressedReplays.clear();
    for (const t of tallies) {
      const summary: ReplaySummaryEvent = {
        keyId: t.keyId,
        matchId: t.matchId,
        route: t.route,
        count: t.count,
        firstAt: t.firstAt,
        lastAt: t.lastAt,
        remoteAddresses: [...t.remoteAddresses],
      };
      this.deps.logger?.warn({ ...summary, reason: 'REPLAY' }, 'replayed hook requests past the failure budget');
      await this.emit(() => this.deps.sink?.onReplaysSummarized(summary));
    }
    return tallies.length;
  }

  /** Counts a replay whose own event was rate-limited away; the summary reports it later. */
  private tallyReplay(ctx: Context, now: number): void {
    const keyId = ctx.keyId as string;
    let tally = this.suppressedReplays.get(keyId);
    if (!tally) {
      tally = { keyId, matchId: ctx.matchId as string, route: ctx.route, count: 0, firstAt: now, lastAt: now, remoteAddresses: new Set() };
      this.suppressedReplays.set(keyId, tally);
    }
    tally.count++;
    tally.lastAt = now;
    if (tally.remoteAddresses.size < MAX_SUMMARY_ADDRESSES) tally.remoteAddresses.add(ctx.remoteAddress);
    this.summaryTimer ??= setTimeout(() => void this.flushReplaySummaries(), this.failureWindowMs).unref();
  }

  /**
   * Gives a verified call's nonce back after its effect failed, so the identical retry is accepted rather than
   * reported as a replay. Best effort: with the store down the nonce stays spent (and the call was answered 503).
   */
  async releaseNonce(hook: Pick<VerifiedHook, 'keyId' | 'nonce' | 'requestId'>): Promise<void> {
    try {
      await this.deps.kv.del(nonceKey(hook.keyId, hook.nonce));
    } catch (err) {
      this.deps.logger?.warn(
        { requestId: hook.requestId, keyId: hook.keyId, errName: (err as Error)?.name },
        'hook nonce could not be given back',
      );
    }
  }

  private checkMedia(request: HookRequest, index: HeaderIndex): { status: 400 | 413 | 415; reason: HmacFailureReason } | null {
    const encoding = index.declared('content-encoding', request.contentEncoding);
    if (encoding.repeated || (encoding.value !== undefined && encoding.value.trim().toLowerCase() !== 'identity')) {
      return { status: 415, reason: 'CONTENT_ENCODING_UNSUPPORTED' };
    }
    const type = index.declared('content-type', request.contentType);
    if (type.repeated || !isJsonUtf8(type.value)) return { status: 415, reason: 'CONTENT_TYPE_UNSUPPORTED' };

    const { maxBodyBytes } = this.deps.settings;
    if (request.bodyTooLarge) return { status: 413, reason: 'BODY_TOO_LARGE' };
    const length = index.declared('content-length', request.contentLength);
    if (length.repeated) return { status: 400, reason: 'CONTENT_LENGTH_INVALID' };
    if (length.value !== undefined) {
      if (!/^[0-9]{1,15}$/.test(length.value)) return { status: 400, reason: 'CONTENT_LENGTH_INVALID' };
      if (Number(length.value) > maxBodyBytes) return { status: 413, reason: 'BODY_TOO_LARGE' };
    }
    const actual = request.rawBody?.length ?? 0;
    if (actual > maxBodyBytes) return { status: 413, reason: 'BODY_TOO_LARGE' };
    if (length.value !== undefined && Number(length.value) !== actual) return { status: 400, reason: 'CONTENT_LENGTH_INVALID' };
    return null;
  }

  private checkKey(record: KeyRecord | null, ts: number): HmacFailureReason | null {
    if (!record) return 'KEY_UNKNOWN';
    if (record.revoked) return 'KEY_REVOKED';
    if (ts < record.issuedAt - this.deps.settings.maxSkewMs) return 'KEY_NOT_YET_VALID';
    if (ts > record.expiresAt) return 'KEY_EXPIRED';
    return null;
  }

  private dummyHmac(keyId: string, ts: string, nonce: string, body: Buffer | undefined): void {
    const mac = createHmac('sha256', this.dummyKey).update(`v1|${keyId}|${ts}|${nonce}|`);
    if (body) mac.update(body);
    mac.digest();
  }

  /** Fails closed (503) when a store the check needs is out, naming that dependency in the log, metrics and answer. */
  private async unavailable(ctx: Context, err: unknown, dependency: Dependency): Promise<VerificationFailure> {
    const cause = err instanceof KeyLookupUnavailable ? err.cause : err;
    this.deps.logger?.error(
      {
        requestId: ctx.requestId,
        route: ctx.route,
        keyId: ctx.keyId,
        dependency,
        reason: dependency === 'redis' ? 'KV_UNAVAILABLE' : 'DATABASE_UNAVAILABLE',
        errName: (cause as Error)?.name,
        errMessage: (cause as Error)?.message,
      },
      `hmac verification: ${dependency === 'redis' ? 'key-value store' : 'database'} unavailable, failing closed`,
    );
    this.deps.metrics?.hmacVerifications.inc({ result: 'rejected', reason: 'STORE_UNAVAILABLE', route: ctx.route });
    this.deps.metrics?.dependencyUnavailable.inc({ dependency });
    return {
      ok: false,
      status: 503,
      reason: 'STORE_UNAVAILABLE',
      retryAfterMs: OUTAGE_RETRY_AFTER_S * 1000,
      dependency,
      requestId: ctx.requestId,
    };
  }

  /**
   * Records a failure (metrics, failure counters, log, sink) and builds the answer. Past `failureLimit` failures
   * in the window for this address or key id, the answer becomes 429 (403 stays 403) and the log line and event
   * are skipped, so a flood of bad requests cannot flood the logs, the outbox or Kafka.
   */
  private async reject(
    ctx: Context,
    status: Exclude<FailureStatus, 429 | 503>,
    reason: HmacFailureReason,
    detail?: string,
    report?: () => void | Promise<void> | undefined,
  ): Promise<VerificationFailure> {
    const now = this.deps.clock.now();
    const count = await this.countFailure(ctx, now);
    const limited = count > this.failureLimit;
    const route = ctx.route;
    if (limited && status !== 403) {
      this.deps.metrics?.hmacVerifications.inc({ result: 'rate_limited', reason, route });
      if (reason === 'REPLAY' && ctx.keyId !== undefined && ctx.matchId !== undefined) this.tallyReplay(ctx, now);
      const windowEnd = (Math.floor(now / this.failureWindowMs) + 1) * this.failureWindowMs;
      return { ok: false, status: 429, reason: 'RATE_LIMITED', detail: reason, retryAfterMs: windowEnd - now, requestId: ctx.requestId };
    }
    this.deps.metrics?.hmacVerifications.inc({ result: 'rejected', reason, route });
    if (!limited) {
      this.deps.logger?.warn(
        {
          requestId: ctx.requestId,
          route,
          status,
          reason,
          detail,
          keyId: ctx.keyId,
          matchId: ctx.matchId,
          remoteAddress: ctx.remoteAddress,
        },
        reason === 'REPLAY' ? 'hmac verification failed: replayed nonce' : 'hmac verification failed',
      );
      const event: VerificationFailedEvent = {
        reason,
        status,
        ...(detail === undefined ? {} : { detail }),
        ...(ctx.keyId === undefined ? {} : { keyId: ctx.keyId }),
        ...(ctx.matchId === undefined ? {} : { matchId: ctx.matchId }),
        remoteAddress: ctx.remoteAddress,
        route,
        requestId: ctx.requestId,
        at: now,
      };
      await this.emit(report ?? (() => this.deps.sink?.onVerificationFailed(event)));
    }
    return { ok: false, status, reason, ...(detail === undefined ? {} : { detail }), requestId: ctx.requestId };
  }

  /** Counts a failure against the address and the key id; returns the higher count (0 when the store fails). */
  private async countFailure(ctx: Context, now: number): Promise<number> {
    const window = Math.floor(now / this.failureWindowMs);
    const keys: string[] = [];
    if (ctx.counterAddress !== undefined) keys.push(`hmac:fail:addr:${ctx.counterAddress}:${window}`);
    if (ctx.keyId !== undefined) keys.push(`hmac:fail:key:${ctx.keyId}:${window}`);
    let highest = 0;
    for (const key of keys) {
      try {
        const count = await this.deps.kv.incr(key);
        if (count === 1) await this.deps.kv.pexpire(key, this.failureWindowMs + 1_000);
        highest = Math.max(highest, count);
      } catch {
        // Counting is best effort: the answer to this request does not depend on it.
      }
    }
    return highest;
  }

  private async emit(call: () => void | Promise<void> | undefined): Promise<void> {
    try {
      await call();
    } catch (err) {
      this.deps.logger?.error({ errName: (err as Error)?.name, errMessage: (err as Error)?.message }, 'security event sink failed');
    }
  }
}

/**
 * The root members the binding rule reads (`type`, `matchId`; undefined when absent, which the rule treats as
 * absent), without making every root member a value.
 */
function bindingMembers(parsed: CanonicalJson): Readonly<Record<string, TopValue | undefined>> {
  return { type: parsed.rootMember('type'), matchId: parsed.rootMember('matchId') };
}

type HeaderRule = readonly [name: string, pattern: RegExp, malformed: HmacFailureReason];
const HEADER_RULES: readonly HeaderRule[] = [
  [HEADER_KEY_ID, KEY_ID_PATTERN, 'KEY_ID_MALFORMED'],
  [HEADER_TS, TS_PATTERN, 'TS_MALFORMED'],
  [HEADER_NONCE, NONCE_PATTERN, 'NONCE_MALFORMED'],
  [HEADER_SIGNATURE, SIGNATURE_PATTERN, 'SIGNATURE_MALFORMED'],
];

/** One request's headers, indexed once by lowercase name: values from the bag, occurrences from rawHeaders. */
class HeaderIndex {
  private readonly values = new Map<string, string[]>();
  private readonly counts: Map<string, number> | undefined;

  constructor(headers: HeaderBag, rawHeaders: readonly string[] | undefined) {
    for (const key of Object.keys(headers)) {
      const v = headers[key];
      if (v === undefined) continue;
      const name = key.toLowerCase();
      const list = this.values.get(name) ?? [];
      if (typeof v === 'string') list.push(v);
      else if (Array.isArray(v)) list.push(...(v as readonly string[]));
      this.values.set(name, list);
    }
    if (rawHeaders) {
      this.counts = new Map();
      for (let i = 0; i < rawHeaders.length; i += 2) {
        const name = (rawHeaders[i] as string).toLowerCase();
        this.counts.set(name, (this.counts.get(name) ?? 0) + 1);
      }
    }
  }

  /** All values of a header, whatever the case of its name in the bag. */
  all(name: string): readonly string[] {
    return this.values.get(name) ?? NO_VALUES;
  }

  /** How often the header was sent (from rawHeaders when given, else from the bag). */
  occurrences(name: string): number {
    return this.counts ? (this.counts.get(name) ?? 0) : this.all(name).length;
  }

  /** A header that must appear exactly once. */
  single(name: string): HeaderRead {
    const values = this.all(name);
    const occurrences = this.occurrences(name);
    if (occurrences > 1 || values.length > 1) return { ok: false, reason: 'HEADER_REPEATED' };
    const value = values[0];
    if (occurrences === 0 || value === undefined) return { ok: false, reason: 'HEADER_MISSING' };
    return { ok: true, value };
  }

  /** A declared header value (an explicit override wins), and whether the header was sent more than once. */
  declared(name: string, override: string | undefined): { value: string | undefined; repeated: boolean } {
    const values = this.all(name);
    return { value: override ?? values[0], repeated: this.occurrences(name) > 1 || values.length > 1 };
  }
}

const NO_VALUES: readonly string[] = Object.freeze([]);

/** `application/json`, optionally with `charset=utf-8` (any case, optionally quoted), and nothing else. */
export function isJsonUtf8(contentType: string | undefined): boolean {
  if (contentType === undefined) return false;
  const [mediaType, ...params] = contentType.split(';');
  if ((mediaType ?? '').trim().toLowerCase() !== 'application/json') return false;
  for (const param of params) {
    const eq = param.indexOf('=');
    if (eq < 0) return false;
    const name = param.slice(0, eq).trim().toLowerCase();
    let value = param.slice(eq + 1).trim();
    if (value.length >= 2 && value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (name !== 'charset' || value.toLowerCase() !== 'utf-8') return false;
  }
  return true;
}
