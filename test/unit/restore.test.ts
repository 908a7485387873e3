/** Pure parts of the restore: device names, input checking, reading snapshot tags, the revert parameters. */
import { describe, expect, it } from 'vitest';
import { deviceSlot, freeDeviceNames, normalizeDevice } from '../../src/lib/restore/devices.ts';
import { parseRestoreInput } from '../../src/lib/restore/input.ts';
import { toRunSnapshot } from '../../src/lib/restore/plan.ts';
import { revertParameters } from '../../src/lib/restore/revert.ts';
import { loadRestoreConfig } from '../../src/lib/restore/config.ts';
import { clientToken } from '../../src/lib/restore/volumes.ts';
import type { RestoreState } from '../../src/lib/restore/state.ts';

describe('device names', () => {
  it('treats xvdf, /dev/xvdf, /dev/sdf and xvdf1 as one slot', () => {
    expect(new Set(['xvdf', '/dev/xvdf', '/dev/sdf', 'xvdf1'].map(deviceSlot))).toEqual(new Set(['f']));
    expect(deviceSlot('/dev/sda1')).toBe('a');
    expect(normalizeDevice('/dev/xvdg')).toBe('xvdg');
  });

  it('never picks a name whose slot is in use, and says when there are not enough', () => {
    expect(freeDeviceNames(['/dev/sda1', '/dev/sdf', 'xvdh'], 3)).toEqual(['xvdg', 'xvdi', 'xvdj']);
    expect(freeDeviceNames(['/dev/sda1'], 21)).toHaveLength(21);
    expect(freeDeviceNames(['/dev/sda1', 'xvdf'], 21)).toBeUndefined();
  });
});

describe('parseRestoreInput', () => {
  const valid = { runId: '20261128T000000Z-3f2a9c1e', sourceInstanceId: 'i-0123456789abcdef0', targetInstanceId: 'i-0fedcba9876543210' };

  it('accepts the minimal input and the optional fields', () => {
    expect(parseRestoreInput(valid)).toEqual(valid);
    expect(parseRestoreInput({ ...valid, devices: ['xvdf', '/dev/sda1'], keepOnFailure: true, Comment: 'x' })).toMatchObject({ devices: ['xvdf', '/dev/sda1'], keepOnFailure: true });
  });

  it.each([
    [null, /must be a JSON object/],
    [[], /must be a JSON object/],
    [{}, /field "runId" is required/],
    [{ ...valid, devices: [] }, /field "devices" must list 1-40 device names/],
    [{ ...valid, devices: 'xvdf' }, /field "devices" must be an array of device names/],
    [{ ...valid, targetInstanceId: 'i-0FEDCBA9876543210' }, /field "targetInstanceId" is not an EC2 instance id/],
    [{ ...valid, dryRun: true }, /unknown field "dryRun"; allowed fields: runId, sourceInstanceId, targetInstanceId, devices, keepOnFailure/],
  ])('rejects %j naming the field', (input, message) => {
    expect(() => parseRestoreInput(input)).toThrow(expect.objectContaining({ name: 'InvalidInputError', message: expect.stringMatching(message) }));
  });
});

describe('toRunSnapshot', () => {
  const tags = (t: Record<string, string>) => Object.entries(t).map(([Key, Value]) => ({ Key, Value }));

  it('reads a DiskShadow snapshot by its shadow set tag even without the method tag', () => {
    const s = toRunSnapshot({ SnapshotId: 'snap-1', VolumeId: 'vol-1', State: 'completed', VolumeSize: 8, Tags: tags({ 'vss-snapshots:shadow-set-id': 'abc', 'vss-snapshots:consistency': 'after-revert', Device: '/dev/xvdf' }) });
    expect(s).toMatchObject({ method: 'diskshadow', shadowSetId: 'abc', device: 'xvdf', appConsistent: true });
    // AppConsistent=true does not make a DiskShadow snapshot consistent: only the revert does.
    const legacy = toRunSnapshot({ SnapshotId: 'snap-3', VolumeId: 'vol-3', State: 'completed', Tags: tags({ 'vss-snapshots:shadow-set-id': 'abc', AppConsistent: 'true' }) });
    expect(legacy).toMatchObject({ method: 'diskshadow', appConsistent: false });
  });

  it('reads an AWS VSS snapshot without an instance tag', () => {
    const s = toRunSnapshot({ SnapshotId: 'snap-2', VolumeId: 'vol-2', State: 'pending', Tags: tags({ 'vss-snapshots:method': 'aws-vss', 'vss-snapshots:attempt': '2' }) });
    expect(s).toMatchObject({ method: 'aws-vss', instanceId: undefined, attempt: 2, appConsistent: false, state: 'pending' });
  });
});

describe('idempotency and document parameters', () => {
  it('derives one ClientToken per restore and snapshot, within EC2 limits', () => {
    const a = clientToken('20261128T000000Z-3f2a9c1e', 'snap-0123456789abcdef0');
    expect(a).toBe(clientToken('20261128T000000Z-3f2a9c1e', 'snap-0123456789abcdef0'));
    expect(a).not.toBe(clientToken('20261128T000000Z-3f2a9c1f', 'snap-0123456789abcdef0'));
    expect(a.length).toBeLessThanOrEqual(64);
  });

  it('builds the restore document parameters from the created volumes only, checked against the document', () => {
    const state: RestoreState = {
      restore: { restoreId: '20261128T000000Z-3f2a9c1e', executionId: 'x', runId: '20261128T000000Z-3f2a9c1e', sourceInstanceId: 'i-0123456789abcdef0', targetInstanceId: 'i-0fedcba9876543210', devices: null, keepOnFailure: false, startedAt: '2026-11-28T00:00:00.000Z' },
      plan: {
        method: 'diskshadow',
        availabilityZone: 'us-east-1a',
        targetState: 'running',
        shadowSetId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f',
        volumes: [
          { sourceDevice: 'xvdf', sourceVolumeId: 'vol-1', snapshotId: 'snap-1', sizeGiB: 1, device: 'xvdf', volumeId: 'vol-0aaaaaaaaaaaaaaa1' },
          { sourceDevice: 'xvdg', sourceVolumeId: 'vol-2', snapshotId: 'snap-2', sizeGiB: 1, device: 'xvdg', volumeId: 'vol-0aaaaaaaaaaaaaaa2' },
        ],
      },
    };
    expect(revertParameters(state, loadRestoreConfig({}))).toEqual({
      RunId: ['20261128T000000Z-3f2a9c1e'],
      VolumeIds: ['vol-0aaaaaaaaaaaaaaa1,vol-0aaaaaaaaaaaaaaa2'],
      ShadowSetId: ['4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f'],
      executionTimeout: ['1800'],
    });
    const bad = { ...state, plan: { ...state.plan, shadowSetId: 'not-a-guid' } } as RestoreState;
    expect(() => revertParameters(bad, loadRestoreConfig({}))).toThrow(/ShadowSetId/);
  });
});
