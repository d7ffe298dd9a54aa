import { describe, expect, it } from 'vitest';
import { parseEnforcementPolicies } from './enforcement-policy.js';

const BASE = { minFps: 30, minBitrateKbps: 2500, graceMs: 90_000, checkEveryMs: 30_000 };

describe('parseEnforcementPolicies', () => {
  it("without STREAM_POLICIES there is only `default`, which is today's behaviour", () => {
    const { policies, problems } = parseEnforcementPolicies(undefined, BASE);
    expect(problems).toEqual([]);
    expect([...policies.values()]).toEqual([
      { name: 'default', minFps: 30, minBitrateKbps: 2500, graceMs: 90_000, checkIntervalMultiple: 1, verdictRule: 'forfeit' },
    ]);
  });

  it('named policies start from `default` and override what they name', () => {
    const raw = JSON.stringify({
      final: { graceMs: 180_000, verdictRule: 'dispute' },
      casual: { verdictRule: 'warn-only', checkIntervalMultiple: 2 },
    });
    const { policies, problems } = parseEnforcementPolicies(raw, BASE);
    expect(problems).toEqual([]);
    expect(policies.get('final')).toEqual({
      name: 'final',
      minFps: 30,
      minBitrateKbps: 2500,
      graceMs: 180_000,
      checkIntervalMultiple: 1,
      verdictRule: 'dispute',
    });
    expect(policies.get('casual')).toMatchObject({ checkIntervalMultiple: 2, verdictRule: 'warn-only', graceMs: 90_000 });
  });

  it('reports every unsatisfiable policy at once', () => {
    const raw = JSON.stringify({
      default: { minFps: 0 },
      slow: { checkIntervalMultiple: 4 },
      cheap: { minBitrateKbps: -1, graceMs: 10_000 },
      odd: { verdictRule: 'ban', extra: 1 },
      'Bad Name': {},
    });
    const { problems } = parseEnforcementPolicies(raw, BASE);
    expect(problems).toEqual([
      'STREAM_POLICIES.default.minFps: must be > 0 (got 0)',
      expect.stringContaining('STREAM_POLICIES.slow.graceMs: 90000 ms is shorter than its check interval (4 × 30000 ms)'),
      'STREAM_POLICIES.cheap.minBitrateKbps: must be > 0 (got -1)',
      expect.stringContaining('STREAM_POLICIES.cheap.graceMs: 10000 ms is shorter than its check interval'),
      expect.stringContaining('STREAM_POLICIES.odd.verdictRule'),
      expect.stringContaining('STREAM_POLICIES.odd'),
      expect.stringContaining('STREAM_POLICIES.Bad Name: a policy name'),
    ]);
  });

  it('refuses text that is not a JSON object', () => {
    expect(parseEnforcementPolicies('[1]', BASE).problems).toEqual(['STREAM_POLICIES: must be a JSON object of name → policy']);
    expect(parseEnforcementPolicies('{', BASE).problems).toEqual(['STREAM_POLICIES: not JSON']);
  });
});
