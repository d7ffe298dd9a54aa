/**
 * The Twitch platform provider when EventSub is on: live + title come from the pushed state every instance
 * shares, and Helix becomes a budgeted reconciliation (docs/stream-health.md, "Twitch EventSub").
 *
 * Per sweep, Helix is asked about (1) channels whose pushed state cannot answer (subscription not confirmed,
 * revoked, or no live/title pushed or seeded yet), then (2) a slow rotating sample of the confirmed ones, never
 * more than `maxHelixRequests` requests of 100 logins. A channel left out by the budget is unknown
 * (`rate_limited`), never guessed. Helix answers for confirmed channels seed the pushed state, stamped with the
 * request's start time, so a push sent after that request still wins.
 */
import type { Clock } from '../../infra/clock.js';
import {
  UNKNOWN,
  knownTitle,
  parseChannel,
  unknownTelemetry,
  type ChannelTelemetry,
  type TelemetryProvider,
  type TelemetryReader,
} from '../../stream-health/telemetry.js';
import type { EventSubStateStore, PushedChannel } from './eventsub.js';
import { HELIX_MAX_LOGINS } from './helix-client.js';

export interface EventSubBudget {
  /** Helix Get Streams requests (1 point each) allowed per sweep, across the fleet (the sweep runs once per tick). */
  readonly maxHelixRequests: number;
  /** Of those, how many may go to re-checking confirmed channels (the rotating sample). */
  readonly sampleRequests: number;
}

/** Which channels Helix is asked about this sweep (pure): the unanswerable first, then the rotating sample. */
export function planHelixReconciliation(
  unanswered: readonly string[],
  confirmed: readonly string[],
  budget: EventSubBudget,
  rotation: number,
): { readonly poll: string[]; readonly starved: string[] } {
  const capacity = Math.max(0, Math.floor(budget.maxHelixRequests)) * HELIX_MAX_LOGINS;
  const rotate = (list: readonly string[]) => {
    if (list.length === 0) return [];
    const start = rotation % list.length;
    return [...list.slice(start), ...list.slice(0, start)];
  };
  const first = rotate(unanswered);
  const poll = first.slice(0, capacity);
  const starved = first.slice(capacity);
  const sampleCapacity = Math.min(capacity - poll.length, Math.max(0, Math.floor(budget.sampleRequests)) * HELIX_MAX_LOGINS);
  poll.push(...rotate(confirmed).slice(0, Math.max(0, sampleCapacity)));
  return { poll, starved };
}

/** The pushed state's answer, or null when it cannot answer live (not confirmed, nothing pushed or seeded). */
export function pushedTelemetry(channel: string, pushed: PushedChannel | null, at: number): ChannelTelemetry | null {
  if (!pushed?.confirmed || !pushed.live) return null;
  const detail = { source: 'eventsub', type: pushed.streamType, liveAt: pushed.live.at };
  if (!pushed.live.value) return { channel, live: false, title: UNKNOWN, fps: UNKNOWN, bitrateKbps: UNKNOWN, observedAt: at, detail };
  return {
    channel,
    live: true,
    title: pushed.title ? knownTitle(pushed.title.value) : UNKNOWN,
    fps: UNKNOWN,
    bitrateKbps: UNKNOWN,
    observedAt: at,
    detail,
  };
}

export class EventSubTelemetryProvider implements TelemetryProvider {
  readonly platform = 'twitch';
  private rotation = 0;

  constructor(
    private readonly store: EventSubStateStore,
    /** The Helix provider, asked only within the budget. */
    private readonly helix: TelemetryProvider,
    private readonly clock: Clock,
    private readonly budget: EventSubBudget,
  ) {}

  /** One sweep of one batch (see openSweep for a sweep in slices). */
  fetch(channels: string[]): Promise<Map<string, ChannelTelemetry>> {
    return this.openSweep().fetch(channels);
  }

