/**
 * Signs requests for flocknode-workers hook endpoints (HMAC protocol v1).
 *
 * Published as `flocknode-workers/signer` for game-server admin plugins and overlay agents, and used by the
 * service's own verifier, so both sides build the canonical string with the very same function. Depends only on
 * node built-ins and the project's strict JSON parser and RFC 8785 canonicalizer.
 *
 * @example
 * ```ts
 * import { sign } from 'flocknode-workers/signer';
 * const { headers, body } = sign({ keyId, secret, body: { type: 'overlay.heartbeat', matchId: 'm-123' } });
 * await fetch(url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body });
 * ```
 *
 * @module
 */
import { createHmac, randomBytes, type KeyObject } from 'node:crypto';
import { canonicalize } from './jcs.js';
import { StrictJsonError, decodeUtf8Strict, parseStrictJson, type JsonObject, type JsonValue } from './strict-json.js';

/** Protocol version tag: the first field of the canonical string. */
export const PROTOCOL_VERSION = 'v1';

/** The four request headers of protocol v1 (lowercase, as Node exposes them). */
export const HEADER_KEY_ID = 'x-flock-key-id';
export const HEADER_TS = 'x-flock-ts';
export const HEADER_NONCE = 'x-flock-nonce';
export const HEADER_SIGNATURE = 'x-flock-signature';
export const SIGNATURE_HEADERS = [HEADER_KEY_ID, HEADER_TS, HEADER_NONCE, HEADER_SIGNATURE] as const;

/** `<ovl|adm>_<matchId>_<issuedAt ms>`. JS `$` never matches before a trailing newline, unlike PCRE. */
export const KEY_ID_PATTERN = /^(ovl|adm)_([A-Za-z0-9-]{1,64})_([1-9][0-9]{12})$/;
/** Milliseconds since the epoch, 13 digits, no sign, no leading zero, no exponent. */
export const TS_PATTERN = /^[1-9][0-9]{12}$/;
/** base64url of at least 16 random bytes. */
export const NONCE_PATTERN = /^[A-Za-z0-9_-]{22,128}$/;
/** Lowercase hex of the 32-byte HMAC-SHA256. */
export const SIGNATURE_PATTERN = /^[0-9a-f]{64}$/;
/** The body's `type` field. */
export const TYPE_PATTERN = /^[a-z0-9_.]{1,64}$/;
/** A per-key secret: 32 bytes as unpadded base64url. */
export const SECRET_PATTERN = /^[A-Za-z0-9_-]{43}$/;

/** The kind prefix of a key id. */
export type KeyPrefix = 'ovl' | 'adm';

/** The parts of a well-formed key id. */
export interface KeyIdParts {
  readonly keyId: string;
  readonly prefix: KeyPrefix;
  readonly matchId: string;
  /** Milliseconds since the epoch, as written in the key id. */
  readonly issuedAt: number;
}

/** Splits a key id into prefix, matchId and issuedAt; null when it does not match {@link KEY_ID_PATTERN}. */
export function parseKeyId(keyId: string): KeyIdParts | null {
  const m = KEY_ID_PATTERN.exec(keyId);
  if (!m) return null;
  return { keyId, prefix: m[1] as KeyPrefix, matchId: m[2] as string, issuedAt: Number(m[3]) };
}

/** Why {@link sign} refused its input. */
export type SignerReason =
  | 'KEY_ID_INVALID'
  | 'SECRET_INVALID'
  | 'TS_INVALID'
  | 'NONCE_INVALID'
  | 'BODY_INVALID_JSON'
  | 'BODY_NOT_OBJECT'
  | 'BODY_TYPE_INVALID'
  | 'BODY_MATCH_ID_INVALID'
  | 'MATCH_ID_MISMATCH';

/** Thrown by {@link sign} on input the verifier would reject anyway; `reason` is a stable code. */
export class SignerError extends Error {
  constructor(
    readonly reason: SignerReason,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SignerError';
  }
}

/** The fields of the canonical string, in order after the version tag. */
export interface CanonicalParts {
  keyId: string;
  /** The `x-flock-ts` header exactly as sent. */
  ts: string;
  nonce: string;
  /** The body's `matchId` field. */
  matchId: string;
  /** The body's `type` field. */
  type: string;
  /** RFC 8785 canonical JSON of the whole body. */
  canonicalBody: string;
}

