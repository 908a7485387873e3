/**
 * "Apply Retention": deletes the sets the plan queued, oldest first, whole sets only, in slices the account's
 * DeleteSnapshot bucket can take (100 tokens, 5 a second: EC2 API throttling, aws-facts-lifecycle.md): at most
 * DELETE_SLICE snapshots and DELETE_BUDGET_MS per invocation, then the workflow waits until the bucket has
 * refilled what the invocation took at DELETE_RATE_PER_SECOND (4 a second: 80 % of EC2's refill, leaving room
 * for other callers in the account), less the time the invocation itself took, and calls again. A set started is finished in the same invocation, so a set is never
 * left half-deleted by the pacing.
 *
 * EC2's answers: InvalidSnapshot.NotFound is "already gone" (a retried invocation repeats its deletions);
 * InvalidSnapshot.InUse (an AMI registered since the plan's check) or any other refusal stops that set: what is
 * left of it is kept, reported `partial` (or `inUse` when nothing of it was deleted) and remembered in the
 * ledger, so the next run tries it again and the alert names it. Throttling and server errors fail the step,
 * which the state machine retries; progress is saved after every invocation.
 */
import { DeleteSnapshotCommand, DescribeSnapshotTierStatusCommand, ModifySnapshotTierCommand } from '@aws-sdk/client-ec2';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { clock, nowIso } from '../clock.ts';
import { RunStateNotFoundError } from '../errors.ts';
import { isRefusal } from '../verify-snapshots.ts';
import { putReport } from '../finish-run.ts';
import type { RunReport } from '../report.ts';
import { reportKey } from '../run-state.ts';
import type { RetentionDeps } from './plan.ts';
import { DELETE_WAIT_SECONDS, entriesOf, loadLedger, loadRetentionRecord, progressOf, readJson, retentionKey, saveLedger, saveRetentionRecord, toRetentionReport } from './record.ts';
import type { ArchiveRecord, RetentionProgress, RetentionRecord } from './record.ts';

/** Snapshots one invocation deletes at most: under the bucket's burst of 100, leaving room for other callers. */
export const DELETE_SLICE = 90;
/** Time one invocation spends deleting (as verify's DISCARD_BUDGET_MS); a set begun is finished. */
export const DELETE_BUDGET_MS = 120_000;
/** The pace retention keeps over many invocations: below EC2's refill of 5 DeleteSnapshot tokens a second. */
export const DELETE_RATE_PER_SECOND = 4;

/** Whether this invocation may start on `set`: a set begun is finished, so it must fit the slice (or be the first). */
export function sliceHasRoom(set: { snapshotIds: readonly string[]; deleted: readonly string[] }, calls: number, started: number): boolean {
  const left = set.snapshotIds.filter((id) => !set.deleted.includes(id)).length;
  return calls === 0 || (calls + left <= DELETE_SLICE && clock.now() - started < DELETE_BUDGET_MS);
}

/**
 * Deletes the members of a set not deleted yet, in order, adding each to `set.deleted`. InvalidSnapshot.NotFound
 * is "already gone" (a retried invocation repeats its deletions); an EC2 refusal (InvalidSnapshot.InUse: an AMI
 * registered since the plan) stops the set and is returned; throttling and server errors are thrown.
 */
export async function deleteRemaining(ec2: EC2Client, set: { snapshotIds: readonly string[]; deleted: string[] }): Promise<{ calls: number; refusal?: string }> {
  let calls = 0;
  for (const id of set.snapshotIds.filter((s) => !set.deleted.includes(s))) {
    calls += 1;
    try {
      await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
      set.deleted.push(id);
    } catch (error) {
      const name = (error as Error).name;
      if (name === 'InvalidSnapshot.NotFound') {
        set.deleted.push(id);
        continue;
      }
      if (!isRefusal(error)) throw error;
      return { calls, refusal: `${name}: ${(error as Error).message}` };
    }
  }
  return { calls };
}

