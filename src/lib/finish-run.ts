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
import { loadDrRecord } from './dr/record.ts';
import { pendingCopies, toCopiesReport } from './dr/report.ts';
import { buildReport } from './report.ts';
import { loadRetentionRecord, progressOf, toRetentionReport } from './retention/record.ts';
import type { RetentionProgress } from './retention/record.ts';
import { releaseLease } from './run-lease.ts';
import type { RunReport } from './report.ts';
import { isFinal, reportKey, runObjectOf, saveRunState } from './run-state.ts';
import type { RunState } from './run-state.ts';

export interface FinishResult {
  runId: string;
  dryRun: boolean;
  summary: RunReport['summary'];
  reportLocation: string;
  alertPublished: boolean;
  /**
   * Set when a shard's child execution failed or ended before its instances were final: the state machine then
   * goes on to Alert Workflow Failure (one alert naming the step and error; it also releases the lease) and
   * the execution ends FAILED, as when any other step fails for good. The report is written either way.
   */
  shardFailure?: { failedStep: string; Error: string; Cause: string };
  /** Retention's progress (Plan Retention ran): whether sets are queued for Apply Retention after the report. */
  retention?: RetentionProgress;
}

type WholeRun = RunState & { shardErrors?: { shard: number; error: string; cause: string }[] };

export async function finishRun(deps: { s3: S3Client; sns: SNSClient; config: Config }, state: WholeRun): Promise<FinishResult> {
  const { config } = deps;
  state.finishedAt ??= nowIso();
  const location = `s3://${config.reportBucket}/${reportKey(state.runId)}`;
  const retention = await loadRetentionRecord(deps.s3, config.reportBucket, state.runId);
  const report = buildReport(state, state.finishedAt, location, retention ? toRetentionReport(retention) : undefined);
  // DR on: the copies start after the report; it says so, and the DR pass fills the section in (dr/report.ts).
  if (config.dr) {
    const drRecord = await loadDrRecord(deps.s3, config.reportBucket, state.runId);
    report.copies = drRecord ? toCopiesReport(drRecord) : pendingCopies(config.dr, report.summary.succeeded, state.dryRun);
  }
  const shardFailure = shardFailureOf(state);
  if (shardFailure) report.alert = null;
  await putReport(deps.s3, config.reportBucket, report);
  if (shardFailure) {
    await saveRunState(deps.s3, config.reportBucket, runObjectOf(state));
    return { runId: state.runId, dryRun: state.dryRun, summary: report.summary, reportLocation: location, alertPublished: false, shardFailure };
  }
  if (report.alert && !state.alertMessageId) {
    const published = await deps.sns.send(new PublishCommand({ TopicArn: config.alertTopicArn, Subject: report.alert.subject, Message: report.alert.message }));
    state.alertMessageId = published.MessageId ?? 'published';
  }
  await saveAfterPublish(deps.s3, config.reportBucket, runObjectOf(state));
  if (state.lease) await releaseLease(deps.s3, config.reportBucket, state.lease.key, state.executionArn);
  return {
    runId: state.runId,
    dryRun: state.dryRun,
    summary: report.summary,
    reportLocation: location,
    alertPublished: report.alert !== null,
    ...(retention ? { retention: progressOf(retention) } : {}),
  };
}

/**
 * Saves the run object that records a published alert. SNS has no deduplication, so if this save fails the
 * step's retry publishes the alert again: it is tried harder than other writes (the SDK's own attempts, three
 * times over) before the step gives up. At least once, never zero times; twice only when S3 refuses 15 writes.
 */
export async function saveAfterPublish(s3: S3Client, bucket: string, state: RunState): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await saveRunState(s3, bucket, state);
      return;
    } catch (error) {
      if (attempt >= 3) throw error;
    }
  }
}

/** The first shard that failed (recorded by Record Shard Failure), or that ended with instances not final. */
function shardFailureOf(state: WholeRun): FinishResult['shardFailure'] {
  const recorded = state.shardErrors?.[0];
  if (recorded) {
    const more = (state.shardErrors?.length ?? 1) - 1;
    return { failedStep: 'Advance Instances', Error: recorded.error, Cause: `Shard ${recorded.shard}: ${recorded.cause}${more > 0 ? ` (and ${more} more shard(s) failed)` : ''}` };
  }
  if (state.shards === undefined || state.dryRun) return undefined;
  const open = state.instances.filter((i) => !isFinal(i.phase));
  if (open.length === 0) return undefined;
  return {
    failedStep: 'Snapshot Shards',
    Error: 'ShardUnfinished',
    Cause: `${open.length} instance(s) were not final when the shards ended (a child execution was aborted, timed out, or could not record its failure), e.g. ${open[0]?.instanceId}.`,
  };
}

export async function putReport(s3: S3Client, bucket: string, report: RunReport): Promise<void> {
  await s3.send(
    new PutObjectCommand({ Bucket: bucket, Key: reportKey(report.runId), Body: JSON.stringify(report, null, 2), ContentType: 'application/json' }),
  );
}