/** `v1|<key-id>|<ts>|<nonce>|<matchId>|<type>|<JCS(body)>` — the exact string that is signed. */
export function canonicalString(parts: CanonicalParts): string {
  return `${PROTOCOL_VERSION}|${parts.keyId}|${parts.ts}|${parts.nonce}|${parts.matchId}|${parts.type}|${parts.canonicalBody}`;
}

/** `HMAC-SHA256(secret, canonical)` over the UTF-8 bytes of the canonical string, as raw 32 bytes. */
export function hmacDigest(secret: Uint8Array | KeyObject, canonical: string): Buffer {
  return createHmac('sha256', secret).update(canonical, 'utf8').digest();
}

/** The `x-flock-signature` value: lowercase hex of {@link hmacDigest}. */
export function signCanonical(secret: Uint8Array, canonical: string): string {
  return hmacDigest(secret, canonical).toString('hex');
}

/**
 * Decodes a per-key secret (unpadded base64url of 32 bytes) to its bytes.
 * @throws SignerError `SECRET_INVALID` on any other length, alphabet, padding or non-canonical final character.
 */
export function decodeSecret(secret: string): Buffer {
  if (!SECRET_PATTERN.test(secret)) throw new SignerError('SECRET_INVALID', 'secret must be 43 characters of unpadded base64url');
  const bytes = Buffer.from(secret, 'base64url');
  if (bytes.length !== 32 || bytes.toString('base64url') !== secret) {
    throw new SignerError('SECRET_INVALID', 'secret is not the canonical base64url of 32 bytes');
  }
  return bytes;
}

/** A fresh nonce: `bytes` (at least 16) random bytes as unpadded base64url. */
export function generateNonce(bytes = 16): string {
  if (!Number.isInteger(bytes) || bytes < 16 || bytes > 96) throw new RangeError('nonce must be 16 to 96 random bytes');
  return randomBytes(bytes).toString('base64url');
}

/** Outcome of checking a parsed body's binding fields. */
export type BodyBinding =
  | { readonly ok: true; readonly body: JsonObject; readonly type: string; readonly matchId: string }
  | { readonly ok: false; readonly reason: 'BODY_NOT_OBJECT' | 'BODY_TYPE_INVALID' | 'BODY_MATCH_ID_INVALID' };

/** Checks that a body is a JSON object with a well-formed string `type` and a string `matchId`. */
export function readBodyBinding(value: JsonValue): BodyBinding {
  const isObject = value !== null && typeof value === 'object' && !Array.isArray(value);
  const binding = checkBinding(isObject, value as Readonly<Record<string, unknown>>);
  return binding.ok ? { ...binding, body: value as JsonObject } : binding;
}

/** The binding rule on a body's members (an object's own members, or the one-pass canonicalizer's root members). */
export function checkBinding(
  isObject: boolean,
  members: Readonly<Record<string, unknown>>,
): { readonly ok: true; readonly type: string; readonly matchId: string } | Extract<BodyBinding, { ok: false }> {
  if (!isObject) return { ok: false, reason: 'BODY_NOT_OBJECT' };
  const type = Object.hasOwn(members, 'type') ? members['type'] : undefined;
  if (typeof type !== 'string' || !TYPE_PATTERN.test(type)) return { ok: false, reason: 'BODY_TYPE_INVALID' };
  const matchId = Object.hasOwn(members, 'matchId') ? members['matchId'] : undefined;
  if (typeof matchId !== 'string' || matchId.length === 0) return { ok: false, reason: 'BODY_MATCH_ID_INVALID' };
  return { ok: true, type, matchId };
}

