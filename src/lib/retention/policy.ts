/**
 * The retention policy, as a pure decision over one stack's snapshot sets (no AWS calls here: inventory.ts
 * gathers the sets, plan.ts asks this module, apply.ts deletes).
 *
 * A *set* is what one attempt of one run made of one instance: all its volumes' snapshots, taken together.
 * Sets are kept or deleted whole. For each instance:
 *
 * - Sets of this run, or started after it began (a concurrent run), and sets with a snapshot still `pending`
 *   are never touched.
 * - The newest *verified* set (every snapshot `completed`, marked consistent by its method, not a
 *   crash-consistent fallback) of an instance that exists is always kept, however old: a week of failed
 *   nights must not leave a server with nothing. An instance with no verified set keeps its newest set of any
 *   kind (a crash-consistent copy beats nothing).
 * - An instance that is gone (terminated, or no longer known to EC2) keeps that set `terminatedDays` after it
 *   was first seen gone; then it expires like the others.
 * - Otherwise a set is kept while either rule keeps it: it is among the newest `count` verified sets of its
 *   instance (fallbacks and other unverified sets are ranked among all sets, so they never push a verified
 *   one out), or it is younger than `days` days when retention runs. 0 turns a rule off. The count
 *   rule applies only to instances that exist: a terminated instance's sets expire by age.
 * - A set due for deletion that holds a snapshot tagged `vss-snapshots:hold` is kept whole and reported held.
 */
import type { RetentionDefaults } from '../config.ts';

const DAY_MS = 86_400_000;

/** A policy: 0 turns a rule off. */
export interface RetainRule {
  count: number;
  days: number;
}

export type SetKind = 'verified' | 'fallback' | 'unverified';

export interface RetentionSet {
  /** `<owner>/<runId>/<attempt>`: unique per set. */
  key: string;
  /** The instance (or, when no instance is known for a snapshot, its volume: `vol-…`). */
  owner: string;
  runId: string;
  attempt: number;
  /** Start time of the set's first snapshot (ms). */
  start: number;
  kind: SetKind;
  snapshotIds: string[];
  /** Members tagged vss-snapshots:hold. */
  held: string[];
  /** A member is still `pending`. */
  pending: boolean;
  /** Every member is `completed` (only such a set may be archived). */
  completed?: boolean;
  /** Members DescribeSnapshots shows in the archive tier (`StorageTier: archive`). */
  archived?: string[];
  /** Member → its volume. */
  volumes?: Record<string, string>;
}

export interface OwnerStatus {
  /** EC2 lists the instance, not terminated. Volume owners never exist as instances. */
  exists: boolean;
  /** Its own policy (a valid `vss-snapshots:retain` tag); undefined: the stack defaults. */
  rule?: RetainRule;
  /** When it was first seen gone (ms), for a gone owner. */
  goneSince?: number;
}

export type KeepReason = 'this-run' | 'pending' | 'newest-verified' | 'newest-set' | 'terminated-grace' | 'count' | 'days' | 'held';

export type Decision = { set: RetentionSet; keep: KeepReason } | { set: RetentionSet; deleteReason: string };

export interface PolicyContext {
  /** The run's start (ms): sets from it on are this run's or a concurrent one's, and never touched. */
  runStart: number;
  /**
   * When the policy is applied (ms): ages are measured from it. Retention runs after the night's snapshots, so
   * with `days=3` the set of three nights ago is a little over 3 days old and goes: tonight's and the two before stay.
   */
  now: number;
  defaults: RetentionDefaults;
}

