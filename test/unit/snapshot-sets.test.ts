import type { Snapshot } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_TAG } from '../../src/lib/run-id.ts';
import type { VolumeRef } from '../../src/lib/run-state.ts';
import { bestSet, groupSets } from '../../src/lib/snapshot-sets.ts';

const T0 = Date.parse('2026-11-28T00:01:00Z');
const volumes: VolumeRef[] = [
  { volumeId: 'vol-1', device: '/dev/sda1', boot: true },
  { volumeId: 'vol-2', device: 'xvdf', boot: false },
];
const snap = (id: string, volumeId: string, startMs: number, extra: Partial<Snapshot> = {}, consistent = true): Snapshot => ({
  SnapshotId: id,
  VolumeId: volumeId,
  StartTime: new Date(T0 + startMs),
  State: 'completed',
  Tags: [{ Key: ATTEMPT_TAG, Value: '1' }, ...(consistent ? [{ Key: 'AppConsistent', Value: 'true' }] : [])],
  ...extra,
});
const isConsistent = (s: Snapshot) => s.Tags?.some((t) => t.Key === 'AppConsistent' && t.Value === 'true') ?? false;
const ids = (sets: ReturnType<typeof groupSets>) => sets.map((s) => [...s.byVolume.values()].map((x) => x.SnapshotId));

describe('groupSets', () => {
  it('keeps two sets of one instance taken seconds apart (a command that ran twice) apart', () => {
    const sets = groupSets([snap('a1', 'vol-1', 0), snap('a2', 'vol-2', 0), snap('b1', 'vol-1', 5_000), snap('b2', 'vol-2', 5_000)]);

    expect(ids(sets)).toEqual([
      ['a1', 'a2'],
      ['b1', 'b2'],
    ]);
  });

  it('never completes a partial set with a snapshot of another set taken minutes later (no mix of two points in time)', () => {
    // The first command snapshotted only vol-1; the same attempt sent again after the confirm window took both.
    const sets = groupSets([snap('p1', 'vol-1', 0), snap('f1', 'vol-1', 360_000), snap('f2', 'vol-2', 360_000)]);

    expect(ids(sets)).toEqual([['p1'], ['f1', 'f2']]);
    expect(ids([bestSet(sets, volumes, isConsistent) as ReturnType<typeof groupSets>[number]])).toEqual([['f1', 'f2']]);
  });
});

describe('bestSet', () => {
  it('prefers a complete set to an incomplete one that is completed and consistent', () => {
    const sets = groupSets([snap('p1', 'vol-1', 0), snap('f1', 'vol-1', 360_000, { State: 'pending' }), snap('f2', 'vol-2', 360_000, { State: 'pending' })]);

    expect([...(bestSet(sets, volumes, isConsistent)?.byVolume.values() ?? [])].map((s) => s.SnapshotId)).toEqual(['f1', 'f2']);
  });

  it('keeps the earliest of equally good sets, the one the first command took', () => {
    const sets = groupSets([snap('b1', 'vol-1', 360_000), snap('b2', 'vol-2', 360_000), snap('a1', 'vol-1', 0), snap('a2', 'vol-2', 0)]);

    expect([...(bestSet(sets, volumes, isConsistent)?.byVolume.values() ?? [])].map((s) => s.SnapshotId)).toEqual(['a1', 'a2']);
  });
});
