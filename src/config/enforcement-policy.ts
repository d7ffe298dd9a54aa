/**
 * Named enforcement policies: the thresholds, grace, check cadence and verdict rule that judge a match, chosen by
 * the match's enforcement mode. Pure: parsed and validated from configuration once at start (every problem at
 * once), then passed as data to the planning and verdict functions. `default` is today's behaviour.
 */
import { z } from 'zod';

/** forfeit: forfeit when the overlay saw gameplay, else dispute (today's rule); dispute: always a human; warn-only: never a verdict. */
export const VERDICT_RULES = ['forfeit', 'dispute', 'warn-only'] as const;
export type PolicyVerdictRule = (typeof VERDICT_RULES)[number];

export const DEFAULT_POLICY = 'default';

export interface EnforcementPolicy {
  readonly name: string;
  readonly minFps: number;
  readonly minBitrateKbps: number;
  /** Known violating time before a verdict (counted as OFFLINE_GRACE_MS is). */
  readonly graceMs: number;
  /** The match is judged every this-many sweeps (its check interval is checkIntervalMultiple × STREAM_CHECK_EVERY_MS). */
  readonly checkIntervalMultiple: number;
  readonly verdictRule: PolicyVerdictRule;
}

export interface PolicyBase {
  readonly minFps: number;
  readonly minBitrateKbps: number;
  readonly graceMs: number;
  readonly checkEveryMs: number;
}

const NAME = /^[a-z0-9][a-z0-9_-]{0,31}$/;

/** One policy in STREAM_POLICIES: every field optional, defaulting to the `default` policy's value. */
const policyInput = z
  .object({
    minFps: z.number().optional(),
    minBitrateKbps: z.number().optional(),
    graceMs: z.number().int().optional(),
    checkIntervalMultiple: z.number().int().optional(),
    verdictRule: z.enum(VERDICT_RULES).optional(),
  })
  .strict();

/** The policy's check interval: the cadence at which its matches are sampled and its grace clock assumes. */
export function policyCheckEveryMs(policy: EnforcementPolicy, base: Pick<PolicyBase, 'checkEveryMs'>): number {
  return policy.checkIntervalMultiple * base.checkEveryMs;
}

/**
 * Parses STREAM_POLICIES (a JSON object of name → policy) on top of the `default` policy built from
 * STREAM_MIN_FPS, STREAM_MIN_BITRATE_KBPS, OFFLINE_GRACE_MS (multiple 1, rule forfeit). Returns every problem:
 * a threshold ≤ 0, a multiple < 1, a grace shorter than the policy's check interval, a bad name or field.
 */
export function parseEnforcementPolicies(
  raw: string | undefined,
  base: PolicyBase,
): { policies: ReadonlyMap<string, EnforcementPolicy>; problems: string[] } {
  const problems: string[] = [];
  const defaults: EnforcementPolicy = {
    name: DEFAULT_POLICY,
    minFps: base.minFps,
    minBitrateKbps: base.minBitrateKbps,
    graceMs: base.graceMs,
    checkIntervalMultiple: 1,
    verdictRule: 'forfeit',
  };
  let input: Record<string, unknown> = {};
  if (raw !== undefined && raw.trim() !== '') {
    try {
      const parsed: unknown = JSON.parse(raw);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        problems.push('STREAM_POLICIES: must be a JSON object of name → policy');
      else input = parsed as Record<string, unknown>;
    } catch {
      problems.push('STREAM_POLICIES: not JSON');
    }
  }
  // `default` may be overridden in STREAM_POLICIES; every other policy starts from the (possibly overridden) default.
  const order = [DEFAULT_POLICY, ...Object.keys(input).filter((n) => n !== DEFAULT_POLICY)];
  const policies = new Map<string, EnforcementPolicy>();
  for (const name of order) {
    const where = `STREAM_POLICIES.${name}`;
    if (!NAME.test(name)) {
      problems.push(`${where}: a policy name is 1–32 of [a-z0-9_-], starting with a letter or digit`);
      continue;
    }
    const parsed = policyInput.safeParse(input[name] ?? {});
    if (!parsed.success) {
      for (const issue of parsed.error.issues)
        problems.push(`${where}${issue.path.length ? `.${issue.path.join('.')}` : ''}: ${issue.message}`);
      continue;
    }
    const from = name === DEFAULT_POLICY ? defaults : (policies.get(DEFAULT_POLICY) ?? defaults);
    const policy: EnforcementPolicy = { ...from, ...parsed.data, name };
    const before = problems.length;
    if (!(policy.minFps > 0)) problems.push(`${where}.minFps: must be > 0 (got ${policy.minFps})`);
    if (!(policy.minBitrateKbps > 0)) problems.push(`${where}.minBitrateKbps: must be > 0 (got ${policy.minBitrateKbps})`);
    if (!(policy.checkIntervalMultiple >= 1))
      problems.push(`${where}.checkIntervalMultiple: must be ≥ 1 (got ${policy.checkIntervalMultiple})`);
    else if (policy.graceMs < policyCheckEveryMs(policy, base)) {
      problems.push(
        `${where}.graceMs: ${policy.graceMs} ms is shorter than its check interval (${policy.checkIntervalMultiple} × ${base.checkEveryMs} ms): no sample could ever be judged within it`,
      );
    }
    if (problems.length === before) policies.set(name, policy);
  }
  return { policies, problems };
}