  /**
   * A sweep in slices spends one budget: each slice polls its unanswerable channels, then its share of the
   * rotating sample, from what the earlier slices left (so when the budget is short, the later slices of a
   * sweep are the ones left `rate_limited`; the rotation still moves on every sweep).
   */
  openSweep(): TelemetryReader {
    const spend: SweepBudget = { left: { ...this.budget }, rotation: this.rotation };
    this.rotation += Math.max(1, this.budget.sampleRequests * HELIX_MAX_LOGINS);
    return { fetch: (channels) => this.fetchSlice(channels, spend) };
  }

  private async fetchSlice(channels: string[], spend: SweepBudget): Promise<Map<string, ChannelTelemetry>> {
    const at = this.clock.now();
    const out = new Map<string, ChannelTelemetry>();
    const userOf = new Map<string, string>();
    const pushed = new Map<string, PushedChannel>();
    try {
      await Promise.all(
        channels.map(async (channel) => {
          const ref = parseChannel(channel);
          if (ref?.platform !== this.platform) return;
          const userId = await this.store.userIdOf(ref.id);
          if (!userId) return;
          userOf.set(channel, userId);
          pushed.set(channel, await this.store.read(userId));
        }),
      );
    } catch {
      // Store unreachable: the pushed state is unknown, so every channel falls to the budgeted Helix path.
      pushed.clear();
    }

    const unanswered: string[] = [];
    const confirmed: string[] = [];
    const fromPush = new Map<string, ChannelTelemetry>();
    for (const channel of channels) {
      const answer = pushedTelemetry(channel, pushed.get(channel) ?? null, at);
      if (answer) fromPush.set(channel, answer);
      // A live channel whose title never came (channel.update only fires on a change) needs a Helix seed.
      if (answer && !(answer.live === true && answer.title === UNKNOWN)) confirmed.push(channel);
      else unanswered.push(channel);
    }
    const plan = planHelixReconciliation(unanswered, confirmed, spend.left, spend.rotation);
    const samplePolled = plan.poll.length - Math.min(unanswered.length, plan.poll.length);
    spend.left = {
      maxHelixRequests: Math.max(0, spend.left.maxHelixRequests - Math.ceil(plan.poll.length / HELIX_MAX_LOGINS)),
      sampleRequests: Math.max(0, spend.left.sampleRequests - Math.ceil(samplePolled / HELIX_MAX_LOGINS)),
    };

    const requestedAt = this.clock.now();
    const helix = plan.poll.length > 0 ? await this.helix.fetch(plan.poll) : new Map<string, ChannelTelemetry>();
    for (const channel of channels) {
      const push = fromPush.get(channel);
      const polled = helix.get(channel);
      if (polled && polled.live !== UNKNOWN && !(push && pushIsNewer(push, requestedAt))) {
        out.set(channel, polled);
        await this.seed(userOf.get(channel), pushed.get(channel), polled, requestedAt);
      } else if (push) out.set(channel, push);
      else out.set(channel, polled ?? unknownTelemetry(channel, at, 'rate_limited'));
    }
    return out;
  }

  /** Helix's answer becomes the confirmed channel's state unless a push newer than the request is there. */
  private async seed(
    userId: string | undefined,
    pushed: PushedChannel | undefined,
    polled: ChannelTelemetry,
    requestedAt: number,
  ): Promise<void> {
    if (!userId || !pushed?.confirmed || polled.live === UNKNOWN) return;
    const type = typeof polled.detail?.type === 'string' ? polled.detail.type : null;
    try {
      await this.store.writeLive(userId, polled.live, type, requestedAt);
      if (polled.live && polled.title !== UNKNOWN) await this.store.writeTitle(userId, polled.title, requestedAt);
    } catch {
      // A lost seed costs one more Helix lookup next sweep, nothing else.
    }
  }
}

/** What is left of one sweep's Helix budget, and the sweep's rotation offset. */
interface SweepBudget {
  left: EventSubBudget;
  readonly rotation: number;
}

function pushIsNewer(push: ChannelTelemetry, requestedAt: number): boolean {
  const liveAt = push.detail?.liveAt;
  return typeof liveAt === 'number' && liveAt > requestedAt;
}
