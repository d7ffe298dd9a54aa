import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';
import type { Database } from './schema.js';

/**
 * Versioned migrations, applied in name order by `flock-workers migrate` and at start.
 * Constraints here are what make effects happen once: primary keys and unique keys, never Redis.
 */
const migrations: Record<string, Migration> = {
  '0001_foundation': {
    async up(db: Kysely<unknown>) {
      await runStatements(
        db,
        `
        CREATE TABLE matches (
          id text PRIMARY KEY,
          mode text NOT NULL CHECK (mode IN ('VERIFIED_STREAM', 'STANDARD')),
          status text NOT NULL,
          entry_fee_cents integer NOT NULL CHECK (entry_fee_cents >= 0),
          currency text NOT NULL,
          overlay_required boolean NOT NULL,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL
        );
        CREATE TABLE match_players (
          match_id text NOT NULL REFERENCES matches(id) ON DELETE CASCADE,
          side text NOT NULL CHECK (side IN ('p1', 'p2')),
          player_id text NOT NULL,
          stream_channels jsonb NOT NULL DEFAULT '[]',
          PRIMARY KEY (match_id, side)
        );
        CREATE TABLE checklists (
          match_id text PRIMARY KEY,
          server_installed boolean NOT NULL DEFAULT false,
          admin_hooks_ok boolean NOT NULL DEFAULT false,
          overlay_connected boolean NOT NULL DEFAULT false,
          overlay_last_seen_at timestamptz,
          p1_stream_live boolean NOT NULL DEFAULT false,
          p2_stream_live boolean NOT NULL DEFAULT false,
          titles_contain_match_id boolean NOT NULL DEFAULT false,
          bitrate_ok boolean NOT NULL DEFAULT false,
          fps_ok boolean NOT NULL DEFAULT false,
          updated_at timestamptz NOT NULL
        );
        CREATE TABLE provisions (
          match_id text PRIMARY KEY,
          panel_server_id integer NOT NULL,
          state text NOT NULL CHECK (state IN ('RESERVED','INSTALLING','WAITING_SIGNALS','READY','FAILED','RELEASED')),
          reserved_event_id text,
          reserved_at timestamptz,
          deadline_at timestamptz,
          next_poll_at timestamptz,
          poll_failures integer NOT NULL DEFAULT 0,
          last_panel_status text,
          ready_at timestamptz,
          failed_at timestamptz,
          failure_reason text,
          released_event_id text,
          released_at timestamptz,
          cleanup_state text NOT NULL DEFAULT 'NONE' CHECK (cleanup_state IN ('NONE','PENDING','DONE','GAVE_UP')),
          cleanup_attempts integer NOT NULL DEFAULT 0,
          cleanup_next_at timestamptz,
          lease_owner text,
          lease_until timestamptz,
          updated_at timestamptz NOT NULL
        );
        CREATE INDEX provisions_due ON provisions (next_poll_at) WHERE state IN ('RESERVED','INSTALLING','WAITING_SIGNALS');
        CREATE INDEX provisions_cleanup ON provisions (cleanup_next_at) WHERE cleanup_state = 'PENDING';
        CREATE TABLE ledger_entries (
          id bigserial PRIMARY KEY,
          match_id text NOT NULL,
          player_id text NOT NULL,
          kind text NOT NULL CHECK (kind IN ('ENTRY_FEE', 'REFUND')),
          amount_cents integer NOT NULL CHECK (amount_cents >= 0),
          currency text NOT NULL,
          reason text,
          event_id text,
          created_at timestamptz NOT NULL,
          CONSTRAINT ledger_once_per_player UNIQUE (match_id, player_id, kind)
        );
        CREATE TABLE processed_events (
          consumer text NOT NULL,
          event_id text NOT NULL,
          topic text NOT NULL,
          processed_at timestamptz NOT NULL,
          PRIMARY KEY (consumer, event_id)
        );
        CREATE TABLE outbox (
          seq bigserial PRIMARY KEY,
          id uuid NOT NULL UNIQUE,
          topic text NOT NULL,
          key text NOT NULL,
          payload jsonb NOT NULL,
          headers jsonb NOT NULL,
          dedupe_key text UNIQUE,
          created_at timestamptz NOT NULL,
          published_at timestamptz
        );
        CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
        CREATE TABLE dead_letters (
          id uuid PRIMARY KEY,
          topic text NOT NULL,
          partition integer NOT NULL,
          "offset" text NOT NULL,
          key text,
          event_id text,
          reason text NOT NULL,
          detail text NOT NULL,
          raw text NOT NULL,
          created_at timestamptz NOT NULL,
          CONSTRAINT dead_letter_once_per_message UNIQUE (topic, partition, "offset")
        );
      `,
      );
    },
  },
  '0002_stream_health_and_hooks': {
    async up(db: Kysely<unknown>) {
      await runStatements(
        db,
        `
        CREATE TABLE grace_episodes (
          id text PRIMARY KEY,
          match_id text NOT NULL,
          side text NOT NULL CHECK (side IN ('p1', 'p2')),
          state text NOT NULL CHECK (state IN ('open', 'closed', 'verdict')),
          opened_at timestamptz NOT NULL,
          closed_at timestamptz,
          data jsonb NOT NULL,
          updated_at timestamptz NOT NULL
        );
        CREATE UNIQUE INDEX grace_one_open_episode ON grace_episodes (match_id, side) WHERE state = 'open';
        CREATE TABLE enforcements (
          id text PRIMARY KEY,
          match_id text NOT NULL,
          side text NOT NULL CHECK (side IN ('p1', 'p2')),
          episode_id text NOT NULL UNIQUE,
          verdict text NOT NULL CHECK (verdict IN ('FORFEIT', 'DISPUTE')),
          reason text NOT NULL,
          evidence_id text NOT NULL,
          created_at timestamptz NOT NULL
        );
        CREATE TABLE evidence (
          id text PRIMARY KEY,
          match_id text NOT NULL,
          side text,
          episode_id text,
          kind text NOT NULL,
          bundle jsonb NOT NULL,
          created_at timestamptz NOT NULL
        );
        CREATE INDEX evidence_by_match ON evidence (match_id);
        CREATE TABLE stream_samples (
          id bigserial PRIMARY KEY,
          match_id text NOT NULL,
          side text NOT NULL,
          episode_id text,
          outcome text NOT NULL,
          sample jsonb NOT NULL,
          observed_at timestamptz NOT NULL
        );
        CREATE INDEX stream_samples_by_match ON stream_samples (match_id, side, observed_at);
        CREATE TABLE overlay_events (
          id bigserial PRIMARY KEY,
          match_id text NOT NULL,
          request_id text NOT NULL UNIQUE,
          key_id text NOT NULL,
          type text NOT NULL,
          seq integer,
          body jsonb NOT NULL,
          received_at timestamptz NOT NULL
        );
        CREATE INDEX overlay_events_by_match ON overlay_events (match_id, received_at);
      `,
      );
    },
  },
  '0003_stream_health_sides': {
    async up(db: Kysely<unknown>) {
      // The StreamHealthWorker's durable grace state: one row per (match, side), written with an optimistic
      // version check so two sweeps of one match can never both apply (PostgreSQL is authoritative; Redis's
      // str:grace:<matchId>:<side> is only a mirror). The partial index finds the active matches of a sweep.
      await runStatements(
        db,
        `
        CREATE TABLE stream_sides (
          match_id text NOT NULL,
          side text NOT NULL CHECK (side IN ('p1', 'p2')),
          version integer NOT NULL CHECK (version > 0),
          grace jsonb NOT NULL,
          last_sample_at timestamptz,
          last_outcome text,
          updated_at timestamptz NOT NULL,
          PRIMARY KEY (match_id, side)
        );
        CREATE INDEX matches_active_verified_stream ON matches (id) WHERE mode = 'VERIFIED_STREAM' AND status = 'IN_PROGRESS';
        CREATE INDEX stream_samples_by_episode ON stream_samples (episode_id) WHERE episode_id IS NOT NULL;
        CREATE INDEX enforcements_by_match ON enforcements (match_id);
      `,
      );
    },
  },
  '0004_overlay_sequence_index': {
    async up(db: Kysely<unknown>) {
      // The overlay sequence check reads max(seq) per key on every overlay call.
      await runStatements(db, `CREATE INDEX overlay_events_by_key ON overlay_events (key_id, seq)`);
    },
  },
  '0005_outbox_notify': {
    async up(db: Kysely<unknown>) {
      // Wakes the relay leader (LISTEN outbox_rows) on whichever instance it runs, at commit, once per transaction.
      await runStatements(
        db,
        `CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_notify('outbox_rows', ''); RETURN NULL; END $$;
         CREATE TRIGGER outbox_rows_inserted AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()`,
      );
    },
  },
  '0006_hmac_keys': {
    async up(db: Kysely<unknown>) {
      // Issued hook keys survive a Redis restart: this row is the record, hmac:secret:<keyId> only caches it.
      // The primary key is what makes a key id issued once. Times are ms since the epoch, as in the key id.
      await runStatements(
        db,
        `
        CREATE TABLE hmac_keys (
          key_id text PRIMARY KEY,
          match_id text NOT NULL,
          kind text NOT NULL CHECK (kind IN ('overlay', 'admin')),
          issued_at bigint NOT NULL,
          expires_at bigint NOT NULL,
          revoked_at bigint
        );
        CREATE INDEX hmac_keys_by_expiry ON hmac_keys (expires_at);
      `,
      );
    },
  },
  '0007_match_enforcement': {
    async up(db: Kysely<unknown>): Promise<void> {
      // A VERIFIED_STREAM match whose channels cannot all be observed is accepted only with a waiver; the
      // enforcement mode names the configured policy that judges the match.
      await runStatements(
        db,
        `ALTER TABLE matches ADD COLUMN stream_waiver jsonb;
         ALTER TABLE matches ADD COLUMN enforcement_mode text NOT NULL DEFAULT 'default'`,
      );
    },
  },
  '0008_dead_letter_resolutions': {
    async up(db: Kysely<unknown>) {
      // One resolution per dead letter (the primary key): a second replay or discard is a no-op answered 409.
      await runStatements(
        db,
        `
        CREATE TABLE dead_letter_resolutions (
          dead_letter_id uuid PRIMARY KEY REFERENCES dead_letters (id) ON DELETE CASCADE,
          action text NOT NULL CHECK (action IN ('REPLAYED', 'DISCARDED')),
          actor text NOT NULL,
          outbox_id uuid,
          resolved_at timestamptz NOT NULL
        );
        CREATE INDEX dead_letters_by_created ON dead_letters (created_at, id)
      `,
      );
    },
  },
  '0009_match_keys': {
    async up(db: Kysely<unknown>) {
      // The admin key of a match and its delivery to the game server through the panel: one row per match (the
      // primary key) naming one key id (unique), so a retried reservation or delivery never issues a second key.
      // Overlay keys: one per match and player. Neither table holds a secret (secrets are derived, hmac-v1).
      await runStatements(
        db,
        `
        CREATE TABLE admin_key_deliveries (
          match_id text PRIMARY KEY,
          key_id text UNIQUE,
          panel_server_id integer NOT NULL,
          state text NOT NULL CHECK (state IN ('PENDING', 'DELIVERED', 'FAILED', 'CANCELLED')),
          attempts integer NOT NULL DEFAULT 0,
          next_at timestamptz,
          failure_reason text,
          failure_status integer,
          failure_detail text,
          delivered_at timestamptz,
          revoke_state text NOT NULL DEFAULT 'NONE' CHECK (revoke_state IN ('NONE', 'PENDING', 'DONE')),
          revoked_at timestamptz,
          lease_owner text,
          lease_until timestamptz,
          created_at timestamptz NOT NULL,
          updated_at timestamptz NOT NULL
        );
        CREATE INDEX admin_key_deliveries_due ON admin_key_deliveries (next_at) WHERE next_at IS NOT NULL;
        CREATE TABLE overlay_keys (
          match_id text NOT NULL,
          player_id text NOT NULL,
          side text NOT NULL CHECK (side IN ('p1', 'p2')),
          key_id text NOT NULL UNIQUE,
          issued_at timestamptz NOT NULL,
          PRIMARY KEY (match_id, player_id)
        )
      `,
      );
    },
  },
  '0010_provisions_waiting_deadline': {
    async up(db: Kysely<unknown>) {
      // The poller's claim of overdue WAITING_SIGNALS rows reads this index in deadline order and stops at its limit,
      // instead of scanning and sorting every active provision (a backlog of 100k made each claim take ~0.5 s).
      await runStatements(db, `CREATE INDEX provisions_waiting_deadline ON provisions (deadline_at) WHERE state = 'WAITING_SIGNALS'`);
    },
  },
};

