import type { Config } from '../../config/config.js';
import type { Clock } from '../../infra/clock.js';
import type { KeyValueStore } from '../../infra/kv/kv-store.js';
import type { Logger } from '../../observability/logger.js';
import type { Metrics } from '../../observability/metrics.js';
import type { PanelPort } from '../../provisioning/panel.port.js';
import { PterodactylPanel } from './panel.adapter.js';
import { PterodactylClient } from './pterodactyl-client.js';
import { PanelRateLimiter } from './rate-limiter.js';

/** The Pterodactyl panel behind provisioning's PanelPort, with its fleet-wide rate limit in the key-value store. */
export function panelFromConfig(config: Config, deps: { kv: KeyValueStore; clock: Clock; logger: Logger; metrics: Metrics }): PanelPort {
  const { kv, clock, logger, metrics } = deps;
  return new PterodactylPanel(
    new PterodactylClient({
      baseUrl: config.PTERO_APP_URL ?? 'http://127.0.0.1:1',
      apiKey: config.PTERO_APP_API_KEY ?? '',
      timeoutMs: config.PTERO_TIMEOUT_MS,
      mutationTimeoutMs: config.PTERO_MUTATION_TIMEOUT_MS,
      limiter: new PanelRateLimiter({
        store: kv,
        clock,
        budget: config.PTERO_RATE_LIMIT_PER_MIN,
        windowMs: config.PTERO_RATE_LIMIT_WINDOW_MS,
        instanceId: config.instanceId,
        metrics,
      }),
      metrics,
      logger: logger.child({ component: 'pterodactyl' }),
    }),
    20,
    config.PANEL_SKIP_SCRIPTS,
  );
}
