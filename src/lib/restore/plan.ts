/**
 * "Plan Restore": finds the run's snapshots of the source and looks up the target, changing nothing. Every
 * reason to refuse is found here, before a volume exists: an unknown run, instance or device is an
 * InvalidInputError; unusable snapshots or a target that cannot take them a RestoreRefusedError.
 */
import { DescribeInstancesCommand, DescribeSnapshotTierStatusCommand, paginateDescribeSnapshots } from '@aws-sdk/client-ec2';
import type { EC2Client, Instance, Snapshot } from '@aws-sdk/client-ec2';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { DescribeDocumentCommand, DescribeInstanceInformationCommand } from '@aws-sdk/client-ssm';
import type { SSMClient } from '@aws-sdk/client-ssm';
import type { RunReport } from '../report.ts';
import { reportKey } from '../run-state.ts';
import { InvalidInputError, RestoreRefusedError } from '../errors.ts';
import { SHADOW_SET_TAG } from '../methods/diskshadow.ts';
import { methodDriver } from '../methods/index.ts';
import { RUN_TAG } from '../run-id.ts';
import { freeDeviceNames, normalizeDevice } from './devices.ts';
import { chooseDrCopies } from './dr-copies.ts';
import type { ChosenSnapshot } from './dr-copies.ts';
import { fromDrCopies } from './region.ts';
import { preference, toRunSnapshot } from './run-snapshots.ts';
import type { RunSnapshot } from './run-snapshots.ts';
import type { PlannedVolume, RestoreState } from './state.ts';

export { toRunSnapshot };
export type { RunSnapshot };

export interface PlanDeps {
  /** The clients of the restore's Region (region.ts): the DR Region's for a restore from the DR copies. */
  ec2: EC2Client;
  ssm: SSMClient;
  s3: S3Client;
  /** Where the nightly runs' reports are; without it a vanished source's AWS VSS snapshots cannot be found. */
  reportBucket: string | undefined;
  /** The stack's DiskShadow restore document: a restore in the DR Region checks it exists there before creating anything. */
  restoreDocument?: string | undefined;
}

async function describeInstance(ec2: EC2Client, instanceId: string): Promise<Instance | undefined> {
  try {
    const out = await ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
    return out.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === instanceId);
  } catch (error) {
    if ((error as Error).name === 'InvalidInstanceID.NotFound' || (error as Error).name === 'InvalidInstanceID.Malformed') return undefined;
    throw error;
  }
}

async function runSnapshots(ec2: EC2Client, runId: string): Promise<RunSnapshot[]> {
  const found: RunSnapshot[] = [];
  const pages = paginateDescribeSnapshots(
    { client: ec2, pageSize: 1000 },
    { OwnerIds: ['self'], Filters: [{ Name: `tag:${RUN_TAG}`, Values: [runId] }] },
  );
  for await (const page of pages) for (const s of page.Snapshots ?? []) found.push(toRunSnapshot(s));
  return found;
}

