import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { Rng, randomJson, randomSafeNumber, type Json } from '../../test/support/json-gen.js';
import { DEFAULT_HMAC_ALLOWED_CIDRS } from '../config/config.js';
import { ManualClock } from '../infra/clock.js';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import { KvUnavailableError } from '../infra/kv/kv-store.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { createLogger } from '../observability/logger.js';
import { Metrics } from '../observability/metrics.js';
import {
  HookVerifier,
  isJsonUtf8,
  nonceKey,
  type HookRequest,
  type HookRoute,
  type HookVerifierSettings,
  type ReplayDetectedEvent,
  type ReplaySummaryEvent,
  type SecurityEventSink,
  type VerificationFailedEvent,
  type VerificationResult,
} from './hook-verifier.js';
import { canonicalize } from './jcs.js';
import { KeyService, deriveSecret, encodeSecret, type IssuedKey, type KeyDirectory, type KeyKind } from './keys.js';
import { canonicalString, decodeSecret, sign, signCanonical, type SignInput } from './signer.js';
import { StrictJsonError, parseStrictJson } from './strict-json.js';

const T0 = 1767225600000;
const SKEW = 60_000;
const MAX_BODY = 65_536;
const OVERLAY_MASTER = 'test-master-secret-0123456789abcdef';
const ADMIN_MASTER = 'test-admin-hook-secret-0123456789ab';
const CLIENT = '10.42.0.7';

interface Harness {
  clock: ManualClock;
  kv: MemoryKeyValueStore;
  keys: KeyService;
  metrics: Metrics;
  failed: VerificationFailedEvent[];
  replays: ReplayDetectedEvent[];
  summaries: ReplaySummaryEvent[];
  logLines: string[];
  verifier: HookVerifier;
  issue(kind?: KeyKind, matchId?: string, ttlMs?: number): Promise<IssuedKey>;
}

function harness(
  options: {
    settings?: Partial<HookVerifierSettings>;
    sink?: SecurityEventSink;
    kv?: KeyValueStore;
    keys?: KeyDirectory;
    adminMaster?: string;
  } = {},
): Harness {
  const clock = new ManualClock(T0);
  const kv = new MemoryKeyValueStore(clock);
  const keys = new KeyService({
    kv,
    clock,
    overlayMasterSecret: OVERLAY_MASTER,
    adminHookSecret: 'adminMaster' in options ? options.adminMaster : ADMIN_MASTER,
    defaultTtlMs: 6 * 60 * 60 * 1000,
    maxSkewMs: SKEW,
  });
  const metrics = new Metrics();
  const failed: VerificationFailedEvent[] = [];
  const replays: ReplayDetectedEvent[] = [];
  const summaries: ReplaySummaryEvent[] = [];
  const logLines: string[] = [];
  const logger = createLogger(
    'debug',
    {},
    new Writable({
      write(chunk: Buffer, _enc, done) {
        logLines.push(chunk.toString());
        done();
      },
    }),
  );
  const sink: SecurityEventSink = options.sink ?? {
    onVerificationFailed: (e) => void failed.push(e),
    onReplayDetected: (e) => void replays.push(e),
    onReplaysSummarized: (e) => void summaries.push(e),
  };
  const verifier = new HookVerifier({
    keys: options.keys ?? keys,
    kv: options.kv ?? kv,
    clock,
    metrics,
    sink,
    logger,
    settings: {
      maxSkewMs: SKEW,
      maxBodyBytes: MAX_BODY,
      allowedCidrs: DEFAULT_HMAC_ALLOWED_CIDRS.split(','),
      trustProxy: [],
      ...options.settings,
    },
  });
  return {
    clock,
    kv,
    keys,
    metrics,
    failed,
    replays,
    summaries,
    logLines,
    verifier,
    issue: (kind = 'overlay', matchId = 'm-123', ttlMs) => keys.issue({ matchId, kind, ...(ttlMs ? { ttlMs } : {}) }),
  };
}

type Headers = Record<string, string | string[] | undefined>;

/** A request as Node would deliver it: lowercase `headers`, `rawHeaders` in wire order, the body bytes. */
function httpRequest(
  route: HookRoute,
  headers: Headers,
  body: string | Buffer,
  extra: { remoteAddress?: string; rawHeaders?: string[]; contentType?: string | undefined } = {},
): HookRequest {
  const rawBody = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const all: Headers = {
    ...('contentType' in extra ? { 'content-type': extra.contentType } : { 'content-type': 'application/json' }),
    'content-length': String(rawBody.length),
    ...headers,
  };
  const rawHeaders =
    extra.rawHeaders ??
    Object.entries(all).flatMap(([name, value]) =>
      value === undefined ? [] : (Array.isArray(value) ? value : [value]).flatMap((v) => [name, v]),
    );
  const bag: Headers = {};
  for (const [name, value] of Object.entries(all)) if (value !== undefined) bag[name] = value;
  return { route, remoteAddress: extra.remoteAddress ?? CLIENT, headers: bag, rawHeaders, rawBody };
}

function signed(key: IssuedKey, body: SignInput['body'], ts: number, nonce?: string) {
  return sign({ keyId: key.keyId, secret: key.secret, body, ts, ...(nonce ? { nonce } : {}) });
}

const heartbeat = (matchId = 'm-123', extra: Record<string, Json> = {}) => ({ type: 'overlay.heartbeat', matchId, ...extra });

function expectFailure(result: VerificationResult, status: number, reason: string) {
  expect(result.ok ? 'accepted' : `${result.status} ${result.reason}`).toBe(`${status} ${reason}`);
}

