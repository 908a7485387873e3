/**
 * The self-test against a deployed stack, with the caller's credentials. It sends the snapshot documents
 * itself (each method's driver builds the parameters the nightly run sends), restores through the stack's
 * restore state machine (whose roles may create and attach volumes; the instance's may not), and reads
 * back what the self-test document reports on the instance. Cleanup deletes only what it created: the
 * restored volumes (by id, from the restore's output) and the test snapshots (by id, of the test's run ids).
 */
import { randomBytes } from 'node:crypto';
import { DeleteSnapshotCommand, DeleteVolumeCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, DescribeVolumesCommand, DetachVolumeCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Instance } from '@aws-sdk/client-ec2';
import { DescribeExecutionCommand, StartExecutionCommand } from '@aws-sdk/client-sfn';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { RUN_ID_PATTERN, validateDocumentParameters } from '../documents/document-parameters.ts';
import type { SnapshotMethod } from '../lib/config.ts';
import { methodDriver } from '../lib/methods/index.ts';
import { tagMap } from '../lib/methods/types.ts';
import { normalizeDevice } from '../lib/restore/devices.ts';
import { RUN_TAG } from '../lib/run-id.ts';
import type { SelfTestOptions } from './args.ts';
import {
  cleanupChecks,
  dataChecks,
  diskShadowTimeline,
  formatCheck,
  instanceChecks,
  prepareChecks,
  restoreChecks,
  revertChecks,
  snapshotChecks,
} from './checks.ts';
import type { Check, CommandView, DiskShadowTimeline, ExecutionView, RestoreOutput, SnapshotView } from './checks.ts';
import { CleanupFacts, parseSelfTestLine, PrepareFacts, StopFacts, VerifyFacts } from './result.ts';
import type { SelfTestLine } from './result.ts';

export interface SelfTestDeps {
  ec2: EC2Client;
  ssm: SSMClient;
  sfn: SFNClient;
  /** Waits (real time in AWS; nothing in tests). */
  sleep: (ms: number) => Promise<void>;
  /** Prints one line for the operator. */
  print: (line: string) => void;
  /** Prints a usage error (stderr by default). */
  printError?: (line: string) => void;
  now?: () => Date;
}

/** How long each wait may take before the check fails (minutes). */
export const LIMITS = { commandMinutes: 40, snapshotMinutes: 120, restoreMinutes: 60, detachMinutes: 10, pollSeconds: 10 } as const;

const FINAL_COMMAND = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled', 'Cancelling']);

export function newRunId(now: Date, random: () => Buffer = () => randomBytes(4)): string {
  const id = `${now.toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+Z$/, 'Z')}-${random().toString('hex').slice(0, 8)}`;
  if (!new RegExp(RUN_ID_PATTERN).test(id)) throw new Error(`Generated run id ${id} does not match ${RUN_ID_PATTERN}.`);
  return id;
}

interface Context {
  deps: SelfTestDeps;
  options: SelfTestOptions;
  checks: Check[];
}

function record(ctx: Context, checks: Check[]): boolean {
  for (const c of checks) {
    ctx.checks.push(c);
    ctx.deps.print(formatCheck(c));
  }
  return checks.every((c) => c.ok);
}

async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance | undefined> {
  const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
}

/** Sends a document to one instance and waits for its invocation to end. */
async function runCommand(ctx: Context, instanceId: string, documentName: string, documentVersion: string, parameters: Record<string, string[]>, comment: string, timeoutSeconds: number): Promise<CommandView> {
  const { ssm, sleep } = ctx.deps;
  const sent = await ssm.send(
    new SendCommandCommand({ DocumentName: documentName, DocumentVersion: documentVersion, InstanceIds: [instanceId], Parameters: parameters, Comment: comment.slice(0, 100), TimeoutSeconds: 600 }),
  );
  const commandId = sent.Command?.CommandId ?? '';
  const rounds = Math.ceil((Math.min(timeoutSeconds + 600, LIMITS.commandMinutes * 60) / LIMITS.pollSeconds));
  for (let i = 0; i < rounds; i += 1) {
    await sleep(LIMITS.pollSeconds * 1000);
    try {
      const inv = await ssm.send(new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: instanceId }));
      if (inv.Status && FINAL_COMMAND.has(inv.Status)) {
        return { status: inv.Status, output: `${inv.StandardOutputContent ?? ''}${inv.StandardErrorContent ? `\n${inv.StandardErrorContent}` : ''}` };
      }
    } catch (error) {
      if ((error as Error).name !== 'InvocationDoesNotExist') throw error;
    }
  }
  return { status: 'NoResult', output: `command ${commandId} did not end within ${LIMITS.commandMinutes} minutes` };
}

