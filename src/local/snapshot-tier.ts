/**
 * The EBS Snapshots Archive tier of the simulated account: ModifySnapshotTier, RestoreSnapshotTier,
 * DescribeSnapshotTierStatus, and what DescribeSnapshots, CreateVolume and the quotas make of it.
 *
 * What AWS documents (EBS user guide, "Archive Amazon EBS snapshots" and its pages "Considerations and
 * limitations", "Work with snapshot archiving", "View archived snapshots", "Quotas for Amazon EBS"; EC2 API
 * reference ModifySnapshotTier, RestoreSnapshotTier, SnapshotTierStatus):
 * - only a `completed` snapshot of this account can be archived; one behind an AMI must have the AMI deregistered
 *   (or disabled) first; archive and restore cannot be cancelled;
 * - the snapshot stays usable while `archival-in-progress`; once archived it cannot be used (no CreateVolume, no
 *   copy) until restored to the standard tier; `StorageTier` is `standard` during the archival and for a
 *   temporarily restored snapshot (`RestoreExpiryTime` set), `archive` once archived;
 * - a restore takes "up to 72 hours, depending on the size of the snapshot"; a temporary restore is re-archived
 *   automatically when its days are over;
 * - quotas (Service Quotas, adjustable): 25 archived snapshots per volume, 25 in-progress archives and 5
 *   in-progress restores per account.
 *
 * What AWS does not document, modelled on the harder side (assumptions, stated once here):
 * - ARCHIVE_MS: how long an archival takes. Not published ("hours" in practice); 6 hours here.
 * - RESTORE_MS: every restore takes the documented maximum, 72 hours (a small snapshot may be faster in AWS).
 * - The error codes over a quota: the EC2 error list has no tier-specific code; EC2 answers a concurrency quota
 *   with `ResourceLimitExceeded` elsewhere ("Too many snapshot copies in progress", EC2 API reference, "Error
 *   codes"), so that is what these answer. An archived snapshot given to CreateVolume, or a snapshot in the
 *   wrong tier or state given to ModifySnapshotTier/RestoreSnapshotTier: `IncorrectState` (the EC2 code for "the
 *   resource is in an incorrect state for the request"). A snapshot behind an AMI: `InvalidSnapshot.InUse`, as
 *   DeleteSnapshot answers.
 */
import type { Filter } from '@aws-sdk/client-ec2';
import { awsError, checkRange, paginate } from './aws-error.ts';
import { filterValueMatches } from './ec2-filters.ts';
import { ACCOUNT_ID } from './world.ts';
import type { SimSnapshot, World } from './world.ts';
import { tierAt } from './snapshot-tier-state.ts';
import type { TierView } from './snapshot-tier-state.ts';

export type { SimTier, TierView } from './snapshot-tier-state.ts';

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;
/** Assumed duration of an archival (AWS publishes none). */
export const ARCHIVE_MS = 6 * HOUR_MS;
/** A restore from the archive: the documented maximum, 72 hours. */
export const RESTORE_MS = 72 * HOUR_MS;
/** TemporaryRestoreDays accepted (the console offers 1-180 days). */
export const TEMPORARY_RESTORE_DAYS = { min: 1, max: 180 } as const;

/** Account quotas of the archive tier (Quotas for Amazon EBS; adjustable in Service Quotas). */
export interface TierQuotas {
  archivedPerVolume: number;
  concurrentArchives: number;
  concurrentRestores: number;
}
export const DEFAULT_TIER_QUOTAS: TierQuotas = { archivedPerVolume: 25, concurrentArchives: 25, concurrentRestores: 5 };

/** Where the snapshot is now, by the clock. */
export function tierOf(world: World, s: SimSnapshot): TierView {
  return tierAt(world.now, s.tier);
}

/** Whether a snapshot's data can be used now (CreateVolume, CopySnapshot): not while it sits in the archive. */
export function usableTier(world: World, s: SimSnapshot): boolean {
  return tierOf(world, s).storageTier === 'standard';
}