describe('HookVerifier: published vectors', () => {
  it('accepts the overlay vector', async () => {
    const h = harness();
    const key = await h.issue('overlay', 'm-123');
    expect(key.keyId).toBe('ovl_m-123_1767225600000');
    expect(key.secret).toBe('Tyiu2Eowx1yh3uYKhJGMK3WVh8NKPhOoxGAnDX82SPU');
    h.clock.set(1767225630000);
    const result = await h.verifier.verify(
      httpRequest(
        'overlay',
        {
          'x-flock-key-id': 'ovl_m-123_1767225600000',
          'x-flock-ts': '1767225630000',
          'x-flock-nonce': 'q3v5X9bJ2kT8pZr1wYd0Ag',
          'x-flock-signature': 'b39772de65df5fe1414d2dcdc71618dcf0627882ab8bbd3ce7ab58aedf58b7da',
        },
        '{"type":"gameplay.progress","matchId":"m-123","seq":7,"data":{"score":[3,1],"mvp":"Zoë"}}',
      ),
    );
    expect(result).toMatchObject({
      ok: true,
      keyId: 'ovl_m-123_1767225600000',
      matchId: 'm-123',
      type: 'gameplay.progress',
      kind: 'overlay',
    });
    if (!result.ok) return;
    expect(result.body).toEqual({ type: 'gameplay.progress', matchId: 'm-123', seq: 7, data: { score: [3, 1], mvp: 'Zoë' } });
    expect(Object.isFrozen(result.body)).toBe(true);
    expect(result.requestId).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('accepts the admin vector', async () => {
    const h = harness();
    const key = await h.issue('admin', 'm-123');
    expect(key.secret).toBe('_vaSAd70Ots_YqCzI_xPhZEh1wy_m66xvYh_V8-8NPQ');
    h.clock.set(1767225640000);
    const result = await h.verifier.verify(
      httpRequest(
        'admin',
        {
          'x-flock-key-id': 'adm_m-123_1767225600000',
          'x-flock-ts': '1767225640000',
          'x-flock-nonce': 'Zm9vYmFyYmF6cXV4MTIzNA',
          'x-flock-signature': 'fb5bb69e36c2f2708caaf8b8c500ca8627a5180c8da14c561ce3311775431404',
        },
        '{"type":"admin.hooks.ok","matchId":"m-123"}',
      ),
    );
    expect(result).toMatchObject({ ok: true, type: 'admin.hooks.ok', kind: 'admin' });
  });
});

describe('HookVerifier: baseline', () => {
  it('accepts a valid request, counts it, spends its nonce', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    const result = await h.verifier.verify(httpRequest('overlay', s.headers, s.body));
    expect(result.ok).toBe(true);
    expect(await h.kv.pttl(nonceKey(key.keyId, s.headers['x-flock-nonce']))).toBe(2 * SKEW + 10_000);
    expect(await h.metrics.registry.getSingleMetricAsString('flock_hmac_verifications_total')).toContain(
      'flock_hmac_verifications_total{result="accepted",reason="OK",route="overlay"} 1',
    );
  });

  it('accepts header names in any case', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    const mixed: Headers = {
      'X-Flock-Key-Id': s.headers['x-flock-key-id'],
      'X-FLOCK-TS': s.headers['x-flock-ts'],
      'x-Flock-Nonce': s.headers['x-flock-nonce'],
      'X-flock-signature': s.headers['x-flock-signature'],
      'Content-Type': 'Application/JSON; Charset="UTF-8"',
    };
    const req = httpRequest('overlay', mixed, s.body, { contentType: undefined });
    expect((await h.verifier.verify(req)).ok).toBe(true);
  });

  it('accepts ts at exactly ±MAX_SKEW_MS and rejects one millisecond beyond', async () => {
    const h = harness();
    const key = await h.issue();
    const now = T0 + 10 * SKEW;
    h.clock.set(now);
    for (const [ts, ok] of [
      [now - SKEW, true],
      [now + SKEW, true],
      [now - SKEW - 1, false],
      [now + SKEW + 1, false],
    ] as const) {
      const s = signed(key, heartbeat(), ts);
      const result = await h.verifier.verify(httpRequest('overlay', s.headers, s.body));
      if (ok) expect(result.ok, String(ts - now)).toBe(true);
      else expectFailure(result, 401, 'TS_OUT_OF_WINDOW');
    }
  });
});

