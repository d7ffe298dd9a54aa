import { Body, Controller, Delete, Get, HttpException, Inject, Param, Post, Put, Res, UseGuards } from '@nestjs/common';
import { z } from 'zod';
import type { FastifyReply } from 'fastify';
import { INPUT_SCHEMAS, type InputEvent } from '../events/inbound.js';
import { isInputTopic } from '../events/topics.js';
import { MatchConflictError } from '../matches/match.repository.js';
import { matchIdSchema } from '../events/envelope.js';
import { upsertMatchSchema } from '../matches/match.schemas.js';
import { MatchesService, MatchRefusedError } from '../matches/matches.service.js';
import { KeyService, KeyServiceError } from '../security/keys.js';
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
  constructor(
    @Inject(MatchesService) private readonly matches: MatchesService,
    @Inject(KeyService) private readonly keys: KeyService,
  ) {}

  @Put('matches/:id')
  async putMatch(@Param('id') rawId: string, @Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const id = parseOr400(matchIdSchema, rawId, 'path.id');
    const input = parseOr400(upsertMatchSchema, body);
    try {
      const { created, view } = await this.matches.upsert(id, input);
      reply.status(created ? 201 : 200);
      return view;
    } catch (error) {
      if (error instanceof MatchConflictError) throw new HttpException({ error: 'conflict', reason: error.reason, detail: error.message }, 409);
      if (error instanceof MatchRefusedError) throw new HttpException({ error: error.code, detail: error.message, ...error.body }, 400);
      throw error;
    }
  }

  @Get('matches/:id')
  async getMatch(@Param('id') rawId: string) {
    const id = parseOr400(matchIdSchema, rawId, 'path.id');
    const view = await this.matches.view(id);
    if (!view) throw new HttpException({ error: 'not_found', detail: `no match ${id}` }, 404);
    return view;
  }

  /** Publishes an input event through the outbox, so it reaches the consumer exactly as Kafka input does. */
  @Post('events/:topic')
  async publishEvent(@Param('topic') topic: string, @Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    if (!isInputTopic(topic)) throw new HttpException({ error: 'not_found', detail: `${topic} is not an input topic` }, 404);
    const event = parseOr400<InputEvent>(INPUT_SCHEMAS[topic], body);
    const { duplicate } = await this.matches.publishInputEvent(topic, event);
    reply.status(202);
    return { accepted: true, topic, eventId: event.eventId, duplicate };
  }

  /** Issues a per-match key; the response is the only place its secret ever appears. */
  @Post('keys')
  async issueKey(@Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const request = parseOr400(issueKeySchema, body);
    try {
      const key = await this.keys.issue(request);
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
    if (!(await this.keys.revoke(keyId))) throw new HttpException({ error: 'not_found', detail: 'no such key' }, 404);
    return { revoked: true, keyId };
  }
}
