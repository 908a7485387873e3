/** Which DR copies a restore in the DR Region takes, from their tags alone (src/lib/restore/dr-copies.ts). */
import { DescribeSnapshotsCommand, EC2Client } from '@aws-sdk/client-ec2';
import type { Snapshot, SnapshotState } from '@aws-sdk/client-ec2';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { chooseDrCopies } from '../../src/lib/restore/dr-copies.ts';
import { restoreRegion } from '../../src/lib/restore/region.ts';
import type { RestoreState } from '../../src/lib/restore/state.ts';

const SOURCE = 'i-0123456789abcdef0';
const OLD = '20261127T000000Z-1111aaaa';
const NEW = '20261128T000000Z-2222bbbb';
const ec2 = mockClient(EC2Client);
afterEach(() => ec2.reset());

function copy(id: string, runId: string, tags: Record<string, string>, state: SnapshotState = 'completed'): Snapshot {
  const all = { 'vss-snapshots:run-id': runId, 'vss-snapshots:instance-id': SOURCE, 'vss-snapshots:attempt': '1', AppConsistent: 'true', 'vss-snapshots:source-snapshot': `snap-src-${id}`, ...tags };
  return { SnapshotId: `snap-${id}`, VolumeId: 'vol-ffffffff', State: state, Progress: state === 'completed' ? '100%' : '40%', VolumeSize: 8, Tags: Object.entries(all).map(([Key, Value]) => ({ Key, Value })) };
}

const state = (runId: string, devices: string[] | null = null): RestoreState => ({
  restore: { restoreId: '20261128T010000Z-3f2a9c1e', executionId: 'x', runId, sourceInstanceId: SOURCE, targetInstanceId: 'i-0fedcba9876543210', devices, keepOnFailure: false, startedAt: '2026-11-28T01:00:00.000Z', region: 'us-west-2' },
});

describe('chooseDrCopies', () => {
  it('maps devices by the Device tag, else the source volume (never the copy\'s own VolumeId), and asks only by tags', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [copy('a', NEW, { Device: '/dev/sda1', 'vss-snapshots:source-volume': 'vol-1' }), copy('b', NEW, { 'vss-snapshots:source-volume': 'vol-2' })],
    });
    const chosen = await chooseDrCopies(new EC2Client({ region: 'us-west-2' }), state(NEW));
    expect(chosen.map((c) => [c.device, c.snapshot.snapshotId, c.snapshot.volumeId, c.snapshot.copyOf])).toEqual([
      ['sda1', 'snap-a', 'vol-1', 'snap-src-a'],
      ['vol-2', 'snap-b', 'vol-2', 'snap-src-b'],
    ]);
    const filters = ec2.commandCalls(DescribeSnapshotsCommand)[0]?.args[0].input.Filters;
    expect(filters).toEqual([{ Name: 'tag:vss-snapshots:instance-id', Values: [SOURCE] }, { Name: 'tag-key', Values: ['vss-snapshots:source-snapshot'] }]);
  });

  it('refuses a run with a failed or pending copy, naming it and the complete runs, newest first', async () => {
    ec2.on(DescribeSnapshotsCommand).resolves({
      Snapshots: [
        copy('o1', OLD, { Device: 'sda1' }),
        copy('o2', OLD, { Device: 'xvdf' }),
        copy('n1', NEW, { Device: 'sda1' }, 'error'),
        copy('n2', NEW, { Device: 'xvdf' }, 'pending'),
      ],
    });
    const refusal = chooseDrCopies(new EC2Client({ region: 'us-west-2' }), state(NEW));
    await expect(refusal).rejects.toThrow(expect.objectContaining({ name: 'RestoreRefusedError' }));
    await expect(chooseDrCopies(new EC2Client({ region: 'us-west-2' }), state(NEW))).rejects.toThrow(
      `The DR copy of run ${NEW} of ${SOURCE} in us-west-2 is not complete: sda1 (snap-n1, copy of snap-src-n1) failed to copy (state error); xvdf (snap-n2, copy of snap-src-n2) is still pending (40%). Restore only completed copies: use an earlier run: runs whose copies of ${SOURCE} are complete in us-west-2, newest first: ${OLD}.`,
    );
    // A device asked for that has no copy is missing too; a complete run restores.
    await expect(chooseDrCopies(new EC2Client({ region: 'us-west-2' }), state(OLD, ['xvdg']))).rejects.toThrow('xvdg has no copy there');
    expect((await chooseDrCopies(new EC2Client({ region: 'us-west-2' }), state(OLD))).map((c) => c.snapshot.snapshotId)).toEqual(['snap-o1', 'snap-o2']);
  });
});

describe('restoreRegion', () => {
  it('is the home Region when absent or the stack\'s own, the DR Region as given, and refuses any other', () => {
    const env = { AWS_REGION: 'us-east-1', DR_REGION: 'us-west-2' };
    expect(restoreRegion(undefined, env)).toBeUndefined();
    expect(restoreRegion('us-east-1', env)).toBeUndefined();
    expect(restoreRegion('us-west-2', env)).toBe('us-west-2');
    expect(() => restoreRegion('eu-west-1', env)).toThrow(/field "region" is eu-west-1; this stack restores only in this stack's Region us-east-1 or its DR Region us-west-2/);
    expect(() => restoreRegion('us-west-2', { AWS_REGION: 'us-east-1', DR_REGION: '' })).toThrow(/DR copies are off/);
  });
});
