import { z } from 'zod';
import { matchIdSchema } from '../matches/match.schemas.js';

export const eventIdSchema = z.string().regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1–128 characters of [A-Za-z0-9_.:-] (a UUID is expected)');

/** `server.reserved` / `server.released` as the platform sends them (the seed's shape; type/occurredAt optional). */
const serverLifecycleEvent = (type: string) =>
  z.object({
    v: z.literal('v1'),
    eventId: eventIdSchema,
    type: z.literal(type).optional(),
    occurredAt: z.iso.datetime({ offset: true }).optional(),
    matchId: matchIdSchema,
    panelServerId: z.number().int().positive().max(2_147_483_647),
  });

export const serverReservedSchema = serverLifecycleEvent('server.reserved');
export const serverReleasedSchema = serverLifecycleEvent('server.released');
export type ServerReserved = z.infer<typeof serverReservedSchema>;
export type ServerReleased = z.infer<typeof serverReleasedSchema>;
