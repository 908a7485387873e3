/**
 * "Check Commands": one cheap ListCommands sweep tells which of this wave's commands are done; only those
 * are read per instance (ListCommandInvocations with details, once each). Every instance is judged by its
 * own invocation (a command can read Success while some of its invocations were Undeliverable). Past the
 * wave's deadline, whatever is still not final is cancelled and counted as a retryable failure.
 */
import { CancelCommandCommand, ListCommandInvocationsCommand, ListCommandsCommand } from '@aws-sdk/client-ssm';
import type { CommandInvocation, SSMClient } from '@aws-sdk/client-ssm';
import { clock } from './clock.ts';
import { methodDriver } from './methods/index.ts';
import type { Diagnosis, InvocationResult } from './methods/types.ts';
import { fail } from './record-failure.ts';
import type { InstanceRecord, RunState } from './run-state.ts';

const FINAL_COMMAND_STATUSES = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);
const FINAL_INVOCATION_STATUSES = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);

export async function checkCommands(deps: { ssm: SSMClient }, state: RunState): Promise<void> {
  const waiting = state.instances.filter((i) => i.phase === 'command');
  if (waiting.length === 0) return;
  const pastDeadline = state.commandDeadline !== undefined && clock.now() >= state.commandDeadline;
  const commandIds = new Set(waiting.map((i) => i.commandId ?? ''));
  const finished = pastDeadline ? commandIds : await finishedCommands(deps.ssm, state, commandIds);

  const byId = new Map(waiting.map((i) => [i.instanceId, i]));
  for (const commandId of finished) {
    for (const invocation of await invocationsOf(deps.ssm, commandId)) {
      const record = invocation.InstanceId ? byId.get(invocation.InstanceId) : undefined;
      if (!record || record.commandId !== commandId) continue;
      if (!FINAL_INVOCATION_STATUSES.has(invocation.Status ?? '') && invocation.StatusDetails !== 'Undeliverable' && invocation.StatusDetails !== 'Terminated') continue;
      judgeInvocation(record, toResult(invocation), state);
    }
  }

  if (pastDeadline) {
    const stuck = waiting.filter((r) => r.phase === 'command');
    for (const [commandId, ids] of groupByCommand(stuck)) {
      try {
        await deps.ssm.send(new CancelCommandCommand({ CommandId: commandId, InstanceIds: ids }));
      } catch {
        // Best effort: the command is abandoned either way and the instance is reported.
      }
    }
    for (const record of stuck) {
      fail(record, state, 'no-result', `The command ${record.commandId} was not final by the deadline and was cancelled.`);
    }
  }
}

/** Ids among `ours` whose command-level status is final (one paged ListCommands sweep). */
async function finishedCommands(ssm: SSMClient, state: RunState, ours: Set<string>): Promise<Set<string>> {
  const done = new Set<string>();
  const waveStart = Math.min(...state.commands.filter((c) => ours.has(c.commandId)).map((c) => c.sentAt));
  const after = new Date((Number.isFinite(waveStart) ? waveStart : Date.parse(state.startedAt)) - 60_000).toISOString();
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(new ListCommandsCommand({ Filters: [{ key: 'InvokedAfter', value: after }], MaxResults: 50, NextToken: nextToken }));
    for (const command of page.Commands ?? []) {
      if (!command.CommandId || !ours.has(command.CommandId)) continue;
      const allCounted = (command.TargetCount ?? 0) > 0 && (command.CompletedCount ?? 0) >= (command.TargetCount ?? 0);
      if (FINAL_COMMAND_STATUSES.has(command.Status ?? '') || allCounted) done.add(command.CommandId);
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return done;
}

async function invocationsOf(ssm: SSMClient, commandId: string): Promise<CommandInvocation[]> {
  const all: CommandInvocation[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId, Details: true, MaxResults: 50, NextToken: nextToken }));
    all.push(...(page.CommandInvocations ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  return all;
}

function toResult(invocation: CommandInvocation): InvocationResult {
  const plugins = invocation.CommandPlugins ?? [];
  const output = plugins.map((p) => p.Output ?? '').join('\n');
  const failedPlugin = plugins.find((p) => p.ResponseCode !== undefined && p.ResponseCode !== 0);
  const responseCode = failedPlugin?.ResponseCode ?? plugins[0]?.ResponseCode;
  return {
    status: invocation.Status ?? 'Unknown',
    statusDetails: invocation.StatusDetails ?? invocation.Status ?? 'Unknown',
    ...(responseCode !== undefined ? { responseCode } : {}),
    output,
  };
}

/** Classifies one final invocation (aws-facts.md, "Invocation status"). */
export function classifyInvocation(result: InvocationResult, diagnose: (r: InvocationResult) => Diagnosis): Diagnosis | 'ok' {
  switch (result.statusDetails) {
    case 'Success':
      return 'ok';
    case 'AccessDenied':
      return { code: 'access-denied', detail: 'SSM refused to run the command on this instance (AccessDenied).' };
    case 'InvalidPlatform':
      return { code: 'invalid-platform', detail: 'The document cannot run on this platform (InvalidPlatform).' };
    case 'Undeliverable':
    case 'DeliveryTimedOut':
      return { code: 'undeliverable', detail: `The SSM Agent never received the command (${result.statusDetails}).` };
    case 'ExecutionTimedOut':
      return { code: 'execution-timeout', detail: 'The command ran past its execution timeout (ExecutionTimedOut).' };
    case 'Terminated':
      return { code: 'command-terminated', detail: 'The command was terminated before it ran on this instance.' };
    case 'Cancelled':
    case 'Canceled':
      return { code: 'command-cancelled', detail: 'The command was cancelled.' };
    default:
      if (result.status === 'Success') return 'ok';
      if (result.status === 'TimedOut') return { code: 'execution-timeout', detail: `The command timed out (${result.statusDetails}).` };
      if (result.status === 'Cancelled') return { code: 'command-cancelled', detail: 'The command was cancelled.' };
      return diagnose(result);
  }
}

function judgeInvocation(record: InstanceRecord, result: InvocationResult, state: RunState): void {
  const verdict = classifyInvocation(result, (r) => methodDriver(state.options.method).diagnose(r));
  if (verdict === 'ok') {
    record.phase = 'verify';
    record.verifySince = clock.now();
    return;
  }
  fail(record, state, verdict.code, verdict.detail);
}

function groupByCommand(records: InstanceRecord[]): Map<string, string[]> {
  const map = new Map<string, string[]>();
  for (const r of records) {
    if (!r.commandId) continue;
    map.set(r.commandId, [...(map.get(r.commandId) ?? []), r.instanceId]);
  }
  return map;
}
