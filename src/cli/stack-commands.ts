/**
 * Commands for the deployed stack, with the user's AWS credentials: `start`, `status` and `retry-failed`
 * (plus `--follow` on the first and last). Names come from the stack's outputs (aws-stack.ts).
 */
import { randomBytes } from 'node:crypto';
import { DescribeExecutionCommand, ListExecutionsCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { ExecutionListItem } from '@aws-sdk/client-sfn';
import { parseExecutionInput } from '../lib/execution-input.ts';
import { needsAlert } from '../lib/report.ts';
import type { RunReport } from '../lib/report.ts';
import { outcomeLine, plural, retryInputs, RETRY_CHUNK } from '../lib/report-text.ts';
import { heldLease, leaseKey } from '../lib/run-lease.ts';
import { readRunProgress } from '../lib/run-progress.ts';
import { reportKey } from '../lib/run-state.ts';
import { awsFailure, openSession, resolveStack } from './aws-stack.ts';
import type { AwsOptions, AwsSession, StackOutputs } from './aws-stack.ts';
import { EXIT, UsageError } from './exit-codes.ts';
import type { ExitCode } from './exit-codes.ts';
import { followExecution, runIdOf } from './follow.ts';
import type { FollowOptions } from './follow.ts';
import { readJsonOption } from './options.ts';
import { loadReport } from './report-source.ts';
import { attemptLabel, duration } from './workflow-progress.ts';

interface FollowFlags {
  follow?: boolean;
  interval: number;
}

export interface StartCommandOptions extends AwsOptions, FollowFlags {
  input?: string;
}

export async function startCommand(opts: StartCommandOptions): Promise<ExitCode> {
  const input = opts.input === undefined ? {} : readJsonOption(opts.input);
  // Checked here with the workflow's own rules, so a typo never becomes a failed execution and an alert.
  const parsed = parseExecutionInput(input);
  const session = await openSession(opts);
  const stack = await resolveStack(session, opts);
  if (parsed.force !== true) await refuseWhileRunning(session, stack, 'start it with --input \'{"force": true}\'');
  const started = await startExecution(session, stack, input, `manual-${stamp()}`);
  return opts.follow ? followExecution(session, stack, started, followOptions(opts)) : EXIT.ok;
}

export interface RetryFailedOptions extends AwsOptions, FollowFlags {
  force?: boolean;
}

export async function retryFailedCommand(source: string, opts: RetryFailedOptions): Promise<ExitCode> {
  const loaded = await loadReport(source, opts);
  const { report } = loaded;
  const chunks = retryInputs(report);
  if (chunks.length === 0) {
    process.stdout.write(`Run ${report.runId} has no failed instance: nothing to retry (${outcomeLine(report)}).\n`);
    return EXIT.ok;
  }
  const failed = chunks.reduce((n, c) => n + c.instanceIds.length, 0);
  if (chunks.length > 1 && !opts.follow) {
    throw new UsageError(
      `Run ${report.runId} has ${plural(failed, 'failed instance')}: that is ${chunks.length} runs of at most ${RETRY_CHUNK.toLocaleString('en-US')}, which cannot overlap. Add --follow to start them one after another.`,
    );
  }
  const session = loaded.session ?? (await openSession(opts));
  const stack = loaded.stack ?? (await resolveStack(session, opts));
  if (!opts.force) await refuseWhileRunning(session, stack, 'or pass --force');
  process.stdout.write(`Retrying the ${plural(failed, 'failed instance')} of run ${report.runId}${chunks.length > 1 ? ` in ${chunks.length} runs` : ''}.\n`);
  let worst: ExitCode = EXIT.ok;
  for (const [i, chunk] of chunks.entries()) {
    const input = { ...chunk, ...(opts.force ? { force: true } : {}) };
    const arn = await startExecution(session, stack, input, `retry-${report.runId}-${i + 1}of${chunks.length}-${randomBytes(3).toString('hex')}`);
    if (!opts.follow) return EXIT.ok;
    const code = await followExecution(session, stack, arn, followOptions(opts));
    if (code === EXIT.failed || code === EXIT.usage) return code;
    if (code === EXIT.alert) worst = EXIT.alert;
  }
  return worst;
}

export interface StatusCommandOptions extends AwsOptions {
  limit: number;
  json?: boolean;
}

interface StatusRow {
  runId: string;
  name: string;
  executionArn: string;
  status: string;
  startDate: string;
  stopDate?: string;
  outcome: string;
  summary?: RunReport['summary'];
  alert?: boolean;
  error?: string;
}

export async function statusCommand(opts: StatusCommandOptions): Promise<ExitCode> {
  const session = await openSession(opts);
  const stack = await resolveStack(session, opts);
  const running = await listExecutions(session, stack, 'RUNNING', 100);
  const recent = await listExecutions(session, stack, undefined, opts.limit);
  const executions = [...running, ...recent.filter((e) => !running.some((r) => r.executionArn === e.executionArn))];
  const rows = await Promise.all(executions.map((e) => statusRow(session, stack, e)));
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    return EXIT.ok;
  }
  process.stdout.write(`Stack ${stack.stackName} (${stack.region}), state machine ${stack.stateMachineArn.split(':').at(-1)}: ${plural(running.length, 'run')} in progress\n\n`);
  if (rows.length === 0) {
    process.stdout.write('No execution yet: start one with vss-snapshots start --follow\n');
    return EXIT.ok;
  }
  const table = [['RUN ID', 'STATUS', 'STARTED (UTC)', 'DURATION', 'OUTCOME'], ...rows.map((r) => [r.runId, r.status, r.startDate.slice(0, 19).replace('T', ' '), runDuration(r), r.outcome])];
  const widths = (table[0] as string[]).map((_, col) => Math.max(...table.map((row) => (row[col] ?? '').length)));
  for (const row of table) process.stdout.write(`${row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd()}\n`);
  const failedRun = rows.find((r) => r.alert);
  if (failedRun) process.stdout.write(`\nDetails: vss-snapshots report ${failedRun.runId} · retry its failed instances: vss-snapshots retry-failed ${failedRun.runId} --follow\n`);
  return EXIT.ok;
}