export async function planRestore(deps: PlanDeps, state: RestoreState): Promise<RestoreState> {
  const { runId, sourceInstanceId: source, targetInstanceId: target, region } = state.restore;

  const target$ = await describeInstance(deps.ec2, target);
  if (!target$) {
    const where = region
      ? `in ${region}, the Region of this restore (field "region"): the target must live in the Region of the DR copies`
      : 'in this account and Region; to restore in the DR Region from the DR copies there, give its code in field "region"';
    throw new InvalidInputError(`Target instance ${target} does not exist ${where} (field "targetInstanceId"). Nothing was created.`);
  }
  const chosen = fromDrCopies(state) ? await chooseDrCopies(deps.ec2, state) : await chooseRunSnapshots(deps, state);

  const unusable = chosen.flatMap(({ device, snapshot: s }) => {
    if (s.state === 'error') return [`${device} (${s.snapshotId}) is in state error`];
    if (s.state !== 'completed') return [`${device} (${s.snapshotId}) is still ${s.state}${s.progress ? ` (${s.progress})` : ''}; try again when it is completed`];
    if (!s.appConsistent) return [`${device} (${s.snapshotId}) is not tagged ${methodDriver(s.method).consistencyTag} (only crash-consistent)`];
    if (s.method === 'diskshadow' && !s.shadowSetId) return [`${device} (${s.snapshotId}) is a DiskShadow snapshot without the ${SHADOW_SET_TAG} tag: it cannot be reverted`];
    return [];
  });
  if (unusable.length > 0) throw new RestoreRefusedError(`Refusing to restore run ${runId} of ${source}: ${unusable.join('; ')}. Nothing was created.`);
  const archived = chosen.filter((c) => c.snapshot.storageTier === 'archive');
  if (archived.length > 0) {
    const restoring = await tierRestoresUnderWay(deps.ec2, archived.map((c) => c.snapshot.snapshotId));
    throw new RestoreRefusedError(archivedText(runId, source, archived.map((c) => ({ device: c.device, snapshotId: c.snapshot.snapshotId, restoringSince: restoring.get(c.snapshot.snapshotId) }))));
  }

  const methods = new Set(chosen.map((c) => c.snapshot.method));
  if (methods.size > 1) throw new RestoreRefusedError(`Run ${runId} of ${source} mixes aws-vss and diskshadow snapshots; restore the devices of each method separately (field "devices").`);
  const method = chosen[0]?.snapshot.method ?? 'aws-vss';
  // One attempt's snapshots are one point in time; another attempt's are a later one. Mixing them (one
  // device's latest attempt still pending, so an earlier attempt's snapshot was chosen) would restore an
  // application whose volumes disagree, and AWS VSS snapshots have no shadow set to catch that below.
  const attempts = new Set(chosen.map((c) => c.snapshot.attempt));
  if (attempts.size > 1) {
    const which = chosen.map((c) => `${c.device} attempt ${c.snapshot.attempt} (${c.snapshot.snapshotId})`).join(', ');
    throw new RestoreRefusedError(`The usable snapshots of ${source} in run ${runId} come from different attempts, so from different points in time: ${which}. Restore the devices of one attempt at a time (field "devices"). Nothing was created.`);
  }
  const shadowSets = new Set(chosen.map((c) => c.snapshot.shadowSetId));
  if (method === 'diskshadow' && shadowSets.size > 1) {
    throw new RestoreRefusedError(`The chosen snapshots of ${source} belong to ${shadowSets.size} different shadow copy sets (attempts); restore the devices of one attempt at a time (field "devices").`);
  }

  const targetState = target$.State?.Name ?? 'unknown';
  if (targetState !== 'running' && targetState !== 'stopped') {
    throw new RestoreRefusedError(`Target instance ${target} is ${targetState}; volumes can be attached only to a running or stopped instance.`);
  }
  if (method === 'diskshadow') await assertCanRevert(deps, target$, targetState);
  if (method === 'diskshadow' && region) await assertRestoreDocumentIn(deps, region);
  const availabilityZone = target$.Placement?.AvailabilityZone;
  if (!availabilityZone) throw new RestoreRefusedError(`Target instance ${target} reports no Availability Zone.`);

  const inUse = [target$.RootDeviceName ?? '', ...(target$.BlockDeviceMappings ?? []).map((m) => m.DeviceName ?? '')].filter(Boolean);
  const names = freeDeviceNames(inUse, chosen.length);
  if (!names) throw new RestoreRefusedError(`Target instance ${target} has not enough free device names (xvdf-xvdz) for ${chosen.length} volume(s); in use: ${inUse.join(', ')}.`);

  const volumes: PlannedVolume[] = chosen.map(({ device, snapshot }, i) => ({
    sourceDevice: device,
    sourceVolumeId: snapshot.volumeId,
    snapshotId: snapshot.snapshotId,
    ...(snapshot.copyOf ? { copyOf: snapshot.copyOf } : {}),
    sizeGiB: snapshot.sizeGiB,
    device: names[i] as string,
    volumeId: null,
  }));
  return {
    ...state,
    plan: { method, availabilityZone, targetState, shadowSetId: method === 'diskshadow' ? (chosen[0]?.snapshot.shadowSetId ?? null) : null, volumes },
  };
}

