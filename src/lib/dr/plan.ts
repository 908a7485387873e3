/**
 * "Plan DR Copies": after the run's report (and retention at home), lists what the DR pass copies and deletes,
 * and writes it to `runs/<runId>/dr.json`. Changes nothing in EC2; "Advance DR Copies" copies and deletes.
 *
 * - Copy jobs: one per snapshot of every verified set of this run (its succeeded instances' `snapshots`), plus
 *   every job the last pass (`dr/latest.json`) left unfinished — still copying at its deadline, or never started
 *   for want of a copy slot — so a later pass completes the record. A job carried over too many times fails
 *   `timeout` (CARRY_PASSES).
 * - The DR Region's retention: the stack's copies there (tag `vss-snapshots:stack`), grouped into sets by
 *   instance, run and attempt, decided by the same policy as at home (policy.ts) with the DR rule: the newest
 *   verified copy of an instance is never deleted, only this stack's copies, held ones and those an AMI uses
 *   are kept and reported. Ages count from the source set's start (`vss-snapshots:source-time`), not the copy's.
 *
 * Retry-safe: planning again gives the same jobs (an existing record is kept as it is).
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import { clock, nowIso } from '../clock.ts';
import type { Config, DrSettings } from '../config.ts';
import { groupIntoSets, listInstances, listStackSnapshots } from '../retention/inventory.ts';
import { imagesUsing } from '../retention/plan.ts';
import { decideOwner } from '../retention/policy.ts';
import { loadLedger, readJson, writeJson } from '../retention/record.ts';
import type { RunState } from '../run-state.ts';
import { SET_SIZE_TAG, SOURCE_TIME_TAG } from '../run-id.ts';
import { tagMap } from '../snapshot-sets.ts';
import { DR_LATEST_KEY, isFinalJob, loadDrRecord, progressOfDr, saveDrRecord, setKeyOf } from './record.ts';
import type { CopyJob, DrPointer, DrProgress, DrRecord, DrRetention } from './record.ts';
import { updateCopiesInReport } from './report.ts';

/** A job that an earlier pass left unfinished this many times fails `timeout` instead of being carried again. */
export const CARRY_PASSES = 3;

export interface DrDeps {
  /** The home Region's EC2 (the sources, the instances). */
  home: EC2Client;
  /** The DR Region's EC2 (the copies). */
  dr: EC2Client;
  s3: S3Client;
  config: Config;
}

export const DISABLED: DrProgress = { enabled: false, done: true, waiting: 0, copying: 0, completed: 0, failed: 0, deletions: 0, waitSeconds: 1 };

export async function planDrCopies(deps: DrDeps, state: RunState): Promise<DrProgress> {
  const { config } = deps;
  const dr = config.dr;
  if (!dr) return DISABLED;
  const existing = await loadDrRecord(deps.s3, config.reportBucket, state.runId);
  if (existing) {
    // A retry after the record was saved: the Lambda may have died before naming this pass the latest one,
    // and the next pass carries over only what the latest pass (and the passes it names) left unfinished.
    if (!state.dryRun) await writeJson(deps.s3, config.reportBucket, DR_LATEST_KEY, existing.pointer ?? { runId: state.runId });
    return progressOfDr(existing, 1);
  }

  const record: DrRecord = {
    runId: state.runId,
    region: dr.region,
    sourceRegion: dr.sourceRegion,
    stackId: config.stackId,
    plannedAt: nowIso(),
    reportedAt: clock.now(),
    runStart: Date.parse(state.startedAt),
    deadline: Date.parse(state.startedAt) + dr.deadlineHours * 3_600_000,
    jobs: [],
    quotaRefusals: 0,
    retention: { policy: dr.retention, kept: 0, held: 0, inUse: 0, deferred: 0, queue: [], cursor: 0, deleted: [], refused: [] },
  };
  if (state.dryRun) {
    record.skipped = 'dry run: nothing is copied or deleted';
    record.finishedAt = record.plannedAt;
  } else {
    const tonight = tonightsJobs(state);
    const carried = await carriedJobs(deps, state.runId, new Set(tonight.map((j) => j.instanceId)));
    record.jobs = [...tonight, ...carried.jobs];
    record.pointer = { runId: state.runId, ...(carried.pending.length > 0 ? { pending: carried.pending } : {}) };
  }
  await saveDrRecord(deps.s3, config.reportBucket, record);
  if (record.pointer) await writeJson(deps.s3, config.reportBucket, DR_LATEST_KEY, record.pointer);
  await updateCopiesInReport(deps.s3, config.reportBucket, record);
  return progressOfDr(record, 1);
}

