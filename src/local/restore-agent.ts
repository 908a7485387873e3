/**
 * What a simulated Windows instance does with the DiskShadow restore document
 * (src/scripts/diskshadow-restore.ps1): for each given volume it finds the disk (waiting up to 120 s for
 * it to appear), refuses the boot disk, gives a disk whose signature collides a new one, brings it online,
 * finds the shadow copies of the given set on it and reverts them. It checks everything before reverting
 * anything, and prints the same result line as the script (src/lib/result-line.ts).
 */
import { CONSISTENCY, CONSISTENCY_TAG, SHADOW_SET_TAG } from '../lib/methods/diskshadow.ts';
import { formatResultLine, RESTORE_EXIT_CODES } from '../lib/result-line.ts';
import type { RestoreResultLine } from '../lib/result-line.ts';
import { simGuid } from './agent.ts';
import { dataSnapshot } from './snapshot-copy.ts';
import type { SimCommand, SimInstance, SimInvocation, SimVolume, World } from './world.ts';

/** The script waits this long for a disk to appear before it gives up (`$DiskWaitSeconds`). */
const DISK_WAIT_MS = 120_000;
/** ...and this long for shadow copies to be discovered on a disk (`$ShadowDiscoverySeconds`). */
const SHADOW_DISCOVERY_MS = 60_000;

export const RESTORE_BEHAVIOURS = ['ok', 'revert-failed', 'disk-online-failed', 'volume-in-use', 'shadow-not-on-disk'] as const;
export type RestoreBehaviour = (typeof RESTORE_BEHAVIOURS)[number];

type Disk = RestoreResultLine['disks'][number];

export function planRestoreInvocation(world: World, command: SimCommand, instance: SimInstance): SimInvocation {
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
    detailVisibleAt: requestedAt + 2_000 + world.lagMs('invocation-detail'),
    applied: false,
  };
  if (instance.agent !== 'online' || instance.state !== 'running') {
    return { ...base, finishAt: requestedAt + command.timeoutSeconds * 1000, final: { status: 'TimedOut', statusDetails: 'DeliveryTimedOut', responseCode: -1, output: '' } };
  }
  const runId = command.parameters.RunId?.[0] ?? null;
  const shadowSetId = command.parameters.ShadowSetId?.[0] ?? '';
  const volumeIds = [...new Set((command.parameters.VolumeIds?.[0] ?? '').split(',').filter(Boolean))];
  const startAt = requestedAt + 1_000;
  const diskBase = world.volumesOf(instance.instanceId).filter((v) => !volumeIds.includes(v.volumeId)).length;
  const disks: Disk[] = volumeIds.map((volumeId) => ({ volumeId, diskNumber: null, signatureChanged: false, online: false, reverted: [] }));
  const line = (outcome: 'success' | 'failed', exitCode: number, errorCode: string | null, retryable: boolean, message: string, warnings: string[] = []) =>
    `${formatResultLine({ version: 1, operation: 'restore', runId, instanceId: instance.instanceId, outcome, errorCode, retryable, exitCode, message, shadowSetId: shadowSetId || null, warnings, disks })}\n`;
  const fail = (at: number, stage: 'disk' | 'revert', errorCode: string, retryable: boolean, message: string): SimInvocation => {
    const exitCode = RESTORE_EXIT_CODES[`${stage}-${retryable ? 'retryable' : 'permanent'}`];
    return { ...base, finishAt: at, final: { status: 'Failed', statusDetails: 'Failed', responseCode: exitCode, output: `${line('failed', exitCode, errorCode, retryable, message)}ERROR: ${message}\n` } };
  };

  // 1. Every disk found, brought online and checked before anything is reverted.
  let at = startAt + 5_000;
  for (const [i, volumeId] of volumeIds.entries()) {
    const disk = disks[i] as Disk;
    const volume = world.volumes.get(volumeId);
    const attached = volume && !volume.deleted ? world.settleVolume(volume) : undefined;
    const visibleBy = attached?.instanceId === instance.instanceId && attached.attachState !== 'detaching' ? Math.max(attached.attachedAt ?? 0, at) : undefined;
    if (visibleBy === undefined || visibleBy > at + DISK_WAIT_MS) {
      return fail(at + DISK_WAIT_MS, 'disk', 'disk-not-found', true, `No disk with the serial number of ${volumeId} appeared within 120 s. Is the volume attached to this instance (a Nitro instance: Xen PV disks are not matched)?`);
    }
    const volumeOnTarget = attached as SimVolume;
    disk.diskNumber = diskBase + i;
    if (volumeOnTarget.device === instance.rootDevice) {
      return fail(at, 'disk', 'disk-refused', false, `${volumeId} is disk ${disk.diskNumber}, the boot or system disk of this instance: it is never reverted.`);
    }
    disk.signatureChanged = collides(world, instance, volumeOnTarget);
    if (instance.restoreBehaviour === 'disk-online-failed') {
      return fail(at, 'disk', 'disk-online-failed', false, `Disk ${disk.diskNumber} (${volumeId}) could not be brought online: The disk is write-protected.`);
    }
    disk.online = true;
    // A copy's disk holds its original's data (and shadow copies), whatever tags the copy carries.
    const restoredFrom = volumeOnTarget.snapshotId ? world.snapshots.get(volumeOnTarget.snapshotId) : undefined;
    const snapshot = restoredFrom ? dataSnapshot(world, restoredFrom) : undefined;
    // A disk the snapshot script could not shadow (raw, no NTFS/ReFS volume) is left as it stands.
    if (snapshot?.tags[CONSISTENCY_TAG] === CONSISTENCY.notShadowed) disk.outcome = 'not-shadowed';
    if (!snapshot || snapshot.tags[SHADOW_SET_TAG] !== shadowSetId) {
      return fail(at + SHADOW_DISCOVERY_MS, 'revert', 'shadow-copy-not-found', false, `Disk ${disk.diskNumber} (${volumeId}) holds no shadow copy of set ${shadowSetId}: its snapshot is not from that DiskShadow run, or the shadow copy was lost before the snapshot. Nothing was reverted.`);
    }
    at += 3_000;
  }
  const misplaced = shadowNotOnDisk(instance, disks, shadowSetId);
  if (misplaced) return fail(at, 'revert', misplaced.errorCode, misplaced.retryable, misplaced.message);
  // 2. Revert the shadow copies of the set, disk by disk.
  const doneAt = at + instance.commandSeconds * 1000;
  const inUse = volumeInUse(instance, disks);
  if (inUse) return fail(doneAt, 'revert', inUse.errorCode, inUse.retryable, inUse.message);
  if (instance.restoreBehaviour === 'revert-failed') {
    return fail(doneAt, 'revert', 'revert-failed', false, `DiskShadow could not revert \\\\?\\Volume{${simGuid(world)}}\\ to shadow copy ${simGuid(world)} (exit code 2147754767).`);
  }
  for (const disk of disks) {
    if (disk.outcome === 'not-shadowed') continue;
    disk.reverted = [{ volume: `\\\\?\\Volume{${simGuid(world)}}\\`, shadowCopyId: simGuid(world) }];
    disk.outcome = 'reverted';
  }
  const output = `${line('success', 0, null, false, `Reverted ${disks.length} disk(s) to shadow copy set ${shadowSetId}.`)}DiskShadow revert completed.\n`;
  return { ...base, finishAt: doneAt, final: { status: 'Success', statusDetails: 'Success', responseCode: 0, output } };
}