/** What {@link sign} needs. */
export interface SignInput {
  /** The key id handed out with the secret, e.g. `ovl_m-123_1767225600000`. */
  keyId: string;
  /** The per-key secret as handed out: unpadded base64url of 32 bytes. */
  secret: string;
  /**
   * The request body: a JSON text (string or UTF-8 bytes, sent exactly as given) or a value that is serialized
   * with `JSON.stringify`. Either way it must be I-JSON (see strict-json) and an object with `type` and `matchId`.
   */
  body: string | Uint8Array | object;
  /** Milliseconds since the epoch; default: `clock.now()`. */
  ts?: number | string;
  /** Default: 16 fresh random bytes, base64url. Never reuse a nonce: the service answers a reuse with 401. */
  nonce?: string;
  /** Time source for the default `ts` (default: `Date`). */
  clock?: { now(): number };
}

/** The four headers to send with the request (a plain record, so it spreads into any `headers` option). */
export type SignedHeaders = {
  'x-flock-key-id': string;
  'x-flock-ts': string;
  'x-flock-nonce': string;
  'x-flock-signature': string;
};

/** Result of {@link sign}. */
export interface SignedRequest {
  headers: SignedHeaders;
  /** The signed canonical string (for debugging a rejected request; it contains no secret). */
  canonical: string;
  /** The JSON text to send as the body, with `Content-Type: application/json`. */
  body: string;
}

/**
 * Signs one hook request. The body is checked exactly as the service checks it, so anything returned here is
 * accepted by a service holding the same key (within the clock skew, and once per nonce).
 *
 * To build a deliberately wrong request in a test, combine {@link canonicalString} and {@link signCanonical}.
 *
 * @throws SignerError with a reason code when the key id, secret, ts, nonce or body would be rejected.
 */
export function sign(input: SignInput): SignedRequest {
  const key = parseKeyId(input.keyId);
  if (!key) throw new SignerError('KEY_ID_INVALID', 'key id does not match <ovl|adm>_<matchId>_<issuedAt ms>');
  const secret = decodeSecret(input.secret);
  const ts = String(input.ts ?? (input.clock ?? Date).now());
  if (!TS_PATTERN.test(ts)) throw new SignerError('TS_INVALID', 'ts must be 13 digits of milliseconds since the epoch');
  const nonce = input.nonce ?? generateNonce();
  if (!NONCE_PATTERN.test(nonce)) throw new SignerError('NONCE_INVALID', 'nonce must be 22 to 128 base64url characters');

  const text = bodyText(input.body);
  let value: JsonValue;
  try {
    value = parseStrictJson(text);
  } catch (err) {
    if (err instanceof StrictJsonError) {
      throw new SignerError('BODY_INVALID_JSON', `body is not I-JSON: ${err.reason}: ${err.message}`, { cause: err });
    }
    throw err;
  }
  const binding = readBodyBinding(value);
  if (!binding.ok) throw new SignerError(binding.reason, bindingMessage(binding.reason));
  if (binding.matchId !== key.matchId) {
    throw new SignerError('MATCH_ID_MISMATCH', `body matchId does not equal the key's matchId "${key.matchId}"`);
  }

  const canonical = canonicalString({
    keyId: input.keyId,
    ts,
    nonce,
    matchId: binding.matchId,
    type: binding.type,
    canonicalBody: canonicalize(binding.body),
  });
  return {
    headers: {
      'x-flock-key-id': input.keyId,
      'x-flock-ts': ts,
      'x-flock-nonce': nonce,
      'x-flock-signature': signCanonical(secret, canonical),
    },
    canonical,
    body: text,
  };
}

function bodyText(body: SignInput['body']): string {
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) {
    try {
      return decodeUtf8Strict(body);
    } catch (err) {
      throw new SignerError('BODY_INVALID_JSON', 'body is not valid UTF-8', { cause: err });
    }
  }
  const text: unknown = JSON.stringify(body);
  if (typeof text !== 'string') throw new SignerError('BODY_NOT_OBJECT', 'body does not serialize to JSON');
  return text;
}

function bindingMessage(reason: 'BODY_NOT_OBJECT' | 'BODY_TYPE_INVALID' | 'BODY_MATCH_ID_INVALID'): string {
  switch (reason) {
    case 'BODY_NOT_OBJECT':
      return 'body must be a JSON object';
    case 'BODY_TYPE_INVALID':
      return 'body.type must be a string matching ^[a-z0-9_.]{1,64}$';
    case 'BODY_MATCH_ID_INVALID':
      return 'body.matchId must be a non-empty string';
  }
}
