/**
 * Keeps `application/json` request bodies as the raw bytes the client sent, for HMAC verification.
 *
 * The verifier must see the exact bytes (it parses them itself, strictly), so Fastify's JSON parser is replaced
 * by one that only reads. Size is enforced while reading: a declared Content-Length over the limit is refused
 * without reading anything, and reading stops at the first byte past the limit, so at most `maxBodyBytes + one
 * chunk` is ever held. Nothing is decompressed (a Content-Encoding is refused by the verifier, not inflated).
 *
 * On raw routes an oversized body is not answered here: the body becomes an {@link OversizedBody} marker and the
 * guard answers 413 after its address check, keeping hmac-v1.md's order (403 before 413) although Fastify
 * parses bodies before guards run. On other routes (see `rawWhen`) the body is parsed with the strict I-JSON
 * parser and an oversized body is answered 413 directly.
 *
 * Register it before the application initialises, with Nest's own body parser off:
 * `NestFactory.create(AppModule, adapter, { bodyParser: false })`, then
 * `registerRawJsonParser(adapter.getInstance(), config.MAX_BODY_BYTES, { rawWhen: (r) => r.url.startsWith('/v1/hooks') || … })`.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { StrictJsonError, parseStrictJson } from './strict-json.js';

/** Stands in for a body that was not read because it exceeds the limit. */
export class OversizedBody {
  constructor(
    /** The Content-Length the client declared, when it declared one. */
    readonly declaredLength: number | undefined,
    /** Bytes read before reading stopped. */
    readonly receivedBytes: number,
  ) {}
}

/** The parts of a Fastify request the parser uses. */
export interface ParserRequest {
  readonly headers: IncomingHttpHeaders;
  readonly url: string;
}

/** A readable body stream (Fastify hands the parser the raw IncomingMessage or a preParsing stream). */
export interface BodyStream {
  on(event: 'data', listener: (chunk: Buffer) => void): unknown;
  on(event: 'end', listener: () => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeListener(event: string, listener: (...args: never[]) => void): unknown;
  resume(): unknown;
}

type Done = (err: Error | null, body?: unknown) => void;

/** The parts of a Fastify instance the helper uses (a FastifyInstance satisfies it). */
export interface ContentTypeParserHost {
  hasContentTypeParser(contentType: string): boolean;
  removeContentTypeParser(contentType: string): unknown;
  addContentTypeParser(contentType: string, parser: (request: ParserRequest, payload: BodyStream, done: Done) => void): unknown;
}

export interface RawJsonParserOptions {
  /** Which requests keep the raw Buffer (default: all). Others get the strictly parsed, frozen value. */
  rawWhen?: (request: ParserRequest) => boolean;
}

export function registerRawJsonParser(fastify: ContentTypeParserHost, maxBodyBytes: number, options: RawJsonParserOptions = {}): void {
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) throw new RangeError('maxBodyBytes must be a positive integer');
  if (fastify.hasContentTypeParser('application/json')) fastify.removeContentTypeParser('application/json');
  // Any other media type: raw routes still get the bytes, so the guard answers in its own order (403 before 415);
  // every other route refuses it here.
  if (options.rawWhen && !fastify.hasContentTypeParser('*')) {
    const rawWhen = options.rawWhen;
    fastify.addContentTypeParser('*', (request, payload, done) => {
      if (!rawWhen(request)) return done(httpError(415, 'FST_ERR_CTP_INVALID_MEDIA_TYPE', 'Unsupported Media Type'));
      readBody(payload, request.headers['content-length'], maxBodyBytes, done);
    });
  }
  fastify.addContentTypeParser('application/json', (request, payload, done) => {
    const raw = options.rawWhen ? options.rawWhen(request) : true;
    readBody(payload, request.headers['content-length'], maxBodyBytes, (err, body) => {
      if (err) return done(err);
      if (raw) return done(null, body);
      if (body instanceof OversizedBody) return done(httpError(413, 'FST_ERR_CTP_BODY_TOO_LARGE', 'Request body is too large'));
      try {
        done(null, parseStrictJson(body as Buffer));
      } catch (parseError) {
        if (parseError instanceof StrictJsonError) return done(httpError(400, 'INVALID_JSON', `Body is not I-JSON: ${parseError.reason}`));
        done(parseError as Error);
      }
    });
  });
}

/** Reads a body up to `limit` bytes: a Buffer, or an OversizedBody as soon as the limit is exceeded. */
export function readBody(
  payload: BodyStream,
  contentLength: string | undefined,
  limit: number,
  callback: (err: Error | null, body?: Buffer | OversizedBody) => void,
): void {
  const declared = contentLength !== undefined && /^[0-9]{1,15}$/.test(contentLength) ? Number(contentLength) : undefined;
  if (declared !== undefined && declared > limit) {
    payload.resume(); // discard, never buffer
    callback(null, new OversizedBody(declared, 0));
    return;
  }
  const chunks: Buffer[] = [];
  let received = 0;
  let finished = false;
  const finish = (err: Error | null, body?: Buffer | OversizedBody) => {
    if (finished) return;
    finished = true;
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
    callback(err, body);
  };
  const onData = (chunk: Buffer) => {
    received += chunk.length;
    if (received > limit) {
      chunks.length = 0;
      finish(null, new OversizedBody(declared, received));
      payload.resume(); // keep draining without a listener: the rest is dropped, not held
      return;
    }
    chunks.push(chunk);
  };
  const onEnd = () => finish(null, Buffer.concat(chunks, received));
  const onError = (err: Error) => finish(httpError(400, 'BODY_READ_FAILED', err.message));
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  payload.resume();
}

function httpError(statusCode: number, code: string, message: string): Error {
  return Object.assign(new Error(message), { statusCode, code });
}
