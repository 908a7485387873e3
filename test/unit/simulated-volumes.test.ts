/**
 * The simulated account's EBS volumes are eventually consistent as EC2's are (EC2 developer guide, "Eventual
 * consistency in the Amazon EC2 API"): a new volume, its tags, its attachments and its state changes show in
 * DescribeVolumes and DescribeInstances late, while the mutating calls see the truth at once and answer a
 * repeated call the way EC2 does.
 */
import { describe, expect, it } from 'vitest';
import { parseFleet } from '../../src/local/fleet.ts';
import { applyCall } from '../../src/local/operations.ts';
import { worldFromFleet } from '../../src/local/world.ts';
import type { World } from '../../src/local/world.ts';

const TARGET = 'i-0000000000000000b';
const MAX_LAG_MS = 30_000;

/** A world with one instance in us-east-1a and one completed snapshot of its data volume. */
function world(maxLagSeconds = 30, seed = 1): { world: World; snapshotId: string } {
  const w = worldFromFleet(
    parseFleet({ faults: { rate: 0 }, consistency: { maxLagSeconds, seed }, instances: [{ instanceId: TARGET, volumes: [{ device: '/dev/sda1', sizeGiB: 30 }, { device: 'xvdf', sizeGiB: 8 }] }] }),
  );
  const volume = w.volumesOf(TARGET).find((v) => v.device === 'xvdf');
  const snapshotId = 'snap-0aaaaaaaaaaaaaaa1';
  w.addSnapshot({ snapshotId, volumeId: volume?.volumeId ?? '', instanceId: TARGET, volumeSize: 8, startTime: w.now - 600_000, completeAt: w.now - 300_000, finalState: 'completed', visibleAt: w.now - 600_000, description: '', tags: {}, deleted: false });
  return { world: w, snapshotId };
}

const ec2 = (w: World, operation: string, input: Record<string, unknown>) => applyCall(w, 'ec2', operation, input) as Promise<Record<string, unknown>>;

async function createVolume(w: World, snapshotId: string, restoreId = 'r-1'): Promise<string> {
  const out = await ec2(w, 'CreateVolume', {
    SnapshotId: snapshotId,
    AvailabilityZone: 'us-east-1a',
    ClientToken: `token-${restoreId}`,
    TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'restore-id', Value: restoreId }] }],
  });
  return out.VolumeId as string;
}

type Described = { VolumeId: string; State: string; Tags: { Key: string; Value: string }[]; Attachments: { InstanceId: string; Device: string; State: string }[] };
const byId = async (w: World, id: string) => ((await ec2(w, 'DescribeVolumes', { VolumeIds: [id] })).Volumes as Described[])[0];
const byFilter = async (w: World, filters: { Name: string; Values: string[] }[]) => (await ec2(w, 'DescribeVolumes', { Filters: filters })).Volumes as Described[];
const mappings = async (w: World) => {
  const out = (await ec2(w, 'DescribeInstances', { InstanceIds: [TARGET] })) as { Reservations: { Instances: { BlockDeviceMappings: { DeviceName: string; Ebs: { VolumeId: string; Status: string } }[] }[] }[] };
  return out.Reservations[0]?.Instances[0]?.BlockDeviceMappings ?? [];
};
const errorOf = async (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.name);

