import type { Config } from '../../config/config.js';
import type { Clock } from '../../infra/clock.js';
import type { KeyValueStore } from '../../infra/kv/kv-store.js';
import type { TelemetryProvider } from '../../stream-health/telemetry.js';
import { EventSubReceiver, EventSubStateStore } from './eventsub.js';
import { EventSubTelemetryProvider } from './eventsub-provider.js';

export interface EventSubWiring {
  /** The webhook receiver, or null when TWITCH_EVENTSUB_SECRET is unset (the route then answers 404). */
  readonly receiver: EventSubReceiver | null;
  /** The providers, with Twitch Helix replaced by the pushed state plus budgeted Helix when EventSub is on. */
  readonly providers: TelemetryProvider[];
}

/** Turns EventSub on when TWITCH_EVENTSUB_SECRET is set: one store shared by the route and the provider. */
export function wireEventSub(config: Config, deps: { kv: KeyValueStore; clock: Clock }, providers: TelemetryProvider[]): EventSubWiring {
  const secret = config.TWITCH_EVENTSUB_SECRET;
  const helix = providers.find((p) => p.platform === 'twitch');
  if (!secret || !helix) return { receiver: null, providers };
  const store = new EventSubStateStore(deps.kv);
  const pushed = new EventSubTelemetryProvider(store, helix, deps.clock, {
    maxHelixRequests: config.TWITCH_HELIX_POINTS_PER_SWEEP,
    sampleRequests: config.TWITCH_HELIX_SAMPLE_POINTS_PER_SWEEP,
  });
  return {
    receiver: new EventSubReceiver(secret, store, () => deps.clock.now()),
    providers: providers.map((p) => (p === helix ? pushed : p)),
  };
}
