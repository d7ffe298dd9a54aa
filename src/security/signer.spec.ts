import { describe, expect, it } from 'vitest';
import { deriveSecret, encodeSecret } from './keys.js';
import {
  NONCE_PATTERN,
  SignerError,
  canonicalString,
  decodeSecret,
  generateNonce,
  parseKeyId,
  readBodyBinding,
  sign,
  signCanonical,
} from './signer.js';
import { parseStrictJson } from './strict-json.js';

// hmac-v1.md "Test vectors (computed independently of the project)".
const OVERLAY = {
  master: 'test-master-secret-0123456789abcdef',
  keyId: 'ovl_m-123_1767225600000',
  secret: 'Tyiu2Eowx1yh3uYKhJGMK3WVh8NKPhOoxGAnDX82SPU',
  secretHex: '4f28aed84a30c75ca1dee60a84918c2b759587c34a3e13a8c460270d7f3648f5',
  ts: '1767225630000',
  nonce: 'q3v5X9bJ2kT8pZr1wYd0Ag',
  body: '{"type":"gameplay.progress","matchId":"m-123","seq":7,"data":{"score":[3,1],"mvp":"Zoë"}}',
  canonical:
    'v1|ovl_m-123_1767225600000|1767225630000|q3v5X9bJ2kT8pZr1wYd0Ag|m-123|gameplay.progress|{"data":{"mvp":"Zoë","score":[3,1]},"matchId":"m-123","seq":7,"type":"gameplay.progress"}',
  signature: 'b39772de65df5fe1414d2dcdc71618dcf0627882ab8bbd3ce7ab58aedf58b7da',
};
const ADMIN = {
  master: 'test-admin-hook-secret-0123456789ab',
  keyId: 'adm_m-123_1767225600000',
  secret: '_vaSAd70Ots_YqCzI_xPhZEh1wy_m66xvYh_V8-8NPQ',
  ts: '1767225640000',
  nonce: 'Zm9vYmFyYmF6cXV4MTIzNA',
  body: '{"type":"admin.hooks.ok","matchId":"m-123"}',
  signature: 'fb5bb69e36c2f2708caaf8b8c500ca8627a5180c8da14c561ce3311775431404',
};

describe('published vectors', () => {
  it('derives the overlay secret', () => {
    const secret = deriveSecret(OVERLAY.master, OVERLAY.keyId);
    expect(secret.toString('hex')).toBe(OVERLAY.secretHex);
    expect(encodeSecret(secret)).toBe(OVERLAY.secret);
    expect(decodeSecret(OVERLAY.secret).toString('hex')).toBe(OVERLAY.secretHex);
  });

  it('signs the overlay vector (body as text, as bytes and as an object)', () => {
    for (const body of [OVERLAY.body, Buffer.from(OVERLAY.body, 'utf8'), JSON.parse(OVERLAY.body) as object]) {
      const signed = sign({ keyId: OVERLAY.keyId, secret: OVERLAY.secret, ts: OVERLAY.ts, nonce: OVERLAY.nonce, body });
      expect(signed.canonical).toBe(OVERLAY.canonical);
      expect(signed.headers).toEqual({
        'x-flock-key-id': OVERLAY.keyId,
        'x-flock-ts': OVERLAY.ts,
        'x-flock-nonce': OVERLAY.nonce,
        'x-flock-signature': OVERLAY.signature,
      });
    }
  });

  it('derives and signs the admin vector', () => {
    expect(encodeSecret(deriveSecret(ADMIN.master, ADMIN.keyId))).toBe(ADMIN.secret);
    const signed = sign({ keyId: ADMIN.keyId, secret: ADMIN.secret, ts: Number(ADMIN.ts), nonce: ADMIN.nonce, body: ADMIN.body });
    expect(signed.headers['x-flock-signature']).toBe(ADMIN.signature);
    expect(signed.body).toBe(ADMIN.body);
  });

  it('builds the canonical string from its parts', () => {
    const canonical = canonicalString({
      keyId: OVERLAY.keyId,
      ts: OVERLAY.ts,
      nonce: OVERLAY.nonce,
      matchId: 'm-123',
      type: 'gameplay.progress',
      canonicalBody: '{"data":{"mvp":"Zoë","score":[3,1]},"matchId":"m-123","seq":7,"type":"gameplay.progress"}',
    });
    expect(canonical).toBe(OVERLAY.canonical);
    expect(signCanonical(decodeSecret(OVERLAY.secret), canonical)).toBe(OVERLAY.signature);
  });
});

