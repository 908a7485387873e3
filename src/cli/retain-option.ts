/**
 * `--retain count=N,days=M`: the retention policy of a local run (contract §7), in the grammar of the
 * `vss-snapshots:retain` instance tag: `count=N`, `days=N` or both, comma-separated, each at most once. The named
 * rules are the whole policy: a rule left out is off. It reaches the Lambdas as RETAIN_COUNT and RETAIN_DAYS
 * ("0" = that rule is off), as the stack's parameters do in AWS.
 */
import { InvalidArgumentError } from 'commander';
import { parseRetainTag } from '../lib/retention/policy.ts';

/** The value of RETAIN_COUNT / RETAIN_DAYS for a rule that is off. */
export const RULE_OFF = '0';

export interface RetainPolicy {
  count?: number;
  days?: number;
}

const USAGE = 'use count=N, days=N or count=N,days=M (e.g. --retain count=10,days=30)';

/**
 * Parses the flag's value with the grammar of the `vss-snapshots:retain` tag (one parser for both, retention's);
 * a commander argument parser, so a bad value is a usage error (exit 2) before anything runs. 0 turns a rule off.
 */
export function parseRetainOption(text: string): RetainPolicy {
  const parsed = parseRetainTag(text);
  if ('error' in parsed) throw new InvalidArgumentError(`${parsed.error}; ${USAGE}.`);
  const named = new Set(text.split(',').map((p) => p.trim().split('=')[0]));
  const policy: RetainPolicy = {};
  if (named.has('count') && parsed.rule.count > 0) policy.count = parsed.rule.count;
  if (named.has('days') && parsed.rule.days > 0) policy.days = parsed.rule.days;
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

/**
 * `--archive-after DAYS`: the archive tier of a local run (the stack's ArchiveAfterDays parameter, README
 * "Archive tier"): sets at least DAYS old that the days rule keeps 90 more days go to the archive tier. 0 = off.
 * It reaches the Lambdas as ARCHIVE_AFTER_DAYS.
 */
export function parseArchiveAfterOption(text: string): number {
  if (!/^[0-9]{1,4}$/.test(text.trim()) || Number(text) > 3_650) {
    throw new InvalidArgumentError(`"${text.replace(/[\u0000-\u001f\u007f"]/g, '?').slice(0, 32)}": use a whole number of days 0-3650 (e.g. --archive-after 30; 0 = never archive).`);
  }
  return Number(text);
}

export function archiveEnvironment(days: number | undefined): Record<string, string> {
  return days === undefined ? {} : { ARCHIVE_AFTER_DAYS: String(days) };
}
