/**
 * The game server's admin plugin, simulated: it reads its admin key from the server's environment — the startup
 * variables the panel hands the container (ADMIN_KEY_ID_VARIABLE / ADMIN_KEY_SECRET_VARIABLE) — and signs its
 * first hook with it. Nobody copies a secret by hand.
 */
import { sign } from '../../security/signer.js';
import type { FakePanel } from './pterodactyl-panel.js';

export interface AdminPluginOptions {
  idVariable: string;
  secretVariable: string;
}

/** The key the container would start with, or undefined while the panel has none for it. */
export function readAdminKey(
  panel: FakePanel,
  serverId: number,
  options: AdminPluginOptions,
): { keyId: string; secret: string } | undefined {
  const environment = panel.variables(serverId);
  const keyId = environment[options.idVariable];
  const secret = environment[options.secretVariable];
  return keyId && secret ? { keyId, secret } : undefined;
}

/** POST /v1/hooks/admin `admin.hooks.ok`, signed with the key from the environment (hmac-v1). */
export async function signFirstHook(serviceUrl: string, key: { keyId: string; secret: string }, matchId: string): Promise<number> {
  const signed = sign({ keyId: key.keyId, secret: key.secret, body: JSON.stringify({ type: 'admin.hooks.ok', matchId }) });
  const response = await fetch(`${serviceUrl}/v1/hooks/admin`, {
    method: 'POST',
    headers: { ...signed.headers, 'content-type': 'application/json' },
    body: signed.body,
  });
  await response.arrayBuffer();
  return response.status;
}
