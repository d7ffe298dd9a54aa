import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../support/infra.js';
import { eventually } from '../support/kafka-tap.js';
import { freePort } from '../support/process.js';
// @ts-expect-error plain ESM script without types
import { ensurePrometheusTools } from '../../scripts/prometheus.mjs';

// A real Prometheus (Debian's package) scrapes a real service while it does real work (`flock-workers demo`:
// provisioning, hooks, stream verdicts), with the alert rules loaded. Every dashboard query must parse and return
// data, every alert rule must evaluate cleanly, and the provisioning failures the demo causes must fire their alert.

const NODE = join(ROOT, 'node_modules', 'node', 'bin', 'node');
const BIN = join(ROOT, 'bin', 'flock-workers.js');
const RULES = join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
const DASHBOARD = join(ROOT, 'deploy', 'grafana', 'flocknode-workers.json');

interface Panel {
  title: string;
  type: string;
  targets?: { refId: string; expr: string }[];
}

class Child {
  readonly output: string[] = [];
  readonly exited: Promise<number | null>;
  constructor(readonly process: ChildProcess) {
    this.exited = new Promise((resolve) => process.once('exit', (code) => resolve(code)));
    process.stdout?.on('data', (d: Buffer) => this.output.push(d.toString()));
    process.stderr?.on('data', (d: Buffer) => this.output.push(d.toString()));
  }
  text() {
    return this.output.join('');
  }
  async stop() {
    if (this.process.exitCode === null) this.process.kill('SIGTERM');
    await this.exited;
  }
}

let dir: string;
let demo: Child;
let prometheus: Child;
let promUrl: string;
let serviceUrl: string;

async function query(expr: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> {
  const response = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return (await response.json()) as { status: string; error?: string; data?: { result: unknown[] } };
}

beforeAll(async () => {
  const { prometheus: promBin } = ensurePrometheusTools() as { prometheus: string };
  dir = mkdtempSync(join(tmpdir(), 'flock-observability-'));
  // Prometheus first, already scraping the demo's port: it sees every counter at 0 before the demo's first event.
  const [port, demoPort] = [await freePort(), await freePort()];
  promUrl = `http://127.0.0.1:${port}`;
  serviceUrl = `http://127.0.0.1:${demoPort}`;
  writeFileSync(
    join(dir, 'prometheus.yml'),
    [
      'global: { scrape_interval: 1s, evaluation_interval: 1s }',
      `rule_files: [${JSON.stringify(RULES)}]`,
      'scrape_configs:',
      '  - job_name: flocknode-workers',
      `    static_configs: [{ targets: ["127.0.0.1:${demoPort}"] }]`,
      '',
    ].join('\n'),
  );
  prometheus = new Child(
    spawn(
      promBin,
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'tsdb')}`,
        `--web.listen-address=127.0.0.1:${port}`,
      ],
      {
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    ),
  );
  await eventually(
    async () => {
      if (prometheus.process.exitCode !== null) throw new Error(`prometheus exited: ${prometheus.text().slice(-2000)}`);
      return (await fetch(`${promUrl}/-/ready`).catch(() => undefined))?.status === 200;
    },
    60_000,
    'prometheus ready',
  );
  demo = new Child(
    spawn(NODE, [BIN, 'demo', '--port', String(demoPort), '--data-dir', join(dir, 'demo')], {
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'error' },
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  await eventually(
    () => {
      if (demo.process.exitCode !== null) throw new Error(`demo exited: ${demo.text().slice(-2000)}`);
      return demo.text().includes(`service on ${serviceUrl}`);
    },
    90_000,
    'the demo service listening',
  );
  // The demo's scenarios (provisioning, stream health, admin-key delivery, per-mode policy…) take 2–3 min on a quiet
  // machine; a failed scenario ends the wait at once with the demo's own words.
  await eventually(
    () => {
      if (demo.text().includes('✘')) throw new Error(`a demo scenario failed:\n${demo.text().slice(-3000)}`);
      return demo.text().includes('all scenarios finished');
    },
    360_000,
    'the demo scenarios to finish',
  );
  if (demo.text().includes('a scenario failed')) throw new Error(`a demo scenario failed:\n${demo.text().slice(-3000)}`);
  // A few scrapes after the work, so every counter has samples on both sides of it.
  const finishedAt = Date.now() / 1000;
  await eventually(
    async () => {
      const r = await query('max(timestamp(flock_build_info))');
      const value = Number((r.data?.result[0] as { value?: [number, string] } | undefined)?.value?.[1] ?? 0);
      return value > finishedAt + 3;
    },
    30_000,
    'scrapes after the demo finished',
  );
}, 480_000);

afterAll(async () => {
  await prometheus?.stop();
  await demo?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe('observability against a real Prometheus', () => {
  it('every dashboard query parses and returns data', async () => {
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: Panel[] };
    const panels = dashboard.panels.filter((p) => p.type !== 'row');
    expect(panels.length).toBeGreaterThanOrEqual(20);
    const empty: string[] = [];
    for (const panel of panels) {
      expect(panel.targets?.length, `panel "${panel.title}" has no query`).toBeGreaterThan(0);
      for (const target of panel.targets ?? []) {
        const expr = target.expr.replaceAll('$__rate_interval', '10m');
        const result = await query(expr);
        expect(result.status, `"${panel.title}" ${target.refId}: ${result.error ?? ''}`).toBe('success');
        if ((result.data?.result.length ?? 0) === 0) empty.push(`"${panel.title}" ${target.refId}: ${expr}`);
      }
    }
    expect(empty).toEqual([]);
  });

  it("every alert rule is loaded and evaluates without error; the demo's provisioning failures fire their alert", async () => {
    const rules = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as {
      data: { groups: { rules: { name: string; health: string; lastError?: string; query: string }[] }[] };
    };
    const all = rules.data.groups.flatMap((g) => g.rules);
    const defined = [...readFileSync(RULES, 'utf8').matchAll(/- alert: (\w+)/g)].map((m) => m[1]);
    expect(all.map((r) => r.name).sort()).toEqual([...defined].sort());
    for (const rule of all) {
      const parsed = await query(rule.query);
      expect(parsed.status, `${rule.name}: ${parsed.error ?? ''}`).toBe('success');
    }
    await eventually(
      async () => {
        const current = (await (await fetch(`${promUrl}/api/v1/rules`)).json()) as typeof rules;
        const rulesNow = current.data.groups.flatMap((g) => g.rules);
        return rulesNow.every((r) => r.health === 'ok') && rulesNow;
      },
      15_000,
      'every rule evaluated with health ok',
    );
    const alerts = await eventually(
      async () => {
        const body = (await (await fetch(`${promUrl}/api/v1/alerts`)).json()) as {
          data: { alerts: { labels: Record<string, string>; state: string }[] };
        };
        const failures = body.data.alerts.filter((a) => a.labels.alertname === 'FlockProvisioningFailures' && a.state === 'firing');
        return failures.length >= 2 && failures;
      },
      20_000,
      'FlockProvisioningFailures firing',
    );
    expect(alerts.map((a) => a.labels.reason).sort()).toEqual(['INSTALL_FAILED', 'TIMEOUT']);
  });
});
