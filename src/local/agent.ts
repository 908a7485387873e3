/**
 * What a simulated Windows instance does when its SSM Agent receives a snapshot command: it acts out the
 * document (AWS's VSS document or this project's DiskShadow one) according to the fleet's behaviour for
 * this attempt, and prints what the real document would print.
 */
import { CONSISTENCY, CONSISTENCY_TAG, SHADOW_SET_TAG } from '../lib/methods/diskshadow.ts';
import { formatResultLine, SNAPSHOT_EXIT_CODES } from '../lib/result-line.ts';
import { ATTEMPT_TAG, INSTANCE_TAG, METHOD_TAG, RUN_TAG } from '../lib/run-id.ts';
import type { Behaviour } from './fleet.ts';
import type { SimCommand, SimDocument, SimInstance, SimInvocation, World } from './world.ts';

const MAX_PENDING_PER_VOLUME = 5;
/** Windows holds a VSS freeze for at most 10 seconds (aws-facts.md). */
const VSS_FREEZE_MS = 10_000;

/** Parses the VSS document's `tags` parameter: `Key=k,Value=v;Key=...`. */
export function parseVssTags(text: string | undefined): Record<string, string> {
  const tags: Record<string, string> = {};
  for (const part of (text ?? '').split(';')) {
    const match = /^Key=([^,]*),Value=(.*)$/.exec(part.trim());
    if (match) tags[match[1] as string] = match[2] as string;
  }
  return tags;
}

function runTags(document: SimDocument, command: SimCommand, instance: SimInstance): Record<string, string> {
  if (document.kind === 'aws-vss') return parseVssTags(command.parameters.tags?.[0]);
  return {
    [RUN_TAG]: command.parameters.RunId?.[0] ?? '',
    [ATTEMPT_TAG]: command.parameters.Attempt?.[0] ?? '',
    [METHOD_TAG]: 'diskshadow',
    [INSTANCE_TAG]: instance.instanceId,
  };
}

/** Plans the invocation of a snapshot document on one instance: when it ends, how, and its effect. */
export function planSnapshotInvocation(world: World, command: SimCommand, document: SimDocument, instance: SimInstance): SimInvocation {
  const requestedAt = world.now;
  const base = {
    commandId: command.commandId,
    instanceId: instance.instanceId,
    status: 'Pending' as const,
    statusDetails: 'Pending',
    responseCode: -1,
    output: '',
    requestedAt,
    visibleAt: requestedAt + 2_000,
    applied: false,
  };
  const timeoutSeconds = Number(command.parameters.executionTimeout?.[0] ?? '3600');

  if (instance.agent !== 'online' || instance.state !== 'running') {
    // Nobody picks it up: it waits for the delivery timeout.
    return {
      ...base,
      finishAt: requestedAt + command.timeoutSeconds * 1000,
      final: { status: 'TimedOut', statusDetails: 'DeliveryTimedOut', responseCode: -1, output: '' },
    };
  }

  instance.snapshotCommandsRun += 1;
  const n = instance.snapshotCommandsRun;
  const behaviour: Behaviour = instance.behaviours[Math.min(n, instance.behaviours.length) - 1] ?? 'ok';
  const doneAt = requestedAt + instance.commandSeconds * 1000;
  const method = document.kind === 'diskshadow' ? 'diskshadow' : 'aws-vss';
  const ok = (output: string) => ({ status: 'Success' as const, statusDetails: 'Success', responseCode: 0, output });
  const failed = (code: number, output: string) => ({ status: 'Failed' as const, statusDetails: 'Failed', responseCode: code, output });

  // A script still running at the document's executionTimeout is stopped by the agent: ExecutionTimedOut,
  // whatever it would have done afterwards (the instant failures below end long before).
  const instant = behaviour === 'access-denied' || behaviour === 'undeliverable';
  if (!instant && behaviour !== 'hang' && instance.commandSeconds > timeoutSeconds) {
    return {
      ...base,
      finishAt: requestedAt + timeoutSeconds * 1000,
      final: { status: 'TimedOut', statusDetails: 'ExecutionTimedOut', responseCode: -1, output: 'Creating VSS snapshot set...\n' },
    };
  }

  switch (behaviour) {
    case 'access-denied':
      return { ...base, finishAt: requestedAt + 1_000, final: { status: 'Failed', statusDetails: 'AccessDenied', responseCode: -1, output: '' } };
    case 'undeliverable':
      return { ...base, finishAt: requestedAt + 5_000, final: { status: 'Failed', statusDetails: 'Undeliverable', responseCode: -1, output: '' } };
    case 'hang':
      return {
        ...base,
        finishAt: requestedAt + timeoutSeconds * 1000,
        final: { status: 'TimedOut', statusDetails: 'ExecutionTimedOut', responseCode: -1, output: 'Creating VSS snapshot set...\n' },
      };
    case 'vss-timeout':
      return { ...base, finishAt: doneAt, final: failed(method === 'diskshadow' ? 10 : 1, failureOutput(method, instance, 'VSS_E_FLUSH_WRITES_TIMEOUT', true, 'timeout waiting for VSS Freeze')) };
    case 'writer-failure':
      return {
        ...base,
        finishAt: doneAt,
        final: failed(method === 'diskshadow' ? 20 : 1, failureOutput(method, instance, 'VSS_E_WRITERERROR_NONRETRYABLE', false, 'A VSS writer failed: VSS_E_WRITERERROR_NONRETRYABLE')),
      };
    case 'component-excluded':
      if (method === 'diskshadow') return { ...base, finishAt: doneAt, final: componentExcluded(command, instance) };
      // AWS's document does not say how it treats components VSS leaves out: acted out as `ok`.
      break;
    default:
      break;
  }

  // The behaviours that exit 0. The snapshot set is requested just before the script ends.
  const invocation: SimInvocation = { ...base, finishAt: doneAt, final: ok('') };
  invocation.effect = () => {
    // The agent's one CreateSnapshots call, made inside the VSS freeze: when the account's bucket keeps it
    // throttled past the freeze (limits.ts), VSS gives up and no snapshot is taken.
    const gate = world.instanceApiGate;
    const waited = behaviour === 'no-snapshots' || !gate ? 0 : gate('ec2:CreateSnapshots', doneAt, VSS_FREEZE_MS);
    if (waited === undefined) {
      invocation.status = 'Failed';
      invocation.statusDetails = 'Failed';
      invocation.responseCode = method === 'diskshadow' ? 10 : 1;
      invocation.output = failureOutput(method, instance, 'vss-timeout', true, 'Thaw pipe connection timed out: EC2 CreateSnapshots was throttled (RequestLimitExceeded) for the whole VSS freeze');
      return;
    }
    const created = behaviour === 'no-snapshots' ? [] : createSnapshotSet(world, command, document, instance, behaviour, doneAt + waited);
    if (created === 'limit') {
      invocation.status = 'Failed';
      invocation.statusDetails = 'Failed';
      invocation.responseCode = method === 'diskshadow' ? 20 : 1;
      invocation.output = failureOutput(method, instance, 'ConcurrentSnapshotLimitExceeded', false, 'ConcurrentSnapshotLimitExceeded: too many pending snapshots for a volume');
      return;
    }
    invocation.output = successOutput(method, instance, created, behaviour !== 'crash-consistent', command, world);
  };
  return invocation;
}

