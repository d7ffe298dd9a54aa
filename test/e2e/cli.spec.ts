import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunningService } from '../../src/app.module.js';
import { openDatabase } from '../../src/infra/db/database.js';
import { MIGRATION_NAMES, migrateToLatest } from '../../src/infra/db/migrations.js';
import { upsertMatch } from '../../src/matches/match.repository.js';
import { insertReserved } from '../../src/provisioning/provisioning.repository.js';
import { freshPostgresDatabase, requireRedis, ROOT, TEST_SECRETS } from '../support/infra.js';
import { startTestService } from '../support/service.js';

// The flock-workers command line as a user runs it: the built bin, real processes, exit codes and output.

const BIN = join(ROOT, 'bin', 'flock-workers.js');
const NODE = join(ROOT, 'node_modules', 'node', 'bin', 'node');

function cli(
  args: string[],
  options: { env?: Record<string, string>; stdin?: string; timeoutMs?: number } = {},
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(NODE, [BIN, ...args], { env: { PATH: process.env.PATH ?? '', ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(options.stdin ?? '');
  });
}

let service: RunningService;
let drop: () => Promise<void>;
const apiEnv = () => ({ INTERNAL_API_TOKEN: TEST_SECRETS.INTERNAL_API_TOKEN });

beforeAll(async () => {
  const [db, redisUrl] = await Promise.all([freshPostgresDatabase(), requireRedis()]);
  drop = db.drop;
  service = await startTestService({
    ...TEST_SECRETS,
    DATABASE_URL: db.url,
    REDIS_URL: redisUrl,
    REDIS_KEY_PREFIX: `cli${Date.now()}:`,
    PTERO_APP_URL: 'http://127.0.0.1:9',
    PTERO_APP_API_KEY: 'ptla_unused_0123456789abcdefghijklmnopqrstuv',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
  });
});

afterAll(async () => {
  await service?.close();
  await drop?.();
});

describe('flock-workers', () => {
  it('--help lists the commands; an unknown command exits 2 with one line', async () => {
    const help = await cli(['--help']);
    expect(help.code).toBe(0);
    for (const command of ['start', 'demo', 'migrate', 'matches', 'events publish', 'keys issue', 'sign', 'canonicalize'])
      expect(help.stdout).toContain(command);
    const bad = await cli(['frobnicate']);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('every command and subcommand answers --help with exit 0; --version prints the version; unknown flags exit 2', async () => {
    // The commands main.ts handles itself here (each a process, slow on a loaded machine); every API
    // subcommand's --help is covered in src/cli/cli.spec.ts and sign's in src/security/cli.spec.ts.
    for (const args of [['start'], ['demo']]) {
      const r = await cli([...args, '--help'], { timeoutMs: 60_000 });
      expect([args, r.code, r.stdout]).toEqual([args, 0, expect.stringContaining('Usage: flock-workers')]);
    }
    const version = await cli(['--version'], { timeoutMs: 60_000 });
    expect([version.code, version.stdout.trim()]).toEqual([
      0,
      (await import('../../package.json', { with: { type: 'json' } })).default.version,
    ]);
    for (const args of [
      ['start', '--bogus'],
      ['demo', '--fast'],
    ]) {
      const r = await cli(args, { timeoutMs: 60_000 });
      expect([args, r.code]).toEqual([args, 2]);
      expect(r.stderr).toContain(`Unknown option '${args.at(-1)}'`);
    }
  });

  it('sign reads --file, takes a secret starting with "-" and prints the content-type it signed for', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flock-sign-'));
    try {
      const file = join(dir, 'body.json');
      writeFileSync(file, '{"type":"admin.hooks.ok","matchId":"m-123"}');
      const secret = '-vaSAd70Ots_YqCzI_xPhZEh1wy_m66xvYh_V8-8NPQ';
      const base = ['sign', '--key-id', 'adm_m-123_1767225600000', '--ts', '1767225640000', '--nonce', 'Zm9vYmFyYmF6cXV4MTIzNA'];
      const spaced = await cli([...base, '--secret', secret, '--file', file]);
      const joined = await cli([...base, `--secret=${secret}`], { stdin: '{"type":"admin.hooks.ok","matchId":"m-123"}' });
      expect([spaced.code, spaced.stderr]).toEqual([0, '']);
      expect(spaced.stdout).toBe(joined.stdout);
      expect(spaced.stdout.split('\n')[0]).toBe('content-type: application/json');
      expect(spaced.stdout).toMatch(/^x-flock-signature: [0-9a-f]{64}$/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('start reports every invalid setting at once and exits 1, without echoing secrets', async () => {
    const r = await cli(['start'], {
      env: {
        PORT: 'abc',
        READY_DEADLINE_MS: '-5',
        HMAC_ALLOWED_CIDRS: '10.0.0.0/8,not-a-cidr',
        OVERLAY_MASTER_SECRET: 'short-secret-xyz',
        KAFKA_BROKERS: 'nohostport',
      },
    });
    expect(r.code).toBe(1);
    for (const name of [
      'PORT',
      'READY_DEADLINE_MS',
      'HMAC_ALLOWED_CIDRS',
      'OVERLAY_MASTER_SECRET',
      'KAFKA_BROKERS',
      'PTERO_APP_URL',
      'INTERNAL_API_TOKEN',
    ]) {
      expect(r.stderr).toContain(name);
    }
    expect(r.stderr).not.toContain('short-secret-xyz');
  });

  it('canonicalize prints RFC 8785 and exits 2 on input that is not I-JSON', async () => {
    const ok = await cli(['canonicalize'], { stdin: '{"b":[4.50,1E30],"a":"\\u20ac"}' });
    expect(ok).toMatchObject({ code: 0, stdout: '{"a":"€","b":[4.5,1e+30]}\n' });
    const dup = await cli(['canonicalize'], { stdin: '{"a":1,"a":2}' });
    expect(dup.code).toBe(2);
    expect(dup.stderr.trim().split('\n')).toHaveLength(1);
  });

  it('sign reproduces the published admin vector', async () => {
    const r = await cli(
      [
        'sign',
        '--key-id',
        'adm_m-123_1767225600000',
        '--secret',
        '_vaSAd70Ots_YqCzI_xPhZEh1wy_m66xvYh_V8-8NPQ',
        '--ts',
        '1767225640000',
        '--nonce',
        'Zm9vYmFyYmF6cXV4MTIzNA',
        '--json',
      ],
      { stdin: '{"type":"admin.hooks.ok","matchId":"m-123"}' },
    );
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).headers['x-flock-signature']).toBe('fb5bb69e36c2f2708caaf8b8c500ca8627a5180c8da14c561ce3311775431404');
  });

  it('migrate applies the migrations to DATABASE_URL (and is idempotent)', async () => {
    const fresh = await freshPostgresDatabase();
    try {
      const first = await cli(['migrate', '--json'], { env: { DATABASE_URL: fresh.url } });
      expect(first.code).toBe(0);
      expect(JSON.parse(first.stdout)).toMatchObject({ database: 'postgres', applied: [...MIGRATION_NAMES] });
      expect(MIGRATION_NAMES.length).toBeGreaterThanOrEqual(2);
      const again = await cli(['migrate', '--json'], { env: { DATABASE_URL: fresh.url } });
      expect(JSON.parse(again.stdout).applied).toEqual([]);
    } finally {
      await fresh.drop();
    }
  });

  it('matches create/show, events publish and keys issue/revoke go through the internal API', async () => {
    const url = ['--url', service.url];
    const match = {
      mode: 'VERIFIED_STREAM',
      entryFee: { amountCents: 700, currency: 'EUR' },
      overlayRequired: true,
      players: [
        { side: 'p1', playerId: 'ann', streamChannels: ['twitch:ann_tv'] },
        { side: 'p2', playerId: 'ben', streamChannels: ['twitch:ben_tv'] },
      ],
    };
    // This service has no telemetry provider: the match cannot be enforced, so it is refused unless waived.
    const refused = await cli(['matches', 'create', 'cli-m1', ...url], { env: apiEnv(), stdin: JSON.stringify(match) });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('400');
    expect(refused.stderr).toContain('p1: no channel a configured provider can observe for live/title');
    const body = JSON.stringify({ ...match, streamWaiver: { reason: 'friendly, no stream rules', grantedBy: 'ops-ann' } });
    expect((await cli(['matches', 'create', 'cli-m1', ...url], { env: apiEnv(), stdin: body })).code).toBe(0);
    const summary = await cli(['matches', 'show', 'cli-m1', ...url], { env: apiEnv() });
    expect(summary.stdout).toContain(
      'stream rules waived by ops-ann: friendly, no stream rules (p1: live, title, fps, bitrate; p2: live, title, fps, bitrate)',
    );
    const shown = await cli(['matches', 'show', 'cli-m1', '--json', ...url], { env: apiEnv() });
    expect(shown.code).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      id: 'cli-m1',
      mode: 'VERIFIED_STREAM',
      checklist: { adminHooksOk: false },
      refunds: [],
      enforcement: [],
      streamWaiver: { reason: 'friendly, no stream rules', grantedBy: 'ops-ann', gaps: [{ side: 'p1' }, { side: 'p2' }] },
    });
    const missing = await cli(['matches', 'show', 'nope-1', ...url], { env: apiEnv() });
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('404');
    const invalid = await cli(['matches', 'create', 'cli-m2', ...url], { env: apiEnv(), stdin: '{"mode":"X"}' });
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toContain('body.mode');

    const published = await cli(['events', 'publish', 'stream.health.check', '--json', ...url], {
      env: apiEnv(),
      stdin: '{"v":"v1","eventId":"cli-evt-1","matchId":"cli-m1"}',
    });
    expect(published.code).toBe(0);
    expect(JSON.parse(published.stdout)).toMatchObject({ accepted: true, eventId: 'cli-evt-1' });
    expect((await cli(['events', 'publish', 'server.ready', ...url], { env: apiEnv(), stdin: '{}' })).code).toBe(2);

    const issued = await cli(['keys', 'issue', '--match', 'cli-m1', '--kind', 'overlay', '--ttl-ms', '60000', '--json', ...url], {
      env: apiEnv(),
    });
    expect(issued.code).toBe(0);
    const key = JSON.parse(issued.stdout) as { keyId: string; secret: string; expiresAt: string };
    expect(key.keyId).toMatch(/^ovl_cli-m1_[0-9]{13}$/);
    expect(key.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect((await cli(['keys', 'revoke', key.keyId, ...url], { env: apiEnv() })).code).toBe(0);
    expect((await cli(['keys', 'issue', '--match', 'cli-m1', '--kind', 'root', ...url], { env: apiEnv() })).code).toBe(2);
    const noToken = await cli(['matches', 'show', 'cli-m1', ...url]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('token');
  });

  it('matches show --watch follows a match live: prints each change as it happens, exits 0 when it ends', async () => {
    const put = async (id: string, status: string) => {
      const body = {
        mode: 'STANDARD',
        status,
        entryFee: { amountCents: 300, currency: 'USD' },
        overlayRequired: false,
        players: [
          { side: 'p1', playerId: 'wat', streamChannels: [] },
          { side: 'p2', playerId: 'son', streamChannels: [] },
        ],
      };
      const r = await fetch(`${service.url}/v1/internal/matches/${id}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${TEST_SECRETS.INTERNAL_API_TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(r.status).toBeLessThan(300);
    };
    await put('cli-watch-1', 'SCHEDULED');
    const child = spawn(NODE, [BIN, 'matches', 'show', 'cli-watch-1', '--watch', '--interval-ms', '200', '--url', service.url], {
      env: { PATH: process.env.PATH ?? '', ...apiEnv() },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const killer = setTimeout(() => child.kill('SIGKILL'), 90_000);
    const printed = async (text: string) => {
      while (!stdout.includes(text)) {
        if (child.exitCode !== null) throw new Error(`watch exited early: ${stdout}${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    };
    try {
      await printed('status SCHEDULED');
      // Still running after its first snapshot: it waits for the match to move.
      expect(child.exitCode).toBeNull();
      await put('cli-watch-1', 'IN_PROGRESS');
      await printed('status IN_PROGRESS');
      expect(child.exitCode).toBeNull();
      await put('cli-watch-1', 'COMPLETED');
      expect(await exited).toBe(0);
    } finally {
      clearTimeout(killer);
      child.kill('SIGKILL');
    }
    const snapshots = stdout.split(/^— /m).filter(Boolean);
    expect(snapshots.map((s) => /status (\w+)/.exec(s)?.[1])).toEqual(['SCHEDULED', 'IN_PROGRESS', 'COMPLETED']);
    for (const s of snapshots) expect(s).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z\nmatch cli-watch-1 {2}STANDARD/);
    expect(stderr).toBe('');

    // A match that does not end within --timeout-ms: one snapshot, a one-line reason, exit 1.
    await put('cli-watch-2', 'IN_PROGRESS');
    const started = Date.now();
    const stuck = await cli(
      ['matches', 'show', 'cli-watch-2', '--watch', '--interval-ms', '200', '--timeout-ms', '1500', '--url', service.url],
      {
        env: apiEnv(),
        timeoutMs: 90_000,
      },
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect([stuck.code, stuck.stderr.trim()]).toEqual([1, 'matches show --watch: cli-watch-2 is still IN_PROGRESS after 1500 ms']);
    expect(stuck.stdout.match(/status IN_PROGRESS/g)).toHaveLength(1);
  });

  it('demo --once exits 1 and names the scenario when one does not get its expected outcome', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flock-demo-fail-'));
    try {
      // A ready deadline (1 s) shorter than the simulated panel's install (3 s): the "ready" scenario's server times
      // out, the match is cancelled, and the scenario that expects READY fails for real.
      const r = await cli(['demo', '--once', '--port', '0', '--data-dir', dir, '--scenario', 'ready'], {
        env: { READY_DEADLINE_MS: '1000', PROVISION_MONITOR_EVERY_MS: '500' },
        timeoutMs: 280_000,
      });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/✘ ready: match demo-\d+-ready ended CANCELLED \(provisioning FAILED: TIMEOUT\)/);
      expect(r.stdout).toContain('✘ 1 scenario(s) failed: ready');
      expect(r.stdout).not.toContain('all scenarios finished');
      expect(r.stdout).not.toMatch(/✔ demo-\d+-/);
      const unknown = await cli(['demo', '--once', '--scenario', 'nope'], { timeoutMs: 60_000 });
      expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringContaining('--scenario: unknown "nope"')]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 330_000);

  it('a demo on a data dir left by a run stopped midway: the old provisions fail with a 404, this run still gets its outcomes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flock-demo-again-'));
    try {
      // What a run stopped midway leaves: provisions of its (now gone) simulated panel's servers 1–4, still waiting.
      const handle = await openDatabase({ dataDir: dir });
      await migrateToLatest(handle.db);
      const now = Date.now();
      for (let id = 1; id <= 4; id++) {
        const matchId = `earlier-run-${id}`;
        await handle.db.transaction().execute(async (trx) => {
          await upsertMatch(
            trx,
            matchId,
            {
              mode: 'STANDARD',
              entryFee: { amountCents: 500, currency: 'USD' },
              overlayRequired: false,
              players: [
                { side: 'p1', playerId: `a-${id}`, streamChannels: [] },
                { side: 'p2', playerId: `b-${id}`, streamChannels: [] },
              ],
            } as never,
            now,
          );
          await insertReserved(trx, { matchId, panelServerId: id, eventId: randomUUID() }, now, now + 600_000);
        });
      }
      await handle.close();

      const r = await cli(['demo', '--once', '--port', '0', '--data-dir', dir, '--scenario', 'ready,installfail'], { timeoutMs: 230_000 });
      expect(r.code, r.stdout).toBe(0);
      expect(r.stdout).toMatch(/✔ demo-\d+-ready: READY/);
      expect(r.stdout).toMatch(/✔ demo-\d+-installfail: FAILED \(INSTALL_FAILED\)/);
      for (let id = 1; id <= 4; id++) expect(r.stdout).toContain(`◀ server.failed earlier-run-${id} reason=PANEL_NOT_FOUND`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the demo runs its scenarios on embedded defaults and reports each outcome', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flock-demo-'));
    try {
      const r = await cli(['demo', '--once', '--port', '0', '--data-dir', dir], { timeoutMs: 230_000 });
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/✔ demo-\d+-ready: READY/);
      expect(r.stdout).toMatch(/✔ demo-\d+-timeout: FAILED \(TIMEOUT\), match CANCELLED, refunded: alice 5 USD, bob 5 USD/);
      expect(r.stdout).toMatch(/✔ demo-\d+-installfail: FAILED \(INSTALL_FAILED\)/);
      expect(r.stdout).toMatch(/✔ demo-\d+-stream-healthy: still IN_PROGRESS, checklist stream items all true: yes/);
      expect(r.stdout).toMatch(/✔ demo-\d+-stream-dip: IN_PROGRESS, no enforcement/);
      expect(r.stdout).toMatch(/✔ demo-\d+-stream-forfeit: FORFEITED — FORFEIT p1/);
      expect(r.stdout).toMatch(/✔ demo-\d+-stream-dispute: DISPUTED — DISPUTE p2/);
      expect(r.stdout).toMatch(/✔ demo-\d+-stream-outage: IN_PROGRESS, no enforcement, 0 grace episodes/);
      expect(r.stdout).toContain('all scenarios finished');
      expect(r.stdout).not.toContain('a scenario failed');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
