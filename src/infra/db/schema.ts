import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

/** Row types of the service's PostgreSQL schema (see migrations.ts). Times are timestamptz. */
type Timestamp = ColumnType<Date, Date, Date>;
type Json<T = unknown> = ColumnType<T, string, string>;
type DefaultedBool = ColumnType<boolean, boolean | undefined, boolean>;
type OptionalTimestamp = ColumnType<Date | null, Date | null | undefined, Date | null>;

export interface MatchesTable {
  id: string;
  mode: 'VERIFIED_STREAM' | 'STANDARD';
  status: string;
  entry_fee_cents: number;
  currency: string;
  overlay_required: boolean;
  /** The platform's waiver of enforcement gaps, with the gaps it covered (null: none needed or given). */
  stream_waiver: ColumnType<StreamWaiverRecord | null, string | null | undefined, string | null>;
  /** Names the enforcement policy (configuration's STREAM_POLICIES) that judges the match. */
  enforcement_mode: ColumnType<string, string | undefined, string>;
  created_at: Timestamp;
  updated_at: Timestamp;
}

export interface StreamWaiverRecord {
  reason: string;
  grantedBy: string;
  gaps: readonly { side: 'p1' | 'p2'; missing: readonly string[]; detail: string }[];
  at: string;
}

export interface MatchPlayersTable {
  match_id: string;
  side: 'p1' | 'p2';
  player_id: string;
  stream_channels: Json<string[]>;
}

export interface ChecklistsTable {
  match_id: string;
  server_installed: DefaultedBool;
  admin_hooks_ok: DefaultedBool;
  overlay_connected: DefaultedBool;
  overlay_last_seen_at: OptionalTimestamp;
  p1_stream_live: DefaultedBool;
  p2_stream_live: DefaultedBool;
  titles_contain_match_id: DefaultedBool;
  bitrate_ok: DefaultedBool;
  fps_ok: DefaultedBool;
  updated_at: Timestamp;
}

export type ProvisionState = 'RESERVED' | 'INSTALLING' | 'WAITING_SIGNALS' | 'READY' | 'FAILED' | 'RELEASED';
export type CleanupState = 'NONE' | 'PENDING' | 'DONE' | 'GAVE_UP';

export interface ProvisionsTable {
  match_id: string;
  panel_server_id: number;
  state: ProvisionState;
  reserved_event_id: string | null;
  reserved_at: Timestamp | null;
  deadline_at: Timestamp | null;
  next_poll_at: Timestamp | null;
  poll_failures: number;
  last_panel_status: string | null;
  ready_at: Timestamp | null;
  failed_at: Timestamp | null;
  failure_reason: string | null;
  released_event_id: string | null;
  released_at: Timestamp | null;
  cleanup_state: CleanupState;
  cleanup_attempts: number;
  cleanup_next_at: Timestamp | null;
  lease_owner: string | null;
  lease_until: Timestamp | null;
  updated_at: Timestamp;
}

export interface LedgerEntriesTable {
  id: Generated<number>;
  match_id: string;
  player_id: string;
  kind: 'ENTRY_FEE' | 'REFUND';
  amount_cents: number;
  currency: string;
  reason: string | null;
  event_id: string | null;
  created_at: Timestamp;
}

export interface ProcessedEventsTable {
  consumer: string;
  event_id: string;
  topic: string;
  processed_at: Timestamp;
}

export interface OutboxTable {
  seq: Generated<number>;
  id: string;
  topic: string;
  key: string;
  payload: Json<Record<string, unknown>>;
  headers: Json<Record<string, string>>;
  dedupe_key: string | null;
  created_at: Timestamp;
  published_at: Timestamp | null;
}

export interface DeadLettersTable {
  id: string;
  topic: string;
  partition: number;
  offset: string;
  key: string | null;
  event_id: string | null;
  reason: string;
  detail: string;
  raw: string;
  created_at: Timestamp;
}

export interface DeadLetterResolutionsTable {
  dead_letter_id: string;
  action: 'REPLAYED' | 'DISCARDED';
  actor: string;
  outbox_id: string | null;
  resolved_at: Timestamp;
}

export interface GraceEpisodesTable {
  id: string;
  match_id: string;
  side: 'p1' | 'p2';
  state: 'open' | 'closed' | 'verdict';
  opened_at: Timestamp;
  closed_at: Timestamp | null;
  data: Json<Record<string, unknown>>;
  updated_at: Timestamp;
}

