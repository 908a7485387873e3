/**
 * The end of a DR pass (every job final, or the deadline): the record is closed, the report's `copies` section
 * written, and — when a snapshot has no completed copy — the DR alert published, once (separate from the run's
 * alert: the backups exist, their DR copies do not). Jobs that were unfinished at the deadline stay in the record:
 * the next night's pass carries them over (plan.ts).
 */
import { PublishCommand } from '@aws-sdk/client-sns';
import type { SNSClient } from '@aws-sdk/client-sns';
import { nowIso } from '../clock.ts';
import { composeDrAlert } from '../report-text.ts';
import type { DrDeps } from './plan.ts';
import { isFinalJob, loadDrRecord, saveDrRecord, setKeyOf } from './record.ts';
import type { CopyJob, DrRecord } from './record.ts';
import { toCopiesReport, updateCopiesInReport } from './report.ts';

export async function finishDrPass(deps: DrDeps & { sns: SNSClient }, record: DrRecord): Promise<void> {
  const { config } = deps;
  record.finishedAt ??= nowIso();
  const failed = record.jobs.filter((j) => j.state === 'failed');
  const unfinished = record.jobs.filter((j) => j.state !== 'failed' && j.state !== 'completed').length;
  if ((failed.length > 0 || unfinished > 0) && !record.alert) {
    const copies = toCopiesReport(record);
    record.alert = composeDrAlert({
      runId: record.runId,
      region: record.region,
      sourceRegion: record.sourceRegion,
      failed: copies.failed,
      unfinished,
      protectedSets: copies.protected,
      sets: new Set(record.jobs.map(setKeyOf)).size,
      deadline: new Date(record.deadline).toISOString(),
    });
  }
  if (record.alert && !record.alertMessageId) {
    const published = await deps.sns.send(new PublishCommand({ TopicArn: config.alertTopicArn, Subject: record.alert.subject, Message: record.alert.message }));
    record.alertMessageId = published.MessageId ?? 'published';
  }
  // SNS has no deduplication: the record that says the alert went out is saved harder than other writes (as
  // the run's own alert, finish-run.ts saveAfterPublish), so a failing write does not publish it twice.
  for (let attempt = 1; ; attempt += 1) {
    try {
      await saveDrRecord(deps.s3, config.reportBucket, record);
      break;
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
  await updateCopiesInReport(deps.s3, config.reportBucket, record);
  await completeEarlierRecords(deps, record);
}

/**
 * A later pass completes the record: the copies this pass carried over from an earlier night and finished (or
 * failed for good) are written into that night's DR record and its report's `copies` section, so the report of
 * the night a set was made says, in the end, whether the set is protected.
 */
async function completeEarlierRecords(deps: DrDeps, record: DrRecord): Promise<void> {
  const byOrigin = new Map<string, CopyJob[]>();
  for (const job of record.jobs) if (job.fromRun && isFinalJob(job)) byOrigin.set(job.fromRun, [...(byOrigin.get(job.fromRun) ?? []), job]);
  for (const [origin, jobs] of byOrigin) {
    const earlier = await loadDrRecord(deps.s3, deps.config.reportBucket, origin);
    if (!earlier) continue;
    const done = new Map(jobs.map((j) => [j.sourceSnapshotId, j]));
    let changed = false;
    for (const job of earlier.jobs) {
      const later = done.get(job.sourceSnapshotId);
      if (!later || isFinalJob(job)) continue;
      job.state = later.state;
      job.attempts = later.attempts;
      if (later.copyId) job.copyId = later.copyId;
      if (later.completedAt !== undefined) job.completedAt = later.completedAt;
      if (later.code) job.code = later.code;
      if (later.reason) job.reason = later.reason;
      job.finishedBy = record.runId;
      changed = true;
    }
    if (!changed) continue;
    await saveDrRecord(deps.s3, deps.config.reportBucket, earlier);
    await updateCopiesInReport(deps.s3, deps.config.reportBucket, earlier);
  }
}
