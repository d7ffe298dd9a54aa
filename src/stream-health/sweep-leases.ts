/** `str:lease:<matchId>`: keeps two sweeps (here or on another instance) off one match. */
import type { Logger } from 'pino';
import type { KeyValueStore } from '../infra/kv/kv-store.js';
import { Leases } from '../scheduling/lease.js';

export const LEASE_PREFIX = 'str:lease:';
const CHUNK = 1000;

export class MatchLeases {
  private readonly leases: Leases;

  constructor(
    kv: KeyValueStore,
    private readonly leaseMs: number,
  ) {
    this.leases = new Leases(kv, LEASE_PREFIX);
  }

  /**
   * Takes the lease of each match, 1000 per round trip; the map says which are held (true), which are not needed
   * because the store is down (false), and leaves out those leased elsewhere. Without the key-value store the
   * sweep goes on for all matches: the version check and the database constraints still make every effect happen once.
   */
  async acquire(ids: readonly string[], owner: string, logger: Logger): Promise<Map<string, boolean>> {
    const held = new Map<string, boolean>();
    let kvDown = false;
    for (let i = 0; i < ids.length && !kvDown; i += CHUNK) {
      const chunk = ids.slice(i, i + CHUNK);
      try {
        const taken = await this.leases.tryAcquireMany(chunk, owner, this.leaseMs);
        chunk.forEach((id, j) => {
          if (taken[j]) held.set(id, true);
        });
      } catch {
        kvDown = true;
      }
    }
    if (kvDown) {
      logger.warn({ reason: 'KV_UNAVAILABLE' }, 'match leases unavailable; sweeping on the database guarantees alone');
      for (const id of ids) if (!held.has(id)) held.set(id, false);
    }
    return held;
  }

  async release(held: ReadonlyMap<string, boolean>, owner: string, logger: Logger): Promise<void> {
    const taken: string[] = [];
    for (const [id, mine] of held) if (mine) taken.push(id);
    for (let i = 0; i < taken.length; i += CHUNK) {
      await this.leases
        .releaseMany(taken.slice(i, i + CHUNK), owner)
        .catch((err: unknown) => logger.debug({ err, reason: 'LEASE_RELEASE_FAILED' }, 'leases expire on their own'));
    }
  }
}
