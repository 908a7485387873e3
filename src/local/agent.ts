/**
 * What a simulated Windows instance does when its SSM Agent receives a snapshot command: it acts out the
 * document (AWS's VSS document or this project's DiskShadow one) according to the fleet's behaviour for
 * this attempt, and prints what the real document would print.
 */
import { CONSISTENCY, CONSISTENCY_TAG, SHADOW_SET_TAG } from '../lib/methods/diskshadow.ts';
import { formatResultLine, SNAPSHOT_EXIT_CODES } from '../lib/result-line.ts';
import { ATTEMPT_TAG, INSTANCE_TAG, METHOD_TAG, RUN_TAG, STACK_TAG } from '../lib/run-id.ts';
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
    // The document's optional StackId parameter, written as the stack tag (diskshadow-snapshot.ps1).
    ...(command.parameters.StackId?.[0] ? { [STACK_TAG]: command.parameters.StackId[0] } : {}),
  };
}

/** Plans the invocation of a snapshot document on one instance: when it ends, how, and its effect. */
export function planSnapshotInvocation(world: World, command: SimCommand, document: SimDocument, instance: SimInstance): SimInvocation {
  const requestedAt = world.now;
  const visibleAt = requestedAt + world.lagMs('invocation-visible');
  const base = {
    commandId: command.commandId,
    instanceId: instance.instanceId,
    status: 'Pending' as const,
    statusDetails: 'Pending',
    responseCode: -1,
    output: '',
    requestedAt,
    visibleAt,
    detailVisibleAt: visibleAt + world.lagMs('invocation-detail'),
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
    case 'agent-lost':
      // The agent took the command, then the instance stopped answering (agent crash, network partition): the
      // agent enforces executionTimeout itself, so nothing ends the invocation — it stays InProgress until the
      // orchestrator's own deadline cancels it (aws-facts.md: "keep your own deadline").
      return { ...base, finishAt: Number.POSITIVE_INFINITY, final: { status: 'Cancelled', statusDetails: 'Cancelled', responseCode: -1, output: '' } };
    case 'vss-timeout':
      if (method === 'aws-vss') return vssTimeoutLeavingSnapshots(world, base, command, document, instance, doneAt);
      return { ...base, finishAt: doneAt, final: failed(10, failureOutput(method, instance, 'VSS_E_FLUSH_WRITES_TIMEOUT', true, 'timeout waiting for VSS Freeze', world)) };
    case 'writer-failure':
      return {
        ...base,
        finishAt: doneAt,
        final: failed(method === 'diskshadow' ? 20 : 1, failureOutput(method, instance, 'VSS_E_WRITERERROR_NONRETRYABLE', false, 'A VSS writer failed: VSS_E_WRITERERROR_NONRETRYABLE', world)),
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
      invocation.output = failureOutput(method, instance, 'vss-timeout', true, 'Thaw pipe connection timed out: EC2 CreateSnapshots was throttled (RequestLimitExceeded) for the whole VSS freeze', world);
      return;
    }
    const created = behaviour === 'no-snapshots' ? [] : createSnapshotSet(world, command, document, instance, behaviour, doneAt + waited);
    if (created !== 'limit' && behaviour === 'partial-snapshots') {
      // Exits 0 having snapshotted only the first volume (a data volume attached mid-run, a wrong exclusion list).
      for (const c of created.slice(1)) world.snapshots.delete(c.snapshotId);
      created.splice(1);
    }
    if (created === 'limit') {
      invocation.status = 'Failed';
      invocation.statusDetails = 'Failed';
      invocation.responseCode = method === 'diskshadow' ? 20 : 1;
      invocation.output = failureOutput(method, instance, 'ConcurrentSnapshotLimitExceeded', false, 'ConcurrentSnapshotLimitExceeded: too many pending snapshots for a volume', world);
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

/**
 * The snapshot set the document requests at `at`. AWS's document gives the run's tags on create and tags
 * `AppConsistent=true` (and `AwsVssConfig`) only after the thaw, in a separate call ("executionTimeout ... to
 * complete tagging of the resources it creates", EC2 user guide, create-vss-snapshots-ssm.html): those tags
 * become visible later still (EC2 eventual consistency). A set taken when VSS failed gets no `AppConsistent`.
 */
function createSnapshotSet(world: World, command: SimCommand, document: SimDocument, instance: SimInstance, behaviour: Behaviour, at: number, consistent = behaviour !== 'crash-consistent'): CreatedSet | 'limit' {
  const excludeBoot = (command.parameters.ExcludeBootVolume?.[0] ?? 'False') === 'True';
  const volumes = world.volumesOf(instance.instanceId).filter((v) => !(excludeBoot && v.device === instance.rootDevice));
  for (const v of volumes) {
    // Deleting a pending snapshot takes effect only once it completes: it still counts (EBS user guide).
    const pending = world.snapshotsOfVolume(v.volumeId).filter((s) => world.snapshotState(s) === 'pending').length;
    if (pending >= MAX_PENDING_PER_VOLUME) return 'limit';
  }
  // DiskShadow: one persistent shadow copy set per run of the script, named in every snapshot's tags.
  const shadowSetId = document.kind === 'diskshadow' ? simGuid(world) : undefined;
  const tags = behaviour === 'untagged' ? {} : { ...runTags(document, command, instance), ...(shadowSetId ? { [SHADOW_SET_TAG]: shadowSetId } : {}) };
  const created: CreatedSet = [];
  if (shadowSetId) created.shadowSetId = shadowSetId;
  const lateTags: Record<string, string> = {
    ...(consistent && document.kind === 'aws-vss' ? { AppConsistent: 'true' } : {}),
    ...(document.kind === 'aws-vss' ? { AwsVssConfig: 'AwsVssComponents 2.5.0' } : {}),
  };
  for (const v of volumes) {
    const snapshotId = `snap-0${world.nextHex(16)}`;
    const startTime = at - 1_000;
    const afterThaw = at + 2_000;
    world.addSnapshot({
      snapshotId,
      volumeId: v.volumeId,
      instanceId: instance.instanceId,
      volumeSize: v.sizeGiB,
      startTime,
      completeAt: startTime + instance.snapshotMinutes * 60_000,
      finalState: behaviour === 'snapshot-error' ? 'error' : 'completed',
      visibleAt: startTime + world.lagMs('snapshot-visible'),
      description: command.parameters.description?.[0] ?? `${document.name} ${instance.instanceId}`,
      // AWS's document marks a good set AppConsistent=true after the thaw; the DiskShadow script marks it
      // consistent only after a revert (CONSISTENCY_TAG), on create, never AppConsistent.
      tags: { ...tags, Device: v.device ?? '', ...lateTags, ...(consistent && document.kind === 'diskshadow' ? { [CONSISTENCY_TAG]: CONSISTENCY.afterRevert } : {}) },
      // The DiskShadow script tags everything on create (TagSpecifications); AWS's document tags after the thaw.
      ...(document.kind === 'aws-vss' ? { tagVisibleAt: Object.fromEntries(Object.keys(lateTags).map((k) => [k, afterThaw + world.lagMs('snapshot-tag')])) } : {}),
      deleted: false,
    });
    created.push({ snapshotId, volumeId: v.volumeId, device: v.device ?? '' });
  }
  return created;
}

/**
 * AWS's document when the VSS freeze times out ("Thaw pipe connection timed out"): the EBS snapshots were
 * requested inside the freeze and stay, without `AppConsistent=true` — only crash-consistent (EC2 user guide,
 * application-consistent-snapshots-troubleshooting.html; aws-facts.md) — and the command fails. The orchestrator
 * must clean them up or keep them as a labelled fallback.
 */
function vssTimeoutLeavingSnapshots(world: World, base: Omit<SimInvocation, 'finishAt' | 'final'>, command: SimCommand, document: SimDocument, instance: SimInstance, doneAt: number): SimInvocation {
  const message = 'Thaw pipe connection timed out';
  const invocation: SimInvocation = { ...base, finishAt: doneAt, final: { status: 'Failed', statusDetails: 'Failed', responseCode: 1, output: '' } };
  invocation.effect = () => {
    const gate = world.instanceApiGate;
    const waited = gate ? gate('ec2:CreateSnapshots', doneAt, VSS_FREEZE_MS) : 0;
    if (waited !== undefined) createSnapshotSet(world, command, document, instance, 'vss-timeout', doneAt + waited, false);
    invocation.output = failureOutput('aws-vss', instance, 'VSS_E_HOLD_WRITES_TIMEOUT', true, message, world);
  };
  return invocation;
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
  failure(method: string, instance: SimInstance, errorCode: string, retryable: boolean, message: string, world?: World): string {
    if (method === 'diskshadow') {
      return `DiskShadow failed\nVSS-SNAPSHOTS-RESULT ${JSON.stringify({ version: 1, instanceId: instance.instanceId, vss: 'failed', snapshots: [], errorCode, retryable, message })}\n`;
    }
    return awsVssFailureLog(instance, errorCode, message, world);
  },
};

/**
 * HRESULTs of the VSS errors (vsserror.h, learn.microsoft.com "Volume Shadow Copy Service Error Codes"): AWS's
 * document does not promise to print the VSS_E_* names; it may print only the code.
 */
export const VSS_HRESULTS: Record<string, string> = {
  VSS_E_FLUSH_WRITES_TIMEOUT: '0x80042313',
  VSS_E_HOLD_WRITES_TIMEOUT: '0x80042314',
  VSS_E_SNAPSHOT_SET_IN_PROGRESS: '0x80042316',
  VSS_E_INSUFFICIENT_STORAGE: '0x8004231F',
  VSS_E_WRITERERROR_OUTOFRESOURCES: '0x800423F1',
  VSS_E_WRITERERROR_TIMEOUT: '0x800423F2',
  VSS_E_WRITERERROR_RETRYABLE: '0x800423F3',
  VSS_E_WRITERERROR_NONRETRYABLE: '0x800423F4',
};

/**
 * What AWS's document prints when it fails: its progress log first (well over the 2,500 characters that
 * ListCommandInvocations keeps), then the error — as the VSS_E_* name, as the bare HRESULT, or as a phrase,
 * chosen per invocation by the account's seeded generator. Only the full output (GetCommandInvocation, 24,000
 * characters) holds the error.
 */
function awsVssFailureLog(instance: SimInstance, errorCode: string, message: string, world?: World): string {
  const lines = [
    `Installing/validating AwsVssComponents package on ${instance.instanceId}`,
    'AwsVssComponents 2.5.0 is installed.',
    ...Array.from({ length: 24 }, (_, i) => `[${String(i).padStart(2, '0')}] ec2-vss-agent: enumerating writers and volumes; gathering writer metadata for component set ${i + 1}; waiting for writer status (this line is part of the normal progress log)`),
    'Creating VSS snapshot set...',
  ];
  const hresult = VSS_HRESULTS[errorCode];
  const pick = world ? world.chance() : 0;
  let error: string;
  if (hresult && pick < 1 / 3) error = `Exception calling "DoSnapshotSet" with "0" argument(s): "Error ${hresult}"`;
  else if (hresult && pick < 2 / 3) error = `ec2-vss-agent failed with HRESULT ${hresult} (${errorCode})`;
  else error = `ERROR: ${message}`;
  return `${lines.join('\n')}\n${error}\n`;
}

const successOutput = (m: string, i: SimInstance, c: CreatedSet, a: boolean, command: SimCommand, world: World) => outputFormat.success(m, i, c, a, command, world);
const failureOutput = (m: string, i: SimInstance, code: string, r: boolean, msg: string, world?: World) => outputFormat.failure(m, i, code, r, msg, world);
