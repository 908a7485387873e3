/** The SSM API of the simulated account: agents, documents and Run Command. */
import { awsError, checkRange, paginate } from './aws-error.ts';
import { planSnapshotInvocation } from './agent.ts';
import { planRestoreInvocation } from './restore-agent.ts';
import { callRegion, inRegion, regionField } from './regions.ts';
import type { CallContext } from './regions.ts';
import { ACCOUNT_ID, REGION } from './world.ts';
import type { SimCommand, SimDocument, SimInvocation, World } from './world.ts';

type Input = Record<string, unknown>;
const LIST_OUTPUT_LIMIT = 2_500;
const GET_STDOUT_LIMIT = 24_000;
const FINAL = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled']);

function commandStatus(world: World, command: SimCommand) {
  const invocations = command.invocations.map((i) => world.refresh(i));
  const final = invocations.filter((i) => FINAL.has(i.status));
  const errors = final.filter((i) => i.status === 'Failed' && i.statusDetails !== 'Undeliverable').length;
  const deliveryTimedOut = final.filter((i) => i.statusDetails === 'DeliveryTimedOut').length;
  const timedOut = final.filter((i) => i.status === 'TimedOut').length;
  const cancelled = final.filter((i) => i.status === 'Cancelled').length;
  let status: string;
  if (final.length < invocations.length) status = invocations.some((i) => i.status !== 'Pending') ? 'InProgress' : 'Pending';
  else if (cancelled > 0) status = 'Cancelled';
  else if (timedOut > 0) status = 'TimedOut';
  // Undeliverable invocations do not count as errors: the command can read Success (aws-facts.md).
  else if (errors > 0) status = 'Failed';
  else status = 'Success';
  return { status, completed: final.length, errors: errors + timedOut, deliveryTimedOut };
}

function describeCommand(world: World, c: SimCommand) {
  const s = commandStatus(world, c);
  const details = c.rateExceeded ? 'Rate Exceeded' : s.status;
  return {
    CommandId: c.commandId,
    DocumentName: c.documentName,
    DocumentVersion: c.documentVersion,
    Comment: c.comment,
    InstanceIds: c.instanceIds,
    Parameters: c.parameters,
    RequestedDateTime: new Date(c.requestedAt),
    Status: s.status,
    StatusDetails: details,
    TargetCount: c.instanceIds.length,
    CompletedCount: s.completed,
    ErrorCount: s.errors,
    DeliveryTimedOutCount: s.deliveryTimedOut,
    MaxConcurrency: '100%',
    MaxErrors: '100%',
    TimeoutSeconds: c.timeoutSeconds,
  };
}

function validateParameters(world: World, documentName: string, parameters: Record<string, string[]>): void {
  const document = world.documents.get(documentName);
  if (!document) return;
  for (const [name, values] of Object.entries(parameters)) {
    const spec = document.parameters[name];
    if (!spec) throw awsError('InvalidParameters', `Parameter "${name}" is not defined in document ${documentName}.`);
    for (const value of values) {
      if (spec.allowedValues && !spec.allowedValues.includes(value)) {
        throw awsError('InvalidParameters', `Parameter "${name}" value is not one of the allowed values.`);
      }
      if (spec.allowedPattern && !new RegExp(spec.allowedPattern).test(value)) {
        throw awsError('InvalidParameters', `Parameter "${name}" "${value}" failed to satisfy constraint: Member must satisfy regular expression pattern: ${spec.allowedPattern}`);
      }
    }
  }
}

function toListedInvocation(world: World, i: SimInvocation, command: SimCommand, details: boolean) {
  world.refresh(i);
  return {
    CommandId: i.commandId,
    InstanceId: i.instanceId,
    DocumentName: command.documentName,
    DocumentVersion: command.documentVersion,
    RequestedDateTime: new Date(i.requestedAt),
    Status: i.status,
    StatusDetails: i.statusDetails,
    ...(details
      ? {
          CommandPlugins: [
            {
              Name: 'runPowerShellScript',
              Status: i.status,
              StatusDetails: i.statusDetails,
              ResponseCode: i.responseCode,
              Output: i.output.slice(0, LIST_OUTPUT_LIMIT),
              ...(i.applied ? { ResponseFinishDateTime: new Date(i.finishAt) } : {}),
            },
          ],
        }
      : {}),
  };
}

