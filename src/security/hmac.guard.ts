/**
 * HmacGuard: NestJS glue around HookVerifier for the Fastify adapter. All decisions live in the verifier; this
 * file only reads the request, attaches the verified result, and turns a failure into a fixed response body.
 *
 * Usage (bodies must arrive as raw Buffers, see raw-body.ts):
 * ```ts
 * @Post('/v1/overlay/events') @HttpCode(202) @HmacRoute('overlay') @UseGuards(HmacGuard)
 * accept(@Verified() hook: VerifiedHook) { … }
 * ```
 * The module provides `{ provide: HOOK_VERIFIER, useValue: new HookVerifier(…) }`.
 */
import {
  type CanActivate,
  type ExecutionContext,
  HttpException,
  Inject,
  Injectable,
  SetMetadata,
  createParamDecorator,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { IncomingHttpHeaders } from 'node:http';
import type { FailureStatus, HookRequest, HookRoute, HookVerifier, VerifiedHook } from './hook-verifier.js';
import { OversizedBody } from './raw-body.js';

export const HOOK_VERIFIER = Symbol('HookVerifier');
export const HOOK_ROUTE_METADATA = 'flock:hmac-route';

/** Marks a handler (or controller) as a hook route of the given kind; HmacGuard refuses to run without it. */
export const HmacRoute = (route: HookRoute) => SetMetadata(HOOK_ROUTE_METADATA, route);

/** The parts of a Fastify request the guard reads and writes. */
export interface HookHttpRequest {
  readonly headers: IncomingHttpHeaders;
  readonly body?: unknown;
  readonly raw: { readonly rawHeaders?: readonly string[]; readonly socket?: { readonly remoteAddress?: string } };
  /** Fastify's request id (from `x-request-id` or generated): the hook's correlation id in logs and events. */
  readonly id?: string;
  verifiedHook?: VerifiedHook;
}

/** Response bodies per status: fixed, and identical for every 401 whatever the reason. */
export const FAILURE_BODIES: Readonly<Record<FailureStatus, { readonly error: string }>> = Object.freeze({
  400: { error: 'bad_request' },
  401: { error: 'unauthorized' },
  403: { error: 'forbidden' },
  413: { error: 'payload_too_large' },
  415: { error: 'unsupported_media_type' },
  429: { error: 'too_many_requests' },
  503: { error: 'unavailable' },
});

/** Translates a Fastify request into the verifier's transport-neutral input. */
export function hookRequestFromHttp(request: HookHttpRequest, route: HookRoute): HookRequest {
  const body = request.body;
  return {
    route,
    remoteAddress: request.raw.socket?.remoteAddress,
    headers: request.headers,
    ...(request.raw.rawHeaders ? { rawHeaders: request.raw.rawHeaders } : {}),
    rawBody: Buffer.isBuffer(body) ? body : undefined,
    bodyTooLarge: body instanceof OversizedBody,
    ...(request.id ? { requestId: request.id } : {}),
  };
}

@Injectable()
export class HmacGuard implements CanActivate {
  constructor(
    @Inject(HOOK_VERIFIER) private readonly verifier: HookVerifier,
    @Inject(Reflector) private readonly reflector: Reflector,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const route = this.reflector.getAllAndOverride<HookRoute | undefined>(HOOK_ROUTE_METADATA, [context.getHandler(), context.getClass()]);
    if (route !== 'admin' && route !== 'overlay') throw new Error('HmacGuard needs @HmacRoute("admin" | "overlay") on the handler');
    const http = context.switchToHttp();
    const request = http.getRequest<HookHttpRequest>();
    const result = await this.verifier.verify(hookRequestFromHttp(request, route));
    if (result.ok) {
      request.verifiedHook = result;
      return true;
    }
    if (result.retryAfterMs !== undefined) {
      http
        .getResponse<{ header(name: string, value: string): unknown }>()
        .header('retry-after', String(Math.max(1, Math.ceil(result.retryAfterMs / 1000))));
    }
    if (result.status === 503 && result.dependency) {
      // An outage, not a refusal: the problem names the dependency, as every other route's 503 does (docs/errors.md).
      const dependency = result.dependency;
      throw new HttpException(
        {
          ...FAILURE_BODIES[503],
          reason: dependency === 'redis' ? 'KV_UNAVAILABLE' : 'DATABASE_UNAVAILABLE',
          detail: `${dependency} is unreachable; retry later`,
        },
        503,
      );
    }
    throw new HttpException({ ...FAILURE_BODIES[result.status] }, result.status);
  }
}

/** Handler parameter: the verified hook attached by HmacGuard. */
export const Verified = createParamDecorator((_data: unknown, context: ExecutionContext): VerifiedHook => {
  const hook = context.switchToHttp().getRequest<HookHttpRequest>().verifiedHook;
  if (!hook) throw new Error('@Verified() used on a handler that HmacGuard did not verify');
  return hook;
});