async function statusRow(session: AwsSession, stack: StackOutputs, e: ExecutionListItem): Promise<StatusRow> {
  const start = e.startDate ?? new Date(0);
  const runId = runIdOf(e.executionArn ?? '', start);
  const row: StatusRow = {
    runId,
    name: e.name ?? '',
    executionArn: e.executionArn ?? '',
    status: e.status ?? 'UNKNOWN',
    startDate: start.toISOString(),
    ...(e.stopDate ? { stopDate: e.stopDate.toISOString() } : {}),
    outcome: '',
  };
  if (row.status === 'RUNNING') {
    const progress = await readRunProgress(session.s3, stack.reportBucket, runId).catch(() => undefined);
    if (!progress) row.outcome = 'starting';
    else {
      const count = (phase: string) => progress.instances.filter((i) => i.phase === phase).length;
      const busy = count('send') + count('command') + count('verify');
      const attempt = attemptLabel(progress);
      row.outcome = `${attempt ? `${attempt}: ` : ''}${count('succeeded')} succeeded, ${count('failed')} failed, ${count('retry')} waiting to retry, ${busy} in progress of ${progress.instances.length}`;
    }
    return row;
  }
  if (row.status === 'SUCCEEDED') {
    try {
      const { report } = await loadReport(`s3://${stack.reportBucket}/${reportKey(runId)}`, { ...(session.profile ? { profile: session.profile } : {}), region: session.region });
      row.summary = report.summary;
      row.alert = needsAlert(report) && !report.dryRun;
      row.outcome = `${report.dryRun ? 'dry run: ' : ''}${outcomeLine(report)}${row.alert ? ' · ALERT' : ''}`;
    } catch {
      row.outcome = 'report not found';
    }
    return row;
  }
  try {
    const described = await session.sfn.send(new DescribeExecutionCommand({ executionArn: row.executionArn }));
    row.error = described.error ?? row.status;
    row.outcome = `${row.error}${described.cause ? `: ${described.cause.replace(/\s+/g, ' ').slice(0, 100)}` : ''}`;
    row.alert = described.error !== 'InvalidInputError';
  } catch (error) {
    throw awsFailure(error, `describing execution ${row.executionArn}`);
  }
  return row;
}

