/**
 * Retention's two objects in the report bucket:
 * - `runs/<runId>/retention.json`, the run's retention record: the plan (which sets are due tonight, in order),
 *   what was deleted, kept, held, in use or deferred. Only counts travel in the workflow's payload.
 * - `retention/ledger.json`, what retention remembers between nights: since when an instance is gone, sets that
 *   could not be deleted night after night, and the deferred backlog of past nights.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { RetentionDefaults } from '../config.ts';
import type { RetentionMode } from '../execution-input.ts';
import { retentionAnomalyText } from '../report-text.ts';
import type { KeepReason } from './policy.ts';

export const retentionKey = (runId: string): string => `runs/${runId}/retention.json`;

/** What travels in the workflow's payload (`$.retention`): counts only. */
export interface RetentionProgress {
  mode: RetentionMode;
  /** Sets still to delete this run (0: the run is over after Finish Run). */
  remaining: number;
  deleted: number;
  deferred: number;
  /** Seconds the workflow waits before the next Apply Retention (EC2's DeleteSnapshot bucket refills). */
  waitSeconds: number;
}

/** The longest wait between two Apply Retention invocations: EC2's DeleteSnapshot bucket refills 100 tokens in 20 s. */
export const DELETE_WAIT_SECONDS = 20;

export function progressOf(record: RetentionRecord): RetentionProgress {
  const archiveLeft = record.archive ? record.archive.queue.length - record.archive.cursor : 0;
  return {
    mode: record.mode,
    remaining: record.mode === 'apply' && record.finishedAt === undefined ? record.queue.length - record.cursor + archiveLeft : 0,
    deleted: record.deleted.length,
    deferred: record.deferred,
    waitSeconds: DELETE_WAIT_SECONDS,
  };
}
export const LEDGER_KEY = 'retention/ledger.json';

/** One snapshot in the report's lists. `instanceId` absent when only its volume is known. */
export interface RetentionEntry {
  snapshotId: string;
  instanceId?: string;
  volumeOwner?: string;
  runId: string;
  reason: string;
}

export interface QueuedSet {
  key: string;
  owner: string;
  runId: string;
  attempt: number;
  snapshotIds: string[];
  reason: string;
  /** Members deleted so far (or found already gone). */
  deleted: string[];
  /** Set when the set could not be deleted whole: why, and which members remain. */
  partial?: { reason: string; remaining: string[] };
}

/** A set queued for the archive tier tonight: the members still to archive. */
export interface ArchiveQueuedSet {
  key: string;
  owner: string;
  runId: string;
  attempt: number;
  snapshotIds: string[];
  reason: string;
  /** Members ModifySnapshotTier accepted (or found already archiving). */
  archived: string[];
  /** Set when EC2 refused a member: why (the rest of the set waits for the next night). */
  failed?: string;
}

/** What the archive tier did this run (README "Archive tier"); absent when archive is off and nothing is archived. */
export interface ArchiveRecord {
  afterDays: number;
  /** Sets to archive tonight, oldest first; `cursor` is the next one. */
  queue: ArchiveQueuedSet[];
  cursor: number;
  /** Snapshots ModifySnapshotTier was called for this run (archival takes hours; they show `archive` afterwards). */
  archived: RetentionEntry[];
  /** Preview: what apply would archive. */
  planned?: RetentionEntry[];
  /** Snapshots eligible but left for the next night: the account's 25 in-progress archives were taken. */
  deferred: number;
  /** Snapshots EC2 refused to archive, with its answer. */
  failed: RetentionEntry[];
  /** Due for deletion, kept until their 90 days in the archive are over. */
  deletionDeferred: (RetentionEntry & { deletableFrom: string })[];
  /** Eligible sets kept in the standard tier because an AMI uses a snapshot, or a volume has 25 archived. */
  notArchived: RetentionEntry[];
  /** This stack's snapshots in the archive tier or being archived, before tonight's archives. */
  inArchive: number;
  /** Archives in progress in the account (every tool's) when the plan was made. */
  inProgress: number;
  /** Why the setting archives nothing on the stack defaults, if so. */
  note?: string;
}

