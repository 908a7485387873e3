/**
 * "Advance DR Copies": one turn of the DR pass. The workflow calls it, waits as long as it says (Wait For
 * Copies), and calls it again until every job is final and the DR deletions are done, or the deadline has
 * passed. No Lambda waits for a copy: a turn reads where the copies are, starts what fits, deletes what the DR
 * rule expired, saves.
 *
 * 1. Reconcile the copies in flight, read by their `vss-snapshots:source-snapshot` tag (given in the call, so a
 *    copy carries it from the start; CopySnapshot has no client token, and the SDK retries a call whose answer
 *    was lost, so one source can get two copies): `completed` protects the snapshot; `error` (a destination KMS
 *    key that is missing, disabled or lacks a grant fails this way, later: CopySnapshot API reference) deletes
 *    the errored copy and tries again, up to DR_COPY_ATTEMPTS; a second copy of a source is deleted; a call
 *    whose copy is not listed within CONFIRM_MS (EC2 lists new snapshots late) is taken as never made.
 * 2. Start copies while fewer than DR_COPY_CONCURRENCY are in flight (20 per destination Region by default:
 *    "Copy an Amazon EBS snapshot", EBS user guide). Before a call, the DR Region is searched for a copy of the
 *    same source (a pass that crashed, a concurrent manual run): an existing copy is adopted, never duplicated.
 *    The jobs are saved as `starting` before the calls (the intent), so a Lambda that dies mid-turn leaves jobs
 *    that step 1 resolves. ResourceLimitExceeded (copies of other tools fill the quota) puts the job back and
 *    stops starting for this turn; InvalidSnapshot.NotFound fails it `source-deleted`.
 * 3. Once the pass's copies are final (or at the deadline), plan the DR Region's retention (plan.ts), then
 *    delete what it expired, whole sets, at most DELETE_SLICE per turn.
 * 4. Then the pass ends: the report's `copies` is written and a DR alert is published when a snapshot is not
 *    protected (finish.ts). While it runs, the report is rewritten hourly and the next turn is due when the copy
 *    expected to end first is (nextPollSeconds).
 */
