/**
 * "Finish Run": writes the run report next to the run state in the report bucket and publishes one alert
 * when an instance failed or nothing matched. Retry-safe: the report is rewritten identically and an alert
 * already recorded as published is not sent again.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { PublishCommand } from '@aws-sdk/client-sns';
import type { SNSClient } from '@aws-sdk/client-sns';
import { nowIso } from './clock.ts';
import type { Config } from './config.ts';
import { buildReport } from './report.ts';
import { releaseLease } from './run-lease.ts';
import type { RunReport } from './report.ts';
import { reportKey, saveRunState } from './run-state.ts';
import type { RunState } from './run-state.ts';

export interface FinishResult {
  runId: string;
  dryRun: boolean;
  summary: RunReport['summary'];
  reportLocation: string;
  alertPublished: boolean;
}

export async function finishRun(deps: { s3: S3Client; sns: SNSClient; config: Config }, state: RunState): Promise<FinishResult> {
  const { config } = deps;
  state.finishedAt ??= nowIso();
  const location = `s3://${config.reportBucket}/${reportKey(state.runId)}`;
  const report = buildReport(state, state.finishedAt, location);
  await putReport(deps.s3, config.reportBucket, report);
  if (report.alert && !state.alertMessageId) {
    const published = await deps.sns.send(new PublishCommand({ TopicArn: config.alertTopicArn, Subject: report.alert.subject, Message: report.alert.message }));
    state.alertMessageId = published.MessageId ?? 'published';
  }
  await saveRunState(deps.s3, config.reportBucket, state);
  if (state.lease) await releaseLease(deps.s3, config.reportBucket, state.lease.key, state.executionArn);
  return { runId: state.runId, dryRun: state.dryRun, summary: report.summary, reportLocation: location, alertPublished: report.alert !== null };
}

export async function putReport(s3: S3Client, bucket: string, report: RunReport): Promise<void> {
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: reportKey(report.runId), Body: JSON.stringify(report, null, 2), ContentType: 'application/json' }),
  );
}
