import { FastifyAdapter } from '@nestjs/platform-fastify';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { OversizedBody, readBody, registerRawJsonParser } from './raw-body.js';

const LIMIT = 64;

function read(stream: PassThrough, contentLength: string | undefined, limit = LIMIT) {
  return new Promise<Buffer | OversizedBody>((resolve, reject) =>
    readBody(stream, contentLength, limit, (err, body) => (err ? reject(err) : resolve(body as Buffer | OversizedBody))),
  );
}

describe('readBody', () => {
  it('returns the bytes up to and including the limit', async () => {
    const s = new PassThrough();
    const p = read(s, String(LIMIT));
    s.end(Buffer.alloc(LIMIT, 0x61));
    expect(await p).toEqual(Buffer.alloc(LIMIT, 0x61));
  });

  it('refuses a declared length over the limit without reading', async () => {
    const s = new PassThrough();
    const body = await read(s, String(LIMIT + 1));
    expect(body).toEqual(new OversizedBody(LIMIT + 1, 0));
  });

  it('stops at the first chunk past the limit when nothing was declared', async () => {
    const s = new PassThrough();
    const p = read(s, undefined);
    s.write(Buffer.alloc(LIMIT));
    s.write(Buffer.alloc(1));
    const body = await p;
    expect(body).toBeInstanceOf(OversizedBody);
    expect((body as OversizedBody).receivedBytes).toBe(LIMIT + 1);
    s.write(Buffer.alloc(10_000)); // further data is drained, not held
    s.end();
  });

  it('turns stream errors into 400', async () => {
    const s = new PassThrough();
    const p = read(s, undefined);
    s.destroy(new Error('aborted'));
    await expect(p).rejects.toMatchObject({ statusCode: 400 });
  });
});

describe('registerRawJsonParser on Fastify', () => {
  let close: (() => Promise<unknown>) | undefined;
  afterEach(async () => {
    await close?.();
    close = undefined;
  });

  async function app() {
    const fastify = new FastifyAdapter().getInstance();
    registerRawJsonParser(fastify, LIMIT, { rawWhen: (r) => r.url.startsWith('/raw') });
    const describeBody = (body: unknown) =>
      Buffer.isBuffer(body)
        ? { kind: 'buffer', text: body.toString('latin1') }
        : body instanceof OversizedBody
          ? { kind: 'oversized', declared: body.declaredLength ?? null, received: body.receivedBytes }
          : { kind: 'parsed', frozen: Object.isFrozen(body), proto: Object.getPrototypeOf(body) === null, body };
    fastify.post('/raw', async (req) => describeBody(req.body));
    fastify.post('/parsed', async (req) => describeBody(req.body));
    await fastify.ready();
    close = () => fastify.close();
    return fastify;
  }

  it('keeps the exact bytes on raw routes', async () => {
    const f = await app();
    const payload = '{ "b":1, "a" : "\\u00e9" }';
    const res = await f.inject({ method: 'POST', url: '/raw', headers: { 'content-type': 'application/json; charset=utf-8' }, payload });
    expect(res.json()).toEqual({ kind: 'buffer', text: payload });
  });

  it('marks oversized bodies on raw routes (declared or streamed) for the guard to answer in order', async () => {
    const f = await app();
    const declared = await f.inject({
      method: 'POST',
      url: '/raw',
      headers: { 'content-type': 'application/json' },
      payload: 'x'.repeat(LIMIT + 1),
    });
    expect(declared.json()).toEqual({ kind: 'oversized', declared: LIMIT + 1, received: 0 });
    const streamed = await f.inject({
      method: 'POST',
      url: '/raw',
      headers: { 'content-type': 'application/json' },
      payload: Readable.from([Buffer.alloc(40, 0x20), Buffer.alloc(40, 0x20)]),
    });
    expect(streamed.json()).toMatchObject({ kind: 'oversized', declared: null });
  });

  it('parses other routes strictly and answers 413 / 400 there', async () => {
    const f = await app();
    const ok = await f.inject({
      method: 'POST',
      url: '/parsed',
      headers: { 'content-type': 'application/json' },
      payload: '{"__proto__":{"x":1}}',
    });
    expect(ok.json()).toEqual({ kind: 'parsed', frozen: true, proto: true, body: { ['__proto__']: { x: 1 } } });
    const big = await f.inject({
      method: 'POST',
      url: '/parsed',
      headers: { 'content-type': 'application/json' },
      payload: 'x'.repeat(LIMIT + 1),
    });
    expect(big.statusCode).toBe(413);
    const dup = await f.inject({
      method: 'POST',
      url: '/parsed',
      headers: { 'content-type': 'application/json' },
      payload: '{"a":1,"a":2}',
    });
    expect(dup.statusCode).toBe(400);
  });

  it('never decompresses', async () => {
    const f = await app();
    const res = await f.inject({
      method: 'POST',
      url: '/raw',
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      payload: Buffer.from([0x1f, 0x8b, 0x08]),
    });
    expect(res.json()).toEqual({ kind: 'buffer', text: '\u001f\u008b\u0008' });
  });

  it('validates its limit', () => {
    const fastify = new FastifyAdapter().getInstance();
    expect(() => registerRawJsonParser(fastify, 0)).toThrow(RangeError);
  });
});
