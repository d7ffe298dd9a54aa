import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  HttpException,
  Inject,
  Param,
  Post,
  Put,
  Query,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { decodeCursor, encodeCursor } from '../infra/db/cursor.js';
import { DeadLettersService } from '../matches/dead-letters.service.js';
import { INPUT_SCHEMAS, type InputEvent } from '../events/inbound.js';
import { isInputTopic } from '../events/topics.js';
import { MatchConflictError } from '../matches/match.repository.js';
import { MatchesService, MatchRefusedError } from '../matches/matches.service.js';
import { KeyService, KeyServiceError } from '../security/keys.js';
import { OverlayKeysService } from '../security/overlay-keys.service.js';
import { InternalTokenGuard } from './internal-token.guard.js';
import {
  deadLetterIdSchema,
  issueKeySchema,
  keyIdSchema,
  listDeadLettersQuerySchema,
  listMatchesQuerySchema,
  matchIdSchema,
  upsertMatchSchema,
} from './internal-api.schemas.js';
import { buildOpenApiDocument } from './openapi.js';
import { parseOr400 } from './validation.js';

/** The sort key in a cursor; `valid` checks its parts (a forged cursor is a 400, never a 500). */
function cursorOr400(cursor: string | undefined, length: number, valid: (key: string[]) => boolean = () => true): string[] | undefined {
  if (cursor === undefined) return undefined;
  const key = decodeCursor(cursor, length);
  if (!key || !valid(key))
    throw new HttpException({ error: 'invalid_request', issues: [{ field: 'query.cursor', message: 'not a cursor from this API' }] }, 400);
  return key;
}

/**
 * The platform's internal API (SPEC §5): matches, input-event replay, keys, dead letters, and its own description.
 * Bearer INTERNAL_API_TOKEN on every route. Request and response shapes: internal-api.schemas.ts; each route is
 * listed in openapi.ts (a test checks both ways).
 */
@Controller('v1/internal')
@UseGuards(InternalTokenGuard)
export class InternalApiController {
  constructor(
    @Inject(MatchesService) private readonly matches: MatchesService,
    @Inject(KeyService) private readonly keys: KeyService,
    @Inject(DeadLettersService) private readonly deadLetters: DeadLettersService,
    @Inject(OverlayKeysService) private readonly overlayKeys: OverlayKeysService,
  ) {}

  private document: Record<string, unknown> | undefined;

  /** The OpenAPI 3.1 description of this API, generated once from the schemas above. */
  @Get('openapi.json')
  openApiDocument() {
    this.document ??= buildOpenApiDocument();
    return this.document;
  }

  /** Matches, filtered, in id order, one page at a time (`nextCursor` continues). */
  @Get('matches')
  async listMatches(@Query() rawQuery: unknown) {
    const query = parseOr400(listMatchesQuerySchema, rawQuery, 'query');
    const after = cursorOr400(query.cursor, 1)?.[0];
    const page = await this.matches.list({
      limit: query.limit,
      ...(query.status ? { statuses: query.status } : {}),
      ...(query.provisioning ? { provisioning: query.provisioning } : {}),
      ...(query.enforcement ? { enforcement: query.enforcement } : {}),
      ...(after === undefined ? {} : { after }),
    });
    return { items: page.items, nextCursor: page.nextAfter === null ? null : encodeCursor([page.nextAfter]) };
  }

  /** Dead letters, newest first, one page at a time. */
  @Get('dead-letters')
  async listDeadLetters(@Query() rawQuery: unknown) {
    const query = parseOr400(listDeadLettersQuerySchema, rawQuery, 'query');
    const after = cursorOr400(
      query.cursor,
      2,
      ([at, id]) => !Number.isNaN(Date.parse(at ?? '')) && deadLetterIdSchema.safeParse(id).success,
    ) as [string, string] | undefined;
    return this.deadLetters.list({
      limit: query.limit,
      ...(query.topic ? { topic: query.topic } : {}),
      ...(query.state ? { state: query.state.toUpperCase() as 'PENDING' | 'REPLAYED' | 'DISCARDED' } : {}),
      ...(after ? { after } : {}),
    });
  }