function tonightsJobs(state: RunState): CopyJob[] {
  return state.instances
    .filter((i) => i.phase === 'succeeded')
    .flatMap((i) =>
      i.snapshots.map((s) => ({
        sourceSnapshotId: s.snapshotId,
        volumeId: s.volumeId,
        ...(s.device ? { device: s.device } : {}),
        instanceId: i.instanceId,
        runId: state.runId,
        attempt: i.attempts,
        setSize: i.snapshots.length,
        state: 'waiting' as const,
        attempts: 0,
        passes: 1,
      })),
    );
}

/**
 * What the last pass left unfinished, carried into this one. A copy still running is followed to its end. A copy
 * never started is dropped as `superseded` when tonight copies a newer set of the same instance (the newest set is
 * what DR needs; a fleet larger than the copy slots allow would otherwise pile up carried jobs night after night)
 * unless part of its set is already copied or copying (then the set is finished),
 * and fails `timeout` after CARRY_PASSES passes.
 */
async function carriedJobs(deps: DrDeps, runId: string, copiedTonight: ReadonlySet<string>): Promise<{ jobs: CopyJob[]; pending: string[] }> {
  const latest = await readJson<DrPointer>(deps.s3, deps.config.reportBucket, DR_LATEST_KEY);
  if (!latest) return { jobs: [], pending: [] };
  const jobs: CopyJob[] = [];
  const pending: string[] = [];
  const seen = new Set<string>();
  for (const id of [...new Set([latest.runId, ...(latest.pending ?? [])])].filter((r) => r !== runId)) {
    const previous = await loadDrRecord(deps.s3, deps.config.reportBucket, id);
    if (!previous) continue;
    // A pass still running (a manual run started while the night's pass copies) finishes its own jobs: working
    // them from two passes would double the copies in flight. A later pass carries what it leaves. A pass past
    // its deadline by an hour is over, whatever its record says (its execution failed).
    if (previous.finishedAt === undefined && clock.now() < previous.deadline + 3_600_000) {
      pending.push(id);
      continue;
    }
    for (const job of carryFrom(previous, copiedTonight)) {
      if (seen.has(job.sourceSnapshotId)) continue;
      seen.add(job.sourceSnapshotId);
      jobs.push(job);
    }
  }
  return { jobs, pending };
}

function carryFrom(previous: DrRecord, copiedTonight: ReadonlySet<string>): CopyJob[] {
  // Sets with a copy made or under way are finished (half a set in the DR Region restores nothing whole).
  const begun = new Set(previous.jobs.filter((j) => j.state !== 'waiting' && j.state !== 'failed').map(setKeyOf));
  return previous.jobs
    .filter((j) => !isFinalJob(j))
    .map((j) => {
      const setBegun = j.setBegun === true || begun.has(setKeyOf(j));
      const carried: CopyJob = { ...j, fromRun: j.fromRun ?? previous.runId, passes: j.passes + 1, ...(setBegun ? { setBegun } : {}) };
      if (carried.state === 'waiting' && !setBegun && copiedTonight.has(carried.instanceId)) {
        return {
          ...carried,
          state: 'failed' as const,
          code: 'superseded' as const,
          reason: `never copied: the DR Region's copy slots stayed full until the pass's deadline, and tonight copies a newer set of ${carried.instanceId} instead`,
        };
      }
      if (carried.passes > CARRY_PASSES && carried.state === 'waiting') {
        return {
          ...carried,
          state: 'failed' as const,
          code: 'timeout' as const,
          reason: `not copied after ${CARRY_PASSES} nightly passes (the DR Region's copy slots stayed full): raise the concurrent copy quota or DR_COPY_CONCURRENCY, or lengthen DR_COPY_DEADLINE_HOURS`,
        };
      }
      return carried;
    });
}

