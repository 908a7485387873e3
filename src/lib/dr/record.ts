/**
 * The DR pass's record, `runs/<runId>/dr.json` in the report bucket: one job per snapshot to copy into the DR
 * Region (this run's verified sets, and what an earlier pass left unfinished), the DR Region's retention queue,
 * and what was done. Only counts travel in the workflow's payload (`$.dr`). `dr/latest.json` names the last
 * pass, whose unfinished jobs the next pass carries over.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { RetentionDefaults } from '../config.ts';
import { readJson, writeJson } from '../retention/record.ts';

export const drRecordKey = (runId: string): string => `runs/${runId}/dr.json`;
export const DR_LATEST_KEY = 'dr/latest.json';

/**
 * `dr/latest.json`: the last pass planned, whose unfinished jobs the next pass carries over; and passes that were
 * still running when it was planned (a manual run during the night's pass), whose leftovers are carried later.
 */
export interface DrPointer {
  runId: string;
  pending?: string[];
}

/**
 * `waiting`: not started (or to be tried again); `starting`: CopySnapshot was called and its answer is not known
 * (lost, or the Lambda died): the copy may exist; `copying`: EC2 gave the copy's id, not completed yet.
 */
export type CopyState = 'waiting' | 'starting' | 'copying' | 'completed' | 'failed';

/** Why a snapshot has no completed copy: what the DR alert says, with what to do. */
export type CopyFailureCode = 'source-deleted' | 'kms' | 'quota' | 'copy-error' | 'refused' | 'timeout' | 'superseded';

export interface CopyJob {
  sourceSnapshotId: string;
  /** The source snapshot's volume (a copy's own VolumeId is the meaningless vol-ffffffff). */
  volumeId: string;
  device?: string;
  instanceId: string;
  /** The run and attempt that made the set. */
  runId: string;
  attempt: number;
  /** How many snapshots the whole set has (its copies' vss-snapshots:set-size); kept when the job is carried over. */
  setSize: number;
  state: CopyState;
  /** CopySnapshot calls made for this snapshot (a quota refusal does not count). */
  attempts: number;
  copyId?: string;
  /** When the current copy was asked for (epoch ms). */
  startedAt?: number;
  /** The copy's `Progress` when last read (0-100): how long it still needs, for the next poll. */
  progress?: number;
  completedAt?: number;
  code?: CopyFailureCode;
  reason?: string;
  /** Carried over from an earlier pass: the run id of the pass that planned it. */
  fromRun?: string;
  /** DR passes this job has been part of (1 for tonight's). */
  passes: number;
  /** Carried over: another snapshot of its set has a copy (made or under way), so the set is finished, never dropped. */
  setBegun?: boolean;
  /** In the record of the night that planned it: the later pass that finished it (the record completed later). */
  finishedBy?: string;
}

/** One DR Region set queued for deletion by the DR retention rule. */
export interface DrQueuedSet {
  key: string;
  owner: string;
  runId: string;
  snapshotIds: string[];
  reason: string;
  deleted: string[];
  /** EC2 refused a member (in use by an AMI since the plan): the rest is kept and reported. */
  refused?: string;
}

export interface DrRetention {
  policy: RetentionDefaults;
  /** When the queue was planned: once every copy of the pass is final (or at the deadline), so tonight's count. */
  plannedAt?: string;
  /** Copies kept (by any rule), held, used by an AMI, deferred to the next pass. */
  kept: number;
  held: number;
  inUse: number;
  deferred: number;
  queue: DrQueuedSet[];
  cursor: number;
  deleted: { snapshotId: string; instanceId?: string; runId: string; reason: string }[];
  refused: { snapshotIds: string[]; instanceId?: string; runId: string; reason: string }[];
}

export interface DrRecord {
  runId: string;
  region: string;
  sourceRegion: string;
  /** This stack's id: every copy carries it (vss-snapshots:stack), which IAM and DR retention require. */
  stackId: string;
  plannedAt: string;
  /** The run's start (epoch ms): DR retention never touches sets from it on. */
  runStart: number;
  /** When the pass stops polling (epoch ms): what is unfinished then is left to the next pass. */
  deadline: number;
  /** What this pass wrote to dr/latest.json (a retried Plan DR Copies writes it again). Absent on a dry run. */
  pointer?: DrPointer;
  /** Why the pass does nothing (dry run). */
  skipped?: string;
  jobs: CopyJob[];
  /** Times CopySnapshot answered ResourceLimitExceeded (the destination's concurrent copy quota). */
  quotaRefusals: number;
  retention: DrRetention;
  /** Set when the pass ended (every job final, or the deadline). */
  finishedAt?: string;
  /** When the report's `copies` section was last rewritten (epoch ms): every REPORT_EVERY_MS while the pass runs. */
  reportedAt?: number;
  /** The DR alert's SNS message id, once published (never published twice). */
  alertMessageId?: string;
  alert?: { subject: string; message: string };
}

/** What travels in the workflow's payload (`$.dr`): counts only. */
export interface DrProgress {
  enabled: boolean;
  done: boolean;
  waiting: number;
  copying: number;
  completed: number;
  failed: number;
  /** DR Region snapshots still queued for deletion. */
  deletions: number;
  /** Seconds the workflow waits before the next Advance DR Copies. */
  waitSeconds: number;
}

export const loadDrRecord = (s3: S3Client, bucket: string, runId: string) => readJson<DrRecord>(s3, bucket, drRecordKey(runId));
export const saveDrRecord = (s3: S3Client, bucket: string, record: DrRecord) => writeJson(s3, bucket, drRecordKey(record.runId), record);

export const inFlight = (job: CopyJob): boolean => job.state === 'starting' || job.state === 'copying';
export const isFinalJob = (job: CopyJob): boolean => job.state === 'completed' || job.state === 'failed';

/**
 * Source snapshots the last DR pass left unfinished (waiting, starting or copying): the next pass carries them
 * over, so they must stay copyable — retention does not archive them (an archived snapshot cannot be copied).
 */
export async function unfinishedDrSources(s3: S3Client, bucket: string): Promise<Set<string>> {
  const latest = await readJson<{ runId: string }>(s3, bucket, DR_LATEST_KEY);
  const record = latest ? await loadDrRecord(s3, bucket, latest.runId) : undefined;
  return new Set((record?.jobs ?? []).filter((j) => !isFinalJob(j)).map((j) => j.sourceSnapshotId));
}

export function progressOfDr(record: DrRecord, waitSeconds: number): DrProgress {
  const count = (s: CopyState) => record.jobs.filter((j) => j.state === s).length;
  return {
    enabled: true,
    done: record.finishedAt !== undefined,
    waiting: count('waiting'),
    copying: count('copying') + count('starting'),
    completed: count('completed'),
    failed: count('failed'),
    deletions: deletionsLeft(record),
    waitSeconds,
  };
}

export const deletionsLeft = (record: DrRecord): number => record.retention.queue.slice(record.retention.cursor).reduce((n, q) => n + q.snapshotIds.length - q.deleted.length, 0);

/** The set a job belongs to: one attempt of one run of one instance. */
export const setKeyOf = (job: Pick<CopyJob, 'instanceId' | 'runId' | 'attempt'>): string => `${job.instanceId}/${job.runId}/${job.attempt}`;
