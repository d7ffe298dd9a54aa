import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/observability/metrics.js';
import { ROOT } from '../support/infra.js';
// @ts-expect-error plain ESM script without types
import { ensurePrometheusTools } from '../../scripts/prometheus.mjs';

const RULES = join(ROOT, 'deploy', 'prometheus', 'alerts.yml');
const RULE_TESTS = join(ROOT, 'deploy', 'prometheus', 'alerts.test.yml');
const RUNBOOK = join(ROOT, 'docs', 'runbook.md');

const { promtool } = ensurePrometheusTools() as { promtool: string };

function promtoolRun(...args: string[]) {
  const result = spawnSync(promtool, args, { cwd: ROOT, encoding: 'utf8' });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('alert rules (deploy/prometheus/alerts.yml)', () => {
  it('pass promtool check rules', () => {
    const { code, output } = promtoolRun('check', 'rules', RULES);
    expect(output).toContain('SUCCESS');
    expect(code).toBe(0);
  });

  it('pass their promtool unit tests (series in, alerts out)', () => {
    const { code, output } = promtoolRun('test', 'rules', RULE_TESTS);
    expect(output, output).toContain('SUCCESS');
    expect(code).toBe(0);
  });

  it('read only metrics the service exports, and each alert has a runbook section', async () => {
    const rules = readFileSync(RULES, 'utf8');
    const exported = new Set((await new Metrics().registry.getMetricsAsJSON()).map((m) => m.name));
    const used = new Set(rules.match(/\bflock_[a-z_]+/g));
    const missing = [...used].filter((name) => !exported.has(name));
    expect(missing).toEqual([]);

    const runbook = readFileSync(RUNBOOK, 'utf8');
    const alerts = [...rules.matchAll(/- alert: (\w+)/g)].map((m) => m[1]!);
    expect(alerts.length).toBeGreaterThanOrEqual(11);
    for (const alert of alerts) {
      expect(runbook, `docs/runbook.md has no "### ${alert}" section`).toMatch(new RegExp(`^### ${alert}$`, 'm'));
      expect(rules).toContain(`runbook: docs/runbook.md#${alert.toLowerCase()}`);
    }
  });
});