/**
 * Windows keeps a disk offline whose signature another disk has: a volume restored next to its source, or
 * next to a disk restored from the same volume, or a boot volume next to another boot disk of the same AMI.
 */
function collides(world: World, instance: SimInstance, volume: SimVolume): boolean {
  const restoredFrom = volume.snapshotId ? world.snapshots.get(volume.snapshotId) : undefined;
  if (!restoredFrom) return false;
  // A copy (another Region's, snapshot-copy.ts) holds its source volume's disk, signature included: its own
  // VolumeId is the arbitrary vol-ffffffff, shared by every copy.
  const origin = dataSnapshot(world, restoredFrom);
  const originVolume = origin.volumeId;
  const originWasBoot = (origin.tags.Device ?? '') === instance.rootDevice || origin.tags.Device === '/dev/sda1';
  return world.volumesOf(instance.instanceId).some((other) => {
    if (other.volumeId === volume.volumeId) return false;
    const otherSnapshot = other.snapshotId ? world.snapshots.get(other.snapshotId) : undefined;
    const otherOrigin = otherSnapshot ? dataSnapshot(world, otherSnapshot).volumeId : undefined;
    return other.volumeId === originVolume || otherOrigin === originVolume || (originWasBoot && other.device === instance.rootDevice);
  });
}

type ScriptFailure = { errorCode: string; retryable: boolean; message: string };

/**
 * `shadow-not-on-disk`: a shadow copy with the set's id exists, but on another disk of the instance than
 * the one restored from its snapshot (two volumes restored from the same snapshot, or the source still
 * holding the set). The script checks that before reverting anything and refuses: reverting by id alone
 * could revert the wrong volume.
 */
function shadowNotOnDisk(instance: SimInstance, disks: Disk[], shadowSetId: string): ScriptFailure | undefined {
  if (instance.restoreBehaviour !== 'shadow-not-on-disk') return undefined;
  const disk = disks[0] as Disk;
  return {
    errorCode: 'shadow-not-on-disk',
    retryable: false,
    message: `A shadow copy of set ${shadowSetId} that disk ${disk.diskNumber} (${disk.volumeId}) needs also exists on another volume of this instance: reverting by its id could revert the wrong volume. Detach the other copy and restore again. Nothing was reverted.`,
  };
}

/**
 * `volume-in-use`: the revert is refused with VSS_E_VOLUME_IN_USE (0x8004231D) on every try, the
 * volume held open by another process (antivirus, indexer) though its drive letters were removed. The
 * disks reverted before it stay reverted; a rerun skips them (retryable).
 */
function volumeInUse(instance: SimInstance, disks: Disk[]): ScriptFailure | undefined {
  if (instance.restoreBehaviour !== 'volume-in-use') return undefined;
  const disk = disks[0] as Disk;
  return {
    errorCode: 'revert-volume-in-use',
    retryable: true,
    message: `DiskShadow could not revert the volume on disk ${disk.diskNumber} (${disk.volumeId}): VSS_E_VOLUME_IN_USE (0x8004231D) on each of 3 tries; another process holds it open. Exclude the restored disks from antivirus scanning and run the restore again: volumes already reverted are skipped.`,
  };
}
