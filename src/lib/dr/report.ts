/**
 * The run report's `copies` section (contract §4): how many of the sets are protected in the DR Region, how many
 * are still being copied, and each snapshot whose copy failed with the reason and what to do. Written when the
 * report is first written (nothing copied yet), and again by every DR step, so the record completes as copies do.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { DrSettings } from '../config.ts';
import { putReport } from '../finish-run.ts';
import type { RunReport } from '../report.ts';
import { readJson } from '../retention/record.ts';
import { reportKey } from '../run-state.ts';
import type { DrRecord } from './record.ts';
import { setKeyOf } from './record.ts';

export interface CopiesReport {
  region: string;
  sourceRegion: string;
  /** Sets (all volumes of one attempt) whose every snapshot has a completed copy in the DR Region. */
  protected: number;
  /** Sets with a copy still waiting or copying. */
  inProgress: number;
  /** Snapshots whose copy failed for good (after the bounded retries), with the reason and what to do. */
  failed: { instanceId: string; snapshotId: string; runId: string; code: string; reason: string }[];
  /** Snapshots not copied yet because the pass is waiting for a free copy slot (or stopped at its deadline). */
  notStarted: number;
  /** Snapshots whose copy is running. */
  copying: number;
  /** Jobs an earlier pass left unfinished and this one carried over. */
  carriedOver: number;
  /** The pass ended (every copy final, or the deadline passed: what is unfinished goes to the next pass). */
  complete: boolean;
  deadline?: string;
  /** Why no copy was made (a dry run), if none was. */
  skipped?: string;
  /** The DR Region's retention pass: copies kept, deleted, held, used by an AMI, deferred. */
  retention?: { kept: number; deleted: number; held: number; inUse: number; deferred: number; refused: number };
  /** The DR alert (published separately from the run's alert), or null. */
  alert: null | { subject: string; message: string };
}

/** Before the DR pass started: every verified set of the run is still to be copied. */
export function pendingCopies(dr: DrSettings, verifiedSets: number, dryRun: boolean): CopiesReport {
  return {
    region: dr.region,
    sourceRegion: dr.sourceRegion,
    protected: 0,
    inProgress: dryRun ? 0 : verifiedSets,
    failed: [],
    notStarted: 0,
    copying: 0,
    carriedOver: 0,
    complete: false,
    ...(dryRun ? { skipped: 'dry run: nothing is copied' } : {}),
    alert: null,
  };
}

export function toCopiesReport(record: DrRecord): CopiesReport {
  const bySet = new Map<string, DrRecord['jobs']>();
  for (const job of record.jobs) bySet.set(setKeyOf(job), [...(bySet.get(setKeyOf(job)) ?? []), job]);
  let protectedSets = 0;
  let inProgress = 0;
  for (const jobs of bySet.values()) {
    if (jobs.every((j) => j.state === 'completed')) protectedSets += 1;
    else if (!jobs.some((j) => j.state === 'failed')) inProgress += 1;
  }
  const r = record.retention;
  return {
    region: record.region,
    sourceRegion: record.sourceRegion,
    protected: protectedSets,
    inProgress,
    failed: record.jobs
      .filter((j) => j.state === 'failed')
      .map((j) => ({ instanceId: j.instanceId, snapshotId: j.sourceSnapshotId, runId: j.runId, code: j.code ?? 'copy-error', reason: j.reason ?? 'the copy failed' })),
    notStarted: record.jobs.filter((j) => j.state === 'waiting').length,
    copying: record.jobs.filter((j) => j.state === 'copying' || j.state === 'starting').length,
    carriedOver: record.jobs.filter((j) => j.fromRun !== undefined).length,
    complete: record.finishedAt !== undefined,
    deadline: new Date(record.deadline).toISOString(),
    ...(record.skipped ? { skipped: record.skipped } : {}),
    retention: { kept: r.kept, deleted: r.deleted.length, held: r.held, inUse: r.inUse, deferred: r.deferred, refused: r.refused.length },
    alert: record.alert ?? null,
  };
}

/** Puts the record's state into the run's report (the report was written by Finish Run; it stays the one place to look). */
export async function updateCopiesInReport(s3: S3Client, bucket: string, record: DrRecord): Promise<void> {
  const report = await readJson<RunReport>(s3, bucket, reportKey(record.runId));
  if (!report) return;
  report.copies = toCopiesReport(record);
  await putReport(s3, bucket, report);
}