describe('sign', () => {
  const base = { keyId: OVERLAY.keyId, secret: OVERLAY.secret, ts: OVERLAY.ts, body: OVERLAY.body };
  const reasonOf = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      if (err instanceof SignerError) return err.reason;
      throw err;
    }
    return 'accepted';
  };

  it('defaults ts to the clock and nonce to 16 random bytes', () => {
    const signed = sign({ keyId: OVERLAY.keyId, secret: OVERLAY.secret, body: OVERLAY.body, clock: { now: () => 1767225699999 } });
    expect(signed.headers['x-flock-ts']).toBe('1767225699999');
    expect(signed.headers['x-flock-nonce']).toMatch(NONCE_PATTERN);
    expect(Buffer.from(signed.headers['x-flock-nonce'], 'base64url')).toHaveLength(16);
    expect(signed.headers['x-flock-signature']).toMatch(/^[0-9a-f]{64}$/);
  });

  it('refuses what the verifier would refuse', () => {
    expect(reasonOf(() => sign({ ...base, keyId: 'ovl_m-123_176722560000' }))).toBe('KEY_ID_INVALID');
    expect(reasonOf(() => sign({ ...base, secret: OVERLAY.secret + '=' }))).toBe('SECRET_INVALID');
    expect(reasonOf(() => sign({ ...base, secret: OVERLAY.secret.slice(0, -1) + 'V' }))).toBe('SECRET_INVALID');
    expect(reasonOf(() => sign({ ...base, ts: 1767225630 }))).toBe('TS_INVALID');
    expect(reasonOf(() => sign({ ...base, ts: '1.767225630e12' }))).toBe('TS_INVALID');
    expect(reasonOf(() => sign({ ...base, nonce: 'short' }))).toBe('NONCE_INVALID');
    expect(reasonOf(() => sign({ ...base, body: '{"type":"x","type":"y","matchId":"m-123"}' }))).toBe('BODY_INVALID_JSON');
    expect(reasonOf(() => sign({ ...base, body: Buffer.from([0x7b, 0xff, 0x7d]) }))).toBe('BODY_INVALID_JSON');
    expect(reasonOf(() => sign({ ...base, body: '[1]' }))).toBe('BODY_NOT_OBJECT');
    expect(reasonOf(() => sign({ ...base, body: { matchId: 'm-123', type: 'Bad Type' } }))).toBe('BODY_TYPE_INVALID');
    expect(reasonOf(() => sign({ ...base, body: { type: 'overlay.heartbeat', matchId: 7 } }))).toBe('BODY_MATCH_ID_INVALID');
    expect(reasonOf(() => sign({ ...base, body: { type: 'overlay.heartbeat', matchId: 'm-999' } }))).toBe('MATCH_ID_MISMATCH');
    expect(reasonOf(() => sign({ ...base, body: { type: 'overlay.heartbeat', matchId: 'm-123', n: 2 ** 60 } }))).toBe('BODY_INVALID_JSON');
  });

  it('parses key ids', () => {
    expect(parseKeyId('adm_m-1_1767225600000')).toEqual({
      keyId: 'adm_m-1_1767225600000',
      prefix: 'adm',
      matchId: 'm-1',
      issuedAt: 1767225600000,
    });
    expect(parseKeyId('ovl_m_1_1767225600000')).toBeNull();
    expect(parseKeyId('ovl_m-1_1767225600000\n')).toBeNull();
  });

  it('generates distinct nonces of the requested size', () => {
    const seen = new Set(Array.from({ length: 1000 }, () => generateNonce()));
    expect(seen.size).toBe(1000);
    expect(generateNonce(32)).toHaveLength(43);
    expect(() => generateNonce(8)).toThrow(RangeError);
  });

  it('reads the body binding', () => {
    expect(readBodyBinding(parseStrictJson('{"type":"a.b","matchId":"m"}'))).toMatchObject({ ok: true, type: 'a.b', matchId: 'm' });
    expect(readBodyBinding(parseStrictJson('null'))).toEqual({ ok: false, reason: 'BODY_NOT_OBJECT' });
    expect(readBodyBinding(parseStrictJson('{"type":"a","matchId":""}'))).toEqual({ ok: false, reason: 'BODY_MATCH_ID_INVALID' });
  });
});