/** The run's own snapshots of the source in the stack's Region, one per device. */
async function chooseRunSnapshots(deps: PlanDeps, state: RestoreState): Promise<ChosenSnapshot[]> {
  const { runId, sourceInstanceId: source, devices } = state.restore;
  // The source may be gone (the reason for many restores); its DiskShadow snapshots still name it in a tag.
  const source$ = await describeInstance(deps.ec2, source);
  const sourceDevices = new Map<string, string>();
  for (const m of source$?.BlockDeviceMappings ?? []) if (m.Ebs?.VolumeId && m.DeviceName) sourceDevices.set(m.Ebs.VolumeId, normalizeDevice(m.DeviceName));
  // The run's report says which volume (and device) each of the source's snapshots was of at the time of
  // the run: it finds the AWS VSS snapshots of a source that was terminated since, or whose volumes moved.
  for (const [volumeId, device] of await reportedVolumes(deps, runId, source)) sourceDevices.set(volumeId, device);

  const all = await runSnapshots(deps.ec2, runId);
  if (all.length === 0) {
    throw new InvalidInputError(`Run ${runId} has no snapshots in this account and Region (field "runId"): the run id is unknown, or its snapshots were deleted.`);
  }
  // DiskShadow snapshots carry the instance id; AWS VSS snapshots are matched by the source's volumes.
  const ofSource = all.filter((s) => (s.instanceId ? s.instanceId === source : sourceDevices.has(s.volumeId)));
  if (ofSource.length === 0) {
    const why = source$
      ? ''
      : ` The instance ${source} does not exist (any more): its snapshots are found by the tag with its id (DiskShadow method) or through the run's report (reports/${runId}.json in the report bucket), and neither names them.`;
    throw new InvalidInputError(`Run ${runId} has no snapshots of source instance ${source} (field "sourceInstanceId"); it has ${all.length} snapshot(s) of other instances.${why}`);
  }

  const byDevice = new Map<string, RunSnapshot[]>();
  for (const s of ofSource) {
    const device = s.device ?? sourceDevices.get(s.volumeId) ?? s.volumeId;
    byDevice.set(device, [...(byDevice.get(device) ?? []), s]);
  }
  const available = [...byDevice.keys()].sort();
  if (devices) {
    const unknown = devices.filter((d) => !byDevice.has(d));
    if (unknown.length > 0) {
      throw new InvalidInputError(`Run ${runId} has no snapshot of device ${unknown.join(', ')} of ${source} (field "devices"); it has: ${available.join(', ')}.`);
    }
  }
  return (devices ?? available).map((device) => ({ device, snapshot: [...(byDevice.get(device) ?? [])].sort(preference)[0] as RunSnapshot }));
}

/** Volume id -> device of the source's snapshots, from the run report (empty when there is none). */
async function reportedVolumes(deps: PlanDeps, runId: string, source: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  if (!deps.reportBucket) return found;
  let report: RunReport;
  try {
    const out = await deps.s3.send(new GetObjectCommand({ Bucket: deps.reportBucket, Key: reportKey(runId) }));
    report = JSON.parse((await out.Body?.transformToString()) ?? '{}') as RunReport;
  } catch (error) {
    if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound' || error instanceof SyntaxError)) return found;
    throw error;
  }
  const instance = report.instances?.find((i) => i.instanceId === source);
  for (const s of instance?.snapshots ?? []) if (s.volumeId) found.set(s.volumeId, normalizeDevice(s.device ?? s.volumeId));
  return found;
}

/**
 * SSM documents are regional: the stack creates its restore document in its own Region only, and the revert in the
 * DR Region sends the document of the same name there (README "Restore from the DR Region" says how to create it).
 * Checked before anything is created, so a missing document refuses the restore instead of failing it half-way.
 */
async function assertRestoreDocumentIn(deps: PlanDeps, region: string): Promise<void> {
  const name = deps.restoreDocument;
  if (!name) throw new RestoreRefusedError('These are DiskShadow snapshots and RESTORE_DOCUMENT_NAME is not set: the restore document that reverts them is unknown.');
  try {
    await deps.ssm.send(new DescribeDocumentCommand({ Name: name }));
  } catch (error) {
    if ((error as Error).name !== 'InvalidDocument') throw error;
    throw new RestoreRefusedError(
      `These are DiskShadow snapshots: the restore document ${name} must revert them on the target in ${region}, and it does not exist there. SSM documents are regional: create it in ${region} under the same name (aws ssm create-document --region ${region} --name ${name} --document-type Command --document-format JSON --target-type /AWS::EC2::Instance --content file://build/documents/diskshadow-restore.json; README "Restore from the DR Region"), then restore again. Nothing was created.`,
    );
  }
}