export interface PartialSet {
  instanceId?: string;
  volumeOwner?: string;
  runId: string;
  attempt: number;
  deleted: string[];
  remaining: string[];
  reason: string;
}

export interface RetentionRecord {
  runId: string;
  mode: RetentionMode;
  stackId: string;
  policy: RetentionDefaults;
  /** Why nothing was looked at or deleted (mode skip, or this run's sets not all verified). */
  skipped?: string;
  /** Snapshots of this stack kept (after this run's deletions). */
  kept: number;
  keptBy: Partial<Record<KeepReason | 'in-use' | 'deferred' | 'unidentified' | 'archive-minimum', number>>;
  held: RetentionEntry[];
  inUse: (RetentionEntry & { imageIds: string[] })[];
  /** The sets due tonight, oldest first; `cursor` is the next one to delete. */
  queue: QueuedSet[];
  cursor: number;
  deleted: RetentionEntry[];
  /** Preview: what apply would delete tonight. */
  planned?: RetentionEntry[];
  partial: PartialSet[];
  /** Snapshots due but left for the next run (per-run cap). */
  deferred: number;
  /** Instances whose retain tag was not understood: the stack defaults applied. */
  overrides: { instanceId: string; value: string; error?: string }[];
  /** What the alert should name; worded by report-text.ts. */
  anomalies: RetentionAnomaly[];
  /** The archive tier's part (after the deletions). */
  archive?: ArchiveRecord;
  plannedAt: string;
  finishedAt?: string;
}

/** Things retention cannot fix by itself, for the report and the alert (report-text.ts words them). */
export type RetentionAnomaly =
  | { kind: 'in-use'; sets: number; runs: number; imageIds: string[] }
  | { kind: 'partial-before'; sets: number }
  | { kind: 'partial'; owner: string; runId: string; attempt: number; deleted: number; of: number; reason: string }
  | { kind: 'backlog'; deferred: number; previous: number; maxDeletes: number }
  | { kind: 'retain-tag'; instanceId: string; error: string };

export interface Ledger {
  version: 1;
  /** Owner (instance or volume id) → when retention first saw it gone (ISO). */
  gone: Record<string, string>;
  /** Set key → a set due for deletion that could not be deleted: why, since when, on how many runs. */
  stuck: Record<string, { reason: 'in-use' | 'partial'; since: string; nights: number; lastRunId: string; detail: string }>;
  /** The deferred backlog of the last runs, newest last. */
  deferred: { runId: string; count: number }[];
  /** Volume → the instance it was last seen attached to, for volumes with snapshots of this stack. */
  volumes?: Record<string, string>;
}

export const emptyLedger = (): Ledger => ({ version: 1, gone: {}, stuck: {}, deferred: [], volumes: {} });

export async function readJson<T>(s3: S3Client, bucket: string, key: string): Promise<T | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await out.Body?.transformToString();
    return text ? (JSON.parse(text) as T) : undefined;
  } catch (error) {
    if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) return undefined;
    throw error;
  }
}

export async function writeJson(s3: S3Client, bucket: string, key: string, value: unknown): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(value), ContentType: 'application/json' }));
}

export const loadRetentionRecord = (s3: S3Client, bucket: string, runId: string) => readJson<RetentionRecord>(s3, bucket, retentionKey(runId));
export const saveRetentionRecord = (s3: S3Client, bucket: string, record: RetentionRecord) => writeJson(s3, bucket, retentionKey(record.runId), record);
export const loadLedger = async (s3: S3Client, bucket: string): Promise<Ledger> => (await readJson<Ledger>(s3, bucket, LEDGER_KEY)) ?? emptyLedger();
export const saveLedger = (s3: S3Client, bucket: string, ledger: Ledger) => writeJson(s3, bucket, LEDGER_KEY, ledger);