function runDuration(row: StatusRow): string {
  const end = row.stopDate ? Date.parse(row.stopDate) : Date.now();
  return duration(Math.max(0, Math.round((end - Date.parse(row.startDate)) / 1000)));
}

async function listExecutions(session: AwsSession, stack: StackOutputs, statusFilter: 'RUNNING' | undefined, limit: number): Promise<ExecutionListItem[]> {
  const out: ExecutionListItem[] = [];
  let token: string | undefined;
  try {
    do {
      const page = await session.sfn.send(
        new ListExecutionsCommand({ stateMachineArn: stack.stateMachineArn, maxResults: Math.min(100, limit - out.length), ...(statusFilter ? { statusFilter } : {}), ...(token ? { nextToken: token } : {}) }),
      );
      out.push(...(page.executions ?? []));
      token = page.nextToken;
    } while (token && out.length < limit);
  } catch (error) {
    throw awsFailure(error, `listing the executions of ${stack.stateMachineArn}`);
  }
  return out.slice(0, limit);
}

/**
 * Runs never overlap (Prepare Run refuses, and alerts): say so here, before anything is started. "In progress" is
 * what Prepare Run judges by: the run lease, held from Prepare Run until the report is written. An execution that
 * is still RUNNING after that (deleting expired sets, copying to the DR Region for hours) does not hold it, and a
 * run started then is accepted.
 */
async function refuseWhileRunning(session: AwsSession, stack: StackOutputs, override: string): Promise<void> {
  let lease;
  try {
    lease = await heldLease({ s3: session.s3, sfn: session.sfn, bucket: stack.reportBucket }, stack.stateMachineArn, Date.now());
  } catch (error) {
    throw awsFailure(error, `reading the run lease in s3://${stack.reportBucket}/${leaseKey(stack.stateMachineArn)}`);
  }
  if (!lease) return;
  const name = lease.holderName ?? lease.holder.split(':').at(-1) ?? lease.holder;
  // The run id comes from the execution's own start (the lease was taken a moment later).
  const started = await session.sfn.send(new DescribeExecutionCommand({ executionArn: lease.holder })).then((e) => e.startDate, () => undefined);
  const runId = runIdOf(lease.holder, started ?? new Date(lease.acquiredAt));
  throw new UsageError(
    `Run ${runId} (execution ${name}) is still in progress; nothing was started. Wait for it (vss-snapshots status), ${override} to run both at once.`,
  );
}

async function startExecution(session: AwsSession, stack: StackOutputs, input: unknown, name: string): Promise<string> {
  let out;
  try {
    out = await session.sfn.send(new StartExecutionCommand({ stateMachineArn: stack.stateMachineArn, name: name.slice(0, 80), input: JSON.stringify(input) }));
  } catch (error) {
    throw awsFailure(error, `starting an execution of ${stack.stateMachineArn}`);
  }
  const arn = out.executionArn ?? '';
  const runId = runIdOf(arn, out.startDate ?? new Date());
  process.stdout.write(
    [
      `Started run ${runId} of stack ${stack.stackName} (${stack.region}) with input ${JSON.stringify(input).length > 200 ? `${JSON.stringify(input).slice(0, 200)}...` : JSON.stringify(input)}`,
      `Execution: ${arn}`,
      `Console:   https://${stack.region}.console.aws.amazon.com/states/home?region=${stack.region}#/v2/executions/details/${arn}`,
      '',
    ].join('\n'),
  );
  return arn;
}

function followOptions(opts: FollowFlags & { quiet?: boolean }): FollowOptions {
  return { interval: opts.interval, ...(opts.quiet ? { quiet: true } : {}) };
}

/** `20261203T081500Z`: execution names say when they were started. */
function stamp(): string {
  return `${new Date().toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+Z$/, 'Z')}-${randomBytes(3).toString('hex')}`;
}
