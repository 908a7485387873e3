/**
 * "Create Volumes", "Check Volumes" and "Attach Volumes": one volume per planned snapshot in the target's
 * Availability Zone, tagged on create with the restore id, then attached at free device names. Each step
 * is safe to run again after a Lambda died half-way: CreateVolume carries a ClientToken derived from the
 * restore id and snapshot, and Attach Volumes skips what is already attached.
 */
import { createHash } from 'node:crypto';
import { AttachVolumeCommand, CreateVolumeCommand, DescribeInstancesCommand, DescribeVolumesCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Volume, VolumeType } from '@aws-sdk/client-ec2';
import { clock } from '../clock.ts';
import { RestoreVolumeError } from '../errors.ts';
import type { RestoreConfig } from './config.ts';
import { deviceSlot, freeDeviceNames } from './devices.ts';
import { createdVolumeIds, planOf, RESTORE_TAGS } from './state.ts';
import type { PlannedVolume, RestoreState } from './state.ts';

export interface VolumeDeps {
  ec2: EC2Client;
  config: RestoreConfig;
}

/** At most 64 ASCII characters, the same for every retry of this restore and snapshot. */
export function clientToken(restoreId: string, snapshotId: string): string {
  return `vss-restore-${createHash('sha256').update(`${restoreId}/${snapshotId}`).digest('hex').slice(0, 40)}`;
}

export function volumeTags(state: RestoreState, volume: PlannedVolume): { Key: string; Value: string }[] {
  const r = state.restore;
  return [
    { Key: RESTORE_TAGS.restoreId, Value: r.restoreId },
    { Key: RESTORE_TAGS.runId, Value: r.runId },
    { Key: RESTORE_TAGS.sourceInstance, Value: r.sourceInstanceId },
    { Key: RESTORE_TAGS.sourceDevice, Value: volume.sourceDevice },
    { Key: RESTORE_TAGS.targetInstance, Value: r.targetInstanceId },
    { Key: 'Name', Value: `restore of ${r.sourceInstanceId} ${volume.sourceDevice} (run ${r.runId})` },
  ];
}

const deadlineFrom = (seconds: number) => new Date(clock.now() + seconds * 1000).toISOString();

export async function createVolumes(deps: VolumeDeps, state: RestoreState): Promise<RestoreState> {
  const plan = planOf(state);
  const volumes: PlannedVolume[] = [];
  for (const volume of plan.volumes) {
    if (volume.volumeId) {
      volumes.push(volume);
      continue;
    }
    const out = await deps.ec2.send(
      new CreateVolumeCommand({
        SnapshotId: volume.snapshotId,
        AvailabilityZone: plan.availabilityZone,
        VolumeType: deps.config.volumeType as VolumeType,
        ClientToken: clientToken(state.restore.restoreId, volume.snapshotId),
        TagSpecifications: [{ ResourceType: 'volume', Tags: volumeTags(state, volume) }],
      }),
    );
    if (!out.VolumeId) throw new RestoreVolumeError(`CreateVolume from ${volume.snapshotId} returned no volume id.`);
    volumes.push({ ...volume, volumeId: out.VolumeId });
  }
  return { ...state, plan: { ...plan, volumes }, phase: 'creating', ready: false, deadline: deadlineFrom(deps.config.volumeDeadlineSeconds) };
}

async function describeVolumes(ec2: EC2Client, volumeIds: string[]): Promise<Map<string, Volume>> {
  const out = await ec2.send(new DescribeVolumesCommand({ VolumeIds: volumeIds }));
  return new Map((out.Volumes ?? []).map((v) => [v.VolumeId ?? '', v]));
}