import { CopySnapshotCommand, DeleteSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import type { SNSClient } from '@aws-sdk/client-sns';
import { clock } from '../clock.ts';
import { chunk } from '../discovery.ts';
import { RunStateNotFoundError } from '../errors.ts';
import { deleteRemaining, sliceHasRoom } from '../retention/apply.ts';
import { DELETE_WAIT_SECONDS } from '../retention/record.ts';
import { INSTANCE_TAG, SET_SIZE_TAG, SOURCE_REGION_TAG, SOURCE_SNAPSHOT_TAG, SOURCE_TIME_TAG, SOURCE_VOLUME_TAG, STACK_TAG } from '../run-id.ts';
import { tagMap } from '../snapshot-sets.ts';
import { isRefusal } from '../verify-snapshots.ts';
import { finishDrPass } from './finish.ts';
import { planDrRetention } from './plan.ts';
import type { DrDeps } from './plan.ts';
import { deletionsLeft, drRecordKey, inFlight, isFinalJob, loadDrRecord, progressOfDr, saveDrRecord, setKeyOf } from './record.ts';
import type { CopyJob, DrProgress, DrRecord } from './record.ts';
import { updateCopiesInReport } from './report.ts';

/** No more copying this pass: every job final, or the deadline passed (what is unfinished goes to the next pass). */
const copyingOver = (record: DrRecord): boolean => record.jobs.every(isFinalJob) || clock.now() >= record.deadline;

/** A copy asked for and not listed this long after is taken as never made (EC2 lists new snapshots late). */
export const CONFIRM_MS = 5 * 60_000;
/** EC2 filters take up to 200 values. */
const VALUES_PER_FILTER = 200;
/** Tags EC2 reserves (`aws:`) cannot be given to CreateTags/TagSpecifications. EC2 allows 50 tags a resource. */
const RESERVED_TAG = /^aws:/i;
const MAX_TAGS = 50;

export async function advanceDrCopies(deps: DrDeps & { sns: SNSClient }, runId: string): Promise<DrProgress> {
  const { config } = deps;
  const dr = config.dr;
  const record = await loadDrRecord(deps.s3, config.reportBucket, runId);
  if (!record) throw new RunStateNotFoundError(`DR record s3://${config.reportBucket}/${drRecordKey(runId)} does not exist; Plan DR Copies must run first.`);
  if (!dr || record.finishedAt !== undefined) {
    if (record.finishedAt !== undefined) await finishDrPass(deps, record);
    return progressOfDr(record, 1);
  }
  const started = clock.now();
  // The report is the run's whole report (megabytes at 10,000 instances): rewritten hourly while copies run, not
  // every turn; the DR record has every turn's state.
  const reportDue = clock.now() - (record.reportedAt ?? 0) >= REPORT_EVERY_MS;
  if (reportDue) record.reportedAt = clock.now();
  try {
    await reconcile(deps.dr, record, dr.maxAttempts);
    if (clock.now() < record.deadline) await startCopies(deps, record);
    // The DR rule is applied once tonight's copies are final (so they count), or at the deadline.
    if (copyingOver(record) && record.retention.plannedAt === undefined) {
      const unfinished = new Set(record.jobs.filter((j) => !isFinalJob(j)).map(setKeyOf));
      record.retention = { ...(await planDrRetention(deps, dr, record.runStart, unfinished)), plannedAt: new Date(clock.now()).toISOString() };
    }
    await deleteExpired(deps.dr, record, started);
  } finally {
    await saveDrRecord(deps.s3, config.reportBucket, record);
  }
  const over = copyingOver(record) && record.retention.plannedAt !== undefined && deletionsLeft(record) === 0;
  if (over) {
    await removeDuplicateCopies(deps.dr, record);
    await finishDrPass(deps, record);
    return progressOfDr(record, 1);
  }
  if (reportDue) await updateCopiesInReport(deps.s3, config.reportBucket, record);
  // Deletions queued: come back when EC2's DeleteSnapshot bucket has refilled (90 a turn, 20 s: 4.5 a second);
  // else at the poll interval, but not past the deadline.
  const wait = deletionsLeft(record) > 0 ? Math.min(dr.pollSeconds, DELETE_WAIT_SECONDS) : nextPollSeconds(record, dr.pollSeconds, dr.concurrency);
  const untilDeadline = Math.ceil((record.deadline - clock.now()) / 1000);
  return progressOfDr(record, untilDeadline > 0 ? Math.max(1, Math.min(wait, untilDeadline)) : wait);
}

/** How often the run report's `copies` section is rewritten while the pass runs. */
export const REPORT_EVERY_MS = 3_600_000;

/** The longest wait between two turns while copies run: a copy that fails is noticed within half an hour. */
export const MAX_POLL_SECONDS = 1_800;

/**
 * When to look again. A slot frees only when a copy ends, so while every slot is busy the pass sleeps until the
 * copy expected to end first is due, estimated from its `Progress` and how long it has run (full copies of large
 * volumes take hours: polling them every two minutes costs turns and nothing else), never less than
 * DR_POLL_SECONDS nor more than MAX_POLL_SECONDS. A copy without progress yet, an unconfirmed call, or a free
 * slot with jobs waiting (other tools' copies filled the quota): the poll interval.
 */
export function nextPollSeconds(record: DrRecord, pollSeconds: number, concurrency: number): number {
  const now = clock.now();
  const flying = record.jobs.filter(inFlight);
  const waiting = record.jobs.some((j) => j.state === 'waiting');
  if (flying.length === 0 || (waiting && flying.length < concurrency)) return pollSeconds;
  let soonest = Number.POSITIVE_INFINITY;
  for (const job of flying) {
    const p = job.progress ?? 0;
    if (job.state !== 'copying' || job.startedAt === undefined || p <= 0) return pollSeconds;
    soonest = Math.min(soonest, ((now - job.startedAt) * (100 - p)) / p / 1000);
  }
  return Math.round(Math.min(MAX_POLL_SECONDS, Math.max(pollSeconds, soonest)));
}

/** Lists DR Region snapshots by a filter, every page, 200 values a call. */
async function listBy(ec2: EC2Client, name: string, values: readonly string[], extra: { Name: string; Values: string[] }[] = []): Promise<Snapshot[]> {
  const out: Snapshot[] = [];
  for (const part of chunk(values, VALUES_PER_FILTER)) {
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: name, Values: [...part] }, ...extra], MaxResults: 1000, NextToken: nextToken }));
      out.push(...(page.Snapshots ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
  }
  return out;
}

