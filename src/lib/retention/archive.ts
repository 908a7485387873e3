/**
 * The archive tier (EBS Snapshots Archive), as retention uses it: which kept sets move to the archive tonight,
 * which deletions wait for the archive's 90-day minimum, and how the account's archive quota is read.
 *
 * AWS (EBS user guide, "Archive Amazon EBS snapshots", "Considerations and limitations", "Quotas for Amazon EBS";
 * EC2 API reference ModifySnapshotTier, SnapshotTierStatus):
 * - ModifySnapshotTier turns the snapshot into a *full* snapshot, billed at its full size at the archive rate;
 *   only a `completed` snapshot this account owns, not one an AMI uses; archive and restore cannot be cancelled.
 * - A snapshot stays in the archive at least 90 days: deleting (or permanently restoring) it earlier bills the
 *   days left. A restore to the standard tier takes up to 72 hours.
 * - Quotas (adjustable in Service Quotas): 25 in-progress archives per account, 25 archived snapshots per volume.
 *
 * Decisions (README "Archive tier"):
 * - A set is archived only when it is at least `archiveAfterDays` old, every member is `completed`, none is held,
 *   none is the newest snapshot of its volume (the newest set of an instance never is), no AMI uses one, and the
 *   policy's *days* rule keeps it at least 90 more days. The count rule gives no such promise: a set kept only
 *   because it is among the newest N can be pushed out by the next N runs (a rerun makes more than one set a
 *   night), so a set kept by count alone is never archived.
 * - Whole sets: a set is queued only if all its members fit in tonight's free archive slots (25 less the
 *   account's archives in progress, counted with DescribeSnapshotTierStatus); the rest wait for the next night
 *   (reported `deferred`).
 * - A set due for deletion with a member archived less than 90 days ago is kept until its 90 days are over
 *   (reported `deletionDeferred`, with the date), never deleted early: the early deletion would bill the rest of
 *   the 90 days anyway, and the policy that archived it promised those days.
 */
import { DescribeSnapshotTierStatusCommand } from '@aws-sdk/client-ec2';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { KeepReason, RetainRule, RetentionSet } from './policy.ts';

const DAY_MS = 86_400_000;
/** Days a snapshot stays in the archive tier at least (earlier deletion bills the rest). */
export const ARCHIVE_MIN_DAYS = 90;
/** In-progress archives per account (EBS quota, default). */
export const CONCURRENT_ARCHIVES = 25;
/** Archived snapshots per volume (EBS quota, default). */
export const ARCHIVED_PER_VOLUME = 25;

export interface TierStatus {
  snapshotId: string;
  volumeId: string;
  storageTier: string;
  /** `archival-in-progress`, `archival-completed`, `temporary-restore-completed`, ... */
  status: string;
  /** When the snapshot reached the archive tier (the archival's completion), for the 90-day minimum; none while archiving. */
  archivedSince?: number;
}

/** Every snapshot of the account with an archive history (DescribeSnapshotTierStatus, every page). */
export async function listTierStatuses(ec2: EC2Client): Promise<Map<string, TierStatus>> {
  const out = new Map<string, TierStatus>();
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(new DescribeSnapshotTierStatusCommand({ MaxResults: 1000, NextToken: nextToken }));
    for (const t of page.SnapshotTierStatuses ?? []) {
      if (!t.SnapshotId) continue;
      const status = t.LastTieringOperationStatus ?? '';
      // The 90 days are days *in the archive tier* (EBS user guide, "Pricing and billing for archiving Amazon EBS
      // snapshots": "delete ... an archived snapshot before the minimum archive period of 90 days"): they start when
      // the archival completes (ArchivalCompleteTime), not when ModifySnapshotTier was called; an archival still in
      // progress has no start yet (deletableFrom counts it from now). After a restore: the archival's completion.
      const since = status === 'archival-in-progress' ? undefined : status === 'archival-completed' ? (t.ArchivalCompleteTime ?? t.LastTieringStartTime) : t.ArchivalCompleteTime;
      out.set(t.SnapshotId, {
        snapshotId: t.SnapshotId,
        volumeId: t.VolumeId ?? '',
        storageTier: t.StorageTier ?? 'standard',
        status,
        ...(since ? { archivedSince: since.getTime() } : {}),
      });
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return out;
}

/** In the archive or on its way there: counts against the per-volume quota and is not archived again. */
export function inOrGoingToArchive(t: TierStatus | undefined): boolean {
  return t !== undefined && (t.storageTier === 'archive' || t.status === 'archival-in-progress' || /restore-in-progress$/.test(t.status));
}

/**
 * When a set due for deletion may be deleted without cutting the archive's 90 days short: undefined when it may
 * now. A member whose archive history is unknown but that DescribeSnapshots shows archived counts from `now`.
 */
export function deletableFrom(set: RetentionSet, tiers: ReadonlyMap<string, TierStatus>, now: number): number | undefined {
  let latest: number | undefined;
  for (const id of set.snapshotIds) {
    const t = tiers.get(id);
    const archived = set.archived?.includes(id) || inOrGoingToArchive(t) || t?.status === 'temporary-restore-completed';
    if (!archived) continue;
    const since = t?.archivedSince ?? now;
    const until = since + ARCHIVE_MIN_DAYS * DAY_MS;
    if (until > now && (latest === undefined || until > latest)) latest = until;
  }
  return latest;
}

export interface ArchiveContext {
  now: number;
  afterDays: number;
  /** Snapshot ids that are the newest of their volume (never archived). */
  newestOfVolume: ReadonlySet<string>;
}

/** Why a kept set is not archived tonight, or undefined when it may be. */
export function notArchivable(set: RetentionSet, keep: KeepReason, rule: RetainRule, ctx: ArchiveContext): string | undefined {
  if (ctx.afterDays <= 0) return 'archive off';
  if (keep !== 'count' && keep !== 'days') return `kept as ${keep}`;
  if (ctx.now - set.start < ctx.afterDays * DAY_MS) return 'younger than the archive age';
  if (!set.completed) return 'not every snapshot completed';
  if (set.held.length > 0) return 'on hold';
  if (set.snapshotIds.some((id) => ctx.newestOfVolume.has(id))) return 'holds the newest snapshot of a volume';
  if (rule.days <= 0 || set.start + rule.days * DAY_MS - ctx.now < ARCHIVE_MIN_DAYS * DAY_MS) return 'the days rule does not keep it 90 more days';
  return undefined;
}

/** The newest snapshot of every volume among the sets (by the sets' start; the newest set's member wins). */
export function newestPerVolume(sets: readonly RetentionSet[]): Set<string> {
  const best = new Map<string, { id: string; start: number }>();
  for (const set of sets) {
    for (const id of set.snapshotIds) {
      const volume = set.volumes?.[id];
      if (!volume) continue;
      const before = best.get(volume);
      if (!before || set.start > before.start) best.set(volume, { id, start: set.start });
    }
  }
  return new Set([...best.values()].map((b) => b.id));
}

/** Why the stack's own policy can never archive anything with this setting, for the report. */
export function archiveSettingNote(afterDays: number, defaults: RetainRule): string | undefined {
  if (afterDays <= 0) return undefined;
  if (defaults.days < afterDays + ARCHIVE_MIN_DAYS) {
    return `archiveAfterDays is ${afterDays} but the stack's days rule keeps sets ${defaults.days} days: a set is archived only while the days rule keeps it ${ARCHIVE_MIN_DAYS} more days, so instances on the stack defaults are never archived (raise retainDays to at least ${afterDays + ARCHIVE_MIN_DAYS}, or set days on the vss-snapshots:retain tag)`;
  }
  return undefined;
}