export async function applyRetention(deps: RetentionDeps, runId: string): Promise<RetentionProgress> {
  const { config } = deps;
  const record = await loadRetentionRecord(deps.s3, config.reportBucket, runId);
  if (!record) throw new RunStateNotFoundError(`Retention plan s3://${config.reportBucket}/${retentionKey(runId)} does not exist; Plan Retention must run first.`);
  if (record.mode !== 'apply') return progressOf(record);
  if (record.finishedAt !== undefined) {
    // A retry after the deletions were done: the report update may be what failed (it is idempotent).
    await updateReport(deps, record);
    return progressOf(record);
  }
  const started = clock.now();
  let calls = 0;
  try {
    while (record.cursor < record.queue.length) {
      const set = record.queue[record.cursor];
      if (!set) break;
      if (!sliceHasRoom(set, calls, started)) break;
      const done = await deleteRemaining(deps.ec2, set);
      calls += done.calls;
      if (done.refusal) set.partial = { reason: done.refusal, remaining: set.snapshotIds.filter((s) => !set.deleted.includes(s)) };
      settle(record, record.cursor);
      record.cursor += 1;
    }
    // The archives, once every deletion is done (they share the budget of this invocation).
    const archive = record.archive;
    if (archive && record.cursor >= record.queue.length) calls = await archiveSets(deps.ec2, archive, calls, started);
  } finally {
    if (record.cursor >= record.queue.length && (!record.archive || record.archive.cursor >= record.archive.queue.length)) await finish(deps, record);
    await saveRetentionRecord(deps.s3, config.reportBucket, record);
  }
  // The run report was written (and the alert sent) before the deletions: it gets what was done now.
  if (record.finishedAt !== undefined) await updateReport(deps, record);
  // The bucket needs calls / rate seconds to give back what this invocation took; the calls themselves took some.
  const refillSeconds = Math.ceil(calls / DELETE_RATE_PER_SECOND - (clock.now() - started) / 1000);
  return { ...progressOf(record), waitSeconds: Math.min(DELETE_WAIT_SECONDS, Math.max(1, refillSeconds)) };
}

/**
 * Archives the queued sets in order (ModifySnapshotTier, one call per snapshot, from the account's "mutating"
 * bucket: at most 25 a night, within DELETE_SLICE calls and DELETE_BUDGET_MS per invocation, a set begun is
 * finished). EC2's answers:
 * - ResourceLimitExceeded (the account's in-progress archives are taken, by another tool since the plan): no more
 *   archives tonight, the rest is `deferred` to the next night;
 * - IncorrectState: the snapshot is archiving or archived already (a retried call whose answer was lost), which
 *   DescribeSnapshotTierStatus confirms, or its state changed since the plan: that set stops and is reported;
 * - InvalidSnapshot.NotFound (deleted since), InvalidSnapshot.InUse (an AMI since) and other refusals stop that
 *   set (reported `failed`; the next night tries again); throttling and server errors fail the step, which the
 *   state machine retries (progress is saved).
 */
async function archiveSets(ec2: EC2Client, archive: ArchiveRecord, callsBefore: number, started: number): Promise<number> {
  let calls = callsBefore;
  while (archive.cursor < archive.queue.length) {
    const set = archive.queue[archive.cursor];
    if (!set) break;
    const left = set.snapshotIds.filter((id) => !set.archived.includes(id));
    if (calls > 0 && (calls + left.length > DELETE_SLICE || clock.now() - started >= DELETE_BUDGET_MS)) break;
    let quotaReached = false;
    for (const id of left) {
      calls += 1;
      try {
        await ec2.send(new ModifySnapshotTierCommand({ SnapshotId: id, StorageTier: 'archive' }));
        set.archived.push(id);
      } catch (error) {
        const name = (error as Error).name;
        if (name === 'IncorrectState' && (await archivingAlready(ec2, id))) {
          set.archived.push(id);
          continue;
        }
        if (name === 'ResourceLimitExceeded') {
          quotaReached = true;
          break;
        }
        if (name !== 'InvalidSnapshot.NotFound' && !isRefusal(error)) throw error;
        set.failed = `${name}: ${(error as Error).message}`;
        break;
      }
    }
    archive.archived.push(...entriesOf(set, set.archived, set.reason));
    if (set.failed) {
      archive.failed.push(...entriesOf(set, set.snapshotIds.filter((id) => !set.archived.includes(id)), `not archived: ${set.failed}`));
    }
    archive.cursor += 1;
    if (quotaReached) {
      // The account's archives in progress are taken: this set's rest and every later set wait for the next night.
      archive.deferred += set.snapshotIds.filter((id) => !set.archived.includes(id)).length;
      for (const later of archive.queue.slice(archive.cursor)) archive.deferred += later.snapshotIds.length;
      archive.cursor = archive.queue.length;
    }
  }
  return calls;
}

