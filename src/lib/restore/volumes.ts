/**
 * "Create Volumes", "Check Volumes" and "Attach Volumes": one volume per planned snapshot in the target's
 * Availability Zone, tagged on create with the restore id, then attached at free device names. Each step
 * is safe to run again after a Lambda died half-way or an answer was lost: CreateVolume carries a ClientToken
 * derived from the restore id and snapshot, and Attach Volumes takes a volume already attached (or being
 * attached) to the target as done.
 *
 * EC2 is eventually consistent ("Eventual consistency in the Amazon EC2 API", EC2 developer guide): right
 * after CreateVolume, DescribeVolumes may not list the new volume; right after AttachVolume it may still show
 * the volume `available` without the attachment. Neither is a failure: the checks wait for what EC2 does not
 * show yet, for at most VISIBILITY_GRACE_MS from the step that made the change, and only then fail.
 */
import { createHash } from 'node:crypto';
import { AttachVolumeCommand, CreateVolumeCommand, DescribeInstancesCommand, paginateDescribeVolumes } from '@aws-sdk/client-ec2';
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

/**
 * How long the restore waits for EC2's read APIs to show a change it made (a new volume, an attachment, a
 * restore-id tag) before it takes the change as not having happened. AWS advises retrying a Describe "starting
 * with a couple of seconds of wait time, and increasing gradually up to a few minutes"; five minutes is that
 * ceiling with room to spare.
 */
export const VISIBILITY_GRACE_MS = 5 * 60_000;

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
    // A retry of a call whose answer was lost, or of a step whose Lambda died, returns the same volume.
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
  return { ...state, plan: { ...plan, volumes }, phase: 'creating', ready: false, deadline: deadlineFrom(deps.config.volumeDeadlineSeconds), phaseStartedAt: new Date(clock.now()).toISOString() };
}

/**
 * The volumes among `volumeIds` that DescribeVolumes lists now. By filter, not by VolumeIds: one volume EC2
 * does not list yet would fail the whole call with InvalidVolume.NotFound.
 */
export async function describeVolumesById(ec2: EC2Client, volumeIds: string[]): Promise<Map<string, Volume>> {
  const found = new Map<string, Volume>();
  if (volumeIds.length === 0) return found;
  const pages = paginateDescribeVolumes({ client: ec2, pageSize: 500 }, { Filters: [{ Name: 'volume-id', Values: volumeIds }] });
  for await (const page of pages) for (const v of page.Volumes ?? []) if (v.VolumeId) found.set(v.VolumeId, v);
  return found;
}

/** Seconds since the step that made the change, or undefined when the state does not say. */
function sinceChange(state: RestoreState): number | undefined {
  return state.phaseStartedAt ? clock.now() - Date.parse(state.phaseStartedAt) : undefined;
}

/** Polled by the state machine until every volume is `available` (phase creating) or attached (phase attaching). */
export async function checkVolumes(deps: VolumeDeps, state: RestoreState): Promise<RestoreState> {
  const plan = planOf(state);
  const found = await describeVolumesById(deps.ec2, createdVolumeIds(state));
  const target = state.restore.targetInstanceId;
  const elapsed = sinceChange(state);
  const graceOver = elapsed !== undefined && elapsed > VISIBILITY_GRACE_MS;
  const waited = elapsed === undefined ? '' : ` ${Math.round(elapsed / 1000)} s after`;
  const notReady: string[] = [];
  const volumes: PlannedVolume[] = [];
  for (const v of plan.volumes) {
    volumes.push(v);
    const volume = found.get(v.volumeId ?? '');
    if (!volume) {
      // Not listed yet (a new volume), or gone.
      if (graceOver) throw new RestoreVolumeError(`EC2 does not list volume ${v.volumeId} (from ${v.snapshotId})${waited} ${state.phase === 'attaching' ? 'attaching it' : 'creating it'}: it was deleted, or never made.`);
      notReady.push(`${v.volumeId} not listed yet`);
      continue;
    }
    const status = volume.State ?? 'unknown';
    if (status === 'error') throw new RestoreVolumeError(`Volume ${v.volumeId} created from ${v.snapshotId} went to state error.`);
    if (state.phase !== 'attaching') {
      if (status !== 'available') notReady.push(`${v.volumeId} ${status}`);
      continue;
    }
    const attachment = volume.Attachments?.find((a) => a.State !== 'detached');
    if (!attachment) {
      // AttachVolume was accepted; EC2 shows the attachment late. Past the grace, it did not take.
      if (graceOver) throw new RestoreVolumeError(`EC2 shows volume ${v.volumeId} ${status} and not attached to ${target}${waited} AttachVolume accepted it.`);
      notReady.push(`${v.volumeId} attachment not shown yet`);
      continue;
    }
    if (attachment.InstanceId !== target) throw new RestoreVolumeError(`Volume ${v.volumeId} is attached to ${attachment.InstanceId}, not to the target ${target}.`);
    if (attachment.State === 'detaching') throw new RestoreVolumeError(`Volume ${v.volumeId} is being detached from ${target} (someone detached it).`);
    if (attachment.State !== 'attached' || status !== 'in-use') {
      notReady.push(`${v.volumeId} ${attachment.State ?? status}`);
      continue;
    }
    // The device EC2 attached it at (an earlier try may have chosen another free name).
    if (attachment.Device) volumes[volumes.length - 1] = { ...v, device: attachment.Device };
  }
  const next = { ...state, plan: { ...plan, volumes } };
  if (notReady.length === 0) return { ...next, ready: true };
  if (state.deadline && clock.now() > Date.parse(state.deadline)) {
    const what = state.phase === 'attaching' ? 'attached' : 'available';
    throw new RestoreVolumeError(`Not ${what} by the deadline ${state.deadline}: ${notReady.join(', ')}.`);
  }
  return { ...next, ready: false };
}

