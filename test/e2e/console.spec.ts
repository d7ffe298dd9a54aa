import { randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { DemoPeers, type DemoPlayerStream, type StreamSegment } from '../../src/demo/peers.js';
import { Topics } from '../../src/events/topics.js';
import type { KafkaMessageSink } from '../../src/infra/bus/kafka-bus.js';
import { sign } from '../../src/security/signer.js';
import { ROOT, TEST_SECRETS } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { internalApi, platformProducer, type RealStack, realStack, serviceEnv, startTestService } from '../support/service.js';
// @ts-expect-error plain ESM script without types
import { ensureChromium } from '../../scripts/chromium.mjs';

// The operator console (/console) in a real headless Chromium (Debian's package, driven by playwright-core) against a
// service on the real PostgreSQL, Redis and Kafka, with the simulated Pterodactyl panel, Twitch and SRS over real HTTP.
// The browser sees what an operator sees: a provisioning match turning READY, a stream forfeit with its evidence, a
// dead letter replayed, a wrong token refused; and the page runs under its Content-Security-Policy without violations.
// UPDATE_CONSOLE_SCREENSHOT=1 also writes the final screenshot to docs/console.png (the README's picture).

const CHECK_MS = 1000;
const GRACE_MS = 5000;
const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

let real: RealStack;
let peers: DemoPeers;
let service: RunningService;
let producer: KafkaMessageSink;
let api: ReturnType<typeof internalApi>;
let context: BrowserContext;
let profile: string;
const run = randomBytes(3).toString('hex');
/** Every CSP violation and page error any console page reported. */
const pageProblems: string[] = [];

beforeAll(async () => {
  const executablePath = ensureChromium() as string;
  real = await realStack();
  peers = await DemoPeers.start();
  const env = serviceEnv(real.stack, {
    ...peers.env({
      STREAM_CHECK_EVERY_MS: String(CHECK_MS),
      OFFLINE_GRACE_MS: String(GRACE_MS),
      STREAM_BACKUP_EVERY_MS: '5000',
      TELEMETRY_TIMEOUT_MS: '1500',
    }),
    // Long enough to watch the countdown; a `slow` policy keeps one grace timer running for the screenshot.
    READY_DEADLINE_MS: '180000',
    STREAM_POLICIES: JSON.stringify({ slow: { graceMs: 600_000 } }),
  });
  service = await startTestService(env);
  api = internalApi(service);
  producer = platformProducer(real);
  profile = mkdtempSync(join(tmpdir(), 'flock-console-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: FLAGS,
    viewport: { width: 1400, height: 1000 },
  });
});

afterAll(async () => {
  await context?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
  await producer?.close();
  await service?.close();
  await peers?.close();
  await real?.close();
});

async function openConsole(): Promise<Page> {
  const page = await context.newPage();
  page.on('console', (message) => {
    if (message.type() === 'error') pageProblems.push(message.text());
  });
  page.on('pageerror', (error) => pageProblems.push(error.message));
  page.on('response', (response) => {
    if (response.status() >= 400 && response.status() !== 401) pageProblems.push(`${response.status()} ${response.url()}`);
  });
  await page.goto(`${service.url}/console`);
  return page;
}

async function signIn(page: Page, token: string) {
  await page.locator('#token').fill(token);
  await page.locator('#login-form button[type=submit]').click();
}

/** The console's row of a match. */
const matchRow = (page: Page, matchId: string) => page.locator(`#match-rows tr[data-match-id="${matchId}"]`);

function channels(p1: DemoPlayerStream, p2: DemoPlayerStream) {
  return { p1: [`twitch:${p1.login}`, `srs:live/${p1.ingest}`], p2: [`twitch:${p2.login}`, `srs:live/${p2.ingest}`] };
}

/** A VERIFIED_STREAM match in progress whose players' streams follow the given timelines. */
async function streamMatch(tag: string, p1Timeline: StreamSegment[], p2Timeline: StreamSegment[], enforcementMode?: string) {
  const id = `con-${run}-${tag}`;
  const p1 = { login: `a${run}_${tag}`.slice(0, 25), ingest: `alice_${run}_${tag}`, matchId: id };
  const p2 = { login: `b${run}_${tag}`.slice(0, 25), ingest: `bob_${run}_${tag}`, matchId: id };
  peers.script(p1, p1Timeline);
  peers.script(p2, p2Timeline);
  const c = channels(p1, p2);
  const created = await api('PUT', `/v1/internal/matches/${id}`, {
    mode: 'VERIFIED_STREAM',
    status: 'IN_PROGRESS',
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired: true,
    ...(enforcementMode ? { enforcementMode } : {}),
    players: [
      { side: 'p1', playerId: `alice-${tag}`, streamChannels: c.p1 },
      { side: 'p2', playerId: `bob-${tag}`, streamChannels: c.p2 },
    ],
  });
  expect(created.status).toBe(201);
  return id;
}

/** A match with a reserved server on the simulated panel, as the platform creates one. */
async function reservedMatch(tag: string, installAfterMs: number, p1PlayerId = `alice-${tag}`) {
  const id = `con-${run}-${tag}`;
  const serverId = real.panel.addServer({ installAfterMs, outcome: 'installed' });
  const created = await api('PUT', `/v1/internal/matches/${id}`, {
    mode: 'STANDARD',
    entryFee: { amountCents: 500, currency: 'USD' },
    overlayRequired: false,
    players: [
      { side: 'p1', playerId: p1PlayerId, streamChannels: [] },
      { side: 'p2', playerId: `bob-${tag}`, streamChannels: [] },
    ],
  });
  expect(created.status).toBe(201);
  const reserved = await api('POST', '/v1/internal/events/server.reserved', {
    v: 'v1',
    eventId: randomUUID(),
    matchId: id,
    panelServerId: serverId,
  });
  expect(reserved.status).toBe(202);
  return id;
}

/** A signed hook call with a fresh per-match key, exactly as a game server's plugin or an overlay agent sends it. */
async function signedCall(matchId: string, kind: 'admin' | 'overlay', body: Record<string, unknown>) {
  const key = await api('POST', '/v1/internal/keys', { matchId, kind });
  expect(key.status).toBe(201);
  const path = kind === 'admin' ? '/v1/hooks/admin' : '/v1/overlay/events';
  const post = (payload: Record<string, unknown>) => {
    const signed = sign({ keyId: key.json.keyId, secret: key.json.secret, body: payload });
    return fetch(`${service.url}${path}`, {
      method: 'POST',
      headers: { ...signed.headers, 'content-type': 'application/json' },
      body: signed.body,
    });
  };
  return { first: await post(body), post };
}

describe('operator console in headless Chromium', () => {
  it('is served with a strict Content-Security-Policy, no inline script or style, and no HTML built from data', async () => {
    const response = await fetch(`${service.url}/console`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const csp = response.headers.get('content-security-policy') ?? '';
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      "frame-ancestors 'none'",
      "form-action 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toContain('unsafe-eval');
    expect(response.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await response.text();
    // Every <script> names a file of the service; no inline handler, no style attribute, no <style> element.
    const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/g)];
    expect(scripts.length).toBeGreaterThan(0);
    for (const [, attrs, body] of scripts) {
      expect(attrs).toMatch(/\bsrc="\/console\/[a-z-]+\.js"/);
      expect(body?.trim()).toBe('');
    }
    expect(html).not.toMatch(/<style\b|\sstyle=|\son[a-z]+=/i);
    // The scripts and stylesheet come from the service under the same policy.
    for (const file of ['app.js', 'api.js', 'dom.js', 'format.js', 'views.js', 'console.css']) {
      const asset = await fetch(`${service.url}/console/${file}`);
      expect(asset.status, file).toBe(200);
      expect(asset.headers.get('content-security-policy')).toBe(csp);
    }
    const slash = await fetch(`${service.url}/console/`, { redirect: 'manual' });
    expect([slash.status, slash.headers.get('location')]).toEqual([308, '/console']);
    expect((await fetch(`${service.url}/console/..%2Fpackage.json`)).status).toBe(404);
    expect((await fetch(`${service.url}/console/secret.txt`)).status).toBe(404);
    // Values reach the page as text: no module of the console parses markup.
    for (const file of readdirSync(join(ROOT, 'console')).filter((f) => f.endsWith('.js'))) {
      const source = readFileSync(join(ROOT, 'console', file), 'utf8');
      expect(source, file).not.toMatch(/innerHTML|outerHTML|insertAdjacentHTML|document\.write|\beval\(|new Function/);
    }
  });

  it('refuses a wrong token: nothing stored, no data shown, and the token never appears in a URL', async () => {
    const page = await openConsole();
    await expect.poll(() => page.locator('#login').isVisible()).toBe(true);
    await signIn(page, 'not-the-token-0123456789');
    await expect.poll(() => page.locator('#login-error').textContent()).toMatch(/refused.*401/i);
    expect(await page.locator('#console').isVisible()).toBe(false);
    expect(await page.evaluate(() => Object.keys(sessionStorage).length)).toBe(0);
    expect(page.url()).toBe(`${service.url}/console`);
    await page.close();
  });

  it('shows provisioning move to READY, a forfeit with its evidence, and replays a dead letter', async () => {
    // A dead letter: an input event in a version this service does not speak, produced to Kafka as the platform would.
    const badEventId = randomUUID();
    const badMatch = `con-${run}-deadletter`;
    await producer.send([
      {
        topic: Topics.serverReserved,
        key: badMatch,
        value: JSON.stringify({
          v: 'v9',
          eventId: badEventId,
          type: 'server.reserved',
          matchId: badMatch,
          panelServerId: 1,
          note: '<script>window.__pwned=2</script><img src=x onerror="window.__pwned=3">',
        }),
        headers: { 'event-id': badEventId, 'event-type': 'server.reserved' },
      },
    ]);
    const deadLetterId = await eventually(
      async () => {
        const { json } = await api('GET', '/v1/internal/dead-letters?state=pending');
        return (json.items as { id: string; eventId: string }[]).find((d) => d.eventId === badEventId)?.id;
      },
      60_000,
      'the dead letter of the v9 event',
    );

    const readyId = await reservedMatch('ready', 1500);
    // Markup in data (a player id, a message) must reach the page as text.
    const hostile = '<img src=x onerror="window.__pwned=1">';
    const waitingId = await reservedMatch('waiting', 600_000, hostile);
    const forfeitId = await streamMatch(
      'forfeit',
      [
        { atMs: 0, state: 'healthy' },
        { atMs: 3 * CHECK_MS, state: 'offline' },
      ],
      [{ atMs: 0, state: 'healthy' }],
    );
    const slowId = await streamMatch(
      'slow',
      [
        { atMs: 0, state: 'healthy' },
        { atMs: 2 * CHECK_MS, state: 'low-fps' },
      ],
      [{ atMs: 0, state: 'healthy' }],
      'slow',
    );
    // The overlay keeps reporting gameplay while p1 of the forfeit match is offline (a forfeit, not a dispute).
    const overlay = await signedCall(forfeitId, 'overlay', { type: 'gameplay.progress', matchId: forfeitId, seq: 1, round: 1 });
    expect(overlay.first.status).toBe(202);
    let seq = 1;
    const gameplay = setInterval(() => {
      seq++;
      void overlay.post({ type: 'gameplay.progress', matchId: forfeitId, seq, round: seq }).catch(() => undefined);
    }, 700);

    try {
      const page = await openConsole();
      await signIn(page, TEST_SECRETS.INTERNAL_API_TOKEN);
      await expect.poll(() => page.locator('#console').isVisible()).toBe(true);
      expect(page.url()).toBe(`${service.url}/console`);
      expect(await page.evaluate(() => Object.values(sessionStorage))).toEqual([TEST_SECRETS.INTERNAL_API_TOKEN]);

      // Provisioning: the match waits for its signals with the deadline counting down, then turns READY.
      const ready = matchRow(page, readyId);
      await expect.poll(() => ready.locator('td').nth(2).textContent(), { timeout: 30_000 }).toContain('WAITING_SIGNALS');
      const countdown = ready.locator('.countdown');
      const first = await countdown.textContent();
      expect(first).toMatch(/^\d+:\d\d left$/);
      await expect.poll(() => countdown.textContent(), { timeout: 5_000 }).not.toBe(first);
      const admin = await signedCall(readyId, 'admin', { type: 'admin.hooks.ok', matchId: readyId });
      expect(admin.first.status).toBe(202);
      await expect.poll(() => ready.locator('td').nth(2).textContent(), { timeout: 30_000 }).toContain('READY');
      expect(await ready.locator('td').nth(3).textContent()).toMatch(/^ready /);

      // Stream health: p1 of the slow match violates, and its grace timer counts down in the row.
      const slowP1 = matchRow(page, slowId).locator('td').nth(5);
      await expect.poll(() => slowP1.textContent(), { timeout: 30_000 }).toMatch(/violating.*grace FPS_BELOW_MIN: \d+:\d\d left/);

      // The forfeit: its verdict appears with the evidence bundle the API holds.
      const verdict = page.locator(`#verdict-list article[data-match-id="${forfeitId}"]`);
      await expect.poll(() => verdict.count(), { timeout: 60_000 }).toBe(1);
      expect(await verdict.locator('header').textContent()).toMatch(/FORFEIT.*p1 · STREAM_OFFLINE.*FORFEITED/);
      await verdict.locator('summary').click();
      const shown = JSON.parse((await verdict.locator('pre').textContent()) ?? 'null');
      const { json: view } = await api('GET', `/v1/internal/matches/${forfeitId}`);
      const evidence = view.evidence.find((e: { id: string }) => e.id === view.enforcement[0].evidenceId);
      expect(shown).toEqual(evidence.bundle);
      expect(JSON.stringify(shown)).toContain('STREAM_OFFLINE');

      // The dead letter: replayed once from the console, which sends it back through Kafka to the consumer.
      const letter = page.locator(`#dead-letter-rows tr[data-dead-letter-id="${deadLetterId}"]`);
      await expect.poll(() => letter.count(), { timeout: 10_000 }).toBe(1);
      expect(await letter.textContent()).toContain('UNSUPPORTED_VERSION');
      await letter.locator('button', { hasText: 'Replay' }).click();
      await expect.poll(() => page.locator('#flash').textContent()).toBe(`Dead letter ${deadLetterId} replayed.`);
      await expect.poll(() => letter.count()).toBe(0);
      const { json: replayed } = await api('GET', `/v1/internal/dead-letters/${deadLetterId}`);
      expect(replayed).toMatchObject({ state: 'REPLAYED', resolution: { action: 'REPLAYED' } });
      // The replayed message reached the consumer again (still v9, so it is dead-lettered anew, under the same event id).
      const again = await eventually(
        async () => {
          const { json } = await api('GET', '/v1/internal/dead-letters?state=pending');
          return (json.items as { id: string; eventId: string }[]).find((d) => d.eventId === badEventId && d.id !== deadLetterId)?.id;
        },
        60_000,
        'the replayed message back through the consumer',
      );
      // The screenshot: the waiting match's deadline and the slow match's grace timer running, the forfeit's evidence open.
      expect(await matchRow(page, waitingId).locator('.countdown').textContent()).toMatch(/left$/);
      await page.locator('#match-filter').selectOption('all');
      await expect.poll(() => matchRow(page, forfeitId).textContent()).toMatch(/FORFEITED.*FORFEIT p1 STREAM_OFFLINE/);
      await page.locator('#dead-letter-filter').selectOption('');
      // Both letters of the event: the replayed one and the pending one its replay produced.
      await expect.poll(() => page.locator('#dead-letter-rows tr').count(), { timeout: 10_000 }).toBe(2);
      expect(await page.locator(`#dead-letter-rows tr[data-dead-letter-id="${again}"]`).count()).toBe(1);
      const target = process.env.UPDATE_CONSOLE_SCREENSHOT ? join(ROOT, 'docs', 'console.png') : join(ROOT, '.cache', 'console-e2e.png');
      mkdirSync(join(target, '..'), { recursive: true });
      await page.screenshot({ path: target, fullPage: true });

      // Values are text: the hostile player id shows as typed in the match's detail, and no markup of data ran.
      await matchRow(page, waitingId).locator('button.link').click();
      await expect.poll(() => page.locator('#detail-body').textContent()).toContain(`p1: ${hostile}`);
      await page.locator(`#dead-letter-rows tr[data-dead-letter-id="${again}"] summary`).click();
      expect(await page.locator(`#dead-letter-rows tr[data-dead-letter-id="${again}"] pre`).textContent()).toContain(
        '<script>window.__pwned=2',
      );
      expect(await page.evaluate("[document.querySelectorAll('img, #console script').length, typeof window.__pwned]")).toEqual([
        0,
        'undefined',
      ]);

      // Two operators at once: while this one confirms a discard, another replays the letter; the console shows the
      // API's refusal in its own words.
      const second = page.locator(`#dead-letter-rows tr[data-dead-letter-id="${again}"]`);
      await expect.poll(() => second.count(), { timeout: 10_000 }).toBe(1);
      await second.locator('button', { hasText: /^Discard$/ }).click();
      expect((await api('POST', `/v1/internal/dead-letters/${again}/replay`)).status).toBe(200);
      await second.locator('button', { hasText: 'Confirm discard' }).click();
      await expect.poll(() => page.locator('#flash').textContent()).toBe(`409: dead letter ${again} was already replayed`);
      expect((await api('GET', `/v1/internal/dead-letters/${again}`)).json.state).toBe('REPLAYED');

      // A token revoked while the page is open: the next refresh returns to the prompt and forgets it.
      await page.evaluate(() => sessionStorage.setItem('flocknode.internalApiToken', 'rotated-away-0123456789'));
      await expect.poll(() => page.locator('#login').isVisible(), { timeout: 10_000 }).toBe(true);
      expect(await page.locator('#login-error').textContent()).toMatch(/refused/);
      expect(await page.evaluate(() => Object.keys(sessionStorage).length)).toBe(0);
      await page.close();
    } finally {
      clearInterval(gameplay);
    }
    expect(pageProblems.filter((p) => /Content Security Policy|Refused to/i.test(p))).toEqual([]);
    // The only failed loads are the refused tokens' 401s and the refused discard's 409 (Chromium logs each as an error).
    const expected = (p: string) => /status of (401|409)/.test(p) || /^409 .*\/v1\/internal\/dead-letters\/[0-9a-f-]+\/discard$/.test(p);
    expect(pageProblems.filter((p) => !expected(p))).toEqual([]);
  });
});