/** The snapshot is being archived, or is archived (DescribeSnapshotTierStatus). */
async function archivingAlready(ec2: EC2Client, snapshotId: string): Promise<boolean> {
  const out = await ec2.send(new DescribeSnapshotTierStatusCommand({ Filters: [{ Name: 'snapshot-id', Values: [snapshotId] }] }));
  const t = out.SnapshotTierStatuses?.find((x) => x.SnapshotId === snapshotId);
  return t !== undefined && (t.StorageTier === 'archive' || t.LastTieringOperationStatus === 'archival-in-progress');
}

/** Moves a finished set into the report's lists. */
function settle(record: RetentionRecord, index: number): void {
  const set = record.queue[index];
  if (!set) return;
  record.deleted.push(...entriesOf(set, set.deleted, set.reason));
  if (!set.partial) return;
  if (set.deleted.length === 0) {
    // Nothing of it went: kept whole, as if the plan's AMI check had seen it.
    record.inUse.push(...entriesOf(set, set.snapshotIds, `due for deletion, kept whole: EC2 refused the deletion (${set.partial.reason})`).map((e) => ({ ...e, imageIds: imageIdsIn(set.partial?.reason ?? '') })));
    return;
  }
  record.partial.push({
    ...(set.owner.startsWith('vol-') ? { volumeOwner: set.owner } : { instanceId: set.owner }),
    runId: set.runId,
    attempt: set.attempt,
    deleted: set.deleted,
    remaining: set.partial.remaining,
    reason: set.partial.reason,
  });
}

const imageIdsIn = (text: string): string[] => [...new Set(text.match(/ami-[0-9a-f]+/g) ?? [])];

async function updateReport(deps: RetentionDeps, record: RetentionRecord): Promise<void> {
  const report = await readJson<RunReport>(deps.s3, deps.config.reportBucket, reportKey(record.runId));
  if (!report) return;
  report.retention = toRetentionReport(record);
  await putReport(deps.s3, deps.config.reportBucket, report);
}

async function finish(deps: RetentionDeps, record: RetentionRecord): Promise<void> {
  if (record.finishedAt !== undefined) return;
  record.finishedAt = nowIso();
  record.kept -= record.deleted.length;
  const broken = record.queue.filter((q) => q.partial);
  if (broken.length === 0) return;
  const ledger = await loadLedger(deps.s3, deps.config.reportBucket);
  for (const q of broken) {
    const before = ledger.stuck[q.key];
    ledger.stuck[q.key] = {
      reason: q.deleted.length > 0 ? 'partial' : 'in-use',
      since: before?.since ?? record.finishedAt,
      nights: (before?.nights ?? 0) + (before?.lastRunId === record.runId ? 0 : 1),
      lastRunId: record.runId,
      detail: q.partial?.reason ?? '',
    };
  }
  for (const q of broken.filter((b) => b.deleted.length > 0)) {
    record.anomalies.push({ kind: 'partial', owner: q.owner, runId: q.runId, attempt: q.attempt, deleted: q.deleted.length, of: q.snapshotIds.length, reason: q.partial?.reason ?? '' });
  }
  await saveLedger(deps.s3, deps.config.reportBucket, ledger);
}

