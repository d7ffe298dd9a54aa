import { type ArgumentsHost, Catch } from '@nestjs/common';
import { BaseExceptionFilter } from '@nestjs/core';
import { HookCallRejected } from '../hooks/hook-call.policy.js';
import { isDependencyOutage, OUTAGE_RETRY_AFTER_S } from '../infra/faults/outage.js';

interface Reply {
  status(code: number): Reply;
  header(name: string, value: string): Reply;
  send(body: unknown): unknown;
}

/**
 * Last line before a 500: a dependency outage is answered 503 with Retry-After (the caller retries), a verified hook
 * the service cannot store is answered 400 with its reason; everything else goes to Nest's default handling.
 */
@Catch()
export class DependencyErrorFilter extends BaseExceptionFilter {
  override catch(exception: unknown, host: ArgumentsHost): void {
    const reply = host.switchToHttp().getResponse<Reply>();
    if (isDependencyOutage(exception)) {
      reply.status(503).header('retry-after', String(OUTAGE_RETRY_AFTER_S)).send({ error: 'unavailable' });
      return;
    }
    if (exception instanceof HookCallRejected) {
      reply.status(400).send({ error: 'bad_request', reason: exception.reason, field: exception.field });
      return;
    }
    super.catch(exception, host);
  }
}