/**
 * The DR Region's retention queue: the stack's copies there, by the DR rule, oldest first, up to the cap. Planned
 * by Advance DR Copies once the pass's copies are final (or at its deadline), so tonight's copies count.
 */
export async function planDrRetention(deps: DrDeps, dr: DrSettings, runStart: number, unfinished: ReadonlySet<string> = new Set()): Promise<DrRetention> {
  const now = clock.now();
  const [copies, instances, ledger] = await Promise.all([listStackSnapshots(deps.dr, deps.config.stackId), listInstances(deps.home), loadLedger(deps.s3, deps.config.reportBucket)]);
  const { sets, unidentified } = groupIntoSets(copies, instances);
  const sourceStart = new Map(copies.map((c) => [c.SnapshotId, Date.parse(tagMap(c)[SOURCE_TIME_TAG] ?? '')]));
  const setSize = new Map(copies.map((c) => [c.SnapshotId, Number(tagMap(c)[SET_SIZE_TAG])]));
  for (const set of sets) {
    const starts = set.snapshotIds.map((id) => sourceStart.get(id) ?? Number.NaN).filter((t) => Number.isFinite(t));
    if (starts.length > 0) set.start = Math.min(...starts);
    // A set with a volume whose copy was never made (failed, or not started yet) cannot be restored here: it is
    // not a verified set, so it never stands in for the newest verified one nor pushes one out by count.
    const expected = Math.max(0, ...set.snapshotIds.map((id) => setSize.get(id) ?? 0).filter((n) => Number.isInteger(n)));
    if (set.snapshotIds.length < expected && set.kind === 'verified') set.kind = 'unverified';
    // A set with a copy still to be made (carried to the next pass) is kept like one with a pending copy.
    if (unfinished.has(set.key)) set.pending = true;
  }
  const retention: DrRetention = { policy: dr.retention, kept: unidentified.length, held: 0, inUse: 0, deferred: 0, queue: [], cursor: 0, deleted: [], refused: [] };
  const byOwner = new Map<string, typeof sets>();
  for (const set of sets) byOwner.set(set.owner, [...(byOwner.get(set.owner) ?? []), set]);
  const due: { set: (typeof sets)[number]; reason: string }[] = [];
  for (const [owner, ownerSets] of byOwner) {
    const info = owner.startsWith('i-') ? instances.get(owner) : undefined;
    const exists = info !== undefined && info.state !== 'terminated';
    const goneSince = exists ? undefined : Date.parse(ledger.gone[owner] ?? new Date(now).toISOString());
    for (const d of decideOwner(ownerSets, { exists, ...(goneSince !== undefined ? { goneSince } : {}) }, { runStart, now, defaults: dr.retention })) {
      if ('keep' in d) {
        retention.kept += d.set.snapshotIds.length;
        if (d.keep === 'held') retention.held += d.set.snapshotIds.length;
      } else due.push({ set: d.set, reason: `DR copy: ${d.deleteReason}` });
    }
  }
  due.sort((a, b) => a.set.start - b.set.start || a.set.key.localeCompare(b.set.key));
  const used = await imagesUsing(deps.dr, due.flatMap((d) => d.set.snapshotIds));
  let queued = 0;
  for (const d of due) {
    if (d.set.snapshotIds.some((id) => used.has(id))) {
      retention.inUse += d.set.snapshotIds.length;
      retention.kept += d.set.snapshotIds.length;
      continue;
    }
    if (queued + d.set.snapshotIds.length > dr.retention.maxDeletes) {
      retention.deferred += d.set.snapshotIds.length;
      retention.kept += d.set.snapshotIds.length;
      continue;
    }
    queued += d.set.snapshotIds.length;
    retention.queue.push({ key: d.set.key, owner: d.set.owner, runId: d.set.runId, snapshotIds: d.set.snapshotIds, reason: d.reason, deleted: [] });
  }
  return retention;
}