/**
 * The DiskShadow script finding, after "create", that DiskShadow left an application writer's component
 * out of the backup because it needs a volume outside the shadow copy set: it fails before the EBS request
 * (no snapshot), permanently, exactly with the result line src/scripts/diskshadow-snapshot.ps1 prints.
 */
function componentExcluded(command: SimCommand, instance: SimInstance): { status: 'Failed'; statusDetails: string; responseCode: number; output: string } {
  const exitCode = SNAPSHOT_EXIT_CODES['vss-permanent'];
  const message =
    'DiskShadow left writer component(s) out of the backup because they need a volume that is not in the shadow copy set: \\EC2AMAZ\\MSSQLSERVER\\sales of SqlServerWriter (needs L:\\). Their files in these snapshots would not be consistent. Give that volume a drive letter or mount point (NTFS/ReFS), keep ExcludeBootVolume False, or move the files.';
  const line = formatResultLine({
    version: 1,
    operation: 'snapshot',
    method: 'diskshadow',
    runId: command.parameters.RunId?.[0] ?? null,
    attempt: Number(command.parameters.Attempt?.[0] ?? '1') || 1,
    instanceId: instance.instanceId,
    outcome: 'failed',
    errorCode: 'vss-component-excluded',
    retryable: false,
    exitCode,
    message,
    vss: 'created',
    shadowSetId: null,
    appConsistent: false,
    cleanup: 'done',
    warnings: [],
    snapshots: [],
    volumes: [],
  });
  return { status: 'Failed', statusDetails: 'Failed', responseCode: exitCode, output: `${line}\nFAILED: ${message}\n` };
}

/** A deterministic lower-case GUID (shadow copy and shadow set ids, as the scripts report them). */
export function simGuid(world: World): string {
  return `${world.nextHex(8)}-${world.nextHex(4)}-4${world.nextHex(3)}-8${world.nextHex(3)}-${world.nextHex(12)}`;
}

type CreatedSet = { snapshotId: string; volumeId: string; device: string }[] & { shadowSetId?: string };