/** The entries of a set's snapshots, as the report lists them. */
export function entriesOf(set: { owner: string; runId: string }, ids: readonly string[], reason: string): RetentionEntry[] {
  const who = set.owner.startsWith('vol-') ? { volumeOwner: set.owner } : { instanceId: set.owner };
  return ids.map((snapshotId) => ({ snapshotId, ...who, runId: set.runId, reason }));
}

/** The run report's top-level `retention` (contract §4): what this run's retention pass kept, deleted, held, deferred. */
export interface RetentionReport {
  mode: RetentionMode;
  /**
   * false while Apply Retention is still deleting: Finish Run writes the report (and the alert goes out) before
   * the deletions, with `planned` the sets queued; the last Apply Retention rewrites this section when done.
   */
  finished: boolean;
  /** Snapshots of this stack kept (preview: that would be kept). */
  kept: number;
  deleted: RetentionEntry[];
  held: RetentionEntry[];
  inUse: (RetentionEntry & { imageIds: string[] })[];
  deferred: number;
  /** Sets only partly deleted: what went, what is left, why. */
  partial: PartialSet[];
  /** Preview: what apply would delete. Apply, while not finished: what is still queued for deletion tonight. */
  planned?: RetentionEntry[];
  /** Kept snapshots by the rule that kept them. */
  keptBy: RetentionRecord['keptBy'];
  policy: RetentionDefaults;
  overrides: RetentionRecord['overrides'];
  anomalies: string[];
  skipped?: string;
  /** The archive tier (README "Archive tier"), when it is on or this stack has archived snapshots. */
  archive?: ArchiveReport;
}

/** The report's `retention.archive`. */
export interface ArchiveReport {
  afterDays: number;
  /** Snapshots archived this run (ModifySnapshotTier accepted). */
  archived: RetentionEntry[];
  /** Preview: what apply would archive. Apply, while not finished: still queued. */
  planned?: RetentionEntry[];
  deferred: number;
  failed: RetentionEntry[];
  deletionDeferred: ArchiveRecord['deletionDeferred'];
  notArchived: RetentionEntry[];
  inArchive: number;
  inProgress: number;
  note?: string;
}

function toArchiveReport(a: ArchiveRecord, finished: boolean): ArchiveReport {
  const queued = a.queue.slice(a.cursor).flatMap((q) => entriesOf(q, q.snapshotIds.filter((id) => !q.archived.includes(id)), q.reason));
  return {
    afterDays: a.afterDays,
    archived: a.archived,
    ...(a.planned ? { planned: a.planned } : !finished && queued.length > 0 ? { planned: queued } : {}),
    deferred: a.deferred,
    failed: a.failed,
    deletionDeferred: a.deletionDeferred,
    notArchived: a.notArchived,
    inArchive: a.inArchive,
    inProgress: a.inProgress,
    ...(a.note ? { note: a.note } : {}),
  };
}

export function toRetentionReport(record: RetentionRecord): RetentionReport {
  const anomalies = record.anomalies.map(retentionAnomalyText);
  const finished = record.finishedAt !== undefined;
  const queued = record.queue.slice(record.cursor).flatMap((q) => entriesOf(q, q.snapshotIds.filter((id) => !q.deleted.includes(id)), q.reason));
  return {
    mode: record.mode,
    finished,
    kept: record.kept,
    deleted: record.deleted,
    held: record.held,
    inUse: record.inUse,
    deferred: record.deferred,
    partial: record.partial,
    ...(record.planned ? { planned: record.planned } : !finished && queued.length > 0 ? { planned: queued } : {}),
    keptBy: record.keptBy,
    policy: record.policy,
    overrides: record.overrides,
    anomalies,
    ...(record.skipped ? { skipped: record.skipped } : {}),
    ...(record.archive ? { archive: toArchiveReport(record.archive, finished) } : {}),
  };
}