describe('HookVerifier: header grammar (401)', () => {
  const valid = async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    return { h, key, s };
  };

  for (const name of ['x-flock-key-id', 'x-flock-ts', 'x-flock-nonce', 'x-flock-signature'] as const) {
    it(`${name}: missing, empty, repeated`, async () => {
      const { h, s } = await valid();
      expectFailure(await h.verifier.verify(httpRequest('overlay', { ...s.headers, [name]: undefined }, s.body)), 401, 'HEADER_MISSING');
      const empty = await h.verifier.verify(httpRequest('overlay', { ...s.headers, [name]: '' }, s.body));
      expect(empty.ok).toBe(false);
      expect(empty.ok ? 0 : empty.status).toBe(401);
      // Repeated, as Node reports it: merged in `headers`, twice in rawHeaders.
      const twice = httpRequest('overlay', { ...s.headers, [name]: [s.headers[name], s.headers[name]] }, s.body);
      expectFailure(await h.verifier.verify(twice), 401, 'HEADER_REPEATED');
      // Repeated with different case, only visible in rawHeaders.
      const raw = httpRequest('overlay', s.headers, s.body);
      const sneaky = { ...raw, rawHeaders: [...(raw.rawHeaders ?? []), name.toUpperCase(), s.headers[name]] };
      expectFailure(await h.verifier.verify(sneaky), 401, 'HEADER_REPEATED');
      // Merged by Node into one comma-joined value (how x- headers arrive when rawHeaders is not passed).
      const merged: HookRequest = { ...raw, headers: { ...raw.headers, [name]: `${s.headers[name]}, ${s.headers[name]}` } };
      delete (merged as { rawHeaders?: unknown }).rawHeaders;
      expect((await h.verifier.verify(merged)).ok).toBe(false);
      expect(h.replays).toHaveLength(0);
    });
  }

  it('signature variants', async () => {
    const { h, s } = await valid();
    const sig = s.headers['x-flock-signature'];
    const b64 = Buffer.from(sig, 'hex').toString('base64');
    const cases: [string, string][] = [
      [sig.toUpperCase(), 'SIGNATURE_MALFORMED'],
      [sig.slice(0, 63), 'SIGNATURE_MALFORMED'],
      [sig + '0', 'SIGNATURE_MALFORMED'],
      ['sha256=' + sig, 'SIGNATURE_MALFORMED'],
      [b64, 'SIGNATURE_MALFORMED'],
      [sig.slice(0, 32), 'SIGNATURE_MALFORMED'],
      [sig.slice(0, 62) + 'zz', 'SIGNATURE_MALFORMED'],
      [sig.slice(0, 32) + 'g'.repeat(32), 'SIGNATURE_MALFORMED'],
      [' ' + sig, 'SIGNATURE_MALFORMED'],
      [sig + '\n', 'SIGNATURE_MALFORMED'],
      [sig.slice(0, 63) + (sig.endsWith('0') ? '1' : '0'), 'SIGNATURE_MISMATCH'],
      ['0'.repeat(64), 'SIGNATURE_MISMATCH'],
    ];
    for (const [value, reason] of cases) {
      expectFailure(await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-signature': value }, s.body)), 401, reason);
    }
    expect((await h.verifier.verify(httpRequest('overlay', s.headers, s.body))).ok).toBe(true);
  });

  it('ts variants', async () => {
    const { h, s } = await valid();
    const ts = s.headers['x-flock-ts'];
    for (const value of [
      ts.slice(0, 10),
      '17672256a0000',
      '1.76722563e12',
      '1767225600e3',
      '+' + ts,
      '0' + ts,
      '0' + ts.slice(1),
      '-' + ts,
      ts + '0',
      ts + '.0',
      ' ' + ts,
      '١٧٦٧٢٢٥٦٠٠٠٠٠',
    ]) {
      expectFailure(await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-ts': value }, s.body)), 401, 'TS_MALFORMED');
    }
  });

  it('nonce variants', async () => {
    const { h, s } = await valid();
    for (const value of ['a'.repeat(21), 'a'.repeat(129), ...'+/=:*{}'.split('').map((c) => 'A'.repeat(21) + c), 'A'.repeat(21) + ' ']) {
      expectFailure(
        await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-nonce': value }, s.body)),
        401,
        'NONCE_MALFORMED',
      );
    }
    for (const value of ['a'.repeat(22), 'a'.repeat(128)]) {
      expectFailure(
        await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-nonce': value }, s.body)),
        401,
        'SIGNATURE_MISMATCH',
      );
    }
  });

  it('key id variants', async () => {
    const { h, s, key } = await valid();
    const malformed = [
      key.keyId.replace('ovl_', 'ovx_'),
      key.keyId.replace('ovl_', 'OVL_'),
      key.keyId.replace('ovl_', 'key_'),
      key.keyId + '_1',
      'ovl_m-123',
      'ovl__1767225600000',
      'ovl_m_123_1767225600000',
      `ovl_m-123_${T0}0`,
      `ovl_m-123_${String(T0).slice(1)}`,
      'ovl_mé-123_1767225600000',
      'ovl_m-１２３_1767225600000',
      `ovl_${'m'.repeat(65)}_1767225600000`,
      key.keyId + '\n',
    ];
    for (const value of malformed) {
      expectFailure(
        await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-key-id': value }, s.body)),
        401,
        'KEY_ID_MALFORMED',
      );
    }
    const future = `ovl_m-123_${T0 + 24 * 60 * 60 * 1000}`;
    expectFailure(await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-key-id': future }, s.body)), 401, 'KEY_UNKNOWN');
    const admin = key.keyId.replace('ovl_', 'adm_');
    expectFailure(
      await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-key-id': admin }, s.body)),
      401,
      'KEY_WRONG_ROUTE',
    );
  });
});

describe('HookVerifier: binding', () => {
  it('rejects one changed body byte', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat('m-123', { seq: 7 }), h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, s.body.replace('7', '8'))), 401, 'SIGNATURE_MISMATCH');
  });

  it('accepts another spelling of the same JSON value (order, escapes, 4.50 vs 4.5, whitespace)', async () => {
    const h = harness();
    const key = await h.issue();
    const original = '{"type":"gameplay.progress","matchId":"m-123","x":4.5,"s":"é/"}';
    const respelled = ' {\n "s" : "\\u00e9\\/", "x":4.50 ,"matchId":"m\\u002d123",\t"type":"gameplay\\u002eprogress"}\r\n';
    expect(canonicalize(parseStrictJson(respelled))).toBe(canonicalize(parseStrictJson(original)));
    const s = signed(key, original, h.clock.now());
    expect((await h.verifier.verify(httpRequest('overlay', s.headers, respelled))).ok).toBe(true);
  });

  it.each([
    ['duplicate keys', '{"type":"overlay.heartbeat","matchId":"m-123","a":1,"a":1}', 'JSON_DUPLICATE_KEY'],
    ['duplicate type', '{"type":"overlay.heartbeat","matchId":"m-123","type":"overlay.connected"}', 'JSON_DUPLICATE_KEY'],
    ['9007199254740993', '{"type":"overlay.heartbeat","matchId":"m-123","n":9007199254740993}', 'JSON_UNSAFE_INTEGER'],
    ['1e400', '{"type":"overlay.heartbeat","matchId":"m-123","n":1e400}', 'JSON_NUMBER_OUT_OF_RANGE'],
    ['lone surrogate', '{"type":"overlay.heartbeat","matchId":"m-123","s":"\\ud800"}', 'JSON_LONE_SURROGATE'],
    ['32 000-deep', '{"type":"overlay.heartbeat","matchId":"m-123","d":' + '['.repeat(32_000) + ']'.repeat(32_000) + '}', 'JSON_TOO_DEEP'],
    [
      'invalid UTF-8',
      Buffer.concat([Buffer.from('{"type":"overlay.heartbeat","matchId":"m-123","s":"'), Buffer.from([0xff]), Buffer.from('"}')]),
      'JSON_INVALID_UTF8',
    ],
    ['trailing garbage', '{"type":"overlay.heartbeat","matchId":"m-123"}x', 'JSON_TRAILING_DATA'],
    ['empty body', '', 'JSON_EMPTY'],
    ['null', 'null', 'BODY_NOT_OBJECT'],
    ['an array', '[{"type":"overlay.heartbeat","matchId":"m-123"}]', 'BODY_NOT_OBJECT'],
    ['no type', '{"matchId":"m-123"}', 'BODY_TYPE_INVALID'],
    ['bad type', '{"type":"Overlay Heartbeat","matchId":"m-123"}', 'BODY_TYPE_INVALID'],
    ['numeric matchId', '{"type":"overlay.heartbeat","matchId":123}', 'BODY_MATCH_ID_INVALID'],
  ])('%s → 400', async (_name, body, reason) => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, body)), 400, reason);
  });

  it('keeps NFC and NFD apart', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat('m-123', { name: 'Zo\u00eb' }), h.clock.now());
    const nfd = s.body.replace('Zo\u00eb', 'Zoe\u0308');
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, nfd)), 401, 'SIGNATURE_MISMATCH');
  });

  it('rejects a key for match A with a body for match B', async () => {
    const h = harness();
    const key = await h.issue('overlay', 'm-A');
    const ts = String(h.clock.now());
    const nonce = 'n'.repeat(22);
    const body = JSON.stringify(heartbeat('m-B'));
    // Signed correctly over the mismatching body, as an attacker holding A's secret could.
    const canonical = canonicalString({
      keyId: key.keyId,
      ts,
      nonce,
      matchId: 'm-B',
      type: 'overlay.heartbeat',
      canonicalBody: canonicalize(JSON.parse(body)),
    });
    const headers = {
      'x-flock-key-id': key.keyId,
      'x-flock-ts': ts,
      'x-flock-nonce': nonce,
      'x-flock-signature': signCanonical(decodeSecret(key.secret), canonical),
    };
    expectFailure(await h.verifier.verify(httpRequest('overlay', headers, body)), 401, 'MATCH_ID_MISMATCH');
  });

  it('rejects an overlay type on the admin route and an overlay key on it', async () => {
    const h = harness();
    const admin = await h.issue('admin');
    const s = signed(admin, heartbeat(), h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('admin', s.headers, s.body)), 401, 'TYPE_NOT_ALLOWED');
    const overlay = await h.issue('overlay');
    const o = signed(overlay, { type: 'admin.hooks.ok', matchId: 'm-123' }, h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('admin', o.headers, o.body)), 401, 'KEY_WRONG_ROUTE');
    expectFailure(await h.verifier.verify(httpRequest('overlay', o.headers, o.body)), 401, 'TYPE_NOT_ALLOWED');
  });

  it('handles __proto__, constructor and toJSON as plain keys', async () => {
    const h = harness();
    const key = await h.issue();
    const body =
      '{"type":"overlay.heartbeat","matchId":"m-123","__proto__":{"isAdmin":true},"constructor":{"prototype":{"x":1}},"toJSON":7}';
    const s = signed(key, body, h.clock.now());
    const result = await h.verifier.verify(httpRequest('overlay', s.headers, s.body));
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(Object.getPrototypeOf(result.body)).toBeNull();
    // Built from the signed canonical text, so members come in canonical (UTF-16) order.
    expect(Object.keys(result.body)).toEqual(['__proto__', 'constructor', 'matchId', 'toJSON', 'type']);
    expect((result.body as Record<string, unknown>)['isAdmin']).toBeUndefined();
    expect(({} as Record<string, unknown>)['isAdmin']).toBeUndefined();
    expect(JSON.stringify(result.body)).toBe(result.canonicalBody);
    expect(result.canonicalBody).toBe(
      '{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"x":1}},"matchId":"m-123","toJSON":7,"type":"overlay.heartbeat"}',
    );
  });
});