/**
 * Reads where every copy in flight is. By the source tag, not by copy id: the SDK retries a CopySnapshot whose
 * answer timed out, and CopySnapshot has no client token, so one source can get two copies; reading by source
 * sees both. The job keeps its own copy (or, errored or unknown, the best other one: completed before pending);
 * every other copy of the same source is deleted, errored ones too, so exactly one copy remains.
 */
async function reconcile(ec2: EC2Client, record: DrRecord, maxAttempts: number): Promise<void> {
  const open = record.jobs.filter(inFlight);
  if (open.length === 0) return;
  const found = await copiesBySource(ec2, record.stackId, open);
  for (const job of open) {
    const list = found.get(job.sourceSnapshotId) ?? [];
    const own = list.find((c) => c.SnapshotId === job.copyId);
    const usable = usableFirst(list);
    const chosen = own && own.State !== 'error' ? own : usable[0];
    for (const other of list) if (other !== chosen) await deleteQuietly(ec2, other.SnapshotId as string);
    if (chosen) {
      adopt(job, chosen);
      continue;
    }
    if (own?.State === 'error') {
      const message = own.StateMessage ?? 'no message';
      const kms = /kms|key|grant|encrypt/i.test(message);
      retryOrFail(job, maxAttempts, kms ? 'kms' : 'copy-error', kms ? kmsAdvice(record.region, message) : `the copy ended in error (${message})`);
      continue;
    }
    // Not listed: new (EC2 lists late), never made (a lost call that did not happen), or deleted by someone since.
    if (clock.now() - (job.startedAt ?? 0) > CONFIRM_MS) {
      retryOrFail(job, maxAttempts, 'copy-error', job.copyId ? `the copy ${job.copyId} disappeared from ${record.region} before it completed` : `CopySnapshot was called but no copy appeared in ${record.region}`);
    }
  }
}

const rank = (s: Snapshot): number => (s.State === 'completed' ? 0 : s.State === 'pending' ? 1 : 2);

/** The copies of one source that can serve, best first: completed before pending, then the oldest. */
const usableFirst = (list: readonly Snapshot[]): Snapshot[] =>
  list.filter((c) => c.State !== 'error').sort((a, b) => rank(a) - rank(b) || (a.StartTime?.getTime() ?? 0) - (b.StartTime?.getTime() ?? 0));

/** This stack's copies of the jobs' sources in the DR Region, by source (another stage's copies are not ours). */
async function copiesBySource(ec2: EC2Client, stackId: string, jobs: readonly CopyJob[]): Promise<Map<string, Snapshot[]>> {
  const copies = await listBy(ec2, `tag:${SOURCE_SNAPSHOT_TAG}`, jobs.map((j) => j.sourceSnapshotId), [{ Name: `tag:${STACK_TAG}`, Values: [stackId] }]);
  const bySource = new Map<string, Snapshot[]>();
  for (const c of copies) {
    const source = tagMap(c)[SOURCE_SNAPSHOT_TAG];
    if (source) bySource.set(source, [...(bySource.get(source) ?? []), c]);
  }
  return bySource;
}

/**
 * The one usable copy per source that exists already (before a copy is started: a crashed pass, a concurrent
 * run), the others deleted. Errored copies are deleted and not returned.
 */
async function existingCopies(ec2: EC2Client, stackId: string, jobs: readonly CopyJob[]): Promise<Map<string, Snapshot>> {
  const out = new Map<string, Snapshot>();
  for (const [source, list] of await copiesBySource(ec2, stackId, jobs)) {
    const usable = usableFirst(list);
    for (const other of list) if (other !== usable[0]) await deleteQuietly(ec2, other.SnapshotId as string);
    if (usable[0]) out.set(source, usable[0]);
  }
  return out;
}

/**
 * At the end of a pass: a copy made twice whose second copy EC2 listed only after the job completed is found
 * here and deleted (every completed job's source is read once more).
 */