/** The revert runs on the target through SSM: it must be a running Windows instance with an online agent. */
async function assertCanRevert(deps: PlanDeps, target: Instance, state: string): Promise<void> {
  const id = target.InstanceId ?? '';
  const windows = (target.Platform ?? '').toLowerCase() === 'windows' || /windows/i.test(target.PlatformDetails ?? '');
  if (!windows) throw new RestoreRefusedError(`These are DiskShadow snapshots: they must be reverted by the restore document on a Windows instance, and target ${id} is not Windows.`);
  if (state !== 'running') throw new RestoreRefusedError(`These are DiskShadow snapshots: the restore document must revert them on the target, so target ${id} must be running (it is ${state}). Start it and restore again.`);
  const info = await deps.ssm.send(new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [id] }] }));
  const ping = info.InstanceInformationList?.find((i) => i.InstanceId === id)?.PingStatus;
  if (ping !== 'Online') {
    throw new RestoreRefusedError(`These are DiskShadow snapshots: the restore document must revert them on target ${id}, whose SSM agent is ${ping ? `${ping}` : 'not registered'}. Fix the agent and restore again.`);
  }
}

/**
 * An archived snapshot cannot make a volume until it is back in the standard tier: AWS takes up to 72 hours for
 * that (EBS user guide, "Archive Amazon EBS snapshots", considerations), and it cannot be cancelled. Says so, and
 * what to run, before anything is created.
 */
export function archivedText(runId: string, source: string, snapshots: readonly { device: string; snapshotId: string; restoringSince?: Date | undefined }[]): string {
  const waiting = snapshots.filter((s) => s.restoringSince);
  const toStart = snapshots.filter((s) => !s.restoringSince);
  const list = snapshots.map((s) => `${s.device} (${s.snapshotId})`).join(', ');
  const parts = [`Refusing to restore run ${runId} of ${source}: ${list} ${snapshots.length === 1 ? 'is' : 'are'} in the EBS Snapshots Archive tier, where a snapshot cannot make a volume.`];
  if (waiting.length > 0) {
    // A restore from the archive is under way: starting another is refused by EC2; it only needs waiting for.
    const latest = new Date(Math.max(...waiting.map((s) => (s.restoringSince as Date).getTime())) + 72 * 3_600_000).toISOString();
    parts.push(
      `A restore to the standard tier is already under way for ${waiting.map((s) => `${s.snapshotId} (since ${(s.restoringSince as Date).toISOString()})`).join(', ')}: wait for it (AWS takes up to 72 hours, so until ${latest} at the latest; aws ec2 describe-snapshot-tier-status --filters Name=snapshot-id,Values=<id> shows temporary-restore-completed when it is done).`,
    );
  }
  if (toStart.length > 0) {
    const commands = toStart.map((s) => `aws ec2 restore-snapshot-tier --snapshot-id ${s.snapshotId} --temporary-restore-days 7`).join('; ');
    parts.push(
      `Restore ${toStart.length === 1 ? 'it' : 'them'} to the standard tier first; AWS takes up to 72 hours and the restore cannot be cancelled: ${commands} ` +
        `(a temporary restore of 7 days, billed in both tiers meanwhile; --permanent-restore instead moves it back for good). ` +
        `Follow it with aws ec2 describe-snapshot-tier-status --filters Name=snapshot-id,Values=<id> until LastTieringOperationStatus is temporary-restore-completed.`,
    );
  }
  parts.push('Then run this restore again. Nothing was created.');
  return parts.join(' ');
}

/**
 * Archived snapshots whose restore to the standard tier is already under way (DescribeSnapshotTierStatus,
 * `LastTieringOperationStatus` `*-restore-in-progress`), with when it started. Unknown (an error) counts as none:
 * the refusal then says how to start one, which is still true advice.
 */
async function tierRestoresUnderWay(ec2: EC2Client, snapshotIds: readonly string[]): Promise<Map<string, Date>> {
  const out = new Map<string, Date>();
  try {
    const page = await ec2.send(new DescribeSnapshotTierStatusCommand({ Filters: [{ Name: 'snapshot-id', Values: [...snapshotIds] }] }));
    for (const s of page.SnapshotTierStatuses ?? []) {
      if (s.SnapshotId && /restore-in-progress$/.test(s.LastTieringOperationStatus ?? '')) out.set(s.SnapshotId, s.LastTieringStartTime ?? new Date());
    }
  } catch {
    // Not knowing is not a reason to refuse differently.
  }
  return out;
}