/** Polled by the state machine until every volume is `available` (phase creating) or attached (phase attaching). */
export async function checkVolumes(deps: VolumeDeps, state: RestoreState): Promise<RestoreState> {
  const plan = planOf(state);
  const ids = createdVolumeIds(state);
  let found: Map<string, Volume>;
  try {
    found = await describeVolumes(deps.ec2, ids);
  } catch (error) {
    // EC2 is eventually consistent: DescribeVolumes right after CreateVolume may not know the new id yet
    // (InvalidVolume.NotFound). While creating, that is "not yet available", bounded by the deadline.
    if (state.phase !== 'creating' || (error as Error).name !== 'InvalidVolume.NotFound') throw error;
    found = new Map();
  }
  const target = state.restore.targetInstanceId;
  const notReady: string[] = [];
  for (const v of plan.volumes) {
    const volume = found.get(v.volumeId ?? '');
    const status = volume?.State ?? 'missing';
    if (status === 'error') throw new RestoreVolumeError(`Volume ${v.volumeId} created from ${v.snapshotId} went to state error.`);
    if (state.phase === 'attaching') {
      const attachment = volume?.Attachments?.find((a) => a.InstanceId === target);
      if (!attachment) throw new RestoreVolumeError(`Volume ${v.volumeId} is no longer being attached to ${target} (state ${status}).`);
      if (attachment.State !== 'attached' || status !== 'in-use') notReady.push(`${v.volumeId} ${attachment.State ?? status}`);
    } else if (status !== 'available') {
      notReady.push(`${v.volumeId} ${status}`);
    }
  }
  if (notReady.length === 0) return { ...state, ready: true };
  if (state.deadline && clock.now() > Date.parse(state.deadline)) {
    const what = state.phase === 'attaching' ? 'attached' : 'available';
    throw new RestoreVolumeError(`Not ${what} by the deadline ${state.deadline}: ${notReady.join(', ')}.`);
  }
  return { ...state, ready: false };
}

/**
 * Attaches every created volume to the target. Device names are checked again against the target's
 * mappings right before: a name taken since Plan Restore is replaced by the next free one.
 */
export async function attachVolumes(deps: VolumeDeps, state: RestoreState): Promise<RestoreState> {
  const plan = planOf(state);
  const target = state.restore.targetInstanceId;
  const described = await deps.ec2.send(new DescribeInstancesCommand({ InstanceIds: [target] }));
  const instance = described.Reservations?.flatMap((r) => r.Instances ?? []).find((i) => i.InstanceId === target);
  const ours = new Set(createdVolumeIds(state));
  const found = await describeVolumes(deps.ec2, [...ours]);
  // Slots used by volumes that are not this restore's.
  const taken = new Set<string>([instance?.RootDeviceName ?? '', ...(instance?.BlockDeviceMappings ?? []).filter((m) => !ours.has(m.Ebs?.VolumeId ?? '')).map((m) => m.DeviceName ?? '')].filter(Boolean).map(deviceSlot));

  const volumes: PlannedVolume[] = [];
  for (const v of plan.volumes) {
    const existing = found.get(v.volumeId ?? '')?.Attachments?.find((a) => a.InstanceId === target && a.State !== 'detaching' && a.State !== 'detached');
    if (existing?.Device) {
      // Attached (or being attached) by an earlier try of this step.
      taken.add(deviceSlot(existing.Device));
      volumes.push({ ...v, device: existing.Device });
      continue;
    }
    let device = v.device;
    if (taken.has(deviceSlot(device)) || volumes.some((o) => deviceSlot(o.device) === deviceSlot(device))) {
      const alternative = freeDeviceNames([...taken].map((s) => `xvd${s}`).concat(volumes.map((o) => o.device), plan.volumes.map((o) => o.device)), 1)?.[0];
      if (!alternative) throw new RestoreVolumeError(`No free device name left on ${target} for ${v.volumeId}.`);
      device = alternative;
    }
    try {
      await deps.ec2.send(new AttachVolumeCommand({ VolumeId: v.volumeId ?? '', InstanceId: target, Device: device }));
    } catch (error) {
      // An SDK retry of a call whose response was lost: the first one attached it already.
      if ((error as Error).name !== 'VolumeInUse') throw error;
      const again = (await describeVolumes(deps.ec2, [v.volumeId ?? ''])).get(v.volumeId ?? '')?.Attachments?.find((a) => a.InstanceId === target);
      if (!again?.Device) throw error;
      device = again.Device;
    }
    taken.add(deviceSlot(device));
    volumes.push({ ...v, device });
  }
  return { ...state, plan: { ...plan, volumes }, phase: 'attaching', ready: false, deadline: deadlineFrom(deps.config.volumeDeadlineSeconds) };
}