export async function removeDuplicateCopies(ec2: EC2Client, record: DrRecord): Promise<void> {
  const done = record.jobs.filter((j) => j.state === 'completed' && j.copyId);
  if (done.length === 0) return;
  const found = await copiesBySource(ec2, record.stackId, done);
  for (const job of done) for (const c of found.get(job.sourceSnapshotId) ?? []) if (c.SnapshotId !== job.copyId) await deleteQuietly(ec2, c.SnapshotId as string);
}

function adopt(job: CopyJob, copy: Snapshot): void {
  job.copyId = copy.SnapshotId as string;
  const progress = Number.parseInt(copy.Progress ?? '', 10);
  if (Number.isFinite(progress)) job.progress = progress;
  if (copy.State === 'completed') {
    job.state = 'completed';
    job.completedAt = clock.now();
  } else {
    job.state = 'copying';
    job.startedAt ??= clock.now();
  }
}

async function startCopies(deps: DrDeps, record: DrRecord): Promise<void> {
  const dr = deps.config.dr;
  if (!dr) return;
  const free = dr.concurrency - record.jobs.filter(inFlight).length;
  if (free <= 0) return;
  const next = record.jobs.filter((j) => j.state === 'waiting').slice(0, free);
  if (next.length === 0) return;
  // Copies that exist already (an earlier pass, a concurrent run): adopted, never made twice.
  const existing = await existingCopies(deps.dr, record.stackId, next);
  const sources = new Map((await listBy(deps.home, 'snapshot-id', next.map((j) => j.sourceSnapshotId))).map((s) => [s.SnapshotId, s]));
  const toStart: { job: CopyJob; source: Snapshot }[] = [];
  for (const job of next) {
    const copy = existing.get(job.sourceSnapshotId);
    if (copy) {
      adopt(job, copy);
      continue;
    }
    const source = sources.get(job.sourceSnapshotId);
    if (!source) {
      fail(job, 'source-deleted', `the snapshot ${job.sourceSnapshotId} no longer exists in ${record.sourceRegion} (deleted before its copy was made): the next verified set of ${job.instanceId} will be copied`);
      continue;
    }
    if (source.State !== 'completed') continue;
    job.state = 'starting';
    job.startedAt = clock.now();
    job.attempts += 1;
    toStart.push({ job, source });
  }
  if (toStart.length === 0) return;
  // The intent: a Lambda that dies during the calls leaves `starting` jobs, which the next turn looks up.
  await saveDrRecord(deps.s3, deps.config.reportBucket, record);
  for (const [n, { job, source }] of toStart.entries()) {
    try {
      const out = await deps.dr.send(
        new CopySnapshotCommand({
          SourceRegion: record.sourceRegion,
          SourceSnapshotId: job.sourceSnapshotId,
          Description: `vss-snapshots DR copy of ${job.sourceSnapshotId} (${record.sourceRegion}), ${job.instanceId} run ${job.runId}`.slice(0, 255),
          ...(dr.kmsKeyId ? { Encrypted: true, KmsKeyId: dr.kmsKeyId } : dr.encrypt ? { Encrypted: true } : {}),
          TagSpecifications: [{ ResourceType: 'snapshot', Tags: copyTags(job, source, record) }],
        }),
      );
      if (out.SnapshotId) {
        job.copyId = out.SnapshotId;
        job.state = 'copying';
      }
    } catch (error) {
      const name = (error as Error).name;
      if (name === 'ResourceLimitExceeded') {
        // The destination's copy slots are full (other tools copy there too): not an attempt; wait for a slot.
        record.quotaRefusals += 1;
        for (const rest of toStart.slice(n)) {
          rest.job.state = 'waiting';
          rest.job.attempts -= 1;
          rest.job.code = 'quota';
          rest.job.reason = `${record.region} refused more copies (ResourceLimitExceeded: the concurrent copy quota per destination Region is full)`;
        }
        return;
      }
      if (name === 'InvalidSnapshot.NotFound') {
        fail(job, 'source-deleted', `the snapshot ${job.sourceSnapshotId} no longer exists in ${record.sourceRegion}: the next verified set of ${job.instanceId} will be copied`);
        continue;
      }
      if (isRefusal(error)) {
        const message = (error as Error).message;
        const kms = /kms|key/i.test(`${name} ${message}`);
        retryOrFail(job, dr.maxAttempts, kms ? 'kms' : 'refused', kms ? kmsAdvice(record.region, `${name}: ${message}`) : `CopySnapshot refused: ${name}: ${message}`);
        continue;
      }
      // Throttled, a server error or a lost answer: the copy may exist; the next turn looks for it (`starting`).
    }
  }
}