describe('simulated EBS volumes: eventual consistency (maxLagSeconds 30)', () => {
  it('does not know a new volume for a while: DescribeVolumes by id and every call naming it answer InvalidVolume.NotFound', async () => {
    const { world: w, snapshotId } = world();
    const id = await createVolume(w, snapshotId);

    expect(await errorOf(byId(w, id))).toBe('InvalidVolume.NotFound');
    expect(await byFilter(w, [{ Name: 'volume-id', Values: [id] }])).toEqual([]);
    expect(await errorOf(ec2(w, 'DeleteVolume', { VolumeId: id }))).toBe('InvalidVolume.NotFound');

    w.advanceBy(MAX_LAG_MS);
    expect((await byId(w, id))?.VolumeId).toBe(id);
  });

  it('shows the tags given on create late, in Tags and in tag: filters, and never before the volume', async () => {
    const lateTags: number[] = [];
    for (let seed = 1; seed <= 20; seed += 1) {
      const { world: w, snapshotId } = world(30, seed);
      const id = await createVolume(w, snapshotId);
      let tagged = false;
      for (let t = 0; t <= MAX_LAG_MS + 1_000; t += 500) {
        const listed = await byFilter(w, [{ Name: 'volume-id', Values: [id] }]);
        const byTag = await byFilter(w, [{ Name: 'tag:restore-id', Values: ['r-1'] }]);
        if (byTag.length > 0) expect(listed).toHaveLength(1);
        if (listed.length > 0 && !tagged) {
          expect(listed[0]?.Tags.length === 1).toBe(byTag.length === 1);
          if (byTag.length === 0) lateTags.push(seed);
        }
        tagged ||= byTag.length > 0;
        w.advanceBy(500);
      }
      expect(tagged, `seed ${seed}`).toBe(true);
    }
    // Some volumes are listed before their tags show.
    expect(lateTags.length).toBeGreaterThan(0);
  });

  it('shows creating -> available late', async () => {
    const { world: w, snapshotId } = world();
    const id = await createVolume(w, snapshotId);
    const v = w.volumes.get(id);
    w.advanceTo((v?.availableAt ?? 0) + 1);
    // AttachVolume checks the truth: the volume is available, whatever DescribeVolumes still says.
    const states: string[] = [];
    for (let t = 0; t < MAX_LAG_MS + 1_000; t += 500) {
      states.push((await byFilter(w, [{ Name: 'volume-id', Values: [id] }]))[0]?.State ?? 'missing');
      w.advanceBy(500);
    }
    expect(states[0]).not.toBe('available');
    expect(states.at(-1)).toBe('available');
    // Once available, never back.
    expect(states.slice(states.indexOf('available')).every((s) => s === 'available')).toBe(true);
  });

  it('shows an attachment late in DescribeVolumes and DescribeInstances, and its end late too', async () => {
    const { world: w, snapshotId } = world();
    const id = await createVolume(w, snapshotId);
    w.advanceBy(MAX_LAG_MS + 30_000);
    await ec2(w, 'AttachVolume', { VolumeId: id, InstanceId: TARGET, Device: 'xvdg' });

    expect((await byId(w, id))?.Attachments).toEqual([]);
    expect((await byId(w, id))?.State).toBe('available');
    expect((await mappings(w)).map((m) => m.Ebs.VolumeId)).not.toContain(id);
    expect((await byFilter(w, [{ Name: 'attachment.instance-id', Values: [TARGET] }])).map((v) => v.VolumeId)).not.toContain(id);

    w.advanceBy(MAX_LAG_MS + 5_000);
    expect((await byId(w, id))?.Attachments).toMatchObject([{ InstanceId: TARGET, Device: 'xvdg', State: 'attached' }]);
    expect((await mappings(w)).find((m) => m.Ebs.VolumeId === id)).toMatchObject({ DeviceName: 'xvdg', Ebs: { Status: 'attached' } });

    await ec2(w, 'DetachVolume', { VolumeId: id, InstanceId: TARGET });
    w.advanceBy(9_000);
    // Detached in truth (DeleteVolume would work), still shown attached or detaching.
    expect((await byId(w, id))?.Attachments[0]?.InstanceId).toBe(TARGET);
    w.advanceBy(MAX_LAG_MS);
    expect((await byId(w, id))?.Attachments).toEqual([]);
    expect((await mappings(w)).map((m) => m.Ebs.VolumeId)).not.toContain(id);
  });

  it('shows everything at once with maxLagSeconds 0', async () => {
    const { world: w, snapshotId } = world(0);
    const id = await createVolume(w, snapshotId);
    expect(await byFilter(w, [{ Name: 'tag:restore-id', Values: ['r-1'] }])).toHaveLength(1);
    w.advanceBy(60_000);
    await ec2(w, 'AttachVolume', { VolumeId: id, InstanceId: TARGET, Device: 'xvdg' });
    expect((await byId(w, id))?.Attachments).toMatchObject([{ InstanceId: TARGET, State: 'attaching' }]);
  });
});

