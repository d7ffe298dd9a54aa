import { Controller, HttpCode, Module, Post, UseGuards } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { FastifyAdapter, type NestFastifyApplication } from '@nestjs/platform-fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../infra/clock.js';
import { MemoryKeyValueStore } from '../infra/kv/memory-kv.js';
import { HookVerifier, type VerifiedHook } from './hook-verifier.js';
import { HOOK_VERIFIER, HmacGuard, HmacRoute, Verified, hookRequestFromHttp } from './hmac.guard.js';
import { KeyService, type IssuedKey } from './keys.js';
import { OversizedBody, registerRawJsonParser } from './raw-body.js';
import { sign } from './signer.js';

const MAX_BODY = 1024;
const seen: VerifiedHook[] = [];

@Controller()
class HooksController {
  @Post('/v1/overlay/events')
  @HttpCode(202)
  @HmacRoute('overlay')
  @UseGuards(HmacGuard)
  overlay(@Verified() hook: VerifiedHook) {
    seen.push(hook);
    return { ok: true };
  }

  @Post('/v1/hooks/admin')
  @HttpCode(202)
  @HmacRoute('admin')
  @UseGuards(HmacGuard)
  admin() {
    return { ok: true };
  }
}

describe('HmacGuard through Nest + Fastify', () => {
  const clock = new ManualClock(1767225600000);
  const kv = new MemoryKeyValueStore(clock);
  const keys = new KeyService({
    kv,
    clock,
    overlayMasterSecret: 'overlay-master-secret-0123456789abcdef',
    adminHookSecret: 'admin-hook-secret-0123456789abcdefgh',
    defaultTtlMs: 60 * 60 * 1000,
    maxSkewMs: 60_000,
  });
  const verifier = new HookVerifier({
    keys,
    kv,
    clock,
    settings: {
      maxSkewMs: 60_000,
      maxBodyBytes: MAX_BODY,
      allowedCidrs: ['127.0.0.1/32', '10.42.0.0/16'],
      trustProxy: [],
      failureLimit: 1000,
    },
  });
  let app: NestFastifyApplication;
  let key: IssuedKey;

  @Module({ controllers: [HooksController], providers: [{ provide: HOOK_VERIFIER, useValue: verifier }, HmacGuard] })
  class TestModule {}

  beforeAll(async () => {
    const adapter = new FastifyAdapter();
    registerRawJsonParser(adapter.getInstance(), MAX_BODY);
    app = await NestFactory.create<NestFastifyApplication>(TestModule, adapter, { bodyParser: false, logger: false });
    await app.init();
    await app.getHttpAdapter().getInstance().ready();
    key = await keys.issue({ matchId: 'm-1', kind: 'overlay' });
  });
  afterAll(async () => {
    await app?.close();
  });

  const post = (url: string, headers: Record<string, string>, payload: string, remoteAddress = '10.42.0.9') =>
    app.inject({ method: 'POST', url, headers: { 'content-type': 'application/json', ...headers }, payload, remoteAddress });

  it('accepts a signed request and hands the handler the verified object', async () => {
    const s = sign({ keyId: key.keyId, secret: key.secret, body: { type: 'overlay.heartbeat', matchId: 'm-1', n: 1 }, clock });
    const res = await post('/v1/overlay/events', s.headers, s.body);
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ ok: true });
    expect(seen.at(-1)).toMatchObject({ keyId: key.keyId, type: 'overlay.heartbeat', body: { n: 1 } });
  });

  it('answers every 401 with the identical body', async () => {
    const s = sign({ keyId: key.keyId, secret: key.secret, body: { type: 'overlay.heartbeat', matchId: 'm-1' }, clock });
    const bodies = new Set<string>();
    const variants: Record<string, string>[] = [
      { ...s.headers, 'x-flock-signature': '0'.repeat(64) },
      { ...s.headers, 'x-flock-key-id': 'ovl_m-1_1767225600123' },
      { ...s.headers, 'x-flock-ts': '1' },
      { 'x-flock-key-id': key.keyId },
    ];
    for (const headers of variants) {
      const res = await post('/v1/overlay/events', headers, s.body);
      expect(res.statusCode).toBe(401);
      bodies.add(res.body);
    }
    expect([...bodies]).toEqual(['{"error":"unauthorized"}']);
    const replay = await post('/v1/overlay/events', s.headers, s.body);
    expect(replay.statusCode).toBe(202);
    const again = await post('/v1/overlay/events', s.headers, s.body);
    expect([again.statusCode, again.body]).toEqual([401, '{"error":"unauthorized"}']);
  });

  it('answers 403 to an unlisted address, even with a large body, and 413 past the limit to a listed one', async () => {
    const big = JSON.stringify({ type: 'overlay.heartbeat', matchId: 'm-1', pad: 'x'.repeat(MAX_BODY) });
    const outside = await post('/v1/overlay/events', {}, big, '203.0.113.5');
    expect([outside.statusCode, outside.body]).toEqual([403, '{"error":"forbidden"}']);
    const inside = await post('/v1/overlay/events', {}, big);
    expect([inside.statusCode, inside.body]).toEqual([413, '{"error":"payload_too_large"}']);
  });

  it('answers 415 to gzip and to other charsets', async () => {
    const gz = await post('/v1/overlay/events', { 'content-encoding': 'gzip' }, '{}');
    expect([gz.statusCode, gz.body]).toEqual([415, '{"error":"unsupported_media_type"}']);
    const latin = await post('/v1/overlay/events', { 'content-type': 'application/json; charset=iso-8859-1' }, '{}');
    expect(latin.statusCode).toBe(415);
  });

  it('answers 400 to bodies that are not I-JSON', async () => {
    const s = sign({ keyId: key.keyId, secret: key.secret, body: { type: 'overlay.heartbeat', matchId: 'm-1' }, clock });
    const res = await post('/v1/overlay/events', s.headers, '{"type":"overlay.heartbeat","matchId":"m-1","a":1,"a":2}');
    expect([res.statusCode, res.body]).toEqual([400, '{"error":"bad_request"}']);
  });

  it('keeps overlay keys off the admin route', async () => {
    const s = sign({ keyId: key.keyId, secret: key.secret, body: { type: 'overlay.heartbeat', matchId: 'm-1' }, clock });
    const res = await post('/v1/hooks/admin', s.headers, s.body);
    expect(res.statusCode).toBe(401);
  });

  it('translates a Fastify request for the verifier', () => {
    const body = Buffer.from('{}');
    const req = hookRequestFromHttp(
      { headers: { a: 'b' }, body, raw: { rawHeaders: ['A', 'b'], socket: { remoteAddress: '::1' } } },
      'admin',
    );
    expect(req).toEqual({
      route: 'admin',
      remoteAddress: '::1',
      headers: { a: 'b' },
      rawHeaders: ['A', 'b'],
      rawBody: body,
      bodyTooLarge: false,
    });
    expect(hookRequestFromHttp({ headers: {}, body: new OversizedBody(5, 0), raw: {} }, 'overlay')).toMatchObject({
      rawBody: undefined,
      bodyTooLarge: true,
    });
  });
});