/** DescribeSnapshots' tier fields. */
export function describeTier(world: World, s: SimSnapshot): { StorageTier: string; RestoreExpiryTime?: Date } {
  const v = tierOf(world, s);
  return { StorageTier: v.storageTier, ...(v.restoreExpiry !== undefined ? { RestoreExpiryTime: new Date(v.restoreExpiry) } : {}) };
}

const quotas = (world: World): TierQuotas => ({ ...DEFAULT_TIER_QUOTAS, ...(world.quotas.tier ?? {}) });

function existing(world: World, id: string | undefined): SimSnapshot {
  if (!id) throw awsError('MissingParameter', 'The request must contain the parameter SnapshotId');
  const s = world.snapshots.get(id);
  if (!s || world.snapshotGone(s) || s.deleted || s.visibleAt > world.now) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
  return s;
}

function inProgress(world: World, kind: 'archival' | 'restore'): number {
  let n = 0;
  for (const s of world.snapshots.values()) {
    if (!s.tier || s.deleted) continue;
    const status = tierOf(world, s).status ?? '';
    if (kind === 'archival' ? status === 'archival-in-progress' : /restore-in-progress$/.test(status)) n += 1;
  }
  return n;
}

/** Archived (or being archived) snapshots of a volume: the per-volume quota counts them. */
function archivedOfVolume(world: World, volumeId: string): number {
  return world.snapshotsOfVolume(volumeId).filter((s) => !s.deleted && s.tier && (tierOf(world, s).storageTier === 'archive' || tierOf(world, s).status === 'archival-in-progress')).length;
}

function tierMatches(world: World, s: SimSnapshot, filter: Filter): boolean {
  const any = (v: string) => (filter.Values ?? []).some((p) => filterValueMatches(p, v));
  switch (filter.Name) {
    case 'snapshot-id':
      return any(s.snapshotId);
    case 'volume-id':
      return any(s.volumeId);
    case 'last-tiering-operation':
      return any(tierOf(world, s).status ?? '');
    default:
      throw awsError('InvalidParameterValue', `The filter '${filter.Name}' is invalid`);
  }
}

type Input = Record<string, unknown>;