/** Invocations not final yet, account-wide: what SSM's limit for pending invocations counts. */
function pendingInvocations(world: World): number {
  return world.pendingInvocationCount();
}

/**
 * IAM, as the stack grants it: `ssm:SendCommand` is evaluated against the document and against every instance
 * ARN in the request; the snapshot documents are allowed only on instances carrying the deployed selector tag
 * (`ssm:resourceTag/<key>` condition). One instance outside that scope fails the whole call with
 * AccessDeniedException naming it (IAM user guide, "Policy evaluation logic"; aws-facts.md). An instance
 * unknown to the account has no tags, so it is outside the scope too.
 */
function authorizeSend(world: World, document: SimDocument, ids: string[]): void {
  if (document.kind === 'restore') return;
  const { key, value } = world.iam.snapshotSendTag;
  for (const id of ids) {
    const instance = world.instances.get(id);
    if (instance?.tags[key] === value) continue;
    throw awsError(
      'AccessDeniedException',
      `User: arn:aws:sts::${ACCOUNT_ID}:assumed-role/vss-snapshots-send-snapshot-commands/vss-snapshots-send-snapshot-commands is not authorized to perform: ssm:SendCommand on resource: arn:aws:ec2:${REGION}:${ACCOUNT_ID}:instance/${id} because no identity-based policy allows the ssm:SendCommand action`,
    );
  }
}

/** A document of the call's Region: SSM documents are regional ("InvalidDocument: The specified document does not exist"). */
function documentIn(world: World, name: string, context: CallContext | undefined): SimDocument {
  const document = world.documents.get(name);
  if (!document || (document.regions && !document.regions.includes(callRegion(context)))) throw awsError('InvalidDocument', `Document ${name} does not exist in your account (in ${callRegion(context)}).`);
  return document;
}

