/**
 * "Finish Restore": reads the volumes back from EC2 (not from the payload) and reports what was created,
 * where it is attached and how the revert went. The report is the execution's output.
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import { nowIso } from '../clock.ts';
import { RestoreVolumeError } from '../errors.ts';
import { fromDrCopies, regionOf } from './region.ts';
import { createdVolumeIds, planOf } from './state.ts';
import type { RestoreState } from './state.ts';
import { describeVolumesById } from './volumes.ts';

export interface RestoreReport {
  restoreId: string;
  runId: string;
  sourceInstanceId: string;
  targetInstanceId: string;
  /** The Region the restore acted in (the target's, the snapshots', the new volumes'). */
  region: string;
  /** True when the snapshots were the DR copies in the stack's DR Region. */
  fromDrCopies: boolean;
  availabilityZone: string;
  method: 'aws-vss' | 'diskshadow';
  startedAt: string;
  finishedAt: string;
  volumes: { volumeId: string; snapshotId: string; copyOf?: string; sourceDevice: string; device: string; sizeGiB: number; state: string; attachment: string }[];
  revert: null | { commandId: string; documentName: string; shadowSetId: string; disks: NonNullable<RestoreState['revert']>['disks']; warnings: string[] };
  message: string;
}

export async function finishRestore(deps: { ec2: EC2Client }, state: RestoreState): Promise<RestoreReport> {
  const plan = planOf(state);
  const r = state.restore;
  const found = await describeVolumesById(deps.ec2, createdVolumeIds(state));
  const volumes = plan.volumes.map((v) => {
    const volume = found.get(v.volumeId ?? '');
    const attachment = volume?.Attachments?.find((a) => a.InstanceId === r.targetInstanceId);
    if (!volume || volume.State !== 'in-use' || attachment?.State !== 'attached' || volume.AvailabilityZone !== plan.availabilityZone) {
      throw new RestoreVolumeError(`Volume ${v.volumeId} is not attached to ${r.targetInstanceId} in ${plan.availabilityZone} (state ${volume?.State ?? 'missing'}, attachment ${attachment?.State ?? 'none'}).`);
    }
    return { volumeId: v.volumeId ?? '', snapshotId: v.snapshotId, ...(v.copyOf ? { copyOf: v.copyOf } : {}), sourceDevice: v.sourceDevice, device: attachment.Device ?? v.device, sizeGiB: volume.Size ?? v.sizeGiB, state: volume.State, attachment: attachment.State };
  });
  const revert =
    plan.method === 'diskshadow' && state.revert?.status === 'success' && state.revert.commandId
      ? { commandId: state.revert.commandId, documentName: state.revert.documentName, shadowSetId: plan.shadowSetId ?? '', disks: state.revert.disks, warnings: state.revert.warnings }
      : null;
  if (plan.method === 'diskshadow' && !revert) throw new RestoreVolumeError('DiskShadow snapshots were restored but not reverted: the volumes are not consistent.');
  const where = volumes.map((v) => `${v.sourceDevice} -> ${v.volumeId} at ${v.device}`).join(', ');
  const reverted = revert ? ` Reverted to shadow copy set ${revert.shadowSetId} by command ${revert.commandId}.` : ' AWS VSS snapshots: consistent as restored, no revert needed.';
  return {
    restoreId: r.restoreId,
    runId: r.runId,
    sourceInstanceId: r.sourceInstanceId,
    targetInstanceId: r.targetInstanceId,
    region: regionOf(state),
    fromDrCopies: fromDrCopies(state),
    availabilityZone: plan.availabilityZone,
    method: plan.method,
    startedAt: r.startedAt,
    finishedAt: nowIso(),
    volumes,
    revert,
    message: `Restored ${volumes.length} volume(s) of ${r.sourceInstanceId} from ${fromDrCopies(state) ? `the DR copies of run ${r.runId} in ${regionOf(state)}` : `run ${r.runId}`} to ${r.targetInstanceId} in ${plan.availabilityZone}: ${where}.${reverted}`,
  };
}
