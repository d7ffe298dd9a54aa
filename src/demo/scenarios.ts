import { randomUUID } from 'node:crypto';
import { runStreamScenarios } from './stream-scenarios.js';
import { issueKey, matchBody, postSigned, waitForMatch, type MatchView, type ScenarioContext } from './scenario-kit.js';

const streamChannels = (matchId: string) => ({
  p1: [`twitch:alice_${matchId}`, `srs:live/alice_${matchId}`],
  p2: [`twitch:bob_${matchId}`, `srs:live/bob_${matchId}`],
});

const provisioningState = (view: MatchView) => (view.provisioning as { state: string } | null)?.state;

/** Reserve a server for a new match, as the platform would: upsert the match, then publish server.reserved. */
async function reserve(ctx: ScenarioContext, matchId: string, serverId: number, overlayRequired = false) {
  await ctx.api('PUT', `/v1/internal/matches/${matchId}`, matchBody(streamChannels(matchId), { overlayRequired }));
  await ctx.api('POST', '/v1/internal/events/server.reserved', { v: 'v1', eventId: randomUUID(), matchId, panelServerId: serverId });
  ctx.say(`▶ ${matchId}: match created (entry fee 5 USD each), server ${serverId} reserved`);
}

async function provisionSucceeds(ctx: ScenarioContext) {
  const matchId = `demo-${ctx.run}-ready`;
  const serverId = ctx.panel.addServer({ installAfterMs: 3000, outcome: 'installed' });
  await reserve(ctx, matchId, serverId);
  await waitForMatch(ctx, matchId, 'wait for signals', (v) => provisioningState(v) === 'WAITING_SIGNALS', 15_000);
  ctx.say(`  ${matchId}: panel reports installed; waiting for the game server's admin hook`);
  // The game server's admin plugin: a per-match admin key, a signed call to the hook endpoint.
  const key = await issueKey(ctx, matchId, 'admin');
  const response = await postSigned(ctx, '/v1/hooks/admin', key, JSON.stringify({ type: 'admin.hooks.ok', matchId }));
  ctx.say(`  ${matchId}: admin plugin called POST /v1/hooks/admin with key ${key.keyId} → ${response.status}`);
  await waitForMatch(ctx, matchId, 'become ready', (v) => provisioningState(v) === 'READY', 15_000);
  ctx.say(`✔ ${matchId}: READY — server.ready emitted once`);
}

async function provisionTimesOut(ctx: ScenarioContext) {
  const matchId = `demo-${ctx.run}-timeout`;
  const serverId = ctx.panel.addServer({ status: 'installing' });
  await reserve(ctx, matchId, serverId);
  ctx.say(`  ${matchId}: the panel will never finish installing; deadline ${ctx.config.READY_DEADLINE_MS / 1000} s`);
  const view = await waitForMatch(
    ctx,
    matchId,
    'fail provisioning',
    (v) => provisioningState(v) === 'FAILED',
    ctx.config.READY_DEADLINE_MS + 20_000,
  );
  const refunds = (view.refunds as { playerId: string; amountCents: number }[]).map((r) => `${r.playerId} ${r.amountCents / 100} USD`);
  ctx.say(`✔ ${matchId}: FAILED (TIMEOUT), match ${String(view.status)}, refunded: ${refunds.join(', ')}`);
}

async function installFails(ctx: ScenarioContext) {
  const matchId = `demo-${ctx.run}-installfail`;
  const serverId = ctx.panel.addServer({ installAfterMs: 4000, outcome: 'install_failed' });
  await reserve(ctx, matchId, serverId);
  const view = await waitForMatch(
    ctx,
    matchId,
    'finish panel cleanup',
    (v) => (v.provisioning as { cleanup?: string } | null)?.cleanup === 'DONE',
    20_000,
  );
  const p = view.provisioning as { failureReason: string };
  ctx.say(
    `✔ ${matchId}: FAILED (${p.failureReason}) well before the deadline, match ${String(view.status)}, ${(view.refunds as unknown[]).length} refunds; panel server deleted: ${ctx.panel.has(serverId) ? 'no' : 'yes'}`,
  );
}

export async function runScenarios(ctx: ScenarioContext): Promise<void> {
  await Promise.all([provisionSucceeds(ctx), provisionTimesOut(ctx), installFails(ctx), runStreamScenarios(ctx)]);
}
