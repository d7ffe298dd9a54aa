/**
 * The internal API's shapes, as zod schemas: requests are validated with them (the controller parses with these
 * very objects) and the OpenAPI document (openapi.ts) is generated from them, responses included. The response
 * schemas are what the integration tests check real answers against, through the generated document.
 */
import { z } from 'zod';
import { matchIdSchema } from '../events/envelope.js';
import type { CleanupState, ProvisionState } from '../infra/db/schema.js';
import { MATCH_STATUSES, sideSchema } from '../matches/match.schemas.js';

export { upsertMatchSchema } from '../matches/match.schemas.js';
export { matchIdSchema };

// ---- requests ----

export const issueKeySchema = z
  .object({
    matchId: matchIdSchema,
    kind: z.enum(['overlay', 'admin']),
    ttlMs: z
      .number()
      .int()
      .positive()
      .max(7 * 24 * 3600_000)
      .optional(),
  })
  .strict();

/** A comma-separated list of allowed values (`?status=SCHEDULED,IN_PROGRESS`). */
const listOf = <T extends string>(values: readonly [T, ...T[]]) =>
  z
    .string()
    .meta({ description: `comma-separated, any of: ${values.join(', ')}` })
    .transform((text) => text.split(',').filter(Boolean))
    .pipe(z.array(z.enum(values)).min(1));

const PROVISION_STATES = [
  'RESERVED',
  'INSTALLING',
  'WAITING_SIGNALS',
  'READY',
  'FAILED',
  'RELEASED',
] as const satisfies readonly ProvisionState[];
const CLEANUP_STATES = ['NONE', 'PENDING', 'DONE', 'GAVE_UP'] as const satisfies readonly CleanupState[];

const pageSchema = {
  limit: z.coerce.number().int().min(1).max(100).default(50),
  cursor: z.string().max(512).meta({ description: 'the previous page’s nextCursor' }).optional(),
};

export const listMatchesQuerySchema = z
  .object({
    status: listOf(MATCH_STATUSES).optional(),
    provisioning: listOf(PROVISION_STATES).optional(),
    enforcement: z.enum(['any', 'none']).meta({ description: 'matches with (any) or without (none) a verdict' }).optional(),
    ...pageSchema,
  })
  .strict();

export const listDeadLettersQuerySchema = z
  .object({
    topic: z.string().min(1).max(200).optional(),
    state: z.enum(['pending', 'replayed', 'discarded']).optional(),
    ...pageSchema,
  })
  .strict();

export const deadLetterIdSchema = z.uuid();
/** Any text is looked up (an unknown or malformed key id is simply not found). */
export const keyIdSchema = z.string().min(1).max(200);

// ---- responses ----

const isoTime = z.iso.datetime();
const checklistSchema = z
  .object({
    serverInstalled: z.boolean(),
    adminHooksOk: z.boolean(),
    overlayConnected: z.boolean(),
    p1StreamLive: z.boolean(),
    p2StreamLive: z.boolean(),
    titlesContainMatchId: z.boolean(),
    bitrateOk: z.boolean(),
    fpsOk: z.boolean(),
  })
  .strict();

