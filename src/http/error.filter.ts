import { type ArgumentsHost, Catch, type ExceptionFilter, HttpException } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { HookCallRejected } from '../hooks/hook-call.policy.js';
import { dependencyOutage, OUTAGE_RETRY_AFTER_S } from '../infra/faults/outage.js';

/**
 * Answers every error a handler, guard or pipe throws, in the API's error shape (`{ error, reason?, detail? }`).
 * - HttpException: its status and body, as thrown (the refusal was intended; nothing is logged here).
 * - A verified hook call the service cannot store (NUL, out-of-range number): 400 with its reason and field.
 * - A dependency outage: 503 with Retry-After, logged at warn (the readiness probe reports it too).
 * - Anything else: 500 `{ error: 'internal', requestId }`, logged once at error level with the stack, and counted.
 */
@Catch()
export class ErrorFilter implements ExceptionFilter {
  constructor(
    private readonly logger: Logger,
    private readonly metrics: Pick<Metrics, 'unexpectedErrors' | 'dependencyUnavailable'>,
  ) {}

  catch(exception: unknown, host: ArgumentsHost): void {
    const http = host.switchToHttp();
    const request = http.getRequest<FastifyRequest>();
    const reply = http.getResponse<FastifyReply>();
    if (reply.sent) return;
    const context = { requestId: request.id, method: request.method, route: request.routeOptions?.url ?? request.url.split('?')[0] };

    if (exception instanceof HttpException) {
      const body = exception.getResponse();
      void reply.status(exception.getStatus()).send(typeof body === 'string' ? { error: slug(body) } : body);
      return;
    }
    if (exception instanceof HookCallRejected) {
      void reply.status(400).send({ error: 'bad_request', reason: exception.reason, field: exception.field });
      return;
    }
    const dependency = dependencyOutage(exception);
    if (dependency) {
      const reason = dependency === 'redis' ? 'KV_UNAVAILABLE' : 'DATABASE_UNAVAILABLE';
      this.metrics.dependencyUnavailable.inc({ dependency });
      this.logger.warn({ ...context, reason, err: exception }, `${dependency} unreachable; answered 503`);
      void reply
        .status(503)
        .header('retry-after', String(OUTAGE_RETRY_AFTER_S))
        .send({ error: 'unavailable', reason, detail: `${dependency} is unreachable; retry later` });
      return;
    }
    this.metrics.unexpectedErrors.inc({ where: 'http' });
    this.logger.error({ ...context, reason: 'UNEXPECTED_ERROR', err: exception }, 'unexpected error answering a request');
    void reply.status(500).send({ error: 'internal', requestId: request.id });
  }
}

function slug(text: string): string {
  return (
    text
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '_')
      .replace(/^_|_$/g, '') || 'error'
  );
}
