import { randomUUID } from 'node:crypto';
import { STREAM_OUTAGE_SCENARIO, STREAM_SCENARIOS } from './stream-scenarios.js';
import { readAdminKey, signFirstHook } from './simulated/admin-plugin.js';
import { matchBody, waitForMatch, type MatchView, type ScenarioContext } from './scenario-kit.js';

const streamChannels = (matchId: string) => ({
  p1: [`twitch:alice_${matchId}`, `srs:live/alice_${matchId}`],
  p2: [`twitch:bob_${matchId}`, `srs:live/bob_${matchId}`],
});

const provisioningState = (view: MatchView) => (view.provisioning as { state: string } | null)?.state;

interface AdminKeyView {
  keyId: string | null;
  delivery: string;
  revoked: boolean;
  adminHookBlocked: string | null;
}
const adminKeyOf = (view: MatchView) => (view.provisioning as { adminKey?: AdminKeyView | null } | null)?.adminKey ?? null;

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
  const delivered = await waitForMatch(ctx, matchId, 'get its admin key delivered', (v) => adminKeyOf(v)?.delivery === 'DELIVERED', 15_000);
  ctx.say(
    `  ${matchId}: admin key ${adminKeyOf(delivered)?.keyId} delivered to server ${serverId} through the panel (PATCH …/startup: ${ctx.config.ADMIN_KEY_ID_VARIABLE}, ${ctx.config.ADMIN_KEY_SECRET_VARIABLE})`,
  );
  await waitForMatch(ctx, matchId, 'wait for signals', (v) => provisioningState(v) === 'WAITING_SIGNALS', 15_000);
  ctx.say(`  ${matchId}: panel reports installed; waiting for the game server's admin hook`);
  // The game server's admin plugin reads its key from the environment the panel gives the server, and signs.
  const key = readAdminKey(ctx.panel, serverId, {
    idVariable: ctx.config.ADMIN_KEY_ID_VARIABLE,
    secretVariable: ctx.config.ADMIN_KEY_SECRET_VARIABLE,
  });
  if (!key) throw new Error(`server ${serverId} has no admin key in its startup variables`);
  const status = await signFirstHook(ctx.service.url, key, matchId);
  ctx.say(`  ${matchId}: admin plugin read ${key.keyId} from its startup variables and signed POST /v1/hooks/admin → ${status}`);
  await waitForMatch(ctx, matchId, 'become ready', (v) => provisioningState(v) === 'READY', 15_000);
  const overlayKeys = (await ctx.api('GET', `/v1/internal/matches/${matchId}/overlay-keys`)) as { keys: { side: string; keyId: string }[] };
  ctx.say(
    `✔ ${matchId}: READY — server.ready emitted once; overlay keys for the platform: ${overlayKeys.keys.map((k) => `${k.side} ${k.keyId}`).join(', ')}`,
  );
  await ctx.api('POST', '/v1/internal/events/server.released', { v: 'v1', eventId: randomUUID(), matchId, panelServerId: serverId });
  await waitForMatch(ctx, matchId, 'revoke its keys', (v) => adminKeyOf(v)?.revoked === true, 15_000);
  const after = await signFirstHook(ctx.service.url, key, matchId);
  ctx.say(`✔ ${matchId}: released — its keys are revoked; the same admin key now gets ${after}`);
}

/** A panel whose egg lacks the key variables: the delivery is refused, the match view says why, the deadline cancels. */
async function adminKeyRefused(ctx: ScenarioContext) {
  const matchId = `demo-${ctx.run}-nokey`;
  const serverId = ctx.panel.addServer({ installAfterMs: 2000, egg: 4 });
  await reserve(ctx, matchId, serverId);
  ctx.say(`  ${matchId}: server ${serverId}'s egg has no ${ctx.config.ADMIN_KEY_ID_VARIABLE} variable`);
  const blocked = await waitForMatch(ctx, matchId, 'record the refused key', (v) => adminKeyOf(v)?.adminHookBlocked != null, 15_000);
  ctx.say(`  ${matchId}: ${String(provisioningState(blocked))} — admin hook cannot arrive: ${adminKeyOf(blocked)?.adminHookBlocked}`);
  const view = await waitForMatch(
    ctx,
    matchId,
    'fail provisioning',
    (v) => provisioningState(v) === 'FAILED',
    ctx.config.READY_DEADLINE_MS + 20_000,
  );
  ctx.say(
    `✔ ${matchId}: FAILED (${(view.provisioning as { failureReason: string }).failureReason}), match ${String(view.status)}, admin key revoked: ${adminKeyOf(view)?.revoked ? 'yes' : 'no'}`,
  );
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
    true, // the cleanup follows the cancellation
  );
  const p = view.provisioning as { failureReason: string };
  ctx.say(
    `✔ ${matchId}: FAILED (${p.failureReason}) well before the deadline, match ${String(view.status)}, ${(view.refunds as unknown[]).length} refunds; panel server deleted: ${ctx.panel.has(serverId) ? 'no' : 'yes'}`,
  );
}

type Scenario = (ctx: ScenarioContext) => Promise<void>;

/** Every scenario by name, in two waves: the outage runs alone after the first wave (it would blur the others). */
const FIRST_WAVE: Record<string, Scenario> = {
  ready: provisionSucceeds,
  timeout: provisionTimesOut,
  installfail: installFails,
  'admin-key-refused': adminKeyRefused,
  ...STREAM_SCENARIOS,
};
const SECOND_WAVE: Record<string, Scenario> = { ...STREAM_OUTAGE_SCENARIO };

export const SCENARIO_NAMES: readonly string[] = [...Object.keys(FIRST_WAVE), ...Object.keys(SECOND_WAVE)];

/** A scenario that did not get the outcome it expects, by name; the others still ran to their end. */
export class ScenariosFailed extends Error {
  constructor(readonly failed: readonly string[]) {
    super(`${failed.length} scenario(s) failed: ${failed.join(', ')}`);
    this.name = 'ScenariosFailed';
  }
}

/** Runs the chosen scenarios (all by default); each failure is reported as it happens, all of them at the end. */
export async function runScenarios(ctx: ScenarioContext, only: readonly string[] = SCENARIO_NAMES): Promise<void> {
  const failed: string[] = [];
  const runWave = (wave: Record<string, Scenario>) =>
    Promise.all(
      Object.entries(wave)
        .filter(([name]) => only.includes(name))
        .map(([name, scenario]) =>
          scenario(ctx).catch((error: unknown) => {
            failed.push(name);
            ctx.say(`✘ ${name}: ${(error as Error).message}`);
          }),
        ),
    );
  await runWave(FIRST_WAVE);
  await runWave(SECOND_WAVE);
  if (failed.length > 0) throw new ScenariosFailed(failed);
}