/** One statement per round trip: the embedded database's extended protocol takes a single command. */
async function runStatements(db: Kysely<unknown>, script: string): Promise<void> {
  for (const statement of script
    .split(/;\s*\n/)
    .map((s) => s.trim())
    .filter(Boolean)) {
    await sql.raw(statement).execute(db);
  }
}

/** Every migration's name, in the order they apply. */
export const MIGRATION_NAMES: readonly string[] = Object.keys(migrations).sort();

class StaticMigrationProvider implements MigrationProvider {
  async getMigrations(): Promise<Record<string, Migration>> {
    return migrations;
  }
}

export interface MigrationReport {
  applied: string[];
  alreadyApplied: number;
}

/** Applies every pending migration; throws with the failing migration's name on error. */
export async function migrateToLatest(db: Kysely<Database>): Promise<MigrationReport> {
  const migrator = new Migrator({ db, provider: new StaticMigrationProvider() });
  const before = (await migrator.getMigrations()).filter((m) => m.executedAt !== undefined).length;
  const { error, results } = await migrator.migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error || failed) {
    throw new Error(`migration ${failed?.migrationName ?? '(unknown)'} failed: ${String((error as Error)?.message ?? error)}`, {
      cause: error,
    });
  }
  return { applied: (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName), alreadyApplied: before };
}