describe('HookVerifier: replay', () => {
  it('rejects an exact replay and reports it', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    expect((await h.verifier.verify(httpRequest('overlay', s.headers, s.body))).ok).toBe(true);
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, s.body)), 401, 'REPLAY');
    expect(h.replays).toHaveLength(1);
    expect(h.replays[0]).toMatchObject({
      keyId: key.keyId,
      matchId: 'm-123',
      nonce: s.headers['x-flock-nonce'],
      type: 'overlay.heartbeat',
      route: 'overlay',
    });
    expect(h.failed).toHaveLength(0);
    const replays = await h.metrics.registry.getSingleMetricAsString('flock_hook_replays_detected_total');
    expect(replays).toContain('flock_hook_replays_detected_total{route="overlay"} 1');
  });

  it('accepts exactly one of 20 identical requests sent at once', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    const results = await Promise.all(Array.from({ length: 20 }, () => h.verifier.verify(httpRequest('overlay', s.headers, s.body))));
    expect(results.filter((r) => r.ok)).toHaveLength(1);
    expect(results.filter((r) => !r.ok && r.reason === 'REPLAY')).toHaveLength(19);
  });

  it('still knows the nonce when its ts is about to leave the window (2·skew later)', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now() + SKEW); // from a client whose clock runs a full skew ahead
    expect((await h.verifier.verify(httpRequest('overlay', s.headers, s.body))).ok).toBe(true);
    h.clock.advance(2 * SKEW);
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, s.body)), 401, 'REPLAY');
    h.clock.advance(1);
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, s.body)), 401, 'TS_OUT_OF_WINDOW');
  });

  it('does not spend the nonce on a bad signature', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    const bad = { ...s.headers, 'x-flock-signature': 'f'.repeat(64) };
    expectFailure(await h.verifier.verify(httpRequest('overlay', bad, s.body)), 401, 'SIGNATURE_MISMATCH');
    expect((await h.verifier.verify(httpRequest('overlay', s.headers, s.body))).ok).toBe(true);
  });

  it('fails closed with 503 when the store is down, at the key lookup or at the nonce', async () => {
    const h = harness();
    const key = await h.issue();
    const first = signed(key, heartbeat(), h.clock.now());
    expect((await h.verifier.verify(httpRequest('overlay', first.headers, first.body))).ok).toBe(true); // record now cached
    h.kv.simulateOutage(true);
    const s = signed(key, heartbeat(), h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, s.body)), 503, 'STORE_UNAVAILABLE');
    h.clock.advance(5_000); // cache expired: now the lookup itself fails
    const t = signed(key, heartbeat(), h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('overlay', t.headers, t.body)), 503, 'STORE_UNAVAILABLE');
    h.kv.simulateOutage(false);
    expect((await h.verifier.verify(httpRequest('overlay', t.headers, t.body))).ok).toBe(true);
    // Both refusals name Redis: in the answer, the log and flock_dependency_unavailable_total.
    expect(await h.metrics.registry.getSingleMetricAsString('flock_dependency_unavailable_total')).toContain(
      'flock_dependency_unavailable_total{dependency="redis"} 2',
    );
    const logged = h.logLines.map((l) => JSON.parse(l)).filter((l) => l.level === 'error');
    expect(logged.map((l) => [l.msg, l.dependency, l.reason])).toEqual(
      Array(2).fill(['hmac verification: key-value store unavailable, failing closed', 'redis', 'KV_UNAVAILABLE']),
    );
  });

  it('treats any store error (not only KvUnavailableError) as unavailable', async () => {
    const inner = harness();
    const failing: KeyValueStore = Object.assign(Object.create(inner.kv) as KeyValueStore, {
      set: async () => {
        throw new Error("READONLY You can't write against a read only replica");
      },
    });
    const h = harness({ kv: failing, keys: inner.keys });
    const key = await inner.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('overlay', s.headers, s.body)), 503, 'STORE_UNAVAILABLE');
    expect(new KvUnavailableError('x').reason).toBe('KV_UNAVAILABLE');
  });
});

