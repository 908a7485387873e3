/**
 * "Send Snapshot Commands": one SSM SendCommand per 50 instances (the API's limit), with MaxErrors high
 * enough that one failing instance never stops the others, the document version pinned, and the run id and
 * attempt in the parameters so they end up in the snapshots' tags.
 *
 * Paced: a wave (every instance due for its next attempt) goes out in slices of at most
 * `config.sendSliceInstances` instances, one slice per invocation, the state machine waiting
 * `sendSliceSeconds` between them. Every instance's VSS agent calls EC2 CreateSnapshots inside a freeze
 * that Windows ends after 10 s, and the account's CreateSnapshots bucket holds 100 calls refilled at 5 per
 * second: sending thousands at once would make most of them time out in the freeze.
 *
 * Idempotent: a retried invocation (say the Lambda timed out after sending) first looks up the commands
 * this run already sent for this wave (ListCommands; the run id and wave are in each command's Comment)
 * and sends only to instances not yet covered. No instance gets two commands for one attempt.
 */
import { ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import type { Command, SendCommandCommandInput, SendCommandCommandOutput, SSMClient } from '@aws-sdk/client-ssm';
import type { FinalizeRequestMiddleware } from '@smithy/types';
import type { Config } from './config.ts';
import { clock } from './clock.ts';
import { chunk } from './discovery.ts';
import { methodDriver } from './methods/index.ts';
import { fail } from './record-failure.ts';
import { ConfigurationError } from './errors.ts';
import type { InstanceRecord, RunState } from './run-state.ts';

export const MAX_IDS_PER_COMMAND = 50;

/** The Comment that identifies a command of this run, wave and attempt (≤ 100 chars). */
export function commandComment(runId: string, wave: number, attempt: number, batch: number): string {
  return `vss-snapshots ${runId} wave ${wave} attempt ${attempt} batch ${batch}`;
}
const commentPattern = (runId: string, wave: number): RegExp => new RegExp(`^vss-snapshots ${runId} wave ${wave} attempt ([1-9]) batch [0-9]+$`);

export async function sendSnapshotCommands(deps: { ssm: SSMClient; config: Config }, state: RunState): Promise<void> {
  const { ssm, config } = deps;
  // Instances still in 'send' after the first wave began are the rest of the current wave; otherwise the
  // instances to retry start a new wave.
  const continuing = state.wave > 0 && state.instances.some((i) => i.phase === 'send');
  if (!continuing) for (const record of state.instances) if (record.phase === 'retry') record.phase = 'send';
  const targets = state.instances.filter((i) => i.phase === 'send');
  if (targets.length === 0) return;
  const wave = continuing ? state.wave : state.wave + 1;
  const driver = methodDriver(state.options.method);
  const document = config.documents[state.options.method];
  if (!document.name) throw new ConfigurationError(`No SSM document is configured for method ${state.options.method} (DISKSHADOW_DOCUMENT_NAME).`);

  const byId = new Map(targets.map((t) => [t.instanceId, t]));
  let alreadySent = 0;
  for (const sent of await commandsAlreadySent(ssm, state, wave)) {
    for (const id of sent.instanceIds) {
      const record = byId.get(id);
      if (record) {
        markSent(record, sent.commandId, sent.attempt);
        byId.delete(id);
        alreadySent += 1;
      }
    }
    state.commands.push(sent);
  }
  const slice = [...byId.values()].slice(0, Math.max(0, config.sendSliceInstances - alreadySent));

  // Instances can be on different attempts within one wave; the attempt is a document parameter (and a
  // snapshot tag), so each attempt number gets its own commands.
  const byAttempt = new Map<number, InstanceRecord[]>();
  for (const record of slice) {
    const list = byAttempt.get(record.attempts + 1);
    if (list) list.push(record);
    else byAttempt.set(record.attempts + 1, [record]);
  }
  let batchNo = state.commands.filter((c) => c.wave === wave).length;
  for (const [attempt, records] of [...byAttempt.entries()].sort((a, b) => a[0] - b[0])) {
    const parameters = driver.parameters({
      runId: state.runId,
      attempt,
      excludeBootVolume: state.options.excludeBootVolume,
      copyOnly: config.copyOnly,
      commandTimeoutSeconds: config.commandTimeoutSeconds,
    });
    for (const batch of chunk(records, MAX_IDS_PER_COMMAND)) {
      batchNo += 1;
      await sendBatch(ssm, state, batch, { documentName: document.name, documentVersion: document.version, parameters, wave, attempt, batchNo, config });
    }
  }
  state.wave = wave;
  state.commandDeadline = clock.now() + (config.deliveryTimeoutSeconds + config.commandTimeoutSeconds + 300) * 1000;
}

interface BatchOptions {
  documentName: string;
  documentVersion: string;
  parameters: Record<string, string[]>;
  wave: number;
  attempt: number;
  batchNo: number;
  config: Config;
}

async function sendBatch(ssm: SSMClient, state: RunState, batch: InstanceRecord[], options: BatchOptions): Promise<void> {
  const instanceIds = batch.map((b) => b.instanceId);
  try {
    const out = await sendOnce(
      ssm,
      new SendCommandCommand({
        DocumentName: options.documentName,
        DocumentVersion: options.documentVersion,
        InstanceIds: instanceIds,
        Parameters: options.parameters,
        Comment: commandComment(state.runId, options.wave, options.attempt, options.batchNo),
        TimeoutSeconds: options.config.deliveryTimeoutSeconds,
        MaxConcurrency: '100%',
        MaxErrors: '100%',
        ...(options.config.commandLogGroup
          ? { CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: options.config.commandLogGroup } }
          : {}),
      }),
      // A lost answer is looked up moments later: the commands of the last 5 minutes are enough.
      new Date(Math.max(Date.parse(state.startedAt), clock.now() - 5 * 60_000)).toISOString(),
    );
    const commandId = out.Command?.CommandId;
    if (!commandId) throw new Error('SendCommand returned no CommandId.');
    state.commands.push({ commandId, wave: options.wave, attempt: options.attempt, instanceIds, sentAt: clock.now() });
    for (const record of batch) markSent(record, commandId, options.attempt);
  } catch (error) {
    // One unknown or unregistered id rejects the whole call: isolate it and send the rest.
    if (error instanceof Error && error.name === 'InvalidInstanceId') {
      if (batch.length === 1) {
        const record = batch[0] as InstanceRecord;
        record.attempts = options.attempt;
        fail(record, state, 'send-rejected', `SSM answered InvalidInstanceId for attempt ${options.attempt}.`);
        return;
      }
      const half = Math.ceil(batch.length / 2);
      await sendBatch(ssm, state, batch.slice(0, half), { ...options, batchNo: options.batchNo * 100 + 1 });
      await sendBatch(ssm, state, batch.slice(half), { ...options, batchNo: options.batchNo * 100 + 2 });
      return;
    }
    throw error;
  }
}

