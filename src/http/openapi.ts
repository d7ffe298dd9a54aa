/**
 * The internal API's OpenAPI 3.1 description, generated from the zod schemas the controller validates with
 * (internal-api.schemas.ts) by zod's own `z.toJSONSchema`: one source of truth for requests and responses.
 * Served at GET /v1/internal/openapi.json behind the internal token, like every /v1/internal route (docs/api.md).
 */
import { z } from 'zod';
import { INPUT_SCHEMAS } from '../events/inbound.js';
import { INPUT_TOPICS } from '../events/topics.js';
import {
  deadLetterIdSchema,
  deadLettersPageSchema,
  deadLetterViewSchema,
  eventAcceptedSchema,
  issueKeySchema,
  keyIdSchema,
  keyIssuedSchema,
  keyRevokedSchema,
  listDeadLettersQuerySchema,
  listMatchesQuerySchema,
  matchIdSchema,
  matchesPageSchema,
  matchViewSchema,
  openApiDocumentSchema,
  overlayKeysSchema,
  upsertMatchSchema,
} from './internal-api.schemas.js';
import { PROBLEM_CONTENT_TYPE, problemSchema } from './problem.js';

type Method = 'get' | 'put' | 'post' | 'delete';

export interface InternalOperation {
  readonly method: Method;
  /** OpenAPI path template, e.g. `/v1/internal/matches/{id}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  readonly params?: Readonly<Record<string, z.ZodType>>;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** Success answers: status → what it holds. */
  readonly responses: Readonly<Record<number, { readonly description: string; readonly schema: z.ZodType }>>;
  /** Refusals this operation answers besides 401, 503 and the catch-all (each a problem document). */
  readonly problems: Readonly<Record<number, string>>;
}

const matchId = { id: matchIdSchema };
const deadLetterId = { id: deadLetterIdSchema };
const invalid = { 400: 'invalid input: `issues` names each field (error `invalid_request`)' };