export interface EnforcementsTable {
  id: string;
  match_id: string;
  side: 'p1' | 'p2';
  episode_id: string;
  verdict: 'FORFEIT' | 'DISPUTE';
  reason: string;
  evidence_id: string;
  created_at: Timestamp;
}

export interface EvidenceTable {
  id: string;
  match_id: string;
  side: 'p1' | 'p2' | null;
  episode_id: string | null;
  kind: string;
  bundle: Json<Record<string, unknown>>;
  created_at: Timestamp;
}

export interface StreamSamplesTable {
  id: Generated<number>;
  match_id: string;
  side: 'p1' | 'p2';
  episode_id: string | null;
  outcome: string;
  sample: Json<Record<string, unknown>>;
  observed_at: Timestamp;
}

export interface OverlayEventsTable {
  id: Generated<number>;
  match_id: string;
  request_id: string;
  key_id: string;
  type: string;
  seq: number | null;
  body: Json<Record<string, unknown>>;
  received_at: Timestamp;
}

/** The StreamHealthWorker's persisted `SideGrace` per match side (migration 0003). */
export interface StreamSidesTable {
  match_id: string;
  side: 'p1' | 'p2';
  version: number;
  grace: Json<Record<string, unknown>>;
  last_sample_at: Timestamp | null;
  last_outcome: string | null;
  updated_at: Timestamp;
}

/** Issued HMAC keys (migration 0006): the durable record; Redis `hmac:secret:<keyId>` is its cache. Times in ms. */
export interface HmacKeysTable {
  key_id: string;
  match_id: string;
  kind: 'overlay' | 'admin';
  issued_at: ColumnType<string, number, number>;
  expires_at: ColumnType<string, number, number>;
  revoked_at: ColumnType<string | null, number | null | undefined, number | null>;
}

export type AdminKeyDeliveryState = 'PENDING' | 'DELIVERED' | 'FAILED' | 'CANCELLED';

/** The admin key of a match and its delivery through the panel (migration 0009); no secret is stored. */
export interface AdminKeyDeliveriesTable {
  match_id: string;
  /** Null only when no admin key could be issued (ADMIN_HOOK_SECRET not configured). */
  key_id: string | null;
  panel_server_id: number;
  state: AdminKeyDeliveryState;
  attempts: ColumnType<number, number | undefined, number>;
  next_at: Timestamp | null;
  failure_reason: string | null;
  failure_status: number | null;
  failure_detail: string | null;
  delivered_at: Timestamp | null;
  revoke_state: ColumnType<'NONE' | 'PENDING' | 'DONE', 'NONE' | 'PENDING' | 'DONE' | undefined, 'NONE' | 'PENDING' | 'DONE'>;
  revoked_at: Timestamp | null;
  lease_owner: string | null;
  lease_until: Timestamp | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** One overlay key per match and player, issued when the match's server goes ready (migration 0009). */
export interface OverlayKeysTable {
  match_id: string;
  player_id: string;
  side: 'p1' | 'p2';
  key_id: string;
  issued_at: Timestamp;
}

export interface Database {
  matches: MatchesTable;
  match_players: MatchPlayersTable;
  checklists: ChecklistsTable;
  provisions: ProvisionsTable;
  ledger_entries: LedgerEntriesTable;
  processed_events: ProcessedEventsTable;
  outbox: OutboxTable;
  dead_letters: DeadLettersTable;
  dead_letter_resolutions: DeadLetterResolutionsTable;
  grace_episodes: GraceEpisodesTable;
  enforcements: EnforcementsTable;
  evidence: EvidenceTable;
  stream_samples: StreamSamplesTable;
  overlay_events: OverlayEventsTable;
  stream_sides: StreamSidesTable;
  hmac_keys: HmacKeysTable;
  admin_key_deliveries: AdminKeyDeliveriesTable;
  overlay_keys: OverlayKeysTable;
}

export type AdminKeyDelivery = Selectable<AdminKeyDeliveriesTable>;

export type Provision = Selectable<ProvisionsTable>;
export type NewProvision = Insertable<ProvisionsTable>;
export type ProvisionUpdate = Updateable<ProvisionsTable>;
export type Match = Selectable<MatchesTable>;
export type Checklist = Selectable<ChecklistsTable>;