/** An attachment of `volume` to `target` that is there or on its way (not ending). */
const attachmentTo = (volume: Volume | undefined, target: string) => volume?.Attachments?.find((a) => a.InstanceId === target && a.State !== 'detaching' && a.State !== 'detached');

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
  const found = await describeVolumesById(deps.ec2, [...ours]);
  // Slots used by volumes that are not this restore's.
  const taken = new Set<string>([instance?.RootDeviceName ?? '', ...(instance?.BlockDeviceMappings ?? []).filter((m) => !ours.has(m.Ebs?.VolumeId ?? '')).map((m) => m.DeviceName ?? '')].filter(Boolean).map(deviceSlot));

  const volumes: PlannedVolume[] = [];
  for (const v of plan.volumes) {
    const volumeId = v.volumeId ?? '';
    const existing = attachmentTo(found.get(volumeId), target);
    if (existing?.Device) {
      // Attached (or being attached) by an earlier try of this step.
      taken.add(deviceSlot(existing.Device));
      volumes.push({ ...v, device: existing.Device });
      continue;
    }
    let device = v.device;
    if (taken.has(deviceSlot(device)) || volumes.some((o) => deviceSlot(o.device) === deviceSlot(device))) {
      const alternative = freeDeviceNames([...taken].map((s) => `xvd${s}`).concat(volumes.map((o) => o.device), plan.volumes.map((o) => o.device)), 1)?.[0];
      if (!alternative) throw new RestoreVolumeError(`No free device name left on ${target} for ${volumeId}.`);
      device = alternative;
    }
    try {
      await deps.ec2.send(new AttachVolumeCommand({ VolumeId: volumeId, InstanceId: target, Device: device }));
    } catch (error) {
      if ((error as Error).name !== 'VolumeInUse') throw error;
      // The volume is attached already: an SDK retry of a call whose answer was lost, or an earlier try of this
      // step, attached it. DescribeVolumes may not show that attachment yet (eventual consistency); if it shows
      // one to another instance, someone else took the volume.
      const now = (await describeVolumesById(deps.ec2, [volumeId])).get(volumeId);
      const elsewhere = now?.Attachments?.find((a) => a.InstanceId !== target && a.State !== 'detached');
      if (elsewhere) throw new RestoreVolumeError(`Volume ${volumeId} is attached to ${elsewhere.InstanceId}, not to the target ${target}: ${(error as Error).message}`);
      device = attachmentTo(now, target)?.Device ?? device;
      // Check Attachments confirms it (or fails it) within the grace.
    }
    taken.add(deviceSlot(device));
    volumes.push({ ...v, device });
  }
  return {
    ...state,
    plan: { ...plan, volumes },
    phase: 'attaching',
    ready: false,
    deadline: deadlineFrom(deps.config.volumeDeadlineSeconds),
    phaseStartedAt: new Date(clock.now()).toISOString(),
  };
}
