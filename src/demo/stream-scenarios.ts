/**
 * The demo's stream-health scenarios: matches in progress whose players' streams follow scripted timelines on the
 * simulated Twitch and SRS (DemoPeers), swept by the running service every STREAM_CHECK_EVERY_MS. Overlay gameplay
 * arrives as signed calls to POST /v1/overlay/events, exactly as from a real overlay agent.
 */
import type { DemoPlayerStream, StreamSegment } from './peers.js';
import { issueKey, matchBody, postSigned, sleep, viewMatch, waitForMatch, type MatchView, type ScenarioContext } from './scenario-kit.js';

interface StreamMatch {
  readonly id: string;
  /** The enforcement policy (STREAM_POLICIES) the match names; `default` when absent. */
  readonly enforcementMode?: string;
  readonly p1: DemoPlayerStream;
  readonly p2: DemoPlayerStream;
}

function timings(ctx: ScenarioContext) {
  return { check: ctx.config.STREAM_CHECK_EVERY_MS, grace: ctx.config.OFFLINE_GRACE_MS };
}

/** Creates a VERIFIED_STREAM match IN_PROGRESS whose players follow the given timelines. */
async function startMatch(
  ctx: ScenarioContext,
  tag: string,
  n: number,
  p1: StreamSegment[],
  p2: StreamSegment[],
  enforcementMode?: string,
): Promise<StreamMatch> {
  const id = `demo-${ctx.run}-${tag}`;
  // Twitch logins are [a-z0-9_]{1,25}; SRS names follow them.
  const m: StreamMatch = {
    id,
    ...(enforcementMode === undefined ? {} : { enforcementMode }),
    p1: { login: `a${ctx.run}_${n}`, ingest: `alice_${ctx.run}_${n}`, matchId: id },
    p2: { login: `b${ctx.run}_${n}`, ingest: `bob_${ctx.run}_${n}`, matchId: id },
  };
  ctx.peers.script(m.p1, p1);
  ctx.peers.script(m.p2, p2);
  await ctx.api('PUT', `/v1/internal/matches/${id}`, streamMatchBody(m, 'IN_PROGRESS'));
  return m;
}

function streamMatchBody(m: StreamMatch, status: string) {
  const channels = { p1: [`twitch:${m.p1.login}`, `srs:live/${m.p1.ingest}`], p2: [`twitch:${m.p2.login}`, `srs:live/${m.p2.ingest}`] };
  return matchBody(channels, { overlayRequired: true, status, ...(m.enforcementMode ? { enforcementMode: m.enforcementMode } : {}) });
}

const view = (ctx: ScenarioContext, m: StreamMatch) => viewMatch(ctx, m.id);

const waitForStatus = (ctx: ScenarioContext, m: StreamMatch, status: string, timeoutMs: number) =>
  waitForMatch(ctx, m.id, `become ${status}`, (v) => v.status === status, timeoutMs);

/** The match ends normally: the platform marks it COMPLETED and enforcement stops. */
async function complete(ctx: ScenarioContext, m: StreamMatch) {
  await ctx.api('PUT', `/v1/internal/matches/${m.id}`, streamMatchBody(m, 'COMPLETED'));
}

async function episodes(ctx: ScenarioContext, m: StreamMatch) {
  return ctx.service.services.db.selectFrom('grace_episodes').select(['side', 'state']).where('match_id', '=', m.id).execute();
}

function describeVerdict(v: MatchView): string {
  const e = (v.enforcement as { side: string; verdict: string; reason: string; evidenceId: string }[])[0];
  if (!e) return 'no enforcement';
  // The evidence bundle names the policy that judged the match (its enforcementMode) and its verdict rule.
  const bundle = (v.evidence as { id: string; bundle: { policy?: { name: string; verdictRule: string } } }[]).find(
    (x) => x.id === e.evidenceId,
  )?.bundle;
  const policy = bundle?.policy ? `, judged by policy "${bundle.policy.name}" (${bundle.policy.verdictRule})` : '';
  return `${e.verdict} ${e.side} (${e.reason})${policy}, evidence ${e.evidenceId}`;
}

const healthyOnly: StreamSegment[] = [{ atMs: 0, state: 'healthy' }];

async function healthy(ctx: ScenarioContext) {
  const { check } = timings(ctx);
  const m = await startMatch(ctx, 'stream-healthy', 1, healthyOnly, healthyOnly);
  ctx.say(`▶ ${m.id}: both players stream fine (60 fps, 6000 kbps, title with [${m.id}])`);
  await sleep(8 * check);
  const v = await view(ctx, m);
  const checklist = v.checklist as Record<string, boolean>;
  const ok = ['p1StreamLive', 'p2StreamLive', 'titlesContainMatchId', 'fpsOk', 'bitrateOk'].every((k) => checklist[k]);
  ctx.say(`✔ ${m.id}: still ${String(v.status)}, checklist stream items all true: ${ok ? 'yes' : 'no'}, no warning`);
  await complete(ctx, m);
}

