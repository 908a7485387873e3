/**
 * Following this run's commands. Each instance moves on as soon as its own invocation is final — a hung
 * batch-mate never holds back its verification or its retry. One cheap ListCommands sweep per poll tells which
 * commands gained final invocations (CompletedCount) and finds sends whose answer was lost (by their Comment);
 * only those commands' invocations are read. A failed invocation's full output comes from GetCommandInvocation
 * (24,000 characters: ListCommandInvocations keeps 2,500, often before the error). Past a command's deadline,
 * whatever is not final is cancelled and counted as a retryable `no-result`.
 */
import { CancelCommandCommand, GetCommandInvocationCommand, ListCommandInvocationsCommand, ListCommandsCommand } from '@aws-sdk/client-ssm';
import type { Command, CommandInvocation, SSMClient } from '@aws-sdk/client-ssm';
import { clock } from './clock.ts';
import type { Config } from './config.ts';
import { methodDriver } from './methods/index.ts';
import type { Diagnosis, InvocationResult } from './methods/types.ts';
import { fail } from './record-failure.ts';
import { isTransientAwsError } from './errors.ts';
import { onGrid } from './run-state.ts';
import type { InstanceRecord, RunState, SentCommand } from './run-state.ts';
import { SEND_CONFIRM_WINDOW_MS } from './send-command-once.ts';
import { deferred, succeeded } from './backoff.ts';

const FINAL_INVOCATION_STATUSES = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);
/** How soon an unconfirmed send is looked for again. */
export const CONFIRM_POLL_MS = 30_000;

export interface CheckDeps {
  ssm: SSMClient;
  config: Config;
}

/**
 * Looks at every command of this run that is due for a look — unconfirmed sends and running commands — by
 * `horizon` (default now: a caller may take what falls due in the next few seconds along, to poll less often).
 */
export async function pollCommands(deps: CheckDeps, state: RunState, horizon = clock.now()): Promise<void> {
  const now = clock.now();
  const due = state.commands.filter((c) => (c.status === 'open' || c.status === 'unconfirmed') && c.nextPollAt <= horizon);
  if (due.length === 0) return;
  let listing: Listing;
  try {
    listing = await sweepCommands(deps.ssm, state, due);
  } catch (error) {
    if (!isTransientAwsError(error)) throw error;
    deferred(state, 'poll');
    return;
  }
  const byId = new Map(state.instances.map((i) => [i.instanceId, i]));
  for (const command of due) {
    if (command.status === 'unconfirmed') {
      resolveUnconfirmed(state, command, listing, byId, now);
      continue;
    }
    try {
      await followCommand(deps, state, command, listing.byId.get(command.commandId ?? ''), byId, now);
    } catch (error) {
      // Throttled past the SDK's retries: what was judged stays judged (each instance on its own), the rest of
      // this command and the commands after it are read after the back-off.
      if (!isTransientAwsError(error)) throw error;
      deferred(state, 'poll');
      return;
    }
  }
  succeeded(state, 'poll');
}

interface Listing {
  byId: Map<string, Command>;
  /** Commands whose Comment is a send's comment or one of its parts (`<comment>.<n>`), by that send's comment. */
  bySend: Map<string, Command[]>;
}