describe('simulated EBS volumes: a repeated mutating call (a retry after a lost answer) meets what EC2 answers', () => {
  async function available(): Promise<{ w: World; id: string; snapshotId: string }> {
    const { world: w, snapshotId } = world();
    const id = await createVolume(w, snapshotId);
    w.advanceBy(MAX_LAG_MS + 30_000);
    return { w, id, snapshotId };
  }

  it('CreateVolume with the same ClientToken returns the same volume, even before DescribeVolumes lists it', async () => {
    const { world: w, snapshotId } = world();
    const first = await createVolume(w, snapshotId);
    expect(await createVolume(w, snapshotId)).toBe(first);
    expect([...w.volumes.values()].filter((v) => v.snapshotId === snapshotId)).toHaveLength(1);
  });

  it('AttachVolume again: VolumeInUse, while attaching and once attached', async () => {
    const { w, id } = await available();
    await ec2(w, 'AttachVolume', { VolumeId: id, InstanceId: TARGET, Device: 'xvdg' });
    expect(await errorOf(ec2(w, 'AttachVolume', { VolumeId: id, InstanceId: TARGET, Device: 'xvdg' }))).toBe('VolumeInUse');
    w.advanceBy(60_000);
    expect(await errorOf(ec2(w, 'AttachVolume', { VolumeId: id, InstanceId: TARGET, Device: 'xvdg' }))).toBe('VolumeInUse');
  });

  it('DetachVolume again: IncorrectState while detaching and once detached; InvalidAttachment.NotFound for another instance', async () => {
    const { w, id } = await available();
    await ec2(w, 'AttachVolume', { VolumeId: id, InstanceId: TARGET, Device: 'xvdg' });
    w.advanceBy(60_000);
    expect(await errorOf(ec2(w, 'DetachVolume', { VolumeId: id, InstanceId: 'i-0ffffffffffffffff' }))).toBe('InvalidAttachment.NotFound');
    await ec2(w, 'DetachVolume', { VolumeId: id, InstanceId: TARGET });
    expect(await errorOf(ec2(w, 'DetachVolume', { VolumeId: id, InstanceId: TARGET }))).toBe('IncorrectState');
    w.advanceBy(60_000);
    expect(await errorOf(ec2(w, 'DetachVolume', { VolumeId: id, InstanceId: TARGET }))).toBe('IncorrectState');
  });

  it('DeleteVolume again: InvalidVolume.NotFound; DeleteVolume of an attached volume: VolumeInUse', async () => {
    const { w, id } = await available();
    await ec2(w, 'AttachVolume', { VolumeId: id, InstanceId: TARGET, Device: 'xvdg' });
    expect(await errorOf(ec2(w, 'DeleteVolume', { VolumeId: id }))).toBe('VolumeInUse');
    await ec2(w, 'DetachVolume', { VolumeId: id, InstanceId: TARGET });
    w.advanceBy(60_000);
    await ec2(w, 'DeleteVolume', { VolumeId: id });
    expect(await errorOf(ec2(w, 'DeleteVolume', { VolumeId: id }))).toBe('InvalidVolume.NotFound');
    // DescribeVolumes shows the deletion late too.
    expect((await byFilter(w, [{ Name: 'volume-id', Values: [id] }]))[0]?.State).toBe('available');
    w.advanceBy(MAX_LAG_MS + 3_000);
    expect(await byFilter(w, [{ Name: 'volume-id', Values: [id] }])).toEqual([]);
  });
});
