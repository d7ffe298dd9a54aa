import { Body, Controller, Delete, Get, HttpException, Inject, Param, Post, Put, Res, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import { KeyServiceError } from '../security/keys.js';
import type { FastifyReply } from 'fastify';
import { enqueueEvent } from '../infra/bus/outbox.js';
import { INPUT_SCHEMAS, type InputEvent } from '../events/inbound.js';
import { isInputTopic } from '../events/topics.js';
import { getMatchView, MatchConflictError, upsertMatch } from '../matches/match.repository.js';
import { matchIdSchema, upsertMatchSchema } from '../matches/match.schemas.js';
import { SERVICES, type Services } from '../services.js';
import { InternalTokenGuard } from './internal-token.guard.js';
import { parseOr400 } from './validation.js';

const issueKeySchema = z
  .object({
    matchId: matchIdSchema,
    kind: z.enum(['overlay', 'admin']),
    ttlMs: z.number().int().positive().max(7 * 24 * 3600_000).optional(),
  })
  .strict();

/** The platform's internal API (SPEC §5): matches and input-event replay. Bearer INTERNAL_API_TOKEN. */
@Controller('v1/internal')
@UseGuards(InternalTokenGuard)
export class InternalApiController {
  constructor(@Inject(SERVICES) private readonly services: Services) {}

  @Put('matches/:id')
  async putMatch(@Param('id') rawId: string, @Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const id = parseOr400(matchIdSchema, rawId, 'path.id');
    const input = parseOr400(upsertMatchSchema, body);
    const { db, clock } = this.services;
    let created: boolean;
    try {
      ({ created } = await db.transaction().execute((trx) => upsertMatch(trx, id, input, clock.now())));
    } catch (error) {
      if (error instanceof MatchConflictError) throw new HttpException({ error: 'conflict', reason: error.reason, detail: error.message }, 409);
      throw error;
    }
    reply.status(created ? 201 : 200);
    return getMatchView(db, id);
  }

  @Get('matches/:id')
  async getMatch(@Param('id') rawId: string) {
    const id = parseOr400(matchIdSchema, rawId, 'path.id');
    const view = await getMatchView(this.services.db, id);
    if (!view) throw new HttpException({ error: 'not_found', detail: `no match ${id}` }, 404);
    return view;
  }

  /** Publishes an input event through the outbox, so it reaches the consumer exactly as Kafka input does. */
  @Post('events/:topic')
  async publishEvent(@Param('topic') topic: string, @Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    if (!isInputTopic(topic)) throw new HttpException({ error: 'not_found', detail: `${topic} is not an input topic` }, 404);
    const event = parseOr400<InputEvent>(INPUT_SCHEMAS[topic], body);
    // The envelope's fields go to the envelope; what is left is the topic's payload (unknown fields are dropped).
    const { v: _v, eventId, type: _type, occurredAt, matchId, ...payload } = event;
    const now = this.services.clock.now();
    const enqueued = await enqueueEvent(this.services.db, {
      topic,
      matchId,
      key: matchId ?? 'all',
      eventId,
      occurredAt: occurredAt ?? new Date(now).toISOString(),
      now,
      dedupeKey: `input:${topic}:${eventId}`,
      payload,
    });
    this.services.nudgeRelay();
    reply.status(202);
    return { accepted: true, topic, eventId, duplicate: enqueued === null };
  }

  /** Issues a per-match key; the response is the only place its secret ever appears. */
  @Post('keys')
  async issueKey(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const request = parseOr400(issueKeySchema, body);
    try {
      const key = await this.services.keys.issue(request);
      reply.status(201);
      return { keyId: key.keyId, secret: key.secret, matchId: key.matchId, kind: key.kind, expiresAt: new Date(key.expiresAt).toISOString() };
    } catch (error) {
      if (error instanceof KeyServiceError) {
        const status = error.reason === 'KEY_ID_TAKEN' ? 409 : error.reason === 'NO_MASTER_SECRET' ? 503 : 400;
        throw new HttpException({ error: error.reason.toLowerCase(), detail: error.message }, status);
      }
      throw error;
    }
  }

  /** Revokes a key: every instance refuses it within 5 seconds. */
  @Delete('keys/:keyId')
  async revokeKey(@Param('keyId') keyId: string) {
    if (!(await this.services.keys.revoke(keyId))) throw new HttpException({ error: 'not_found', detail: 'no such key' }, 404);
    return { revoked: true, keyId };
  }
}