describe('HookVerifier: keys', () => {
  it('rejects never issued, revoked, expired and not-yet-valid keys alike', async () => {
    const h = harness();
    const key = await h.issue('overlay', 'm-123', 10 * SKEW);
    const never = 'ovl_m-123_1767225600001';
    const attempt = async (keyId: string, ts: number) => {
      const secret = encodeSecret(deriveSecret(OVERLAY_MASTER, keyId)); // even with the right secret
      const s = sign({ keyId, secret, body: heartbeat(), ts });
      return h.verifier.verify(httpRequest('overlay', s.headers, s.body));
    };
    const unknown = await attempt(never, h.clock.now());
    expectFailure(unknown, 401, 'KEY_UNKNOWN');

    h.clock.set(key.issuedAt - SKEW - 1_000); // a client far behind
    expectFailure(await attempt(key.keyId, h.clock.now()), 401, 'KEY_NOT_YET_VALID');
    h.clock.set(key.issuedAt - SKEW);
    expect((await attempt(key.keyId, h.clock.now())).ok).toBe(true);

    h.clock.set(key.expiresAt);
    expect((await attempt(key.keyId, key.expiresAt)).ok).toBe(true);
    expectFailure(await attempt(key.keyId, key.expiresAt + 1), 401, 'KEY_EXPIRED');

    h.clock.set(key.issuedAt + 1000);
    await h.keys.revoke(key.keyId);
    const revoked = await attempt(key.keyId, h.clock.now());
    expectFailure(revoked, 401, 'KEY_REVOKED');
    // Same status, same shape: only the logged reason tells them apart.
    expect(Object.keys(revoked).sort()).toEqual(Object.keys(unknown).sort());
  });

  it('rejects keys of a kind whose master secret is not configured', async () => {
    const setupWithAdmin = harness();
    const admin = await setupWithAdmin.issue('admin');
    const h = harness({ adminMaster: undefined, kv: setupWithAdmin.kv });
    const keys = new KeyService({
      kv: setupWithAdmin.kv,
      clock: h.clock,
      overlayMasterSecret: OVERLAY_MASTER,
      adminHookSecret: undefined,
      defaultTtlMs: 1000,
      maxSkewMs: SKEW,
    });
    const verifier = new HookVerifier({
      keys,
      kv: setupWithAdmin.kv,
      clock: h.clock,
      settings: { maxSkewMs: SKEW, maxBodyBytes: MAX_BODY, allowedCidrs: ['10.0.0.0/8'], trustProxy: [] },
    });
    const s = signed(admin, { type: 'admin.hooks.ok', matchId: 'm-123' }, h.clock.now());
    expectFailure(await verifier.verify(httpRequest('admin', s.headers, s.body)), 401, 'KEY_KIND_DISABLED');
  });

  it('revocation on another instance takes effect within 5 s', async () => {
    const h = harness();
    const key = await h.issue();
    const send = () => {
      const s = signed(key, heartbeat(), h.clock.now());
      return h.verifier.verify(httpRequest('overlay', s.headers, s.body));
    };
    expect((await send()).ok).toBe(true);
    const otherInstance = new KeyService({
      kv: h.kv,
      clock: h.clock,
      overlayMasterSecret: OVERLAY_MASTER,
      adminHookSecret: ADMIN_MASTER,
      defaultTtlMs: 1000,
      maxSkewMs: SKEW,
    });
    await otherInstance.revoke(key.keyId);
    h.clock.advance(5_000);
    expectFailure(await send(), 401, 'KEY_REVOKED');
  });
});