/**
 * SendCommand has no idempotency token, and the SDK retries a call whose answer was lost (socket timeout,
 * 5xx after the fact): such a retry would start the same snapshot command twice. So every retry of a send
 * first looks the command up by its Comment (unique per run, wave, attempt and batch) and, when SSM already
 * has it, answers with that command instead of sending again. The middleware sits inside the SDK's retry
 * loop, so it sees each attempt.
 */
async function sendOnce(ssm: SSMClient, command: SendCommandCommand, since: string): Promise<SendCommandCommandOutput> {
  const comment = command.input.Comment ?? '';
  const lookUpBeforeRetry: FinalizeRequestMiddleware<SendCommandCommandInput, SendCommandCommandOutput> = (next) => {
    let tries = 0;
    return async (args) => {
      tries += 1;
      if (tries > 1) {
        const existing = await findCommandByComment(ssm, comment, since);
        if (existing) return { output: { Command: existing, $metadata: {} }, response: { statusCode: 200, headers: {} } };
      }
      return next(args);
    };
  };
  command.middlewareStack.addRelativeTo(lookUpBeforeRetry, { relation: 'after', toMiddleware: 'retryMiddleware', name: 'vssSnapshotsSendOnce', override: true });
  return ssm.send(command);
}

async function findCommandByComment(ssm: SSMClient, comment: string, since: string): Promise<Command | undefined> {
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(new ListCommandsCommand({ Filters: [{ key: 'InvokedAfter', value: since }], MaxResults: 50, NextToken: nextToken }));
    const match = (page.Commands ?? []).find((c) => c.Comment === comment && c.CommandId);
    if (match) return match;
    nextToken = page.NextToken;
  } while (nextToken);
  return undefined;
}

function markSent(record: InstanceRecord, commandId: string, attempt: number): void {
  record.phase = 'command';
  record.commandId = commandId;
  record.attempts = attempt;
  delete record.verifySince;
}

/**
 * Commands of this run and wave that SSM already knows about (from an earlier, interrupted try). Only
 * commands sent after the last one the run state knows can be missing from it, so the sweep starts there
 * (less 5 minutes for clock skew): one page, even on the hundredth slice of a wave.
 */
async function commandsAlreadySent(ssm: SSMClient, state: RunState, wave: number): Promise<RunState['commands']> {
  const pattern = commentPattern(state.runId, wave);
  const found: RunState['commands'] = [];
  const known = new Set(state.commands.map((c) => c.commandId));
  const lastSent = state.commands.reduce((latest, c) => Math.max(latest, c.sentAt), 0);
  const after = lastSent > 0 ? new Date(Math.max(Date.parse(state.startedAt), lastSent - 5 * 60_000)).toISOString() : state.startedAt;
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(
      new ListCommandsCommand({
        Filters: [{ key: 'InvokedAfter', value: after }],
        MaxResults: 50,
        NextToken: nextToken,
      }),
    );
    for (const command of page.Commands ?? []) {
      const match = pattern.exec(command.Comment ?? '');
      if (command.CommandId && match && !known.has(command.CommandId)) {
        found.push({
          commandId: command.CommandId,
          wave,
          attempt: Number(match[1]),
          instanceIds: command.InstanceIds ?? [],
          sentAt: command.RequestedDateTime ? new Date(command.RequestedDateTime).getTime() : clock.now(),
        });
      }
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return found;
}
