import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException, NotFoundException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { HookCallRejected } from '../hooks/hook-call.policy.js';
import { dependencyOutage, OUTAGE_RETRY_AFTER_S } from '../infra/faults/outage.js';
import { type ProblemReply, sendProblem, toProblem } from './problem.js';
import type { RouteTable } from './route-table.js';

/**
 * Answers every error a handler, guard, pipe, body parser or the router throws, as RFC 9457 problem details
 * (`application/problem+json`, src/http/problem.ts, docs/errors.md):
 * - HttpException: its status, and its body's `error`/`reason`/`detail`/`issues` as problem members (the refusal
 *   was intended; nothing is logged here). A path no route has is 404; a path routed for other methods is 405 with
 *   `Allow`.
 * - An error a body parser raised with a 4xx `statusCode` (413, 415, 400 not I-JSON): that status.
 * - A verified hook call the service cannot store (NUL, out-of-range number): 400 with its reason and field.
 * - A dependency outage: 503 with Retry-After, logged at warn (the readiness probe reports it too).
 * - Anything else: 500 `internal` with `requestId`, logged once at error level with the stack, and counted.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    private readonly logger: Logger,
    private readonly metrics: Pick<Metrics, 'unexpectedErrors' | 'dependencyUnavailable'>,
    private readonly routes?: Pick<RouteTable, 'methodsFor'>,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    if (reply.sent) return;
    const send = (problem: Parameters<typeof sendProblem>[1]) => void sendProblem(reply as unknown as ProblemReply, problem);
    const path = request.url.split('?')[0] ?? '';
    const context = { requestId: request.id, method: request.method, route: request.routeOptions?.url ?? path };

    if (exception instanceof NotFoundException && !request.routeOptions?.url) {
      // The router found no route (Nest's not-found handler); the query string is left out (it may hold anything).
      const allowed = this.routes?.methodsFor(path) ?? [];
      if (allowed.length > 0) {
        reply.header('allow', allowed.join(', '));
        send(toProblem(405, { error: 'method_not_allowed', detail: `${path} answers ${allowed.join(', ')}, not ${request.method}` }));
        return;
      }
      send(toProblem(404, { error: 'not_found', detail: `no route ${request.method} ${path}` }));
      return;
    }
    if (exception instanceof HttpException) {
      send(toProblem(exception.getStatus(), exception.getResponse()));
      return;
    }
    const refused = requestRefusal(exception);
    if (refused) {
      // A body parser's refusal (oversized, not I-JSON, unsupported media type) is the caller's error, never a 500.
      send(toProblem(refused.status, { ...(refused.code === 'INVALID_JSON' ? { error: 'invalid_json' } : {}), detail: refused.message }));
      return;
    }
    if (exception instanceof HookCallRejected) {
      send(toProblem(400, { error: 'bad_request', reason: exception.reason, field: exception.field }));
      return;
    }
    const dependency = dependencyOutage(exception);
    if (dependency) {
      const reason = dependency === 'redis' ? 'KV_UNAVAILABLE' : 'DATABASE_UNAVAILABLE';
      this.metrics.dependencyUnavailable.inc({ dependency });
      this.logger.warn({ ...context, reason, err: exception }, `${dependency} unreachable; answered 503`);
      reply.header('retry-after', String(OUTAGE_RETRY_AFTER_S));
      send(
        toProblem(
          503,
          { error: 'unavailable', reason, detail: `${dependency} is unreachable; retry later` },
          { requestId: String(request.id) },
        ),
      );
      return;
    }
    this.metrics.unexpectedErrors.inc({ where: 'http' });
    this.logger.error({ ...context, reason: 'UNEXPECTED_ERROR', err: exception }, 'unexpected error answering a request');
    send(
      toProblem(500, { error: 'internal', detail: 'unexpected error; the log has it under requestId' }, { requestId: String(request.id) }),
    );
  }
}

/** The status, code and message of an error a content-type parser raised for the request (4xx `statusCode`). */
function requestRefusal(exception: unknown): { status: number; code: string | undefined; message: string } | null {
  if (!(exception instanceof Error)) return null;
  const { statusCode, code } = exception as Error & { statusCode?: unknown; code?: unknown };
  if (typeof statusCode !== 'number' || statusCode < 400 || statusCode > 499) return null;
  // Only the parsers' own errors (Fastify's FST_* and raw-body.ts's codes): any other 4xx-looking error is a bug.
  if (typeof code !== 'string' || !(code.startsWith('FST_') || code === 'INVALID_JSON' || code === 'BODY_READ_FAILED')) return null;
  return { status: statusCode, code: typeof code === 'string' ? code : undefined, message: exception.message };
}
