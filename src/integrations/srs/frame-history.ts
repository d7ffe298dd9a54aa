/**
 * The SRS provider's memory between sweeps: per SRS stream id, its last few frame samples (video frame counter,
 * received bytes, SRS's clock `live_ms`, our clock), from which the next listing's FPS is read.
 *
 * At fleet scale this is the largest thing the service keeps (100k streams at 50k matches), so it is stored in
 * columns: one Float64Array holds every stream's samples (NaN for a counter the listing did not give), a
 * Uint8Array how many each stream has, and a map from stream id to its slot; a forgotten stream's slot is reused.
 * The columns grow by a quarter when full (a doubling would leave up to half of 100k streams' space unused).
 * No object per sample, no heap number per value (docs/stream-health.md, "Capacity").
 */

/** One sample of one stream. null: the listing gave no such counter (or none we may use). */
export interface FrameSample {
  readonly videoFrames: number | null;
  readonly recvBytes: number | null;
  readonly serverMs: number;
  readonly localMs: number;
}

const FIELDS = 4;
const VIDEO_FRAMES = 0;
const RECV_BYTES = 1;
const SERVER_MS = 2;
const LOCAL_MS = 3;

const orNaN = (v: number | null) => (v === null ? Number.NaN : v);
const orNull = (v: number) => (Number.isNaN(v) ? null : v);

export class FrameHistory {
  private readonly slotOf = new Map<string, number>();
  private readonly freeSlots: number[] = [];
  private slots = 0;
  private lengths = new Uint8Array(0);
  private values = new Float64Array(0);

  /** At most `perStream` samples are kept per stream, oldest dropped first. */
  constructor(private readonly perStream: number) {
    if (!Number.isInteger(perStream) || perStream < 1 || perStream > 255)
      throw new RangeError(`perStream must be 1..255, got ${perStream}`);
  }

  /** Streams with a history. */
  get size(): number {
    return this.slotOf.size;
  }

  /** How many samples `id` has (0 when unknown). */
  count(id: string): number {
    const slot = this.slotOf.get(id);
    return slot === undefined ? 0 : (this.lengths[slot] as number);
  }

  /** The i-th oldest sample of `id` (0 ≤ i < count(id)). */
  sample(id: string, i: number): FrameSample {
    const slot = this.slotOf.get(id);
    if (slot === undefined || i < 0 || i >= (this.lengths[slot] as number)) throw new RangeError(`no sample ${i} of ${id}`);
    const at = this.offset(slot, i);
    const v = this.values;
    return {
      videoFrames: orNull(v[at + VIDEO_FRAMES] as number),
      recvBytes: orNull(v[at + RECV_BYTES] as number),
      serverMs: v[at + SERVER_MS] as number,
      localMs: v[at + LOCAL_MS] as number,
    };
  }

  /** The newest sample of `id` for which `test(localMs)` holds, searching from the newest; -1 when none. */
  findLast(id: string, test: (localMs: number) => boolean): number {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return -1;
    for (let i = (this.lengths[slot] as number) - 1; i >= 0; i--)
      if (test(this.values[this.offset(slot, i) + LOCAL_MS] as number)) return i;
    return -1;
  }

  /**
   * Whether any kept sample of `id` is ahead of `current`: a counter (both known) or SRS's clock higher than
   * now, which SRS never does to one stream object (a counter reset).
   */
  anyAhead(id: string, current: FrameSample): boolean {
    const slot = this.slotOf.get(id);
    if (slot === undefined) return false;
    const v = this.values;
    for (let i = 0; i < (this.lengths[slot] as number); i++) {
      const at = this.offset(slot, i);
      if (ahead(v[at + VIDEO_FRAMES] as number, current.videoFrames)) return true;
      if (ahead(v[at + RECV_BYTES] as number, current.recvBytes)) return true;
      if ((v[at + SERVER_MS] as number) > current.serverMs) return true;
    }
    return false;
  }

  /**
   * Records `current` for `id`: first drops the samples older than `maxAgeMs` before `current.localMs` (all of
   * them when `reset`), then appends, keeping the newest `perStream`.
   */
  record(id: string, current: FrameSample, maxAgeMs: number, reset: boolean): void {
    let slot = this.slotOf.get(id);
    if (slot === undefined) {
      slot = this.newSlot();
      this.slotOf.set(id, slot);
    }
    const v = this.values;
    const n = this.lengths[slot] as number;
    let kept = 0;
    if (!reset) {
      for (let i = 0; i < n; i++) {
        const from = this.offset(slot, i);
        if (current.localMs - (v[from + LOCAL_MS] as number) > maxAgeMs) continue;
        if (kept !== i) v.copyWithin(this.offset(slot, kept), from, from + FIELDS);
        kept++;
      }
    }
    if (kept === this.perStream) {
      v.copyWithin(this.offset(slot, 0), this.offset(slot, 1), this.offset(slot, kept));
      kept--;
    }
    const to = this.offset(slot, kept);
    v[to + VIDEO_FRAMES] = orNaN(current.videoFrames);
    v[to + RECV_BYTES] = orNaN(current.recvBytes);
    v[to + SERVER_MS] = current.serverMs;
    v[to + LOCAL_MS] = current.localMs;
    this.lengths[slot] = kept + 1;
  }

  /** Forgets every stream whose newest sample is older than `maxAgeMs` at `at`. */
  prune(at: number, maxAgeMs: number): void {
    for (const [id, slot] of this.slotOf) {
      const n = this.lengths[slot] as number;
      if (n === 0 || at - (this.values[this.offset(slot, n - 1) + LOCAL_MS] as number) > maxAgeMs) {
        this.slotOf.delete(id);
        this.lengths[slot] = 0;
        this.freeSlots.push(slot);
      }
    }
  }

  private offset(slot: number, i: number): number {
    return (slot * this.perStream + i) * FIELDS;
  }

  private newSlot(): number {
    const free = this.freeSlots.pop();
    if (free !== undefined) return free;
    if (this.slots === this.lengths.length) {
      const capacity = Math.max(64, Math.ceil(this.slots * 1.25));
      const lengths = new Uint8Array(capacity);
      lengths.set(this.lengths);
      const values = new Float64Array(capacity * this.perStream * FIELDS);
      values.set(this.values);
      this.lengths = lengths;
      this.values = values;
    }
    return this.slots++;
  }
}

function ahead(kept: number, current: number | null): boolean {
  return !Number.isNaN(kept) && current !== null && kept > current;
}
