import type { Config } from '../../config/config.js';
import type { Clock } from '../../infra/clock.js';
import type { Db } from '../../infra/db/db.js';
import type { KeyValueStore } from '../../infra/kv/kv-store.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { ScheduledTasksService } from '../../scheduling/scheduled-tasks.service.js';
import type { TelemetryProvider } from '../../stream-health/telemetry.js';
import { EventSubReceiver, EventSubStateStore } from './eventsub.js';
import { EventSubTelemetryProvider } from './eventsub-provider.js';
import { activeTwitchLogins } from './eventsub.repository.js';
import { EventSubSubscriptions } from './eventsub-subscriptions.js';
import { HelixClient } from './helix-client.js';

export interface EventSubWiring {
  /** The webhook receiver, or null when TWITCH_EVENTSUB_SECRET is unset (the route then answers 404). */
  readonly receiver: EventSubReceiver | null;
  /** The providers, with Twitch Helix replaced by the pushed state plus budgeted Helix when EventSub is on. */
  readonly providers: TelemetryProvider[];
  /** Present when TWITCH_EVENTSUB_CALLBACK_URL is set: registered as the `twitch-eventsub-subscriptions` task. */
  readonly subscriptions: EventSubSubscriptions | null;
}

export interface EventSubDeps {
  readonly kv: KeyValueStore;
  readonly clock: Clock;
  readonly db: Db;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly scheduler: ScheduledTasksService;
}

/** Turns EventSub on when TWITCH_EVENTSUB_SECRET is set: one store shared by the route, the provider and the task. */
export function wireEventSub(config: Config, deps: EventSubDeps, providers: TelemetryProvider[]): EventSubWiring {
  const secret = config.TWITCH_EVENTSUB_SECRET;
  const helix = providers.find((p) => p.platform === 'twitch');
  if (!secret || !helix || !config.TWITCH_CLIENT_ID || !config.TWITCH_CLIENT_SECRET)
    return { receiver: null, providers, subscriptions: null };
  const logger = deps.logger.child({ component: 'twitch-eventsub' });
  const store = new EventSubStateStore(deps.kv);
  const pushed = new EventSubTelemetryProvider(store, helix, deps.clock, {
    maxHelixRequests: config.TWITCH_HELIX_POINTS_PER_SWEEP,
    sampleRequests: config.TWITCH_HELIX_SAMPLE_POINTS_PER_SWEEP,
  });
  let subscriptions: EventSubSubscriptions | null = null;
  if (config.TWITCH_EVENTSUB_CALLBACK_URL) {
    const client = new HelixClient({
      clientId: config.TWITCH_CLIENT_ID,
      clientSecret: config.TWITCH_CLIENT_SECRET,
      apiUrl: config.TWITCH_API_URL,
      authUrl: config.TWITCH_AUTH_URL,
      timeoutMs: config.TELEMETRY_TIMEOUT_MS,
      clock: deps.clock,
      logger,
      metrics: deps.metrics,
    });
    const manager = new EventSubSubscriptions(client, store, {
      callbackUrl: config.TWITCH_EVENTSUB_CALLBACK_URL,
      secret,
      maxChanges: config.TWITCH_EVENTSUB_MAX_CHANGES_PER_TICK,
      logger,
    });
    deps.scheduler.register({
      name: 'twitch-eventsub-subscriptions',
      everyMs: config.TWITCH_EVENTSUB_RECONCILE_EVERY_MS,
      run: async () => {
        const result = await manager.reconcile(await activeTwitchLogins(deps.db));
        logger.info(
          { result, reason: result ? 'EVENTSUB_RECONCILED' : 'EVENTSUB_RECONCILE_SKIPPED' },
          'twitch eventsub subscriptions reconciled',
        );
      },
    });
    subscriptions = manager;
  } else {
    logger.warn({ reason: 'EVENTSUB_NO_CALLBACK_URL' }, 'TWITCH_EVENTSUB_CALLBACK_URL unset: subscriptions are not managed here');
  }
  return {
    receiver: new EventSubReceiver(secret, store, () => deps.clock.now()),
    providers: providers.map((p) => (p === helix ? pushed : p)),
    subscriptions,
  };
}
