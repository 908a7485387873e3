/**
 * A snapshot as the restore reads it, from its tags: a run's own snapshot in the stack's Region, or its DR copy
 * in the DR Region. A copy's VolumeId is the arbitrary `vol-ffffffff` ("Do not use this volume ID for any
 * purpose": EC2 API reference, CopySnapshot), so the volume it is of comes from its source-volume tag.
 */
import type { Snapshot } from '@aws-sdk/client-ec2';
import { SHADOW_SET_TAG } from '../methods/diskshadow.ts';
import { methodDriver } from '../methods/index.ts';
import { tagMap } from '../methods/types.ts';
import { ATTEMPT_TAG, INSTANCE_TAG, METHOD_TAG, RUN_TAG, SET_SIZE_TAG, SOURCE_SNAPSHOT_TAG, SOURCE_VOLUME_TAG } from '../run-id.ts';
import { normalizeDevice } from './devices.ts';

/** One snapshot of the run, as the restore reads it. */
export interface RunSnapshot {
  snapshotId: string;
  volumeId: string;
  device: string | undefined;
  state: string;
  progress: string;
  sizeGiB: number;
  attempt: number;
  method: 'aws-vss' | 'diskshadow';
  appConsistent: boolean;
  shadowSetId: string | undefined;
  instanceId: string | undefined;
  /** The run that made it (its run-id tag). */
  runId: string | undefined;
  /** On a DR copy: the snapshot it was copied from; undefined for a run's own snapshot. */
  copyOf: string | undefined;
  /** On a DR copy: how many snapshots its set has (vss-snapshots:set-size); undefined on older copies. */
  setSize: number | undefined;
  /** `archive`: in the EBS Snapshots Archive tier, unusable until restored to `standard` (up to 72 hours). */
  storageTier: string;
}

export function toRunSnapshot(s: Snapshot): RunSnapshot {
  const tags = tagMap(s.Tags);
  const shadowSetId = tags[SHADOW_SET_TAG] || undefined;
  // A shadow set id means a DiskShadow snapshot whatever the method tag says: never skip its revert.
  const method = tags[METHOD_TAG] === 'diskshadow' || shadowSetId ? 'diskshadow' : 'aws-vss';
  return {
    snapshotId: s.SnapshotId ?? '',
    volumeId: tags[SOURCE_VOLUME_TAG] || (s.VolumeId ?? ''),
    device: tags.Device ? normalizeDevice(tags.Device) : undefined,
    state: s.State ?? 'unknown',
    progress: s.Progress ?? '',
    sizeGiB: s.VolumeSize ?? 1,
    attempt: Number(tags[ATTEMPT_TAG] ?? '0') || 0,
    method,
    appConsistent: methodDriver(method).isConsistent(tags),
    shadowSetId,
    instanceId: tags[INSTANCE_TAG] || undefined,
    runId: tags[RUN_TAG] || undefined,
    copyOf: tags[SOURCE_SNAPSHOT_TAG] || undefined,
    setSize: Number(tags[SET_SIZE_TAG]) > 0 ? Number(tags[SET_SIZE_TAG]) : undefined,
    storageTier: s.StorageTier ?? 'standard',
  };
}

/** The usable snapshot first: completed and app-consistent, then the latest attempt. */
export function preference(a: RunSnapshot, b: RunSnapshot): number {
  const score = (s: RunSnapshot) => (s.state === 'completed' ? 2 : 0) + (s.appConsistent ? 1 : 0);
  return score(b) - score(a) || b.attempt - a.attempt;
}