  @Get('dead-letters/:id')
  async getDeadLetter(@Param('id') rawId: string) {
    const id = parseOr400(deadLetterIdSchema, rawId, 'path.id');
    const letter = await this.deadLetters.get(id);
    if (!letter) throw new HttpException({ error: 'not_found', detail: `no dead letter ${id}` }, 404);
    return letter;
  }

  /** Republishes a dead letter's message to its topic, once (a second replay or a replay after discard is 409). */
  @Post('dead-letters/:id/replay')
  @HttpCode(200)
  replayDeadLetter(@Param('id') rawId: string, @Req() request: FastifyRequest) {
    return this.resolveDeadLetter(rawId, 'REPLAYED', request);
  }

  /** Marks a dead letter handled without replaying it, once. */
  @Post('dead-letters/:id/discard')
  @HttpCode(200)
  discardDeadLetter(@Param('id') rawId: string, @Req() request: FastifyRequest) {
    return this.resolveDeadLetter(rawId, 'DISCARDED', request);
  }

  private async resolveDeadLetter(rawId: string, action: 'REPLAYED' | 'DISCARDED', request: FastifyRequest) {
    const id = parseOr400(deadLetterIdSchema, rawId, 'path.id');
    // The audit row names the request, so the access log line of the operator's call can be found.
    const outcome = await this.deadLetters.resolve(id, action, `internal-api request ${String(request.id)}`);
    if (outcome.kind === 'not_found') throw new HttpException({ error: 'not_found', detail: `no dead letter ${id}` }, 404);
    if (outcome.kind === 'not_replayable') throw new HttpException({ error: 'not_replayable', detail: outcome.detail }, 422);
    if (outcome.kind === 'already_resolved') {
      throw new HttpException(
        {
          error: 'conflict',
          reason: `ALREADY_${outcome.deadLetter.state}`,
          detail: `dead letter ${id} was already ${outcome.deadLetter.state.toLowerCase()}`,
        },
        409,
      );
    }
    request.log.info({ deadLetterId: id, action, topic: outcome.deadLetter.topic }, 'dead letter resolved');
    return outcome.deadLetter;
  }

  @Put('matches/:id')
  async putMatch(@Param('id') rawId: string, @Body() body: unknown, @Res({ passthrough: true }) reply: FastifyReply) {
    const id = parseOr400(matchIdSchema, rawId, 'path.id');
    const input = parseOr400(upsertMatchSchema, body);
    try {
      const { created, view } = await this.matches.upsert(id, input);
      reply.status(created ? 201 : 200);
      return view;
    } catch (error) {
      if (error instanceof MatchConflictError)
        throw new HttpException({ error: 'conflict', reason: error.reason, detail: error.message }, 409);
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

  /**
   * The match's overlay keys, one per player, issued when its server went ready (docs/security.md). The only place
   * their secrets appear; never cached by intermediaries.
   */
  @Get('matches/:id/overlay-keys')
  async getOverlayKeys(@Param('id') rawId: string, @Res({ passthrough: true }) reply: FastifyReply) {
    const id = parseOr400(matchIdSchema, rawId, 'path.id');
    const answer = await this.overlayKeys.list(id);
    if (answer.kind === 'unknown_match') throw new HttpException({ error: 'not_found', detail: `no match ${id}` }, 404);
    reply.header('cache-control', 'no-store');
    return {
      matchId: id,
      issued: answer.issued,
      ...(answer.issued ? {} : { detail: "overlay keys are issued when the match's server goes ready" }),
      keys: answer.keys,
    };
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
      return {
        keyId: key.keyId,
        secret: key.secret,
        matchId: key.matchId,
        kind: key.kind,
        expiresAt: new Date(key.expiresAt).toISOString(),
      };
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
  async revokeKey(@Param('keyId') rawKeyId: string) {
    const keyId = parseOr400(keyIdSchema, rawKeyId, 'path.keyId');
    if (!(await this.keys.revoke(keyId))) throw new HttpException({ error: 'not_found', detail: 'no such key' }, 404);
    return { revoked: true, keyId };
  }
}