async function selfTestAction(ctx: Context, instanceId: string, runId: string, action: 'prepare' | 'stop' | 'verify' | 'cleanup', extra: Record<string, string> = {}): Promise<{ command: CommandView; line: SelfTestLine | undefined }> {
  const parameters = validateDocumentParameters('selftest', {
    Action: [action],
    RunId: [runId],
    DataDrive: [ctx.options.dataDrive],
    executionTimeout: ['900'],
    ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [k, [v]])),
  });
  const command = await runCommand(ctx, instanceId, ctx.options.selfTestDocument, '$DEFAULT', parameters, `vss-snapshots selftest ${runId} ${action}`, 900);
  const line = parseSelfTestLine(command.output);
  if (command.status !== 'Success' || line?.outcome !== 'success') {
    record(ctx, [{ name: `self-test document: ${action}`, ok: false, detail: line ? `${line.errorCode}: ${line.message}` : `${command.status}, no result line` }]);
  }
  return { command, line };
}

async function runSnapshots(ec2: EC2Client, runId: string): Promise<SnapshotView[]> {
  const out = await ec2.send(new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${RUN_TAG}`, Values: [runId] }] }));
  return (out.Snapshots ?? []).map((s) => ({ snapshotId: s.SnapshotId ?? '', volumeId: s.VolumeId ?? '', state: s.State ?? 'unknown', tags: tagMap(s.Tags) }));
}

/** Waits until every volume has a snapshot of the run and none is pending. */
async function waitForSnapshots(ctx: Context, runId: string, volumeIds: string[]): Promise<SnapshotView[]> {
  let snapshots: SnapshotView[] = [];
  for (let i = 0; i < (LIMITS.snapshotMinutes * 60) / LIMITS.pollSeconds; i += 1) {
    snapshots = await runSnapshots(ctx.deps.ec2, runId);
    const settled = snapshots.length >= volumeIds.length && snapshots.every((s) => s.state !== 'pending');
    if (settled) break;
    await ctx.deps.sleep(LIMITS.pollSeconds * 1000);
  }
  return snapshots;
}

async function runRestore(ctx: Context, runId: string, method: SnapshotMethod, device: string): Promise<{ execution: ExecutionView; output: RestoreOutput | undefined }> {
  const { sfn, sleep } = ctx.deps;
  const input = { runId, sourceInstanceId: ctx.options.instanceId, targetInstanceId: ctx.options.targetInstanceId, devices: [device], keepOnFailure: false };
  const started = await sfn.send(new StartExecutionCommand({ stateMachineArn: ctx.options.restoreStateMachineArn, name: `selftest-${runId}-${method}`, input: JSON.stringify(input) }));
  for (let i = 0; i < (LIMITS.restoreMinutes * 60) / LIMITS.pollSeconds; i += 1) {
    await sleep(LIMITS.pollSeconds * 1000);
    const out = await sfn.send(new DescribeExecutionCommand({ executionArn: started.executionArn }));
    if (out.status && out.status !== 'RUNNING' && out.status !== 'PENDING_REDRIVE') {
      let output: RestoreOutput | undefined;
      try {
        output = out.output ? (JSON.parse(out.output) as RestoreOutput) : undefined;
      } catch {
        output = undefined;
      }
      return { execution: { status: out.status, output: out.output, error: out.error, cause: out.cause }, output };
    }
  }
  return { execution: { status: 'TIMED_OUT_WAITING', cause: `${started.executionArn} still running after ${LIMITS.restoreMinutes} minutes` }, output: undefined };
}

async function deleteVolumes(ctx: Context, volumeIds: string[]): Promise<{ deleted: string[]; left: string[] }> {
  const { ec2, sleep } = ctx.deps;
  const deleted: string[] = [];
  const left: string[] = [];
  for (const volumeId of volumeIds) {
    try {
      const volume = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0];
      if (volume?.State === 'in-use') await ec2.send(new DetachVolumeCommand({ VolumeId: volumeId }));
      let state = volume?.State;
      for (let i = 0; state !== 'available' && i < (LIMITS.detachMinutes * 60) / LIMITS.pollSeconds; i += 1) {
        await sleep(LIMITS.pollSeconds * 1000);
        state = (await ec2.send(new DescribeVolumesCommand({ VolumeIds: [volumeId] }))).Volumes?.[0]?.State;
      }
      await ec2.send(new DeleteVolumeCommand({ VolumeId: volumeId }));
      deleted.push(volumeId);
    } catch (error) {
      if ((error as Error).name === 'InvalidVolume.NotFound') deleted.push(volumeId);
      else {
        left.push(volumeId);
        ctx.deps.print(`      could not delete ${volumeId}: ${(error as Error).message}`);
      }
    }
  }
  return { deleted, left };
}

async function deleteSnapshots(ctx: Context, snapshotIds: string[]): Promise<{ deleted: string[]; left: string[] }> {
  const deleted: string[] = [];
  const left: string[] = [];
  for (const snapshotId of snapshotIds) {
    try {
      await ctx.deps.ec2.send(new DeleteSnapshotCommand({ SnapshotId: snapshotId }));
      deleted.push(snapshotId);
    } catch (error) {
      if ((error as Error).name === 'InvalidSnapshot.NotFound') deleted.push(snapshotId);
      else {
        left.push(snapshotId);
        ctx.deps.print(`      could not delete ${snapshotId}: ${(error as Error).message}`);
      }
    }
  }
  return { deleted, left };
}

interface MethodRun {
  method: SnapshotMethod;
  runId: string;
  snapshots: SnapshotView[];
  timeline?: DiskShadowTimeline;
  shadowSetId?: string;
  restored?: RestoreOutput;
}

/** Runs the self-test; returns every check (also printed as it is made). */
export async function runSelfTest(deps: SelfTestDeps, options: SelfTestOptions): Promise<Check[]> {
  const ctx: Context = { deps, options, checks: [] };
  const now = deps.now ?? (() => new Date());
  const { ec2, ssm } = deps;
  const testId = newRunId(now());
  deps.print(`vss-snapshots self-test ${testId}: instance ${options.instanceId}, restore to ${options.targetInstanceId}, methods ${options.methods.join(', ')}.`);

  // 1. The instance.
  const instance = await describeInstance(ec2, options.instanceId);
  const info = (await ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [options.instanceId] }] }))).InstanceInformationList?.[0];
  const instanceOk = record(ctx, instanceChecks({
    instanceId: options.instanceId,
    state: instance?.State?.Name,
    platformDetails: instance?.PlatformDetails ?? instance?.Platform,
    pingStatus: info?.PingStatus,
    agentVersion: info?.AgentVersion,
  }));
  if (!instanceOk || !instance) return ctx.checks;
  deps.print(`INFO  ${[info?.PlatformName ?? 'Windows', info?.PlatformVersion].filter(Boolean).join(' ')}, ${instance.InstanceType}, SSM Agent ${info?.AgentVersion}`);

  // 2. Prepare: known files and the workload on the data volume.
  const prepared = await selfTestAction(ctx, options.instanceId, testId, 'prepare');
  const prepareFacts = PrepareFacts.safeParse(prepared.line?.facts);
  if (!prepareFacts.success) {
    if (prepared.line?.outcome === 'success') record(ctx, [{ name: 'self-test document: prepare', ok: false, detail: `unexpected facts: ${prepareFacts.error.message.slice(0, 200)}` }]);
    return ctx.checks;
  }
  const facts = prepareFacts.data;
  deps.print(`INFO  ${facts.os} (build ${facts.build}), ${facts.hypervisor}, PowerShell ${facts.powershell}, AwsVssComponents ${facts.awsVssComponents ?? 'not installed'}`);
  record(ctx, prepareChecks(testId, facts, prepared.line?.runId ?? null));
  const volumeIds = (instance.BlockDeviceMappings ?? []).map((m) => m.Ebs?.VolumeId).filter((v): v is string => !!v);
  const dataMapping = (instance.BlockDeviceMappings ?? []).find((m) => m.Ebs?.VolumeId && m.Ebs.VolumeId === facts.dataVolume.volumeId);
  if (!dataMapping?.DeviceName) {
    record(ctx, [{ name: 'data volume found among the instance EBS volumes', ok: false, detail: `${facts.dataVolume.drive}: is ${facts.dataVolume.volumeId ?? 'not an EBS volume of this instance'}` }]);
  }
  const dataDevice = normalizeDevice(dataMapping?.DeviceName ?? '');

  // 3. Snapshot with each method, as the nightly run sends it; 4. restore through the deployed workflow.
  const runs: MethodRun[] = [];
  for (const method of options.methods) {
    const runId = newRunId(now());
    const driver = methodDriver(method);
    const parameters = driver.parameters({ runId, attempt: 1, excludeBootVolume: false, copyOnly: false, commandTimeoutSeconds: 1800 });
    const documentName = method === 'aws-vss' ? options.vssDocument : (options.diskShadowDocument as string);
    const command = await runCommand(ctx, options.instanceId, documentName, method === 'aws-vss' ? '$DEFAULT' : '1', parameters, `vss-snapshots selftest ${runId} ${method}`, 1800);
    const snapshots = command.status === 'Success' ? await waitForSnapshots(ctx, runId, volumeIds) : await runSnapshots(ec2, runId);
    const run: MethodRun = { method, runId, snapshots };
    runs.push(run);
    if (method === 'diskshadow') {
      run.timeline = diskShadowTimeline(command.output);
      run.shadowSetId = snapshots.map((s) => s.tags['vss-snapshots:shadow-set-id']).find(Boolean);
    }
    const snapshotOk = record(ctx, snapshotChecks(method, command, snapshots, volumeIds));
    if (snapshotOk && dataDevice) {
      const { execution, output } = await runRestore(ctx, runId, method, dataDevice);
      record(ctx, restoreChecks(method, execution, output));
      if (execution.status === 'SUCCEEDED') run.restored = output;
    }
  }

  // 5. Stop the workload and read the live journal; 6. read the restored volumes.
  const diskshadow = runs.find((r) => r.method === 'diskshadow');
  const window = diskshadow?.timeline ? `${diskshadow.timeline.createdAt}/${diskshadow.timeline.requestedAt}` : '';
  const stopped = await selfTestAction(ctx, options.instanceId, testId, 'stop', window ? { Window: window } : {});
  const stopFacts = StopFacts.safeParse(stopped.line?.facts);
  const restoredIds = runs.flatMap((r) => r.restored?.volumes.map((v) => v.volumeId) ?? []);
  let verified: VerifyFacts | undefined;
  if (restoredIds.length > 0) {
    const result = await selfTestAction(ctx, options.targetInstanceId, testId, 'verify', { VolumeIds: restoredIds.join(',') });
    const parsed = VerifyFacts.safeParse(result.line?.facts);
    verified = parsed.success ? parsed.data : undefined;
  }
  for (const run of runs) {
    const restoredId = run.restored?.volumes[0]?.volumeId;
    if (!restoredId) continue;
    const volume = verified?.volumes.find((v) => v.volumeId === restoredId);
    record(ctx, dataChecks(run.method, volume));
    if (run.method === 'diskshadow') record(ctx, revertChecks(volume, run.timeline, stopFacts.success ? stopFacts.data : undefined));
  }

  // 7. Clean up what the test created.
  if (options.keep) {
    deps.print(`INFO  --keep: restored volumes ${restoredIds.join(', ') || '(none)'} and snapshots ${runs.flatMap((r) => r.snapshots.map((s) => s.snapshotId)).join(', ') || '(none)'} are kept.`);
    return ctx.checks;
  }
  const volumes = await deleteVolumes(ctx, restoredIds);
  const snapshots = await deleteSnapshots(ctx, runs.flatMap((r) => r.snapshots.map((s) => s.snapshotId)));
  const cleaned = await selfTestAction(ctx, options.instanceId, testId, 'cleanup', diskshadow?.shadowSetId ? { ShadowSetId: diskshadow.shadowSetId } : {});
  const cleanupFacts = CleanupFacts.safeParse(cleaned.line?.facts);
  record(ctx, cleanupChecks({ volumesDeleted: volumes.deleted, volumesLeft: volumes.left, snapshotsDeleted: snapshots.deleted, snapshotsLeft: snapshots.left }, cleanupFacts.success ? cleanupFacts.data : undefined));
  return ctx.checks;
}