export const tierOperations: Record<string, (world: World, input: Input) => unknown> = {
  ModifySnapshotTier(world, input) {
    const tier = input.StorageTier as string | undefined;
    if (tier !== undefined && tier !== 'archive') throw awsError('InvalidParameterValue', `Value (${tier}) for parameter StorageTier is invalid. Valid values: archive.`);
    const s = existing(world, input.SnapshotId as string | undefined);
    const id = s.snapshotId;
    const state = world.snapshotState(s);
    if (state !== 'completed') throw awsError('IncorrectState', `Snapshot '${id}' is in state ${state}; only completed snapshots can be archived.`);
    const image = [...world.images.values()].find((i) => i.snapshotIds.includes(id));
    if (image) throw awsError('InvalidSnapshot.InUse', `The snapshot ${id} is currently in use by ${image.imageId}; deregister or disable the AMI before archiving the snapshot.`);
    const view = tierOf(world, s);
    if (view.storageTier === 'archive' || view.status === 'archival-in-progress' || /restore-in-progress$/.test(view.status ?? '')) {
      throw awsError('IncorrectState', `Snapshot '${id}' is ${view.status === 'archival-in-progress' ? 'already being archived' : view.storageTier === 'archive' ? 'already archived' : 'being restored'}.`);
    }
    const q = quotas(world);
    if (inProgress(world, 'archival') >= q.concurrentArchives) {
      throw awsError('ResourceLimitExceeded', `You have reached the limit of ${q.concurrentArchives} in-progress snapshot archives for this account.`);
    }
    if (archivedOfVolume(world, s.volumeId) >= q.archivedPerVolume) {
      throw awsError('ResourceLimitExceeded', `Volume ${s.volumeId} has reached the limit of ${q.archivedPerVolume} archived snapshots.`);
    }
    s.tier = { kind: 'archival', startedAt: world.now, doneAt: world.now + ARCHIVE_MS };
    return { SnapshotId: id, TieringStartTime: new Date(world.now) };
  },

  RestoreSnapshotTier(world, input) {
    const s = existing(world, input.SnapshotId as string | undefined);
    const id = s.snapshotId;
    const days = input.TemporaryRestoreDays as number | undefined;
    const permanent = input.PermanentRestore === true;
    if (days !== undefined && permanent) throw awsError('InvalidParameterCombination', 'Specify either TemporaryRestoreDays or PermanentRestore, not both.');
    if (days === undefined && !permanent) throw awsError('MissingParameter', 'The request must contain the parameter TemporaryRestoreDays or PermanentRestore.');
    checkRange(days, TEMPORARY_RESTORE_DAYS.min, TEMPORARY_RESTORE_DAYS.max, 'TemporaryRestoreDays', 'InvalidParameterValue');
    const view = tierOf(world, s);
    // A temporarily restored snapshot: its restore period (or type) is modified, at once (RestoreSnapshotTier).
    if (view.status === 'temporary-restore-completed' && view.storageTier === 'standard' && s.tier) {
      if (permanent) s.tier = { kind: 'permanent-restore', startedAt: s.tier.startedAt, doneAt: s.tier.doneAt };
      else s.tier.days = Math.ceil((world.now - s.tier.doneAt) / DAY_MS) + (days ?? 1);
      return { SnapshotId: id, RestoreStartTime: new Date(s.tier.startedAt), IsPermanentRestore: permanent, ...(permanent ? {} : { RestoreDuration: days }) };
    }
    if (view.storageTier !== 'archive' || /in-progress$/.test(view.status ?? '')) {
      throw awsError('IncorrectState', `Snapshot '${id}' is not in the archive tier${view.status ? ` (${view.status})` : ''}; only archived snapshots can be restored.`);
    }
    const q = quotas(world);
    if (inProgress(world, 'restore') >= q.concurrentRestores) {
      throw awsError('ResourceLimitExceeded', `You have reached the limit of ${q.concurrentRestores} in-progress snapshot restores for this account.`);
    }
    const archivedAt = view.archivedAt ?? s.tier?.archivedAt ?? s.tier?.doneAt;
    s.tier = {
      kind: permanent ? 'permanent-restore' : 'temporary-restore',
      startedAt: world.now,
      doneAt: world.now + RESTORE_MS,
      ...(archivedAt !== undefined ? { archivedAt } : {}),
      ...(permanent ? {} : { days }),
    };
    return { SnapshotId: id, RestoreStartTime: new Date(world.now), IsPermanentRestore: permanent, ...(permanent ? {} : { RestoreDuration: days }) };
  },

  /** Snapshots of this account that have been archived or restored (without filters: all of them), 1,000 a page. */
  DescribeSnapshotTierStatus(world, input) {
    const filters = (input.Filters as Filter[] | undefined) ?? [];
    const maxResults = input.MaxResults as number | undefined;
    checkRange(maxResults, 5, 1000, 'MaxResults', 'InvalidParameterValue');
    const matching = [...world.snapshots.values()].filter((s) => s.tier && !s.deleted && !world.snapshotGone(s) && filters.every((f) => tierMatches(world, s, f)));
    const { page, nextToken } = paginate(matching, maxResults ?? 1000, input.NextToken as string | undefined, 'ec2');
    return {
      SnapshotTierStatuses: page.map((s) => {
        const v = tierOf(world, s);
        return {
          SnapshotId: s.snapshotId,
          VolumeId: s.volumeId,
          Status: world.snapshotState(s),
          OwnerId: ACCOUNT_ID,
          Tags: Object.entries(world.visibleTags(s)).map(([Key, Value]) => ({ Key, Value })),
          StorageTier: v.storageTier,
          ...(v.startedAt !== undefined ? { LastTieringStartTime: new Date(v.startedAt) } : {}),
          ...(v.progress !== undefined ? { LastTieringProgress: v.progress } : {}),
          ...(v.status ? { LastTieringOperationStatus: v.status } : {}),
          ...(v.archivedAt !== undefined ? { ArchivalCompleteTime: new Date(v.archivedAt) } : {}),
          ...(v.restoreExpiry !== undefined ? { RestoreExpiryTime: new Date(v.restoreExpiry) } : {}),
        };
      }),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  },
};
