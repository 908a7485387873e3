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
import { saveDrRecord, setKeyOf } from './record.ts';
import type { DrRecord } from './record.ts';
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
  await saveDrRecord(deps.s3, config.reportBucket, record);
  await updateCopiesInReport(deps.s3, config.reportBucket, record);
}
