import { z } from 'zod';
import { eventIdSchema, matchIdSchema } from './envelope.js';
import { Topics, type InputTopic } from './topics.js';

/** `server.reserved` / `server.released` as the platform sends them (the seed's shape; type/occurredAt optional). */
const serverLifecycleEvent = <T extends string>(type: T) =>
  z.object({
    v: z.literal('v1'),
    eventId: eventIdSchema,
    type: z.literal(type).optional(),
    occurredAt: z.iso.datetime({ offset: true }).optional(),
    matchId: matchIdSchema,
    panelServerId: z.number().int().positive().max(2_147_483_647),
  });

export const serverReservedSchema = serverLifecycleEvent(Topics.serverReserved);
export const serverReleasedSchema = serverLifecycleEvent(Topics.serverReleased);
export type ServerReserved = z.infer<typeof serverReservedSchema>;
export type ServerReleased = z.infer<typeof serverReleasedSchema>;

/** `stream.health.check`: check one match now, or every active VERIFIED_STREAM match when matchId is absent. */
export const streamHealthCheckSchema = z.object({
  v: z.literal('v1'),
  eventId: eventIdSchema,
  type: z.literal(Topics.streamHealthCheck).optional(),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  matchId: matchIdSchema.optional(),
});
export type StreamHealthCheck = z.infer<typeof streamHealthCheckSchema>;

/** The schema each input topic is validated with, at the consumer and at the internal API alike. */
export const INPUT_SCHEMAS = {
  [Topics.serverReserved]: serverReservedSchema,
  [Topics.serverReleased]: serverReleasedSchema,
  [Topics.streamHealthCheck]: streamHealthCheckSchema,
} as const satisfies Record<InputTopic, z.ZodType>;

export type InputEvent = z.infer<(typeof INPUT_SCHEMAS)[InputTopic]>;
