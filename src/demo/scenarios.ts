import { randomUUID } from 'node:crypto';
import { sign } from '../security/signer.js';
import type { RunningService } from '../app.module.js';
import type { Config } from '../config/config.js';
import type { FakePanel } from './simulated/pterodactyl-panel.js';
import type { DemoPeers } from './peers.js';

export interface ScenarioContext {
  api: (method: string, path: string, body?: unknown) => Promise<Record<string, unknown>>;
  panel: FakePanel;
  peers: DemoPeers;
  say: (line: string) => void;
  run: string;
  service: RunningService;
  config: Config;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function matchBody(matchId: string, overlayRequired: boolean) {
  return {
    mode: 'VERIFIED_STREAM',
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired,
    players: [
      { side: 'p1', playerId: `alice`, streamChannels: [`twitch:alice_${matchId}`, `srs:live/alice_${matchId}`] },
      { side: 'p2', playerId: `bob`, streamChannels: [`twitch:bob_${matchId}`, `srs:live/bob_${matchId}`] },
    ],
  };
}

async function waitFor(ctx: ScenarioContext, matchId: string, done: (view: Record<string, unknown>) => boolean, timeoutMs: number) {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const view = await ctx.api('GET', `/v1/internal/matches/${matchId}`);
    if (done(view)) return view;
    if (Date.now() > until) throw new Error(`match ${matchId} did not settle in ${timeoutMs} ms`);
    await sleep(500);
  }
}

const provisioningState = (view: Record<string, unknown>) => (view.provisioning as { state: string } | null)?.state;

/** Reserve a server for a new match, as the platform would: upsert the match, then publish server.reserved. */
async function reserve(ctx: ScenarioContext, matchId: string, serverId: number, overlayRequired = false) {
  await ctx.api('PUT', `/v1/internal/matches/${matchId}`, matchBody(matchId, overlayRequired));
  await ctx.api('POST', '/v1/internal/events/server.reserved', { v: 'v1', eventId: randomUUID(), matchId, panelServerId: serverId });
  ctx.say(`▶ ${matchId}: match created (entry fee 5 USD each), server ${serverId} reserved`);
}

async function provisionSucceeds(ctx: ScenarioContext) {
  const matchId = `demo-${ctx.run}-ready`;
  const serverId = ctx.panel.addServer({ installAfterMs: 3000, outcome: 'installed' });
  await reserve(ctx, matchId, serverId);
  await waitFor(ctx, matchId, (v) => provisioningState(v) === 'WAITING_SIGNALS', 15_000);
  ctx.say(`  ${matchId}: panel reports installed; waiting for the game server's admin hook`);
  // The game server's admin plugin: a per-match admin key, a signed call to the hook endpoint.
  const key = (await ctx.api('POST', '/v1/internal/keys', { matchId, kind: 'admin' })) as { keyId: string; secret: string };
  const body = JSON.stringify({ type: 'admin.hooks.ok', matchId });
  const signed = sign({ keyId: key.keyId, secret: key.secret, body });
  const response = await fetch(`${ctx.service.url}/v1/hooks/admin`, { method: 'POST', headers: { 'content-type': 'application/json', ...signed.headers }, body });
  ctx.say(`  ${matchId}: admin plugin called POST /v1/hooks/admin with key ${key.keyId} → ${response.status}`);
  await waitFor(ctx, matchId, (v) => provisioningState(v) === 'READY', 15_000);
  ctx.say(`✔ ${matchId}: READY — server.ready emitted once`);
}

async function provisionTimesOut(ctx: ScenarioContext) {
  const matchId = `demo-${ctx.run}-timeout`;
  const serverId = ctx.panel.addServer({ status: 'installing' });
  await reserve(ctx, matchId, serverId);
  ctx.say(`  ${matchId}: the panel will never finish installing; deadline ${ctx.config.READY_DEADLINE_MS / 1000} s`);
  const view = await waitFor(ctx, matchId, (v) => provisioningState(v) === 'FAILED', ctx.config.READY_DEADLINE_MS + 20_000);
  const refunds = (view.refunds as { playerId: string; amountCents: number }[]).map((r) => `${r.playerId} ${r.amountCents / 100} USD`);
  ctx.say(`✔ ${matchId}: FAILED (TIMEOUT), match ${String(view.status)}, refunded: ${refunds.join(', ')}`);
}

async function installFails(ctx: ScenarioContext) {
  const matchId = `demo-${ctx.run}-installfail`;
  const serverId = ctx.panel.addServer({ installAfterMs: 4000, outcome: 'install_failed' });
  await reserve(ctx, matchId, serverId);
  const view = await waitFor(ctx, matchId, (v) => (v.provisioning as { cleanup?: string } | null)?.cleanup === 'DONE', 20_000);
  const p = view.provisioning as { failureReason: string };
  ctx.say(`✔ ${matchId}: FAILED (${p.failureReason}) well before the deadline, match ${String(view.status)}, ${(view.refunds as unknown[]).length} refunds; panel server deleted: ${ctx.panel.has(serverId) ? 'no' : 'yes'}`);
}

export async function runScenarios(ctx: ScenarioContext): Promise<void> {
  const { runStreamScenarios } = await import('./stream-scenarios.js');
  await Promise.all([provisionSucceeds(ctx), provisionTimesOut(ctx), installFails(ctx), runStreamScenarios(ctx)]);
}