describe('HookVerifier: network (403)', () => {
  const attempt = async (h: Harness, remoteAddress: string, headers: Headers = {}) => {
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    return h.verifier.verify(httpRequest('overlay', { ...s.headers, ...headers }, s.body, { remoteAddress }));
  };

  it('rejects unlisted addresses, spoofed X-Forwarded-For included', async () => {
    const h = harness();
    expectFailure(await attempt(h, '203.0.113.9'), 403, 'ADDRESS_NOT_ALLOWED');
    expectFailure(await attempt(h, '203.0.113.9', { 'x-forwarded-for': '127.0.0.1' }), 403, 'ADDRESS_NOT_ALLOWED');
    expectFailure(await attempt(h, '::ffff:203.0.113.9'), 403, 'ADDRESS_NOT_ALLOWED');
    expect((await attempt(h, '::ffff:10.42.3.4')).ok).toBe(true);
    expect((await attempt(h, '::1')).ok).toBe(true);
    const noSocket = httpRequest('overlay', {}, '{}');
    expectFailure(await h.verifier.verify({ ...noSocket, remoteAddress: undefined }), 403, 'CLIENT_ADDRESS_UNKNOWN');
  });

  it('behind a trusted proxy, 127.0.0.1/32 does not let every external client in', async () => {
    const h = harness({ settings: { trustProxy: ['127.0.0.1/32'] } });
    expectFailure(await attempt(h, '127.0.0.1', { 'x-forwarded-for': '203.0.113.9' }), 403, 'ADDRESS_NOT_ALLOWED');
    expectFailure(await attempt(h, '127.0.0.1', { 'x-forwarded-for': '127.0.0.1, 203.0.113.9' }), 403, 'ADDRESS_NOT_ALLOWED');
    expectFailure(await attempt(h, '127.0.0.1'), 403, 'CLIENT_ADDRESS_UNKNOWN');
    expect((await attempt(h, '127.0.0.1', { 'x-forwarded-for': '10.42.0.5' })).ok).toBe(true);
    expect((await attempt(h, '::ffff:127.0.0.1', { 'x-forwarded-for': '203.0.113.9, 10.42.0.5' })).ok).toBe(true);
  });

  it('checks the address before the body size', async () => {
    const h = harness();
    const req = httpRequest('overlay', {}, Buffer.alloc(MAX_BODY + 1, 0x20), { remoteAddress: '203.0.113.9' });
    expectFailure(await h.verifier.verify(req), 403, 'ADDRESS_NOT_ALLOWED');
  });
});

describe('HookVerifier: body size and media type', () => {
  /** A key directory that records whether it was consulted. */
  const spyKeys = (inner: KeyDirectory) => {
    const calls: string[] = [];
    const dir: KeyDirectory = {
      lookup: (id) => {
        calls.push(id);
        return inner.lookup(id);
      },
      secretFor: (id) => inner.secretFor(id),
    };
    return { dir, calls };
  };

  it('accepts exactly MAX_BODY_BYTES and answers 413 to one more, before any key lookup or crypto', async () => {
    const base = harness();
    const spy = spyKeys(base.keys);
    const h = harness({ keys: spy.dir, kv: base.kv });
    const key = await base.issue();
    const skeleton = JSON.stringify(heartbeat('m-123', { pad: '' }));
    const exact = JSON.stringify(heartbeat('m-123', { pad: 'x'.repeat(MAX_BODY - skeleton.length) }));
    expect(Buffer.byteLength(exact)).toBe(MAX_BODY);
    const s = signed(key, exact, h.clock.now());
    expect((await h.verifier.verify(httpRequest('overlay', s.headers, s.body))).ok).toBe(true);
    expect(spy.calls).toHaveLength(1);

    const over = exact.replace('"pad":"', '"pad":"x');
    const t = signed(key, over, h.clock.now());
    expectFailure(await h.verifier.verify(httpRequest('overlay', t.headers, t.body)), 413, 'BODY_TOO_LARGE');
    expect(spy.calls).toHaveLength(1);
  });

  it('answers 413 on a declared length over the limit, or when the transport stopped reading', async () => {
    const h = harness();
    const req = httpRequest('overlay', { 'content-length': String(MAX_BODY + 1) }, '{}');
    expectFailure(await h.verifier.verify(req), 413, 'BODY_TOO_LARGE');
    expectFailure(
      await h.verifier.verify({ ...httpRequest('overlay', {}, ''), rawBody: undefined, bodyTooLarge: true }),
      413,
      'BODY_TOO_LARGE',
    );
  });

  it('answers 415 to any content coding (gzip that would inflate past the limit included)', async () => {
    const h = harness();
    for (const coding of ['gzip', 'deflate', 'br', 'identity, gzip', 'x-custom']) {
      expectFailure(
        await h.verifier.verify(httpRequest('overlay', { 'content-encoding': coding }, '{}')),
        415,
        'CONTENT_ENCODING_UNSUPPORTED',
      );
    }
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    expect((await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'content-encoding': 'identity' }, s.body))).ok).toBe(true);
  });

  it('answers 415 to other media types and charsets', async () => {
    const h = harness();
    for (const contentType of [
      undefined,
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/json; charset=latin1',
      'application/json; charset=utf-16',
      'application/json; boundary=x',
      'application/jsonx',
      'application/vnd.api+json',
      'application/json;',
    ]) {
      expectFailure(await h.verifier.verify(httpRequest('overlay', {}, '{}', { contentType })), 415, 'CONTENT_TYPE_UNSUPPORTED');
    }
    const twice = httpRequest('overlay', { 'content-type': ['application/json', 'text/plain'] }, '{}', { contentType: undefined });
    expectFailure(await h.verifier.verify(twice), 415, 'CONTENT_TYPE_UNSUPPORTED');
  });

  it('isJsonUtf8', () => {
    expect(isJsonUtf8('application/json')).toBe(true);
    expect(isJsonUtf8('application/json;charset=utf-8')).toBe(true);
    expect(isJsonUtf8('APPLICATION/JSON ; CHARSET="UTF-8"')).toBe(true);
    expect(isJsonUtf8('application/json; charset=utf8')).toBe(false);
  });

  it('answers 400 when the declared length is malformed or differs from the body', async () => {
    const h = harness();
    expectFailure(await h.verifier.verify(httpRequest('overlay', { 'content-length': '2' }, '{ }')), 400, 'CONTENT_LENGTH_INVALID');
    expectFailure(await h.verifier.verify(httpRequest('overlay', { 'content-length': '-1' }, '{}')), 400, 'CONTENT_LENGTH_INVALID');
    expectFailure(await h.verifier.verify(httpRequest('overlay', { 'content-length': '0x2' }, '{}')), 400, 'CONTENT_LENGTH_INVALID');
  });
});

