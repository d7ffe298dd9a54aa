import { z } from 'zod';
import { matchIdSchema } from '../matches/match.schemas.js';
import { eventIdSchema } from '../provisioning/events.js';

/** `stream.health.check`: check one match now, or every active VERIFIED_STREAM match when matchId is absent. */
export const streamHealthCheckSchema = z.object({
  v: z.literal('v1'),
  eventId: eventIdSchema,
  type: z.literal('stream.health.check').optional(),
  occurredAt: z.iso.datetime({ offset: true }).optional(),
  matchId: matchIdSchema.optional(),
});
export type StreamHealthCheck = z.infer<typeof streamHealthCheckSchema>;