/** Each operation sees the instances and commands of its call's Region only (regions.ts). */
export const ssmOperations: Record<string, (world: World, input: Input, context?: CallContext) => unknown> = {
  DescribeInstanceInformation(world, input, context) {
    checkRange(input.MaxResults as number | undefined, 5, 50, 'MaxResults', 'ValidationException');
    const filters = (input.Filters as { Key?: string; Values?: string[] }[] | undefined) ?? [];
    const legacy = (input.InstanceInformationFilterList as { key?: string; valueSet?: string[] }[] | undefined) ?? [];
    if (filters.length > 0 && legacy.length > 0) throw awsError('InvalidFilter', 'Filters and InstanceInformationFilterList cannot be combined.');
    const idFilter = filters.find((f) => f.Key === 'InstanceIds')?.Values ?? legacy.find((f) => f.key === 'InstanceIds')?.valueSet;
    for (const f of filters) if (f.Key !== 'InstanceIds' && f.Key !== 'PingStatus') throw awsError('InvalidFilterKey', `Filter key ${f.Key} is not supported here.`);
    const ping = filters.find((f) => f.Key === 'PingStatus')?.Values;
    // Stopped and unmanaged instances are not listed.
    // By id when filtered (a lookup each, not a scan of the account: 100,000 instances take 2,000 such calls).
    const candidates = idFilter ? [...new Set(idFilter)].flatMap((id) => world.instances.get(id) ?? []) : [...world.instances.values()];
    const managed = candidates.filter((i) => inRegion(i, context) && i.agent !== 'none' && i.state === 'running');
    const rows = managed
      .map((i) => ({
        InstanceId: i.instanceId,
        PingStatus: i.agent === 'online' ? 'Online' : 'ConnectionLost',
        LastPingDateTime: new Date(i.agent === 'online' ? world.now - 60_000 : world.now - 3 * 86_400_000),
        AgentVersion: '3.3.2746.0',
        PlatformType: i.platform === 'windows' ? 'Windows' : 'Linux',
        PlatformName: i.platform === 'windows' ? 'Microsoft Windows Server 2022 Datacenter' : 'Amazon Linux',
        ResourceType: 'EC2Instance',
        ComputerName: i.name ?? i.instanceId,
      }))
      .filter((r) => !ping || ping.includes(r.PingStatus));
    const { page, nextToken } = paginate(rows, (input.MaxResults as number | undefined) ?? 50, input.NextToken as string | undefined, 'ssm');
    return { InstanceInformationList: page, ...(nextToken ? { NextToken: nextToken } : {}) };
  },

  /** The document's name and status (SSM API reference, DescribeDocument); InvalidDocument where it does not exist. */
  DescribeDocument(world, input, context) {
    const document = documentIn(world, input.Name as string, context);
    return { Document: { Name: document.name, Status: 'Active', DocumentType: 'Command', DocumentVersion: document.versions.at(-1), LatestVersion: document.versions.at(-1), DefaultVersion: document.versions[0] } };
  },

  SendCommand(world, input, context) {
    const ids = (input.InstanceIds as string[] | undefined) ?? [];
    if (input.Targets) throw awsError('ValidationException', 'The simulated account supports InstanceIds only.');
    if (ids.length === 0) throw awsError('ValidationException', 'InstanceIds must list at least one instance.');
    if (ids.length > 50) throw awsError('ValidationException', `1 validation error detected: Value at 'instanceIds' failed to satisfy constraint: Member must have length less than or equal to 50 (got ${ids.length}).`);
    if (new Set(ids).size !== ids.length) throw awsError('DuplicateInstanceId', 'The instance ids contain duplicates.');
    const comment = input.Comment as string | undefined;
    if (comment && comment.length > 100) throw awsError('ValidationException', 'Comment must be at most 100 characters.');
    const documentName = input.DocumentName as string;
    const document = documentIn(world, documentName, context);
    const version = input.DocumentVersion as string | undefined;
    if (version && !['$DEFAULT', '$LATEST'].includes(version) && !document.versions.includes(version)) {
      throw awsError('InvalidDocumentVersion', `Document ${documentName} has no version ${version}.`);
    }
    const timeoutSeconds = (input.TimeoutSeconds as number | undefined) ?? 3600;
    checkRange(timeoutSeconds, 30, 2_592_000, 'TimeoutSeconds', 'ValidationException');
    const parameters = (input.Parameters as Record<string, string[]> | undefined) ?? {};
    validateParameters(world, documentName, parameters);
    authorizeSend(world, document, ids);
    for (const id of ids) {
      const instance = world.instances.get(id);
      // Unknown, unmanaged or terminated instances are rejected for the whole call.
      if (!instance || !inRegion(instance, context) || instance.agent === 'none') throw awsError('InvalidInstanceId', 'Instances [[' + id + ']] not in a valid state for account ' + '123456789012');
    }
    const pending = pendingInvocations(world);
    const command: SimCommand = {
      commandId: `${world.nextHex(8)}-${world.nextHex(4)}-4${world.nextHex(3)}-a${world.nextHex(3)}-${world.nextHex(12)}`,
      documentName,
      ...(version ? { documentVersion: version } : {}),
      instanceIds: ids,
      parameters,
      ...(comment ? { comment } : {}),
      requestedAt: world.now,
      listedAt: world.now + world.lagMs('command-listed'),
      timeoutSeconds,
      invocations: [],
      ...regionField(callRegion(context)),
      ...(pending + ids.length > world.quotas.pendingInvocations ? { rateExceeded: true } : {}),
    };
    for (const id of ids) {
      const instance = world.instances.get(id) as never;
      if (command.rateExceeded) {
        // Cancelled before it ran anywhere (SSM API reference, Command.StatusDetails "Rate Exceeded").
        const cancelled: SimInvocation = {
          commandId: command.commandId,
          instanceId: id,
          status: 'Pending',
          statusDetails: 'Pending',
          responseCode: -1,
          output: '',
          requestedAt: world.now,
          visibleAt: world.now + world.lagMs('invocation-visible'),
          detailVisibleAt: world.now + world.lagMs('invocation-visible'),
          finishAt: world.now,
          final: { status: 'Cancelled', statusDetails: 'Rate Exceeded', responseCode: -1, output: '' },
          applied: false,
        };
        command.invocations.push(cancelled);
        world.track(cancelled);
        continue;
      }
      const invocation = document.kind === 'restore' ? planRestoreInvocation(world, command, instance) : planSnapshotInvocation(world, command, document, instance);
      command.invocations.push(invocation);
      world.track(invocation);
    }
    world.commands.set(command.commandId, command);
    return { Command: describeCommand(world, command) };
  },

  ListCommands(world, input, context) {
    checkRange(input.MaxResults as number | undefined, 1, 50, 'MaxResults', 'ValidationException');
    const filters = (input.Filters as { key?: string; value?: string }[] | undefined) ?? [];
    // A new command is listed only after a lag (eventual consistency; modelled, not documented either way).
    let list = [...world.commands.values()].filter((c) => inRegion(c, context) && c.listedAt <= world.now);
    if (input.CommandId) {
      list = list.filter((c) => c.commandId === input.CommandId);
      if (list.length === 0) throw awsError('InvalidCommandId', `Command ${String(input.CommandId)} does not exist.`);
    }
    if (input.InstanceId) list = list.filter((c) => c.instanceIds.includes(input.InstanceId as string));
    for (const f of filters) {
      const value = f.value ?? '';
      switch (f.key) {
        case 'InvokedAfter':
          list = list.filter((c) => c.requestedAt >= Date.parse(value));
          break;
        case 'InvokedBefore':
          list = list.filter((c) => c.requestedAt <= Date.parse(value));
          break;
        case 'DocumentName':
          list = list.filter((c) => c.documentName === value);
          break;
        case 'Status':
          list = list.filter((c) => commandStatus(world, c).status === value);
          break;
        default:
          throw awsError('InvalidFilterKey', `Filter key ${f.key} is not valid.`);
      }
    }
    list.sort((a, b) => b.requestedAt - a.requestedAt);
    const { page, nextToken } = paginate(list, (input.MaxResults as number | undefined) ?? 50, input.NextToken as string | undefined, 'ssm');
    return { Commands: page.map((c) => describeCommand(world, c)), ...(nextToken ? { NextToken: nextToken } : {}) };
  },

  ListCommandInvocations(world, input, context) {
    checkRange(input.MaxResults as number | undefined, 1, 50, 'MaxResults', 'ValidationException');
    const found = input.CommandId ? world.commands.get(input.CommandId as string) : undefined;
    const command = inRegion(found, context) ? found : undefined;
    if (input.CommandId && !command) throw awsError('InvalidCommandId', `Command ${String(input.CommandId)} does not exist.`);
    const commands = command ? [command] : [...world.commands.values()].filter((c) => inRegion(c, context));
    const rows = commands.flatMap((c) =>
      c.invocations
        .filter((i) => i.visibleAt <= world.now && (!input.InstanceId || i.instanceId === input.InstanceId))
        .map((i) => toListedInvocation(world, i, c, input.Details === true)),
    );
    const { page, nextToken } = paginate(rows, (input.MaxResults as number | undefined) ?? 50, input.NextToken as string | undefined, 'ssm');
    return { CommandInvocations: page, ...(nextToken ? { NextToken: nextToken } : {}) };
  },

  GetCommandInvocation(world, input, context) {
    const found = world.commands.get(input.CommandId as string);
    const command = inRegion(found, context) ? found : undefined;
    const invocation = command?.invocations.find((i) => i.instanceId === input.InstanceId);
    if (!command || !invocation || invocation.visibleAt > world.now || invocation.detailVisibleAt > world.now) throw awsError('InvocationDoesNotExist', 'An error occurred (InvocationDoesNotExist).');
    world.refresh(invocation);
    return {
      CommandId: command.commandId,
      InstanceId: invocation.instanceId,
      DocumentName: command.documentName,
      Status: invocation.status,
      StatusDetails: invocation.statusDetails,
      ResponseCode: invocation.responseCode,
      StandardOutputContent: invocation.output.slice(0, GET_STDOUT_LIMIT),
      StandardErrorContent: '',
      ...(invocation.applied ? { ExecutionEndDateTime: new Date(invocation.finishAt).toISOString() } : {}),
    };
  },

  CancelCommand(world, input, context) {
    const found = world.commands.get(input.CommandId as string);
    const command = inRegion(found, context) ? found : undefined;
    if (!command) throw awsError('InvalidCommandId', `Command ${String(input.CommandId)} does not exist.`);
    const ids = input.InstanceIds as string[] | undefined;
    for (const invocation of command.invocations) {
      if (ids && !ids.includes(invocation.instanceId)) continue;
      world.refresh(invocation);
      if (!invocation.applied) world.finish(invocation, { status: 'Cancelled', statusDetails: 'Cancelled', responseCode: -1, output: invocation.output });
    }
    return {};
  },
};