describe('HookVerifier: replays past the failure budget, and the per-key budget of valid calls', () => {
  it('records every replay: past the failure budget it is answered 429 and summed into one summary per key', async () => {
    const h = harness({ settings: { failureLimit: 3 } });
    const key = await h.issue();
    h.clock.set(Math.ceil(T0 / 60_000) * 60_000);
    // The attacker spends the budget first with junk for this key id, then replays a captured call.
    for (let i = 0; i < 3; i++) {
      const junk = signed(key, heartbeat(), h.clock.now());
      expectFailure(
        await h.verifier.verify(httpRequest('overlay', { ...junk.headers, 'x-flock-signature': '0'.repeat(64) }, junk.body)),
        401,
        'SIGNATURE_MISMATCH',
      );
    }
    const captured = signed(key, heartbeat(), h.clock.now());
    expect((await h.verifier.verify(httpRequest('overlay', captured.headers, captured.body))).ok).toBe(true);
    for (let i = 0; i < 5; i++) {
      const r = await h.verifier.verify(httpRequest('overlay', captured.headers, captured.body, { remoteAddress: `10.42.0.${i % 2}` }));
      expect(r).toMatchObject({ ok: false, status: 429, detail: 'REPLAY' });
    }
    expect(h.replays).toHaveLength(0);
    expect(await h.verifier.flushReplaySummaries()).toBe(1);
    expect(h.summaries).toEqual([
      {
        keyId: key.keyId,
        matchId: 'm-123',
        route: 'overlay',
        count: 5,
        firstAt: h.clock.now(),
        lastAt: h.clock.now(),
        remoteAddresses: ['10.42.0.0', '10.42.0.1'],
      },
    ]);
    expect(await h.verifier.flushReplaySummaries()).toBe(0); // each replay is summed once
    expect(await h.metrics.registry.getSingleMetricAsString('flock_hmac_verifications_total')).toContain(
      'flock_hmac_verifications_total{result="rate_limited",reason="REPLAY",route="overlay"} 5',
    );
  });

  it('answers 429 with Retry-After past the key budget, keeps the nonce of the refused call unspent, and refills next window', async () => {
    const h = harness({ settings: { keyBudget: 3, keyBudgetWindowMs: 10_000 } });
    const key = await h.issue();
    const other = await h.issue('overlay', 'm-456');
    h.clock.set(Math.ceil(T0 / 10_000) * 10_000 + 4_000);
    const call = (k = key, m = 'm-123') => signed(k, heartbeat(m), h.clock.now());
    for (let i = 0; i < 3; i++) {
      const c = call();
      expect((await h.verifier.verify(httpRequest('overlay', c.headers, c.body))).ok).toBe(true);
    }
    const over = call();
    expect(await h.verifier.verify(httpRequest('overlay', over.headers, over.body))).toMatchObject({
      ok: false,
      status: 429,
      reason: 'RATE_LIMITED',
      detail: 'KEY_BUDGET_EXCEEDED',
      retryAfterMs: 6_000,
    });
    // Another key is not affected; replays of an accepted call do not eat the budget.
    const o = call(other, 'm-456');
    expect((await h.verifier.verify(httpRequest('overlay', o.headers, o.body))).ok).toBe(true);
    expectFailure(await h.verifier.verify(httpRequest('overlay', o.headers, o.body)), 401, 'REPLAY');
    expectFailure(await h.verifier.verify(httpRequest('overlay', o.headers, o.body)), 401, 'REPLAY');
    const o2 = call(other, 'm-456');
    expect((await h.verifier.verify(httpRequest('overlay', o2.headers, o2.body))).ok).toBe(true);
    h.clock.advance(6_000);
    // Next window: the refused call itself (its nonce was given back) is accepted.
    const again = { ...over.headers, 'x-flock-ts': String(Number(over.headers['x-flock-ts'])) };
    expect((await h.verifier.verify(httpRequest('overlay', again, over.body))).ok).toBe(true);
    expect(h.failed).toHaveLength(0);
  });
});

