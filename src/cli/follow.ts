/**
 * `--follow`: watches one execution of the deployed nightly state machine to its end, with the same
 * progress lines as a local run — the steps from the execution history, the instances from the run's
 * progress (readRunProgress on the report bucket) — then prints the run's summary. Stopping the watch
 * (Ctrl-C) never stops the run.
 */
import { DescribeExecutionCommand, GetExecutionHistoryCommand } from '@aws-sdk/client-sfn';
import type { DescribeExecutionCommandOutput, HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { needsAlert } from '../lib/report.ts';
import { formatRunSummary } from '../lib/report-text.ts';
import { runIdFor } from '../lib/run-id.ts';
import { readRunProgress } from '../lib/run-progress.ts';
import { reportKey } from '../lib/run-state.ts';
import { awsFailure } from './aws-stack.ts';
import type { AwsSession, StackOutputs } from './aws-stack.ts';
import { ExecutionWatcher } from './execution-watcher.ts';
import { EXIT } from './exit-codes.ts';
import type { ExitCode } from './exit-codes.ts';
import { loadReport } from './report-source.ts';
import { elapsed, HistoryTranslator } from './workflow-progress.ts';

export interface FollowOptions {
  /** Seconds between two looks at the execution. */
  interval: number;
  quiet?: boolean;
}

/** The run id the workflow gives an execution (Prepare Run: from its ARN and start time). */
export function runIdOf(executionArn: string, startDate: Date): string {
  return runIdFor(executionArn, startDate.toISOString());
}

/**
 * States after Finish Run on a run that did not fail: the report and the alert are out, the run lease released.
 * `--follow` stops watching there (the execution may delete and copy for hours more).
 */
const BACKGROUND_STATES = new Set(['Retention Due?', 'Apply Retention', 'Plan DR Copies', 'Advance DR Copies']);

export async function followExecution(session: AwsSession, stack: StackOutputs, executionArn: string, options: FollowOptions): Promise<ExitCode> {
  const watcher = new ExecutionWatcher({
    workflow: 'nightly',
    quiet: options.quiet === true,
    stream: process.stderr,
    readProgress: (runId) => readRunProgress(session.s3, stack.reportBucket, runId),
  });
  const translator = new HistoryTranslator();
  let described = await describe(session.sfn, executionArn);
  const started = described.startDate ?? new Date();
  const runId = runIdOf(executionArn, started);
  watcher.runId = runId;
  watcher.line(`Following run ${runId} (execution ${described.name ?? executionArn}); Ctrl-C stops watching, not the run.`);
  let lastEventId = 0;
  for (;;) {
    described = await describe(session.sfn, executionArn);
    const events = await newHistoryEvents(session.sfn, executionArn, lastEventId);
    for (const event of events) lastEventId = Math.max(lastEventId, event.id ?? 0);
    const steps = translator.push(events);
    const newestTask = steps.map(({ step }) => step.type === 'exited' && step.stateType === 'Task').lastIndexOf(true);
    for (const [i, { step, timestamp }] of steps.entries()) await watcher.event(step, (timestamp ?? new Date()).getTime() - started.getTime(), i === newestTask);
    await watcher.poll();
    if (described.status !== 'RUNNING') break;
    // The report is written and the alert sent: what is left (retention's deletions, DR copies) can take hours.
    if (steps.some(({ step }) => step.type === 'entered' && BACKGROUND_STATES.has(step.state))) {
      watcher.finish();
      process.stderr.write(
        `The run's report is written; its execution goes on in the background (deleting expired sets, copying to the DR Region). vss-snapshots status shows when it ends; vss-snapshots report ${runId} then has the final retention and copies sections.\n`,
      );
      return finalOutcome(session, stack, { ...described, status: 'SUCCEEDED' }, runId);
    }
    await pause(options.interval, (left) => watcher.showStatus(`${elapsed(Date.now() - started.getTime())} · next look in ${Math.ceil(left)} s`), watcher.status.active);
  }
  watcher.finish();
  return finalOutcome(session, stack, described, runId);
}

async function finalOutcome(session: AwsSession, stack: StackOutputs, described: DescribeExecutionCommandOutput, runId: string): Promise<ExitCode> {
  const status = described.status ?? 'UNKNOWN';
  if (status !== 'SUCCEEDED') {
    process.stderr.write(`vss-snapshots: run ${runId} ended ${status}${described.error ? `: ${described.error}` : ''}${described.cause ? `: ${described.cause}` : ''}\n`);
    if (described.error === 'InvalidInputError') return EXIT.usage;
    process.stderr.write(`The workflow-failure alert names the step and what to do. Instances it did not finish: vss-snapshots report ${runId} --failed\n`);
    return EXIT.failed;
  }
  let loaded;
  try {
    loaded = await loadReport(`s3://${stack.reportBucket}/${reportKey(runId)}`, { ...(session.profile ? { profile: session.profile } : {}), region: session.region });
  } catch (error) {
    process.stderr.write(`vss-snapshots: run ${runId} succeeded, but its report could not be read: ${(error as Error).message}\n`);
    return EXIT.failed;
  }
  process.stdout.write(formatRunSummary(loaded.report, { withAlert: true, reportLine: `Report: ${loaded.location}` }));
  return needsAlert(loaded.report) ? EXIT.alert : EXIT.ok;
}

async function describe(sfn: SFNClient, executionArn: string): Promise<DescribeExecutionCommandOutput> {
  try {
    return await sfn.send(new DescribeExecutionCommand({ executionArn }));
  } catch (error) {
    throw awsFailure(error, `describing execution ${executionArn}`);
  }
}

/**
 * The history events after `lastEventId`, oldest first. Read newest first (reverseOrder) and stopped at the
 * first page that reaches an event already seen, so a long night's history is not read again on every look;
 * events are filtered by id all the same, for an endpoint that returns them oldest first.
 */
export async function newHistoryEvents(sfn: SFNClient, executionArn: string, lastEventId: number): Promise<HistoryEvent[]> {
  const fresh: HistoryEvent[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await sfn.send(new GetExecutionHistoryCommand({ executionArn, reverseOrder: true, maxResults: 200, includeExecutionData: true, ...(token ? { nextToken: token } : {}) }));
      const events = page.events ?? [];
      fresh.push(...events.filter((e) => (e.id ?? 0) > lastEventId));
      token = events.some((e) => (e.id ?? 0) <= lastEventId) ? undefined : page.nextToken;
    } while (token);
  } catch (error) {
    throw awsFailure(error, `reading the history of execution ${executionArn}`);
  }
  return fresh.sort((a, b) => (a.id ?? 0) - (b.id ?? 0));
}

/** Waits `seconds`; on a terminal, calls `tick` with the seconds left about once a second. */
async function pause(seconds: number, tick: (left: number) => void, ticking: boolean): Promise<void> {
  const end = Date.now() + seconds * 1000;
  if (!ticking) {
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
    return;
  }
  for (let left = seconds; left > 0; left = (end - Date.now()) / 1000) {
    tick(left);
    await new Promise((resolve) => setTimeout(resolve, Math.min(1000, left * 1000)));
  }
}