/** GET /v1/internal/matches/{id} (SPEC §5). `UNKNOWN` mode/status: a server was reserved for a match never upserted. */
export const matchViewSchema = z
  .object({
    id: z.string(),
    mode: z.enum(['VERIFIED_STREAM', 'STANDARD', 'UNKNOWN']),
    status: z.enum([...MATCH_STATUSES, 'UNKNOWN']),
    entryFee: z.object({ amountCents: z.number().int(), currency: z.string() }).strict(),
    overlayRequired: z.boolean(),
    enforcementMode: z.string(),
    players: z.array(z.object({ side: sideSchema, playerId: z.string(), streamChannels: z.array(z.string()) }).strict()),
    streamWaiver: z
      .object({
        reason: z.string(),
        grantedBy: z.string(),
        gaps: z.array(z.object({ side: sideSchema, missing: z.array(z.string()), detail: z.string() }).strict()),
        at: isoTime,
      })
      .strict()
      .nullable(),
    checklist: checklistSchema,
    provisioning: z
      .object({
        state: z.enum(PROVISION_STATES),
        panelServerId: z.number().int(),
        deadlineAt: isoTime.nullable(),
        readyAt: isoTime.nullable(),
        failureReason: z.string().nullable(),
        releasedAt: isoTime.nullable(),
        cleanup: z.enum(CLEANUP_STATES),
        adminKey: z
          .object({
            keyId: z.string().nullable(),
            delivery: z.enum(['PENDING', 'DELIVERED', 'FAILED', 'CANCELLED']),
            attempts: z.number().int(),
            deliveredAt: isoTime.nullable(),
            revoked: z.boolean(),
            lastFailure: z
              .object({ reason: z.string(), status: z.number().int().nullable(), detail: z.string().nullable() })
              .strict()
              .nullable(),
            adminHookBlocked: z.string().nullable(),
          })
          .strict()
          .nullable(),
      })
      .strict()
      .nullable(),
    refunds: z.array(
      z
        .object({ playerId: z.string(), amountCents: z.number().int(), currency: z.string(), reason: z.string().nullable(), at: isoTime })
        .strict(),
    ),
    streamHealth: z.array(
      z
        .object({
          side: sideSchema,
          graceMs: z.number().int().nullable(),
          lastSampleAt: isoTime.nullable(),
          lastOutcome: z.enum(['healthy', 'violating', 'unknown']).nullable(),
          episode: z
            .object({
              id: z.string(),
              state: z.enum(['open', 'closed', 'verdict']),
              openedAt: isoTime,
              anchorAt: isoTime,
              elapsedMs: z.number(),
              pausedMs: z.number(),
              violations: z.array(z.string()),
              graceDeadlineAt: isoTime.nullable(),
              closedAt: isoTime.nullable(),
              verdictAt: isoTime.nullable(),
            })
            .strict()
            .nullable(),
        })
        .strict(),
    ),
    enforcement: z.array(
      z
        .object({ side: sideSchema, verdict: z.enum(['FORFEIT', 'DISPUTE']), reason: z.string(), evidenceId: z.string(), at: isoTime })
        .strict(),
    ),
    evidence: z.array(
      z
        .object({
          id: z.string(),
          side: sideSchema.nullable(),
          episodeId: z.string().nullable(),
          kind: z.string(),
          bundle: z.unknown().meta({ description: 'the evidence bundle (docs/stream-health.md)' }),
          at: isoTime,
        })
        .strict(),
    ),
  })
  .strict()
  .meta({ id: 'MatchView' });

export const matchesPageSchema = z
  .object({ items: z.array(matchViewSchema), nextCursor: z.string().nullable().meta({ description: 'null on the last page' }) })
  .strict();

export const deadLetterViewSchema = z
  .object({
    id: z.uuid(),
    topic: z.string(),
    partition: z.number().int(),
    offset: z.string(),
    key: z.string().nullable(),
    eventId: z.string().nullable(),
    reason: z.string(),
    detail: z.string(),
    raw: z.string().meta({ description: 'the message as received (text, or base64: when not UTF-8)' }),
    createdAt: isoTime,
    state: z.enum(['PENDING', 'REPLAYED', 'DISCARDED']),
    resolution: z
      .object({ action: z.enum(['REPLAYED', 'DISCARDED']), actor: z.string(), at: isoTime })
      .strict()
      .nullable(),
  })
  .strict()
  .meta({ id: 'DeadLetter' });

export const deadLettersPageSchema = z.object({ items: z.array(deadLetterViewSchema), nextCursor: z.string().nullable() }).strict();

export const eventAcceptedSchema = z
  .object({
    accepted: z.literal(true),
    topic: z.string(),
    eventId: z.string(),
    duplicate: z.boolean().meta({ description: 'true when this eventId was published before (nothing new happens)' }),
  })
  .strict();

export const keyIssuedSchema = z
  .object({
    keyId: z.string().regex(/^(ovl|adm)_[A-Za-z0-9-]{1,64}_[1-9][0-9]{12}$/),
    secret: z.string().meta({ description: 'shown only in this answer' }),
    matchId: z.string(),
    kind: z.enum(['overlay', 'admin']),
    expiresAt: isoTime,
  })
  .strict();

/** GET /v1/internal/matches/{id}/overlay-keys (main's route; its key items are described loosely for now). */
export const overlayKeysSchema = z
  .object({
    matchId: z.string(),
    issued: z.boolean(),
    detail: z.string().optional(),
    keys: z.array(z.object({}).loose()),
  })
  .strict();

export const keyRevokedSchema = z.object({ revoked: z.literal(true), keyId: z.string() }).strict();

export const openApiDocumentSchema = z
  .object({
    openapi: z.string().startsWith('3.1'),
    info: z.object({ title: z.string(), version: z.string() }).loose(),
    paths: z.record(z.string(), z.unknown()),
  })
  .loose();
