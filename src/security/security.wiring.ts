import type { Provider } from '@nestjs/common';
import type { FeatureWiring } from '../feature-wiring.js';
import { HmacGuard, HOOK_VERIFIER } from './hmac.guard.js';
import { HookVerifier, verifierSettingsFromConfig } from './hook-verifier.js';
import { KeyService } from './keys.js';
import { PgKeyRecords } from './key.repository.js';
import { KeyServiceMatchKeys } from './match-keys.js';
import { OverlayKeysService } from './overlay-keys.service.js';
import { OutboxSecurityEventSink } from './security-events.js';

export type SecurityWiring = Pick<FeatureWiring, 'config' | 'db' | 'kv' | 'clock' | 'logger' | 'metrics' | 'onOutboxWrite'>;

export interface Security {
  readonly keys: KeyService;
  readonly hookVerifier: HookVerifier;
  /** Provisioning's MatchKeys port on `keys`. */
  readonly matchKeys: KeyServiceMatchKeys;
  /** The per-player overlay keys the platform fetches. */
  readonly overlayKeys: OverlayKeysService;
}

/** Per-match keys and the HMAC verifier, whose security events go through the outbox. */
export function wireSecurity(w: SecurityWiring): Security {
  const { config, kv, clock, metrics } = w;
  const log = w.logger.child({ component: 'hmac' });
  const keys = new KeyService({
    kv,
    records: new PgKeyRecords(w.db),
    clock,
    overlayMasterSecret: config.OVERLAY_MASTER_SECRET,
    adminHookSecret: config.ADMIN_HOOK_SECRET,
    defaultTtlMs: config.OVERLAY_KEY_TTL_MS,
    maxSkewMs: config.MAX_SKEW_MS,
  });
  const hookVerifier = new HookVerifier({
    keys,
    kv,
    clock,
    settings: verifierSettingsFromConfig(config),
    metrics,
    sink: new OutboxSecurityEventSink(w.db, clock, log, w.onOutboxWrite),
    logger: log,
  });
  return {
    keys,
    hookVerifier,
    matchKeys: new KeyServiceMatchKeys(keys),
    overlayKeys: new OverlayKeysService(w.db, keys, () => clock.now()),
  };
}

/** The Nest providers of the security feature: the verifier behind HmacGuard, and the key service. */
export function securityProviders(security: Pick<Security, 'keys' | 'hookVerifier' | 'overlayKeys'>): Provider[] {
  return [
    { provide: HOOK_VERIFIER, useValue: security.hookVerifier },
    HmacGuard,
    { provide: KeyService, useValue: security.keys },
    { provide: OverlayKeysService, useValue: security.overlayKeys },
  ];
}
