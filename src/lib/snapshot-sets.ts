/**
 * Snapshots taken together: one CreateSnapshots call makes one snapshot per volume of an instance, all with the
 * same start time (a multi-volume, crash-consistent set: EC2 API reference, CreateSnapshots). Normally an
 * instance has one set per attempt; when a command ran twice (an SSM listing that lagged beyond any bound) it
 * has two, and they must be told apart so that the run keeps exactly one whole set and never a mix of two
 * points in time. DiskShadow sets carry their shadow copy set id; AWS VSS sets are told apart by start time.
 */
import type { Snapshot } from '@aws-sdk/client-ec2';
import { SHADOW_SET_TAG } from './methods/diskshadow.ts';
import { ATTEMPT_TAG } from './run-id.ts';
import type { SnapshotRef, VolumeRef } from './run-state.ts';

/** Snapshots further apart than this at their start are not of one set. */
const SAME_SET_MS = 10_000;

export const tagOf = (s: Snapshot, key: string): string | undefined => s.Tags?.find((t) => t.Key === key)?.Value;
export const tagMap = (s: Snapshot): Record<string, string> => Object.fromEntries((s.Tags ?? []).filter((t) => t.Key).map((t) => [t.Key as string, t.Value ?? '']));
export const attemptOf = (s: Snapshot): number => Number(tagOf(s, ATTEMPT_TAG) ?? 0);

export interface SnapshotSet {
  attempt: number;
  start: number;
  /** At most one snapshot per volume. */
  byVolume: Map<string, Snapshot>;
  /** DiskShadow: the shadow copy set the snapshots hold. */
  shadowSet?: string;
}

/** Groups snapshots (of one instance and attempt) into the sets that were taken together, oldest first. */
export function groupSets(snapshots: readonly Snapshot[]): SnapshotSet[] {
  const sets: SnapshotSet[] = [];
  const byShadowSet = new Map<string, SnapshotSet>();
  const sorted = [...snapshots].sort(
    (a, b) => (a.StartTime?.getTime() ?? 0) - (b.StartTime?.getTime() ?? 0) || (a.SnapshotId ?? '').localeCompare(b.SnapshotId ?? ''),
  );
  for (const snapshot of sorted) {
    const volumeId = snapshot.VolumeId ?? '';
    const start = snapshot.StartTime?.getTime() ?? 0;
    const shadowSet = tagOf(snapshot, SHADOW_SET_TAG);
    let set = shadowSet ? byShadowSet.get(shadowSet) : sets.find((s) => !s.byVolume.has(volumeId) && Math.abs(s.start - start) <= SAME_SET_MS && !s.shadowSet);
    if (!set || set.byVolume.has(volumeId)) {
      set = { attempt: attemptOf(snapshot), start, byVolume: new Map(), ...(shadowSet ? { shadowSet } : {}) };
      sets.push(set);
      if (shadowSet) byShadowSet.set(shadowSet, set);
    }
    set.byVolume.set(volumeId, snapshot);
  }
  return sets;
}

/** A set's quality for choosing between duplicates: complete first, then none in error, consistent, completed. */
export function setScore(set: SnapshotSet, volumes: readonly VolumeRef[], isConsistent: (s: Snapshot) => boolean): number {
  const members = volumes.map((v) => set.byVolume.get(v.volumeId));
  const complete = members.every(Boolean);
  const present = members.filter((s): s is Snapshot => s !== undefined);
  const noError = present.every((s) => s.State !== 'error');
  const consistent = present.every(isConsistent);
  const completed = present.every((s) => s.State === 'completed');
  return (complete ? 8 : 0) + (noError ? 4 : 0) + (consistent ? 2 : 0) + (completed ? 1 : 0);
}

/** The best set (highest score; the earliest of equals, the one the first command took). */
export function bestSet(sets: readonly SnapshotSet[], volumes: readonly VolumeRef[], isConsistent: (s: Snapshot) => boolean): SnapshotSet | undefined {
  let best: SnapshotSet | undefined;
  let bestScore = -1;
  for (const set of sets) {
    const score = setScore(set, volumes, isConsistent);
    if (score > bestScore) {
      best = set;
      bestScore = score;
    }
  }
  return best;
}

export function refOf(snapshot: Snapshot, volume: VolumeRef): SnapshotRef {
  return { snapshotId: snapshot.SnapshotId ?? '', volumeId: volume.volumeId, device: tagOf(snapshot, 'Device') ?? volume.device, state: snapshot.State ?? 'unknown' };
}

export const idsOf = (sets: readonly SnapshotSet[]): string[] => sets.flatMap((s) => [...s.byVolume.values()].map((x) => x.SnapshotId ?? '')).filter(Boolean);