async function shortDip(ctx: ScenarioContext) {
  const { check, grace } = timings(ctx);
  // Grace counts from the last healthy sample, up to one check before the drop, and the recovery must be seen by a
  // sweep before a violating sample outlives the grace: the dip stays a check interval short of that.
  const dip = Math.max(check, Math.min(2 * check, grace - 2 * check));
  const m = await startMatch(
    ctx,
    'stream-dip',
    2,
    [
      { atMs: 0, state: 'healthy' },
      { atMs: 3 * check, state: 'offline' },
      { atMs: 3 * check + dip, state: 'healthy' },
    ],
    healthyOnly,
  );
  ctx.say(`▶ ${m.id}: alice's stream drops for ~${dip / 1000} s (grace ${grace / 1000} s), then comes back`);
  await sleep(10 * check);
  const v = await view(ctx, m);
  const eps = await episodes(ctx, m);
  ctx.say(
    `✔ ${m.id}: ${String(v.status)}, ${describeVerdict(v)}; grace episodes: ${eps.map((e) => `${e.side} ${e.state}`).join(', ') || 'none'} (one warning, closed on recovery)`,
  );
  await complete(ctx, m);
}

/**
 * Alice goes offline while the overlay reports gameplay. Under the `default` policy that is a forfeit; a match in the
 * demo's `final` mode (STREAM_POLICIES: verdict rule dispute) gets the same evidence but a human decides.
 */
async function offlineWithGameplay(ctx: ScenarioContext, mode?: { name: string; n: number; expect: string }) {
  const { check, grace } = timings(ctx);
  const m = await startMatch(
    ctx,
    mode ? `stream-${mode.name}` : 'stream-forfeit',
    mode?.n ?? 3,
    [
      { atMs: 0, state: 'healthy' },
      { atMs: 3 * check, state: 'offline' },
    ],
    healthyOnly,
    mode?.name,
  );
  ctx.say(
    `▶ ${m.id}: alice goes offline after ~${(3 * check) / 1000} s while the overlay keeps reporting gameplay (enforcement mode ${mode?.name ?? 'default'})`,
  );
  const key = await issueKey(ctx, m.id, 'overlay');
  let seq = 0;
  let done = false;
  const overlay = (async () => {
    while (!done) {
      seq++;
      await postSigned(ctx, '/v1/overlay/events', key, { type: 'gameplay.progress', matchId: m.id, seq, round: seq }).catch(
        () => undefined,
      );
      await sleep(Math.max(1000, check / 2));
    }
  })();
  try {
    const v = await waitForStatus(ctx, m, mode?.expect ?? 'FORFEITED', 3 * check + grace + 8 * check);
    ctx.say(`✔ ${m.id}: ${String(v.status)} — ${describeVerdict(v)}; ${seq} gameplay.progress calls signed and accepted`);
  } finally {
    done = true;
    await overlay;
  }
}

async function offlineWithoutGameplay(ctx: ScenarioContext) {
  const { check, grace } = timings(ctx);
  const m = await startMatch(ctx, 'stream-dispute', 4, healthyOnly, [
    { atMs: 0, state: 'healthy' },
    { atMs: 3 * check, state: 'offline' },
  ]);
  ctx.say(`▶ ${m.id}: bob goes offline and the overlay reports no gameplay`);
  const v = await waitForStatus(ctx, m, 'DISPUTED', 3 * check + grace + 8 * check);
  ctx.say(`✔ ${m.id}: ${String(v.status)} — ${describeVerdict(v)} (a human decides)`);
}

async function providerOutage(ctx: ScenarioContext) {
  const { check, grace } = timings(ctx);
  const outageMs = Math.max(2 * grace, 8 * check);
  const m = await startMatch(
    ctx,
    'stream-outage',
    5,
    [
      { atMs: 0, state: 'healthy' },
      { atMs: 3 * check, state: 'offline' },
      { atMs: 3 * check + outageMs - check, state: 'healthy' },
    ],
    healthyOnly,
  );
  ctx.say(`▶ ${m.id}: Twitch and SRS fail (503 / 429 / timeouts / error codes) for ${outageMs / 1000} s while alice is offline`);
  await sleep(3 * check - check / 2);
  await ctx.peers.outage(outageMs);
  ctx.say(`  ${m.id}: providers answer again; alice is back`);
  await sleep(4 * check);
  const v = await view(ctx, m);
  const eps = await episodes(ctx, m);
  ctx.say(`✔ ${m.id}: ${String(v.status)}, ${describeVerdict(v)}, ${eps.length} grace episodes — unknown is never a violation`);
  await complete(ctx, m);
}

/** The stream scenarios by name (the demo's `--scenario` picks among them). */
export const STREAM_SCENARIOS = {
  'stream-healthy': (ctx) => healthy(ctx),
  'stream-dip': (ctx) => shortDip(ctx),
  'stream-forfeit': (ctx) => offlineWithGameplay(ctx),
  'stream-dispute': (ctx) => offlineWithoutGameplay(ctx),
  // The `final` enforcement mode, when configured with the dispute rule: the same offline-with-gameplay story ends DISPUTED.
  'stream-final': async (ctx) => {
    if (ctx.config.enforcementPolicies.get('final')?.verdictRule === 'dispute')
      await offlineWithGameplay(ctx, { name: 'final', n: 6, expect: 'DISPUTED' });
  },
} as const satisfies Record<string, (ctx: ScenarioContext) => Promise<void>>;

/**
 * Runs after the others, alone: an outage makes every channel unknown, which would only delay the others' verdicts.
 */
export const STREAM_OUTAGE_SCENARIO = { 'stream-outage': providerOutage } as const;