function createSnapshotSet(world: World, command: SimCommand, document: SimDocument, instance: SimInstance, behaviour: Behaviour, at: number): CreatedSet | 'limit' {
  const excludeBoot = (command.parameters.ExcludeBootVolume?.[0] ?? 'False') === 'True';
  const volumes = world.volumesOf(instance.instanceId).filter((v) => !(excludeBoot && v.device === instance.rootDevice));
  for (const v of volumes) {
    const pending = world.snapshotsOfVolume(v.volumeId).filter((s) => !s.deleted && world.snapshotState(s) === 'pending').length;
    if (pending >= MAX_PENDING_PER_VOLUME) return 'limit';
  }
  // DiskShadow: one persistent shadow copy set per run of the script, named in every snapshot's tags.
  const shadowSetId = document.kind === 'diskshadow' ? simGuid(world) : undefined;
  const tags = behaviour === 'untagged' ? {} : { ...runTags(document, command, instance), ...(shadowSetId ? { [SHADOW_SET_TAG]: shadowSetId } : {}) };
  const created: CreatedSet = [];
  if (shadowSetId) created.shadowSetId = shadowSetId;
  for (const v of volumes) {
    const snapshotId = `snap-0${world.nextHex(16)}`;
    const startTime = at - 1_000;
    world.addSnapshot({
      snapshotId,
      volumeId: v.volumeId,
      instanceId: instance.instanceId,
      volumeSize: v.sizeGiB,
      startTime,
      completeAt: startTime + instance.snapshotMinutes * 60_000,
      finalState: behaviour === 'snapshot-error' ? 'error' : 'completed',
      visibleAt: startTime + 3_000,
      description: command.parameters.description?.[0] ?? `${document.name} ${instance.instanceId}`,
      tags: {
        ...tags,
        Device: v.device ?? '',
        // AWS's document marks a good set AppConsistent=true; the DiskShadow script marks it consistent
        // only after a revert (src/lib/methods/diskshadow.ts, CONSISTENCY_TAG), never AppConsistent.
        ...(behaviour === 'crash-consistent' ? {} : document.kind === 'diskshadow' ? { [CONSISTENCY_TAG]: CONSISTENCY.afterRevert } : { AppConsistent: 'true' }),
        ...(document.kind === 'aws-vss' ? { AwsVssConfig: 'AwsVssComponents 2.5.0' } : {}),
      },
      deleted: false,
    });
    created.push({ snapshotId, volumeId: v.volumeId, device: v.device ?? '' });
  }
  return created;
}

/** Output hooks: the DiskShadow document prints one result line; AWS's prints its own log text. */
export const outputFormat = {
  success(method: string, instance: SimInstance, created: CreatedSet, appConsistent: boolean, command?: SimCommand, world?: World): string {
    if (method === 'diskshadow') {
      // Exactly the line src/scripts/diskshadow-snapshot.ps1 prints (src/lib/result-line.ts), then its log.
      const shadowSetId = created.shadowSetId ?? null;
      const line = formatResultLine({
        version: 1,
        operation: 'snapshot',
        method: 'diskshadow',
        runId: command?.parameters.RunId?.[0] ?? null,
        attempt: Number(command?.parameters.Attempt?.[0] ?? '1') || 1,
        instanceId: instance.instanceId,
        outcome: 'success',
        errorCode: null,
        retryable: false,
        exitCode: 0,
        message: `Requested ${created.length} EBS snapshot(s) containing shadow copy set ${shadowSetId ?? '(none)'}.`,
        vss: 'created',
        shadowSetId,
        appConsistent,
        cleanup: 'done',
        warnings: [],
        snapshots: created.map((c) => ({ snapshotId: c.snapshotId, volumeId: c.volumeId, device: c.device || null })),
        volumes: created.map((c, i) => ({ path: i === 0 ? 'C:\\' : `${String.fromCharCode(68 + i - 1)}:\\`, shadowCopyId: world ? simGuid(world) : null })),
      });
      return `${line}\nDiskShadow created shadow copy set ${shadowSetId}; CreateSnapshots accepted.\n`;
    }
    return `Creating VSS snapshot set for ${instance.instanceId}\n${created.map((c) => `Snapshot ${c.snapshotId} created for ${c.device}`).join('\n')}\nVSS snapshot set completed.\n`;
  },
  failure(method: string, instance: SimInstance, errorCode: string, retryable: boolean, message: string): string {
    if (method === 'diskshadow') {
      return `DiskShadow failed\nVSS-SNAPSHOTS-RESULT ${JSON.stringify({ version: 1, instanceId: instance.instanceId, vss: 'failed', snapshots: [], errorCode, retryable, message })}\n`;
    }
    return `Creating VSS snapshot set for ${instance.instanceId}\nERROR: ${message}\n`;
  },
};

const successOutput = (m: string, i: SimInstance, c: CreatedSet, a: boolean, command: SimCommand, world: World) => outputFormat.success(m, i, c, a, command, world);
const failureOutput = (m: string, i: SimInstance, code: string, r: boolean, msg: string) => outputFormat.failure(m, i, code, r, msg);