/** The copy's tags: the source's own (user tags are not copied by EC2), plus where it came from. */
function copyTags(job: CopyJob, source: Snapshot, record: DrRecord): { Key: string; Value: string }[] {
  const own = (source.Tags ?? []).filter((t) => t.Key && !RESERVED_TAG.test(t.Key) && !t.Key.startsWith('vss-snapshots:source-'));
  const added: Record<string, string> = {
    [STACK_TAG]: record.stackId,
    [SOURCE_SNAPSHOT_TAG]: job.sourceSnapshotId,
    [SOURCE_REGION_TAG]: record.sourceRegion,
    [SOURCE_VOLUME_TAG]: job.volumeId,
    [SOURCE_TIME_TAG]: (source.StartTime ?? new Date(clock.now())).toISOString(),
    [INSTANCE_TAG]: job.instanceId,
    [SET_SIZE_TAG]: String(job.setSize),
    ...(job.device ? { Device: job.device } : {}),
  };
  const kept = own.filter((t) => !((t.Key as string) in added)).map((t) => ({ Key: t.Key as string, Value: t.Value ?? '' }));
  // Ours first (the stack tag is what IAM and DR retention look at), within EC2's 50 tags a resource.
  return [...Object.entries(added).map(([Key, Value]) => ({ Key, Value })), ...kept].slice(0, MAX_TAGS);
}

function retryOrFail(job: CopyJob, maxAttempts: number, code: CopyJob['code'] & string, reason: string): void {
  delete job.copyId;
  if (job.attempts >= maxAttempts) {
    fail(job, code, `${reason}; gave up after ${job.attempts} attempt(s)`);
    return;
  }
  job.state = 'waiting';
  job.code = code;
  job.reason = reason;
}

function fail(job: CopyJob, code: CopyJob['code'] & string, reason: string): void {
  job.state = 'failed';
  job.code = code;
  job.reason = reason;
}

function kmsAdvice(region: string, message: string): string {
  return `the copy could not use the KMS key in ${region} (${message}): check that DR_KMS_KEY_ID names an enabled key of ${region} whose key policy lets the stack's role use it (kms:CreateGrant, Decrypt, DescribeKey, GenerateDataKeyWithoutPlaintext, ReEncrypt*)`;
}

async function deleteQuietly(ec2: EC2Client, snapshotId: string): Promise<void> {
  try {
    await ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
  } catch (error) {
    if ((error as Error).name !== 'InvalidSnapshot.NotFound' && !isRefusal(error)) throw error;
  }
}

/** The DR rule's deletions: whole sets, oldest first, paced as retention's (apply.ts: DELETE_SLICE, DELETE_BUDGET_MS). */
async function deleteExpired(ec2: EC2Client, record: DrRecord, started: number): Promise<void> {
  const r = record.retention;
  let calls = 0;
  while (r.cursor < r.queue.length) {
    const set = r.queue[r.cursor];
    if (!set) break;
    if (!sliceHasRoom(set, calls, started)) break;
    const done = await deleteRemaining(ec2, set);
    calls += done.calls;
    if (done.refusal) set.refused = done.refusal;
    const instanceId = set.owner.startsWith('i-') ? { instanceId: set.owner } : {};
    r.deleted.push(...set.deleted.map((snapshotId) => ({ snapshotId, ...instanceId, runId: set.runId, reason: set.reason })));
    if (set.refused) {
      const remaining = set.snapshotIds.filter((id) => !set.deleted.includes(id));
      r.refused.push({ snapshotIds: remaining, ...instanceId, runId: set.runId, reason: set.refused });
      r.kept += remaining.length;
    }
    r.cursor += 1;
  }
}
