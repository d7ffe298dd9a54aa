/** What every demo scenario uses: the context the driver hands over, pauses, match set-up and signed calls. */
import { sign, type SignInput } from '../security/signer.js';
import type { RunningService } from '../app.module.js';
import { TERMINAL_STATUSES } from '../matches/match.schemas.js';
import type { Config } from '../config/config.js';
import type { DemoPeers } from './peers.js';
import type { FakePanel } from './simulated/pterodactyl-panel.js';

export interface ScenarioContext {
  api: (method: string, path: string, body?: unknown) => Promise<Record<string, unknown>>;
  panel: FakePanel;
  peers: DemoPeers;
  say: (line: string) => void;
  run: string;
  service: RunningService;
  config: Config;
}

export type MatchView = Record<string, unknown>;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A VERIFIED_STREAM match with a 5 USD entry fee between alice (p1) and bob (p2) on the given channels. */
export function matchBody(
  channels: { p1: string[]; p2: string[] },
  options: { overlayRequired: boolean; status?: string; enforcementMode?: string },
) {
  return {
    mode: 'VERIFIED_STREAM',
    ...(options.status === undefined ? {} : { status: options.status }),
    ...(options.enforcementMode === undefined ? {} : { enforcementMode: options.enforcementMode }),
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired: options.overlayRequired,
    players: [
      { side: 'p1', playerId: 'alice', streamChannels: channels.p1 },
      { side: 'p2', playerId: 'bob', streamChannels: channels.p2 },
    ],
  };
}

export function viewMatch(ctx: ScenarioContext, matchId: string): Promise<MatchView> {
  return ctx.api('GET', `/v1/internal/matches/${matchId}`);
}

/**
 * Polls the match every 500 ms until `done`; `goal` names what is awaited in the error. A match that ended
 * (CANCELLED, FORFEITED …) without reaching the goal fails at once: it will not get there by waiting — unless
 * `reachedAfterEnd` says the goal comes after the match ends (panel cleanup after a cancellation).
 */
export async function waitForMatch(
  ctx: ScenarioContext,
  matchId: string,
  goal: string,
  done: (view: MatchView) => boolean,
  timeoutMs: number,
  reachedAfterEnd = false,
): Promise<MatchView> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const view = await viewMatch(ctx, matchId);
    if (done(view)) return view;
    if (!reachedAfterEnd && TERMINAL_STATUSES.includes(String(view.status))) {
      const provisioning = view.provisioning as { state?: string; failureReason?: string | null } | null;
      const why = provisioning?.failureReason ? ` (provisioning ${String(provisioning.state)}: ${provisioning.failureReason})` : '';
      throw new Error(`match ${matchId} ended ${String(view.status)}${why}; it will not ${goal}`);
    }
    if (Date.now() > until) throw new Error(`match ${matchId} did not ${goal} within ${timeoutMs} ms (it is ${String(view.status)})`);
    await sleep(500);
  }
}

export interface HookKey {
  keyId: string;
  secret: string;
}

/** A per-match hook key, issued through the internal API as the platform would. */
export async function issueKey(ctx: ScenarioContext, matchId: string, kind: 'admin' | 'overlay'): Promise<HookKey> {
  return (await ctx.api('POST', '/v1/internal/keys', { matchId, kind })) as unknown as HookKey;
}

/** A signed hook call, exactly as a game server's admin plugin or an overlay agent sends it. */
export function postSigned(ctx: ScenarioContext, path: string, key: HookKey, body: SignInput['body']): Promise<Response> {
  const signed = sign({ keyId: key.keyId, secret: key.secret, body });
  return fetch(`${ctx.service.url}${path}`, {
    method: 'POST',
    headers: { ...signed.headers, 'content-type': 'application/json' },
    body: signed.body,
  });
}