/** One paged ListCommands sweep over the commands sent since the oldest due one (a minute's margin for skew). */
async function sweepCommands(ssm: SSMClient, state: RunState, due: SentCommand[]): Promise<Listing> {
  const oldest = Math.min(...due.map((c) => c.sentAt));
  const after = new Date(Math.max(Date.parse(state.startedAt) - 60_000, oldest - 60_000)).toISOString();
  const sends = new Set(due.filter((c) => c.status === 'unconfirmed').map((c) => c.comment));
  const listing: Listing = { byId: new Map(), bySend: new Map() };
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(new ListCommandsCommand({ Filters: [{ key: 'InvokedAfter', value: after }], MaxResults: 50, NextToken: nextToken }));
    for (const command of page.Commands ?? []) {
      if (!command.CommandId) continue;
      listing.byId.set(command.CommandId, command);
      const base = sendOf(command.Comment ?? '');
      if (base && sends.has(base)) listing.bySend.set(base, [...(listing.bySend.get(base) ?? []), command]);
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return listing;
}

/** The send a command's Comment belongs to: the comment itself, or `<comment>.<part>` of a split send. */
export function sendOf(comment: string): string | undefined {
  const match = /^(vss-snapshots \S+ attempt [0-9]+ send [0-9]+)(\.[0-9]+)*$/.exec(comment);
  return match?.[1];
}

/**
 * A send whose answer was lost: once SSM lists its command(s), follow them; if none shows up within the
 * confirm window (longer than the listing lags), it never reached SSM — its instances are sent again.
 */
function resolveUnconfirmed(state: RunState, send: SentCommand, listing: Listing, byId: Map<string, InstanceRecord>, now: number): void {
  const waiting = new Set(send.instanceIds);
  for (const found of listing.bySend.get(send.comment) ?? []) {
    const commandId = found.CommandId as string;
    if (state.commands.some((c) => c.commandId === commandId)) continue;
    const ids = (found.InstanceIds ?? []).filter((id) => waiting.has(id));
    if (ids.length === 0) continue;
    const sentAt = found.RequestedDateTime ? new Date(found.RequestedDateTime).getTime() : send.sentAt;
    state.commands.push({ comment: found.Comment ?? send.comment, commandId, attempt: send.attempt, instanceIds: ids, sentAt, status: 'open', deadline: send.deadline, nextPollAt: now, completedSeen: 0 });
    for (const id of ids) {
      waiting.delete(id);
      const record = byId.get(id);
      if (record?.phase === 'command' && record.sendComment === send.comment) record.commandId = commandId;
    }
  }
  send.instanceIds = [...waiting];
  if (waiting.size === 0) {
    send.status = 'done';
    return;
  }
  if (now < send.sentAt + SEND_CONFIRM_WINDOW_MS) {
    send.nextPollAt = Math.min(now + CONFIRM_POLL_MS, send.sentAt + SEND_CONFIRM_WINDOW_MS);
    return;
  }
  // Unlisted for longer than any listing lag: it never reached SSM. Send the same attempt again.
  send.status = 'lost';
  for (const id of waiting) {
    const record = byId.get(id);
    if (!record || record.phase !== 'command' || record.sendComment !== send.comment || record.commandId) continue;
    record.phase = 'send';
    record.attempts = send.attempt - 1;
    record.dueAt = now;
    delete record.sendComment;
  }
}

async function followCommand(deps: CheckDeps, state: RunState, command: SentCommand, listed: Command | undefined, byId: Map<string, InstanceRecord>, now: number): Promise<void> {
  const pastDeadline = now >= command.deadline;
  const mine = () => command.instanceIds.map((id) => byId.get(id)).filter((r): r is InstanceRecord => r?.phase === 'command' && r.commandId === command.commandId);
  const completed = listed?.CompletedCount ?? 0;
  const listedFinal = listed !== undefined && ['Success', 'Failed', 'TimedOut', 'Cancelled'].includes(listed.Status ?? '');
  if (pastDeadline || completed > command.completedSeen || listedFinal) {
    let unjudged = false;
    for (const invocation of await invocationsOf(deps.ssm, command.commandId as string)) {
      const record = invocation.InstanceId ? byId.get(invocation.InstanceId) : undefined;
      if (!record || record.phase !== 'command' || record.commandId !== command.commandId) continue;
      const final = FINAL_INVOCATION_STATUSES.has(invocation.Status ?? '') || invocation.StatusDetails === 'Undeliverable' || invocation.StatusDetails === 'Terminated';
      if (!final) continue;
      if (!(await judgeInvocation(deps, state, record, command, invocation, pastDeadline))) unjudged = true;
    }
    // A final invocation whose full output SSM could not give yet keeps the count where it was, so the next poll
    // reads the invocations again instead of waiting for a batch-mate (or the deadline) to move CompletedCount.
    if (!unjudged) command.completedSeen = Math.max(command.completedSeen, completed);
  }
  if (pastDeadline) {
    const stuck = mine();
    if (stuck.length > 0) {
      try {
        await deps.ssm.send(new CancelCommandCommand({ CommandId: command.commandId, InstanceIds: stuck.map((r) => r.instanceId) }));
      } catch {
        // Best effort: the command is abandoned either way and the instances are reported.
      }
      for (const record of stuck) {
        fail(record, state, 'no-result', `The command ${command.commandId} was not final by its deadline and was cancelled.`, deps.config.retryDelaySeconds);
      }
    }
  }
  const pollMs = deps.config.commandPollSeconds * 1000;
  if (mine().length === 0) command.status = 'done';
  // The grid point nearest one poll interval from now (up to a quarter earlier): a poll is never late by most of a poll.
  else command.nextPollAt = Math.min(onGrid(now + (pollMs * 3) / 4, state, pollMs), Math.max(command.deadline, now + 1_000));
}

async function invocationsOf(ssm: SSMClient, commandId: string): Promise<CommandInvocation[]> {
  const all: CommandInvocation[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(new ListCommandInvocationsCommand({ CommandId: commandId, MaxResults: 50, NextToken: nextToken }));
    all.push(...(page.CommandInvocations ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  return all;
}

/** One final invocation: verify its snapshots, or record the failure read from its full output. False while its full output is not readable yet. */
async function judgeInvocation(deps: CheckDeps, state: RunState, record: InstanceRecord, command: SentCommand, invocation: CommandInvocation, pastDeadline: boolean): Promise<boolean> {
  let result: InvocationResult = { status: invocation.Status ?? 'Unknown', statusDetails: invocation.StatusDetails ?? invocation.Status ?? 'Unknown', output: '' };
  if (result.status === 'Cancelled' && pastDeadline && result.statusDetails !== 'Rate Exceeded') {
    // Cancelled by this run at the deadline (a retried invocation of this step sees its own cancel).
    fail(record, state, 'no-result', `The command ${command.commandId} was not final by its deadline and was cancelled.`, deps.config.retryDelaySeconds);
    return true;
  }
  if (result.status === 'Failed' && (result.statusDetails === 'Failed' || result.statusDetails === 'Unknown')) {
    const full = await fullResult(deps.ssm, command.commandId as string, record.instanceId);
    if (!full) return false; // Not readable yet (eventual consistency): the next poll reads it.
    result = full;
  }
  const verdict = classifyInvocation(result, (r) => methodDriver(state.options.method).diagnose(r));
  if (verdict === 'ok') {
    record.phase = 'verify';
    record.verifySince = clock.now();
    record.nextCheckAt = clock.now();
    return true;
  }
  fail(record, state, verdict.code, verdict.detail, deps.config.retryDelaySeconds);
  return true;
}

/** The invocation with its whole output (stdout 24,000 and stderr 8,000 characters); undefined while SSM does not know it yet. */
export async function fullResult(ssm: SSMClient, commandId: string, instanceId: string): Promise<InvocationResult | undefined> {
  try {
    const out = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }));
    return {
      status: out.Status ?? 'Failed',
      statusDetails: out.StatusDetails ?? out.Status ?? 'Failed',
      ...(out.ResponseCode !== undefined ? { responseCode: out.ResponseCode } : {}),
      output: [out.StandardOutputContent ?? '', out.StandardErrorContent ?? ''].filter(Boolean).join('\n'),
    };
  } catch (error) {
    if ((error as Error).name === 'InvocationDoesNotExist') return undefined;
    throw error;
  }
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
    case 'Rate Exceeded':
      return { code: 'ssm-rate-exceeded', detail: "SSM cancelled the command before it ran: the account's pending-invocation limit was exceeded (Rate Exceeded)." };
    case 'Cancelled':
    case 'Canceled':
      return { code: 'command-cancelled', detail: 'The command was cancelled.' };
    default:
      if (result.status === 'Success') return 'ok';
      if (result.status === 'TimedOut') return { code: 'execution-timeout', detail: `The command timed out (${result.statusDetails}).` };
      if (result.status === 'Cancelled') return { code: 'command-cancelled', detail: `The command was cancelled (${result.statusDetails}).` };
      return diagnose(result);
  }
}