/** Decides every set of one owner. `sets` may be in any order. */
export function decideOwner(sets: readonly RetentionSet[], status: OwnerStatus, ctx: PolicyContext): Decision[] {
  const newestFirst = [...sets].sort((a, b) => b.start - a.start || b.attempt - a.attempt || a.key.localeCompare(b.key));
  const rule: RetainRule = status.rule ?? { count: ctx.defaults.count, days: ctx.defaults.days };
  // Tonight's verified set counts: verification is over when retention runs.
  const usable = newestFirst.filter((s) => !s.pending);
  const protectedSet = usable.find((s) => s.kind === 'verified') ?? usable[0];
  const decisions: Decision[] = [];
  let verifiedRank = 0;
  let anyRank = 0;
  for (const set of newestFirst) {
    // Ranks count every set before this one, kept or not: the rules look at the instance's history as it is.
    const rank = set.kind === 'verified' ? verifiedRank : anyRank;
    if (set.kind === 'verified') verifiedRank += 1;
    anyRank += 1;
    if (set.start >= ctx.runStart) {
      decisions.push({ set, keep: 'this-run' });
      continue;
    }
    if (set.pending) {
      decisions.push({ set, keep: 'pending' });
      continue;
    }
    if (set === protectedSet) {
      if (status.exists) {
        decisions.push({ set, keep: set.kind === 'verified' ? 'newest-verified' : 'newest-set' });
        continue;
      }
      const graceEnds = (status.goneSince ?? ctx.now) + ctx.defaults.terminatedDays * DAY_MS;
      if (ctx.now < graceEnds) {
        decisions.push({ set, keep: 'terminated-grace' });
        continue;
      }
    }
    if (status.exists && rule.count > 0 && rank < rule.count) {
      decisions.push({ set, keep: 'count' });
      continue;
    }
    if (rule.days > 0 && ctx.now - set.start < rule.days * DAY_MS) {
      decisions.push({ set, keep: 'days' });
      continue;
    }
    if (set.held.length > 0) {
      decisions.push({ set, keep: 'held' });
      continue;
    }
    decisions.push({ set, deleteReason: deleteReasonOf(set, status, rule, ctx) });
  }
  return decisions;
}

function deleteReasonOf(set: RetentionSet, status: OwnerStatus, rule: RetainRule, ctx: PolicyContext): string {
  const age = Math.floor((ctx.now - set.start) / DAY_MS);
  const what = set.kind === 'verified' ? 'verified set' : set.kind === 'fallback' ? 'crash-consistent fallback set' : 'unverified set';
  const rules: string[] = [];
  if (status.exists && rule.count > 0) rules.push(`not among the newest ${rule.count} ${set.kind === 'verified' ? 'verified sets' : 'sets'}`);
  if (rule.days > 0) rules.push(`older than ${rule.days} days`);
  if (!status.exists) rules.push(`the ${set.owner.startsWith('vol-') ? 'volume\'s instance is unknown' : 'instance is gone'}${ctx.defaults.terminatedDays > 0 ? ` for ${ctx.defaults.terminatedDays}+ days` : ''}`);
  if (rules.length === 0) rules.push('no rule keeps older sets (count and days are off)');
  return `${what} of run ${set.runId} attempt ${set.attempt}, ${age} day(s) old: ${rules.join(', ')}`;
}

export type ParsedRetainTag = { rule: RetainRule } | { error: string };

const PART = /^(count|days)=([0-9]{1,5})$/;
const LIMITS = { count: 1_000, days: 3_650 } as const;

/**
 * Parses the instance tag `vss-snapshots:retain`: `count=N`, `days=N`, or both comma-separated (either
 * order). A rule the tag does not name is off for that instance. Anything else is an error: the caller falls
 * back to the stack defaults and reports why (a typo must never make retention delete more).
 */
export function parseRetainTag(value: string): ParsedRetainTag {
  const parts = value.split(',').map((p) => p.trim());
  const rule: RetainRule = { count: 0, days: 0 };
  const seen = new Set<string>();
  const expected = 'expected count=N, days=N or count=N,days=M';
  if (parts.length > 2 || parts.some((p) => p === '')) return { error: `"${shown(value)}": ${expected}` };
  for (const part of parts) {
    const match = PART.exec(part);
    if (!match) return { error: `"${shown(value)}": ${expected}` };
    const name = match[1] as 'count' | 'days';
    const n = Number(match[2]);
    if (seen.has(name)) return { error: `"${shown(value)}": ${name} given twice` };
    if (n > LIMITS[name]) return { error: `"${shown(value)}": ${name} must be 0-${LIMITS[name]}` };
    seen.add(name);
    rule[name] = n;
  }
  return { rule };
}

function shown(value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f"]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}
