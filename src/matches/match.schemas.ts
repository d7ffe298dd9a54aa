import { z } from 'zod';
import type { AdminKeyView } from './admin-key-view.js';

export const sideSchema = z.enum(['p1', 'p2']);
export type Side = z.infer<typeof sideSchema>;

export const MATCH_STATUSES = ['SCHEDULED', 'IN_PROGRESS', 'COMPLETED', 'CANCELLED', 'FORFEITED', 'DISPUTED'] as const;
export const TERMINAL_STATUSES: readonly string[] = ['COMPLETED', 'CANCELLED', 'FORFEITED', 'DISPUTED'];

/** A stream channel is `<platform>:<id>`, e.g. `twitch:alice_tv` or `srs:live/alice`. */
export const streamChannelSchema = z
  .string()
  .regex(/^(twitch|srs|kick|youtube|mediamtx):[A-Za-z0-9_./-]{1,128}$/, 'must be <platform>:<channel>');

export const upsertMatchSchema = z
  .object({
    mode: z.enum(['VERIFIED_STREAM', 'STANDARD']),
    status: z.enum(MATCH_STATUSES).optional(),
    entryFee: z.object({
      amountCents: z.number().int().min(0).max(100_000_000),
      currency: z.string().regex(/^[A-Z]{3}$/, 'must be an ISO-4217 code like USD'),
    }),
    overlayRequired: z.boolean(),
    /** The match's mode for enforcement: names a configured policy (STREAM_POLICIES); `default` when absent. */
    enforcementMode: z.string().min(1).max(32).optional(),
    /**
     * The platform's explicit permission to run a VERIFIED_STREAM match whose channels cannot all be observed
     * (enforcement gaps): recorded with the gaps, shown in the match view. Omit it and such a match is refused.
     */
    streamWaiver: z
      .object({ reason: z.string().trim().min(1).max(500), grantedBy: z.string().trim().min(1).max(128) })
      .strict()
      .optional(),
    players: z
      .array(
        z.object({
          side: sideSchema,
          playerId: z.string().min(1).max(128),
          streamChannels: z.array(streamChannelSchema).max(8).default([]),
        }),
      )
      .length(2, 'a match has exactly two players'),
  })
  .strict()
  .refine((m) => new Set(m.players.map((p) => p.side)).size === 2, { message: 'players must be one p1 and one p2', path: ['players'] });

export type UpsertMatch = z.infer<typeof upsertMatchSchema>;

export interface ChecklistView {
  serverInstalled: boolean;
  adminHooksOk: boolean;
  overlayConnected: boolean;
  p1StreamLive: boolean;
  p2StreamLive: boolean;
  titlesContainMatchId: boolean;
  bitrateOk: boolean;
  fpsOk: boolean;
}

export interface StreamWaiverView {
  reason: string;
  grantedBy: string;
  gaps: readonly { side: Side; missing: readonly string[]; detail: string }[];
  at: string;
}

export interface MatchView {
  id: string;
  mode: string;
  status: string;
  entryFee: { amountCents: number; currency: string };
  overlayRequired: boolean;
  enforcementMode: string;
  players: { side: Side; playerId: string; streamChannels: string[] }[];
  /** Set when the match was accepted despite enforcement gaps: those sides are never judged on what is missing. */
  streamWaiver: StreamWaiverView | null;
  checklist: ChecklistView;
  provisioning: {
    state: string;
    panelServerId: number;
    deadlineAt: string | null;
    readyAt: string | null;
    failureReason: string | null;
    releasedAt: string | null;
    cleanup: string;
    /** The match's admin key and its delivery to the game server through the panel (docs/security.md). */
    adminKey: AdminKeyView | null;
  } | null;
  refunds: { playerId: string; amountCents: number; currency: string; reason: string | null; at: string }[];
  /** Each side's stream health as the StreamHealthWorker last persisted it (sides it has not sampled yet are absent). */
  streamHealth: StreamSideView[];
  enforcement: { side: Side; verdict: string; reason: string; evidenceId: string; at: string }[];
  evidence: { id: string; side: Side | null; episodeId: string | null; kind: string; bundle: unknown; at: string }[];
}

/** One side's stream health: its last sample and its current (or latest) grace episode with the grace timer. */
export interface StreamSideView {
  side: Side;
  /** The grace of the match's enforcement policy (null when that policy is no longer configured). */
  graceMs: number | null;
  lastSampleAt: string | null;
  /** healthy | violating | unknown */
  lastOutcome: string | null;
  episode: {
    id: string;
    /** open (grace running) | closed (recovered) | verdict (grace ran out) */
    state: string;
    openedAt: string;
    /** The grace clock's zero: the last healthy sample before the episode. */
    anchorAt: string;
    /** Known grace consumed as of `lastSampleAt`, and time that did not count (telemetry unknown or a sampling gap). */
    elapsedMs: number;
    pausedMs: number;
    violations: string[];
    /** The earliest time a verdict can fall due if telemetry stays known (anchor + grace + paused); null without graceMs. */
    graceDeadlineAt: string | null;
    closedAt: string | null;
    verdictAt: string | null;
  } | null;
}
