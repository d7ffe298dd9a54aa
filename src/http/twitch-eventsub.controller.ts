import { Controller, Inject, Post, Req, Res } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { EventSubReceiver } from '../integrations/twitch/eventsub.js';
import type { Logger } from '../observability/logger.js';
import { type ProblemReply, sendProblem, toProblem } from './problem.js';

export const EVENTSUB_RECEIVER = Symbol('EventSubReceiver');
export const EVENTSUB_LOGGER = Symbol('EventSubLogger');

/** Twitch EventSub webhook deliveries; the receiver verifies and applies them (docs/stream-health.md). */
@Controller('v1/twitch')
export class TwitchEventSubController {
  constructor(
    @Inject(EVENTSUB_RECEIVER) private readonly receiver: EventSubReceiver | null,
    @Inject(EVENTSUB_LOGGER) private readonly logger: Logger,
  ) {}

  @Post('eventsub')
  async eventsub(@Req() req: FastifyRequest, @Res() reply: FastifyReply): Promise<void> {
    if (!this.receiver) {
      await sendProblem(
        reply as unknown as ProblemReply,
        toProblem(404, { error: 'not_found', reason: 'EVENTSUB_DISABLED', detail: 'Twitch EventSub is not configured' }),
      );
      return;
    }
    // No body at all is verified as an empty one (and fails the signature); an oversized one is refused unread.
    const body = req.body === undefined || req.body === null ? Buffer.alloc(0) : Buffer.isBuffer(req.body) ? req.body : null;
    if (!body) {
      await sendProblem(reply as unknown as ProblemReply, toProblem(413, { error: 'payload_too_large', reason: 'BODY_UNREADABLE' }));
      return;
    }
    const outcome = await this.receiver.receive(req.headers, body);
    // Reason codes only: never the signature, the secret or the body.
    const level = outcome.status === 403 || outcome.status === 400 || outcome.status === 503 ? 'warn' : 'debug';
    this.logger[level](
      { reason: outcome.reason, status: outcome.status, messageType: req.headers['twitch-eventsub-message-type'] },
      'twitch eventsub delivery',
    );
    if (outcome.status === 200) {
      await reply.status(200).header('content-type', 'text/plain; charset=utf-8').send(outcome.text);
      return;
    }
    if (outcome.status === 204) {
      await reply.status(204).send();
      return;
    }
    if (outcome.status === 503) reply.header('retry-after', '5');
    await sendProblem(reply as unknown as ProblemReply, toProblem(outcome.status, { reason: outcome.reason }));
  }
}