describe('HookVerifier: rate limiting, events, hygiene', () => {
  it('answers 429 past 20 failures a minute from one address, still accepts valid requests, recovers after the window', async () => {
    const h = harness();
    const key = await h.issue();
    h.clock.set(Math.ceil(T0 / 60_000) * 60_000); // start of a window
    const bad = () => {
      const s = signed(key, heartbeat(), h.clock.now());
      return h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-signature': '0'.repeat(64) }, s.body));
    };
    for (let i = 0; i < 20; i++) expectFailure(await bad(), 401, 'SIGNATURE_MISMATCH');
    const limited = await bad();
    expect(limited).toMatchObject({ ok: false, status: 429, reason: 'RATE_LIMITED', detail: 'SIGNATURE_MISMATCH', retryAfterMs: 60_000 });
    expect(h.failed).toHaveLength(20); // the flood past the limit produces no events

    const s = signed(key, heartbeat(), h.clock.now());
    expect((await h.verifier.verify(httpRequest('overlay', s.headers, s.body))).ok).toBe(true);

    h.clock.advance(60_000);
    expectFailure(await bad(), 401, 'SIGNATURE_MISMATCH');
    expect(await h.metrics.registry.getSingleMetricAsString('flock_hmac_verifications_total')).toContain(
      'flock_hmac_verifications_total{result="rate_limited",reason="SIGNATURE_MISMATCH",route="overlay"} 1',
    );
  });

  it('counts failures per key id across addresses', async () => {
    const h = harness({ settings: { failureLimit: 3 } });
    const key = await h.issue();
    h.clock.set(Math.ceil(T0 / 60_000) * 60_000);
    const fromAddress = (remoteAddress: string) => {
      const s = signed(key, heartbeat(), h.clock.now());
      return h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-signature': '0'.repeat(64) }, s.body, { remoteAddress }));
    };
    for (let i = 1; i <= 3; i++) expectFailure(await fromAddress(`10.42.0.${i}`), 401, 'SIGNATURE_MISMATCH');
    expect(await fromAddress('10.42.0.99')).toMatchObject({ status: 429 });
  });

  it('keeps 403 for unlisted addresses past the limit, without events', async () => {
    const h = harness({ settings: { failureLimit: 2 } });
    for (let i = 0; i < 5; i++) {
      expectFailure(
        await h.verifier.verify(httpRequest('overlay', {}, '{}', { remoteAddress: '203.0.113.1' })),
        403,
        'ADDRESS_NOT_ALLOWED',
      );
    }
    expect(h.failed).toHaveLength(2);
    expect(h.failed[0]).toMatchObject({ reason: 'ADDRESS_NOT_ALLOWED', remoteAddress: '203.0.113.1', route: 'overlay', status: 403 });
  });

  it('reports failures to the sink with what is known, and survives a failing sink', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now() - 2 * SKEW);
    await h.verifier.verify(httpRequest('overlay', s.headers, s.body));
    expect(h.failed[0]).toMatchObject({
      reason: 'TS_OUT_OF_WINDOW',
      keyId: key.keyId,
      matchId: 'm-123',
      remoteAddress: CLIENT,
      status: 401,
    });
    expect(h.failed[0]?.requestId).toMatch(/^[0-9a-f-]{36}$/);

    const broken = harness({
      sink: {
        onVerificationFailed: () => Promise.reject(new Error('outbox down')),
        onReplayDetected: () => {
          throw new Error('outbox down');
        },
        onReplaysSummarized: () => Promise.reject(new Error('outbox down')),
      },
    });
    const k = await broken.issue();
    const t = signed(k, heartbeat(), broken.clock.now());
    expectFailure(
      await broken.verifier.verify(httpRequest('overlay', { ...t.headers, 'x-flock-signature': 'a'.repeat(64) }, t.body)),
      401,
      'SIGNATURE_MISMATCH',
    );
    expect((await broken.verifier.verify(httpRequest('overlay', t.headers, t.body))).ok).toBe(true);
    expectFailure(await broken.verifier.verify(httpRequest('overlay', t.headers, t.body)), 401, 'REPLAY');
  });

  it('logs reasons, never secrets or expected signatures', async () => {
    const h = harness();
    const key = await h.issue();
    const s = signed(key, heartbeat(), h.clock.now());
    await h.verifier.verify(httpRequest('overlay', { ...s.headers, 'x-flock-signature': '1'.repeat(64) }, s.body));
    await h.verifier.verify(httpRequest('overlay', s.headers, s.body));
    await h.verifier.verify(httpRequest('overlay', s.headers, s.body));
    const log = h.logLines.join('');
    expect(log).toContain('SIGNATURE_MISMATCH');
    expect(log).toContain('REPLAY');
    expect(log).toContain('hook request verified');
    const secret = decodeSecret(key.secret);
    for (const forbidden of [
      key.secret,
      secret.toString('hex'),
      secret.toString('base64'),
      OVERLAY_MASTER,
      s.headers['x-flock-signature'],
      '1'.repeat(64),
    ]) {
      expect(log).not.toContain(forbidden);
    }
  });
});

describe('HookVerifier: property — sign then verify', () => {
  it('accepts every signed random body; rejects any single-byte change unless it spells the same value', async () => {
    const h = harness({ settings: { failureLimit: Number.POSITIVE_INFINITY } });
    const key = await h.issue();
    const rng = new Rng(0x5eed);
    const types = ['overlay.connected', 'overlay.heartbeat', 'overlay.disconnected', 'gameplay.progress'];
    const headerNames = ['x-flock-key-id', 'x-flock-ts', 'x-flock-nonce', 'x-flock-signature'] as const;
    const replacement = 'aZ09_-.:+/= {}"\\';
    let sameValueMutations = 0;

    for (let i = 0; i < 300; i++) {
      const extra: Record<string, Json> = {};
      for (let f = rng.int(4); f > 0; f--) extra[`f${f}${rng.int(10)}`] = randomJson(rng, 3, randomSafeNumber);
      const body = { ...extra, type: rng.pick(types), matchId: 'm-123' };
      const s = signed(key, body, h.clock.now() + rng.int(2 * SKEW + 1) - SKEW);
      const bytes = Buffer.from(s.body, 'utf8');

      // One byte of the body changed.
      const mutated = Buffer.from(bytes);
      const at = rng.int(mutated.length);
      mutated[at] = ((mutated[at] as number) + 1 + rng.int(255)) % 256;
      const result = await h.verifier.verify(httpRequest('overlay', s.headers, mutated));
      if (spellsSameBody(mutated, s.body)) {
        sameValueMutations++;
        expect(result.ok, mutated.toString()).toBe(true);
        continue; // the nonce is spent
      }
      expect(result.ok, `${mutated.toString()} was accepted`).toBe(false);
      if (!result.ok) expect([400, 401]).toContain(result.status);

      // One byte of one header changed.
      const name = rng.pick(headerNames);
      const value = s.headers[name];
      const pos = rng.int(value.length);
      let ch = rng.pick([...replacement]);
      if (ch === value[pos]) ch = value[pos] === 'a' ? 'b' : 'a';
      const changed = value.slice(0, pos) + ch + value.slice(pos + 1);
      const headerResult = await h.verifier.verify(httpRequest('overlay', { ...s.headers, [name]: changed }, s.body));
      expect(headerResult.ok, `${name}: ${changed}`).toBe(false);

      // The untouched request still verifies (no rejection above spent its nonce).
      expect((await h.verifier.verify(httpRequest('overlay', s.headers, s.body))).ok).toBe(true);
    }
    expect(sameValueMutations).toBeLessThan(30);
  });
});

/** True when a changed body still means the same JSON value (e.g. `1e+21` → `1E+21`, `\u001f` → `\u001F`). */
function spellsSameBody(bytes: Buffer, original: string): boolean {
  try {
    return canonicalize(parseStrictJson(bytes)) === canonicalize(parseStrictJson(original));
  } catch (err) {
    if (err instanceof StrictJsonError) return false;
    throw err;
  }
}
