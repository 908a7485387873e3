/**
 * `--retain count=N,days=M`: the retention policy of a local run (contract §7), in the grammar of the
 * `vss-snapshots:retain` instance tag: `count=N`, `days=N` or both, comma-separated, each at most once. The named
 * rules are the whole policy: a rule left out is off. It reaches the Lambdas as RETAIN_COUNT and RETAIN_DAYS
 * ("0" = that rule is off), as the stack's parameters do in AWS.
 */
import { InvalidArgumentError } from 'commander';

export const RETAIN_LIMITS = { count: { min: 1, max: 1000 }, days: { min: 1, max: 3650 } } as const;
/** The value of RETAIN_COUNT / RETAIN_DAYS for a rule that is off. */
export const RULE_OFF = '0';

export interface RetainPolicy {
  count?: number;
  days?: number;
}

const USAGE = 'use count=N, days=N or count=N,days=M (e.g. --retain count=10,days=30)';

/** Parses the flag's value; a commander argument parser (a bad value is a usage error, exit 2). */
export function parseRetainOption(text: string): RetainPolicy {
  const policy: RetainPolicy = {};
  const parts = text.split(',').map((p) => p.trim());
  if (text.trim() === '' || parts.some((p) => p === '')) throw new InvalidArgumentError(`"${text}" is empty or has an empty rule; ${USAGE}.`);
  for (const part of parts) {
    const match = /^(count|days)=(.*)$/.exec(part);
    if (!match) throw new InvalidArgumentError(`"${part}" is not a rule; ${USAGE}.`);
    const rule = match[1] as keyof RetainPolicy;
    const value = match[2] as string;
    const { min, max } = RETAIN_LIMITS[rule];
    if (policy[rule] !== undefined) throw new InvalidArgumentError(`${rule} is given twice; ${USAGE}.`);
    if (!/^[0-9]+$/.test(value) || Number(value) < min || Number(value) > max) {
      throw new InvalidArgumentError(`${rule} must be a whole number from ${min} to ${max} (got "${value}"); ${USAGE}.`);
    }
    policy[rule] = Number(value);
  }
  return policy;
}

/** The Lambda environment that carries the policy. */
export function retainEnvironment(policy: RetainPolicy): Record<string, string> {
  return { RETAIN_COUNT: policy.count !== undefined ? String(policy.count) : RULE_OFF, RETAIN_DAYS: policy.days !== undefined ? String(policy.days) : RULE_OFF };
}

/** `count=10,days=30`, as the user would write it. */
export function formatRetainPolicy(policy: RetainPolicy): string {
  return [policy.count !== undefined ? `count=${policy.count}` : '', policy.days !== undefined ? `days=${policy.days}` : ''].filter(Boolean).join(',');
}
