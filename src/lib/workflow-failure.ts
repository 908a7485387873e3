/**
 * "Alert Workflow Failure": the Catch of every state lands here. It says which step failed and why, and,
 * when the run got far enough to have a state object, writes what is known as the run report so no
 * instance's fate is lost. The execution then fails with the original error.
 */
import { PublishCommand } from '@aws-sdk/client-sns';
import type { SNSClient } from '@aws-sdk/client-sns';
import type { S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod';
import { nowIso } from './clock.ts';
import type { Config } from './config.ts';
import { describeError } from './errors.ts';
import { putReport, saveAfterPublish } from './finish-run.ts';
import { buildReport } from './report.ts';
import { loadRetentionRecord, toRetentionReport } from './retention/record.ts';
import { composeWorkflowFailureAlert } from './report-text.ts';
import type { WorkflowFailure } from './report-text.ts';
import { releaseLease } from './run-lease.ts';
import { loadWholeRun, reportKey, runObjectOf, saveRunState } from './run-state.ts';
import type { RunState } from './run-state.ts';

export const WorkflowFailureEvent = z.object({
  failedStep: z.string().default('unknown step'),
  runId: z.string().optional(),
  executionId: z.string().optional(),
  error: z.object({ Error: z.string().default('Unknown'), Cause: z.unknown().optional() }).default({ Error: 'Unknown' }),
});

export async function alertWorkflowFailure(deps: { s3: S3Client; sns: SNSClient; config: Config }, event: unknown): Promise<{ alerted: true; error: string; cause: string }> {
  const parsed = WorkflowFailureEvent.safeParse(event);
  const failure = parsed.success ? parsed.data : { failedStep: 'unknown step', runId: undefined, executionId: undefined, error: { Error: 'Unknown', Cause: undefined } };
  const cause = causeText(failure.error.Cause);
  let known: WorkflowFailure['known'];
  let stateProblem: string | undefined;
  let state: RunState | undefined;
  if (failure.runId) {
    try {
      state = await loadWholeRun(deps.s3, deps.config.reportBucket, failure.runId);
      // A retry of this step after the alert went out and was recorded (the Lambda timed out afterwards).
      if (state.failureAlertMessageId) return { alerted: true, error: failure.error.Error, cause };
      state.finishedAt = nowIso();
      const location = `s3://${deps.config.reportBucket}/${reportKey(state.runId)}`;
      // What retention did before the failure (Plan/Apply Retention ran, or said why they did not), if anything.
      const retention = await loadRetentionRecord(deps.s3, deps.config.reportBucket, state.runId);
      const report = buildReport(state, state.finishedAt, location, retention ? toRetentionReport(retention) : undefined);
      report.alert = null;
      await putReport(deps.s3, deps.config.reportBucket, report);
      known = { summary: report.summary, location };
    } catch (error) {
      stateProblem = describeError(error);
    }
  }
  const { subject, message } = composeWorkflowFailureAlert({
    failedStep: failure.failedStep,
    ...(failure.runId ? { runId: failure.runId } : {}),
    ...(failure.executionId ? { executionId: failure.executionId } : {}),
    error: failure.error.Error,
    cause,
    ...(known ? { known } : {}),
    ...(stateProblem ? { stateProblem } : {}),
  });
  const published = await deps.sns.send(new PublishCommand({ TopicArn: deps.config.alertTopicArn, Subject: subject, Message: message }));
  if (state) {
    // Recorded so that a retry of this step does not alert twice. SNS has no deduplication: a crash
    // between the publish and this save still sends the alert twice (at least once, never zero times).
    state.failureAlertMessageId = published.MessageId ?? 'published';
    try {
      await saveAfterPublish(deps.s3, deps.config.reportBucket, runObjectOf(state));
    } catch {
      // The alert is out; failing the step now would only alert again.
    }
  }
  // The run is over: free the lease so the next run is not refused (best effort; a lease of a failed execution
  // is also taken over once Step Functions reports it no longer running).
  if (state?.lease) {
    try {
      await releaseLease(deps.s3, deps.config.reportBucket, state.lease.key, state.executionArn);
    } catch {
      // Left for the next run to take over.
    }
  }
  return { alerted: true, error: failure.error.Error, cause };
}

function causeText(cause: unknown): string {
  if (typeof cause !== 'string') return cause === undefined ? '(none)' : JSON.stringify(cause).slice(0, 2000);
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string; errorType?: string };
    if (parsed.errorMessage) return parsed.errorMessage.slice(0, 2000);
  } catch {
    // Not JSON: a plain message.
  }
  return cause.slice(0, 2000);
}