/** Every route of the internal API controller; a test checks this list against the routes Fastify registered. */
export const INTERNAL_OPERATIONS: readonly InternalOperation[] = [
  {
    method: 'get',
    path: '/v1/internal/openapi.json',
    operationId: 'getOpenApiDocument',
    summary: 'This description (OpenAPI 3.1)',
    responses: { 200: { description: 'the OpenAPI document', schema: openApiDocumentSchema } },
    problems: {},
  },
  {
    method: 'get',
    path: '/v1/internal/matches',
    operationId: 'listMatches',
    summary: 'Matches, filtered, in id order, one page at a time (`nextCursor` continues)',
    query: listMatchesQuerySchema,
    responses: { 200: { description: 'one page of match views', schema: matchesPageSchema } },
    problems: invalid,
  },
  {
    method: 'put',
    path: '/v1/internal/matches/{id}',
    operationId: 'upsertMatch',
    summary: 'Create or update a match (SPEC §5)',
    params: matchId,
    body: upsertMatchSchema,
    responses: {
      200: { description: 'updated; the match view', schema: matchViewSchema },
      201: { description: 'created; the match view', schema: matchViewSchema },
    },
    problems: {
      ...invalid,
      409: 'the change conflicts with what is recorded (`reason`: MATCH_CANCELLED, ENTRY_FEE_FIXED, …)',
    },
  },
  {
    method: 'get',
    path: '/v1/internal/matches/{id}',
    operationId: 'getMatch',
    summary: 'A match: status, checklist, provisioning, refunds, enforcement and evidence',
    params: matchId,
    responses: { 200: { description: 'the match view', schema: matchViewSchema } },
    problems: { ...invalid, 404: 'no such match' },
  },
  {
    method: 'get',
    path: '/v1/internal/matches/{id}/overlay-keys',
    operationId: 'getOverlayKeys',
    summary: 'The match’s overlay keys, one per player, issued when its server went ready (secrets; no-store)',
    params: matchId,
    responses: { 200: { description: 'the keys, or `issued: false` with why', schema: overlayKeysSchema } },
    problems: { ...invalid, 404: 'no such match' },
  },
  {
    method: 'post',
    path: '/v1/internal/events/{topic}',
    operationId: 'publishInputEvent',
    summary: 'Publish an input event through the outbox, exactly as Kafka input (replay, the demo)',
    params: { topic: z.enum(INPUT_TOPICS) },
    body: z.union(INPUT_TOPICS.map((topic) => INPUT_SCHEMAS[topic].meta({ title: topic }))),
    responses: { 202: { description: 'accepted (or already published: `duplicate`)', schema: eventAcceptedSchema } },
    problems: { ...invalid, 404: 'not an input topic' },
  },
  {
    method: 'post',
    path: '/v1/internal/keys',
    operationId: 'issueKey',
    summary: 'Issue a per-match hook key; the answer is the only place its secret appears',
    body: issueKeySchema,
    responses: { 201: { description: 'the key and its secret', schema: keyIssuedSchema } },
    problems: { ...invalid, 409: 'no free key id (`key_id_taken`); retry' },
  },
  {
    method: 'delete',
    path: '/v1/internal/keys/{keyId}',
    operationId: 'revokeKey',
    summary: 'Revoke a key: every instance refuses it within 5 seconds',
    params: { keyId: keyIdSchema },
    responses: { 200: { description: 'revoked', schema: keyRevokedSchema } },
    problems: { ...invalid, 404: 'no such key' },
  },
  {
    method: 'get',
    path: '/v1/internal/dead-letters',
    operationId: 'listDeadLetters',
    summary: 'Dead letters, newest first, one page at a time',
    query: listDeadLettersQuerySchema,
    responses: { 200: { description: 'one page of dead letters', schema: deadLettersPageSchema } },
    problems: invalid,
  },
  {
    method: 'get',
    path: '/v1/internal/dead-letters/{id}',
    operationId: 'getDeadLetter',
    summary: 'A dead letter',
    params: deadLetterId,
    responses: { 200: { description: 'the dead letter', schema: deadLetterViewSchema } },
    problems: { ...invalid, 404: 'no such dead letter' },
  },
  {
    method: 'post',
    path: '/v1/internal/dead-letters/{id}/replay',
    operationId: 'replayDeadLetter',
    summary: 'Republish a dead letter’s message to its topic (same event id), once; audited',
    params: deadLetterId,
    responses: { 200: { description: 'replayed; the dead letter', schema: deadLetterViewSchema } },
    problems: {
      ...invalid,
      404: 'no such dead letter',
      409: 'already replayed or discarded (`reason` ALREADY_REPLAYED | ALREADY_DISCARDED)',
      422: 'the stored message is not a whole JSON object (`not_replayable`); discard it',
    },
  },
  {
    method: 'post',
    path: '/v1/internal/dead-letters/{id}/discard',
    operationId: 'discardDeadLetter',
    summary: 'Mark a dead letter handled without replaying it, once; audited',
    params: deadLetterId,
    responses: { 200: { description: 'discarded; the dead letter', schema: deadLetterViewSchema } },
    problems: {
      ...invalid,
      404: 'no such dead letter',
      409: 'already replayed or discarded (`reason` ALREADY_REPLAYED | ALREADY_DISCARDED)',
    },
  },
];

type JsonSchema = Record<string, unknown>;

/**
 * JSON Schema 2020-12 of a zod schema. Parts named with `.meta({ id })` (MatchView, DeadLetter, Problem) move to
 * `components.schemas` and are referenced from where they were, as are any `$defs` zod produced.
 */
