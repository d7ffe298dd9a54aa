import { z } from 'zod';

/** Match ids are also embedded in HMAC key ids, so they share the key-id grammar. */
export const matchIdSchema = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must match [A-Za-z0-9-]{1,64}');

export const eventIdSchema = z
  .string()
  .regex(/^[A-Za-z0-9_.:-]{1,128}$/, 'must be 1–128 characters of [A-Za-z0-9_.:-] (a UUID is expected)');

/** Fields the envelope owns (SPEC §4): a payload can never set them. */
export type EnvelopeField = 'v' | 'eventId' | 'type' | 'occurredAt' | 'matchId';

/** The envelope every emitted event carries (SPEC §4), with the topic's payload beside it. */
export type EventEnvelope<T extends string = string, P extends object = Record<string, unknown>> = P & {
  v: 'v1';
  eventId: string;
  type: T;
  occurredAt: string;
  /** Absent only for fleet-wide events (a `stream.health.check` of every match). */
  matchId?: string;
};