function jsonSchema(schema: z.ZodType, io: 'input' | 'output', components: Record<string, JsonSchema>): JsonSchema {
  const generated = z.toJSONSchema(schema, { target: 'draft-2020-12', io, unrepresentable: 'any' }) as JsonSchema;
  const { $schema: _dialect, $defs, ...rest } = generated;
  const name = (id: string, def: JsonSchema) => {
    const known = components[id];
    if (known && JSON.stringify(known) !== JSON.stringify(def))
      throw new Error(`two different schemas are named ${id}: ${JSON.stringify(known)} ${JSON.stringify(def)}`);
    components[id] = def;
    return { $ref: `#/components/schemas/${id}` };
  };
  const lift = (node: unknown): unknown => {
    if (Array.isArray(node)) return node.map(lift);
    if (!node || typeof node !== 'object') return node;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(node)) {
      if (key === '$ref' && typeof value === 'string') out[key] = value.replace(/^#\/\$defs\//, '#/components/schemas/');
      else if (key !== 'id' || typeof value !== 'string') out[key] = lift(value);
    }
    const id = (node as { id?: unknown }).id;
    return typeof id === 'string' ? name(id, out) : out;
  };
  for (const [id, { id: _same, ...def }] of Object.entries(($defs ?? {}) as Record<string, JsonSchema>)) name(id, lift(def) as JsonSchema);
  return lift(rest) as JsonSchema;
}

/** The schema of one query parameter, from its object's generated schema. */
function queryParameters(query: z.ZodObject, components: Record<string, JsonSchema>) {
  const object = jsonSchema(query, 'input', components) as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(object.properties ?? {}).map(([name, schema]) => ({
    name,
    in: 'query',
    required: object.required?.includes(name) ?? false,
    ...(typeof schema.description === 'string' ? { description: schema.description } : {}),
    schema,
  }));
}

/** The OpenAPI 3.1 document of the given operations (by default the internal API's). */
export function buildOpenApiDocument(operations: readonly InternalOperation[] = INTERNAL_OPERATIONS): Record<string, unknown> {
  const components: Record<string, JsonSchema> = {};
  const problem = (description: string) => ({
    description,
    content: { [PROBLEM_CONTENT_TYPE]: { schema: jsonSchema(problemSchema, 'output', components) } },
  });
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const parameters = [
      ...Object.entries(op.params ?? {}).map(([name, schema]) => ({
        name,
        in: 'path',
        required: true,
        schema: jsonSchema(schema, 'input', components),
      })),
      ...(op.query ? queryParameters(op.query, components) : []),
    ];
    const responses: Record<string, unknown> = {};
    for (const [status, response] of Object.entries(op.responses)) {
      responses[status] = {
        description: response.description,
        content: { 'application/json': { schema: jsonSchema(response.schema, 'output', components) } },
      };
    }
    for (const [status, description] of Object.entries(op.problems)) responses[status] = problem(description);
    responses['401'] = problem('no valid `Authorization: Bearer INTERNAL_API_TOKEN` (error `unauthorized`)');
    responses['503'] = problem('a dependency (database, Redis) is unreachable; `Retry-After` says when to retry');
    responses.default = problem('any other error (404/405 route, 413, 415, 500 with `requestId`)');
    paths[op.path] ??= {};
    (paths[op.path] as Record<string, unknown>)[op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(parameters.length ? { parameters } : {}),
      ...(op.body
        ? { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(op.body, 'input', components) } } } }
        : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.1',
    info: {
      title: 'flocknode-workers internal API',
      version: 'v1',
      description:
        'The platform’s and operators’ API of the worker service (SPEC §5). Every route needs `Authorization: Bearer INTERNAL_API_TOKEN`, ' +
        'this description included. Errors are RFC 9457 problem details (application/problem+json, docs/errors.md); every answer carries `x-request-id`.',
    },
    jsonSchemaDialect: 'https://json-schema.org/draft/2020-12/schema',
    security: [{ internalToken: [] }],
    paths,
    components: {
      schemas: components,
      securitySchemes: { internalToken: { type: 'http', scheme: 'bearer', description: 'INTERNAL_API_TOKEN' } },
    },
  };
}
