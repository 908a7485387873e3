/**
 * The simulated account with Regions and cross-Region CopySnapshot (issue 13, item 6), through the project's
 * own SDK clients: `clients.ec2` (home, us-east-1) and `ec2In('us-west-2')`. What each behaviour follows is
 * cited in src/local/snapshot-copy.ts, kms.ts and regions.ts.
 */
import { CopySnapshotCommand, ModifySnapshotTierCommand, CreateTagsCommand, DescribeImagesCommand, CreateVolumeCommand, DeleteSnapshotCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, DescribeVolumesCommand, AttachVolumeCommand } from '@aws-sdk/client-ec2';
import type { Snapshot } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import { afterEach, describe, expect, it } from 'vitest';
import { clients, ec2In, ssmIn } from '../src/lib/clients.ts';
import { lostResponse } from '../src/local/faults.ts';
import { parseFleet, FleetError } from '../src/local/fleet.ts';
import { keyArn } from '../src/local/kms.ts';
import { copyDurationMs, COPY_VOLUME_ID } from '../src/local/snapshot-copy.ts';
import { deployStackDocumentsTo, provisionStack, RESTORE_DOCUMENT } from '../src/local/runner.ts';
import { installWorld } from '../src/local/transport.ts';
import type { CallInterceptor } from '../src/local/transport.ts';
import { worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';

const HOME = 'us-east-1';
const DR = 'us-west-2';
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

let uninstall: (() => void) | undefined;
afterEach(() => {
  uninstall?.();
  uninstall = undefined;
});

/** A world from `fleet` (faults and lags off unless asked), plugged beneath the project's clients. */
function account(fleet: Record<string, unknown>, interceptors: CallInterceptor[] = []): World {
  const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, consistency: { maxLagSeconds: 0 }, ...fleet }));
  uninstall = installWorld(clients, world, { interceptors });
  return world;
}

/** One completed snapshot of each volume of `instanceId`, made `ageMinutes` ago, tagged like ours. */
function snapshotsOf(world: World, instanceId: string, ageMinutes = 60): string[] {
  return world.volumesOf(instanceId).map((v, n) => {
    const snapshotId = `snap-0${world.nextHex(16)}`;
    world.addSnapshot({
      snapshotId,
      volumeId: v.volumeId,
      instanceId,
      volumeSize: v.sizeGiB,
      startTime: world.now - ageMinutes * MINUTE,
      completeAt: world.now - ageMinutes * MINUTE + 60_000,
      finalState: 'completed',
      visibleAt: world.now - ageMinutes * MINUTE,
      description: `test ${n}`,
      tags: { 'vss-snapshots:run-id': 'run-1', Device: v.device ?? '' },
      deleted: false,
    });
    return snapshotId;
  });
}

const errorOf = (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.name);
const copy = (sourceSnapshotId: string, extra: Record<string, unknown> = {}, region = DR) =>
  ec2In(region).send(new CopySnapshotCommand({ SourceRegion: HOME, SourceSnapshotId: sourceSnapshotId, ...extra }));
const describe1 = async (id: string, region = DR): Promise<Snapshot> => ((await ec2In(region).send(new DescribeSnapshotsCommand({ SnapshotIds: [id] }))).Snapshots ?? [])[0] as Snapshot;

const ONE = { instances: [{ instanceId: 'i-00000000000000001', volumes: [{ device: '/dev/sda1', sizeGiB: 100 }] }] };

describe('regional clients', () => {
  it('ec2In caches one client per Region, with the Region set, and refuses a name that is not a Region', async () => {
    expect(ec2In(DR)).toBe(ec2In(DR));
    expect(await ec2In(DR).config.region()).toBe(DR);
    expect(ec2In(DR)).not.toBe(clients.ec2);
    expect(() => ec2In('us-west')).toThrow(/Region name/);
  });

  it('plugs the simulated account beneath a regional client made after installWorld', async () => {
    const world = account(ONE);
    const late = ec2In('eu-west-3');
    const out = await late.send(new DescribeSnapshotsCommand({}));
    expect(out.Snapshots).toEqual([]);
    expect(world.apiCalls['ec2:DescribeSnapshots']).toBe(1);
  });
});

describe('CopySnapshot', () => {
  it('copies across Regions: pending with growing Progress, then completed; copy carries only its TagSpecifications, vol-ffffffff, its source', async () => {
    const world = account(ONE);
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const out = await copy(source, { Description: 'dr copy', TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'vss-snapshots:source-snapshot', Value: source }] }] });
    const id = out.SnapshotId as string;
    expect(out.Tags).toEqual([{ Key: 'vss-snapshots:source-snapshot', Value: source }]);

    const first = await describe1(id);
    expect(first).toMatchObject({ State: 'pending', VolumeId: COPY_VOLUME_ID, VolumeSize: 100, Description: 'dr copy', Encrypted: false });
    expect(first.Tags).toEqual([{ Key: 'vss-snapshots:source-snapshot', Value: source }]);
    const full = copyDurationMs(world, 100, 'full');
    world.advanceBy(full / 2);
    const half = await describe1(id);
    expect(half.State).toBe('pending');
    expect(Number.parseInt(half.Progress ?? '', 10)).toBeGreaterThan(Number.parseInt(first.Progress ?? '', 10));
    world.advanceBy(full / 2);
    expect(await describe1(id)).toMatchObject({ State: 'completed', Progress: '100%' });

    const dumped = world.dump().snapshots.find((s) => s.snapshotId === id);
    expect(dumped).toMatchObject({ region: DR, sourceSnapshotId: source, sourceRegion: HOME, volumeId: COPY_VOLUME_ID, instanceId: 'i-00000000000000001', copyKind: 'full' });
    expect(world.dump().snapshots.find((s) => s.snapshotId === source)).toMatchObject({ region: HOME });
    expect(world.dump().volumes[0]).toMatchObject({ region: HOME });
    expect(world.mutations.at(-1)).toMatchObject({ call: 'ec2:CopySnapshot', ids: [id, source], ok: true, region: DR });
  });

  it('answers at call time: missing source, source in another Region, pending source, KmsKeyId without Encrypted, bad TagSpecifications', async () => {
    const world = account(ONE);
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    expect(await errorOf(copy('snap-0ffffffffffffff99'))).toBe('InvalidSnapshot.NotFound');
    expect(await errorOf(ec2In(DR).send(new CopySnapshotCommand({ SourceRegion: 'eu-west-1', SourceSnapshotId: source })))).toBe('InvalidSnapshot.NotFound');
    expect(await errorOf(copy(source, { KmsKeyId: 'alias/aws/ebs' }))).toBe('InvalidParameterDependency');
    expect(await errorOf(copy(source, { TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: 'a', Value: 'b' }] }] }))).toBe('InvalidParameterValue');
    expect(await errorOf(copy(source, { CompletionDurationMinutes: 20 }))).toBe('InvalidParameterValue');
    world.snapshots.get(source)!.completeAt = world.now + HOUR;
    expect(await errorOf(copy(source))).toBe('IncorrectState');
    // None of these made a copy; each is in the mutation log as failed.
    expect(world.dump().snapshots.filter((s) => s.sourceSnapshotId)).toEqual([]);
    expect(world.mutations.filter((m) => m.call === 'ec2:CopySnapshot').map((m) => m.ok)).toEqual([false, false, false, false, false, false]);
  });

  it('refuses an archived source when the snapshot has a storage tier', async () => {
    const world = account(ONE);
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    // Archived through the archive tier's own call (snapshot-tier.ts), then given time to finish archiving.
    await ec2In('us-east-1').send(new ModifySnapshotTierCommand({ SnapshotId: source, StorageTier: 'archive' }));
    world.advanceBy(2 * 86_400_000);
    expect(await errorOf(copy(source))).toBe('IncorrectState');
  });

  it('answers ResourceLimitExceeded at the 21st copy in flight into one Region; another Region has its own quota; a completed copy frees a slot', async () => {
    const instances = Array.from({ length: 22 }, (_, n) => ({ instanceId: `i-0${(n + 1).toString(16).padStart(16, '0')}`, volumes: [{ device: '/dev/sda1', sizeGiB: 50 }] }));
    const world = account({ instances });
    const sources = instances.flatMap((i) => snapshotsOf(world, i.instanceId));
    for (const s of sources.slice(0, 20)) await copy(s);
    expect(await errorOf(copy(sources[20] as string))).toBe('ResourceLimitExceeded');
    // Retries do not help while 20 are in flight (the SDK does not retry it: not a throttling code).
    expect(world.apiCalls['ec2:CopySnapshot']).toBe(21);
    expect((await copy(sources[20] as string, {}, 'eu-west-1')).SnapshotId).toMatch(/^snap-/);
    world.advanceBy(copyDurationMs(world, 50, 'full'));
    expect((await copy(sources[20] as string)).SnapshotId).toMatch(/^snap-/);
  });

  it('honours the fleet file quota (dr.copyQuota)', async () => {
    const world = account({ ...ONE, dr: { copyQuota: 1 } });
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    await copy(source);
    expect(await errorOf(copy(source))).toBe('ResourceLimitExceeded');
  });

  it('a lost CopySnapshot answer: the call fails, the copy exists, the retry of the SDK made a second one', async () => {
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, consistency: { maxLagSeconds: 0 }, ...ONE }));
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    uninstall = installWorld(clients, world, { interceptors: [lostResponse(world, (c) => c.operation === 'CopySnapshot', 5)] });
    expect(await errorOf(copy(source, { TagSpecifications: [{ ResourceType: 'snapshot', Tags: [{ Key: 'source', Value: source }] }] }))).toBe('TimeoutError');
    const copies = (await ec2In(DR).send(new DescribeSnapshotsCommand({ Filters: [{ Name: 'tag:source', Values: [source] }] }))).Snapshots ?? [];
    // Each of the SDK's 5 attempts took effect before its answer was lost: CopySnapshot has no ClientToken.
    expect(copies.length).toBe(5);
    expect(world.mutations.filter((m) => m.call === 'ec2:CopySnapshot' && m.ok).length).toBe(5);
  });

  it('incremental after a completed copy of the same volume under the same key; full again under another key or once the earlier copy is deleted', async () => {
    const world = account({ ...ONE, dr: { kmsKeys: [{ region: DR, alias: 'alias/dr' }] } });
    const [first] = snapshotsOf(world, 'i-00000000000000001', 120) as [string];
    const [second] = snapshotsOf(world, 'i-00000000000000001', 60) as [string];
    const a = (await copy(first)).SnapshotId as string;
    // A copy asked while the earlier one of the same volume is pending waits for it, then goes incremental.
    const b = (await copy(second)).SnapshotId as string;
    const full = copyDurationMs(world, 100, 'full');
    const incremental = copyDurationMs(world, 100, 'incremental');
    expect(incremental * 5).toBeLessThan(full);
    const dump = () => new Map(world.dump().snapshots.map((s) => [s.snapshotId, s]));
    expect(dump().get(a)?.copyKind).toBe('full');
    expect(dump().get(b)?.copyKind).toBe('incremental');
    world.advanceBy(full);
    expect((await describe1(a)).State).toBe('completed');
    expect((await describe1(b)).State).toBe('pending');
    world.advanceBy(incremental);
    expect((await describe1(b)).State).toBe('completed');

    const c = (await copy(second, { Encrypted: true, KmsKeyId: 'alias/dr' })).SnapshotId as string;
    expect(dump().get(c)?.copyKind).toBe('full');
    world.advanceBy(full);
    await ec2In(DR).send(new DeleteSnapshotCommand({ SnapshotId: a }));
    await ec2In(DR).send(new DeleteSnapshotCommand({ SnapshotId: b }));
    const d = (await copy(second)).SnapshotId as string;
    expect(dump().get(d)?.copyKind).toBe('full');
  });

  it('copy time grows with size (dr.copyTiming)', async () => {
    const world = account({ ...ONE, dr: { copyTiming: { startMinutes: 10, gibPerHour: 50, incrementalFraction: 0.1 } } });
    expect(copyDurationMs(world, 100, 'full')).toBe(10 * MINUTE + 2 * HOUR);
    expect(copyDurationMs(world, 100, 'incremental')).toBe(10 * MINUTE + 12 * MINUTE);
    expect(copyDurationMs(world, 1000, 'full')).toBeGreaterThan(copyDurationMs(world, 100, 'full'));
  });
});

describe('encryption and KMS', () => {
  const encrypted = (state: string) => ({
    instances: [{ instanceId: 'i-00000000000000001', volumes: [{ device: '/dev/sda1', sizeGiB: 100, encrypted: true }] }],
    dr: { kmsKeys: [{ region: DR, alias: 'alias/dr', state }, { region: HOME, alias: 'alias/home' }] },
  });

  it('an encrypted source gives an encrypted copy, under the destination default key when no KmsKeyId', async () => {
    const world = account(encrypted('enabled'));
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    expect((await clients.ec2.send(new DescribeSnapshotsCommand({ SnapshotIds: [source] }))).Snapshots?.[0]).toMatchObject({ Encrypted: true });
    const id = (await copy(source)).SnapshotId as string;
    const described = await describe1(id);
    expect(described.Encrypted).toBe(true);
    expect(described.KmsKeyId).toMatch(new RegExp(`^arn:aws:kms:${DR}:123456789012:key/`));
    world.advanceBy(copyDurationMs(world, 100, 'full'));
    expect((await describe1(id)).State).toBe('completed');
  });

  it.each(['disabled', 'pending-deletion', 'no-grant'])('a %s destination key: the call succeeds, the copy ends in error with a StateMessage', async (state) => {
    const world = account(encrypted(state));
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const id = (await copy(source, { Encrypted: true, KmsKeyId: 'alias/dr' })).SnapshotId as string;
    expect((await describe1(id)).State).toBe('pending');
    world.advanceBy(world.dr.copyTiming.kmsFailureMinutes * MINUTE);
    const failed = await describe1(id);
    expect(failed.State).toBe('error');
    expect(failed.StateMessage).toMatch(/KMS key/);
    expect(world.dump().snapshots.find((s) => s.snapshotId === id)).toMatchObject({ state: 'error', stateMessage: failed.StateMessage });
  });

  it('a key that does not exist in the destination, or lives in another Region, fails later too', async () => {
    const world = account(encrypted('enabled'));
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const missing = (await copy(source, { Encrypted: true, KmsKeyId: 'alias/nope' })).SnapshotId as string;
    const homeKey = (await copy(source, { Encrypted: true, KmsKeyId: keyArn(HOME, world.kmsKeys[1]!.keyId) })).SnapshotId as string;
    world.advanceBy(world.dr.copyTiming.kmsFailureMinutes * MINUTE);
    expect((await describe1(missing)).StateMessage).toMatch(/does not exist in us-west-2/);
    expect((await describe1(homeKey)).StateMessage).toMatch(/destination Region us-west-2/);
  });

  it('an unencrypted source copied with Encrypted and a key is encrypted under that key', async () => {
    const world = account({ ...ONE, dr: { kmsKeys: [{ region: DR, alias: 'alias/dr', keyId: '11111111-2222-4333-8444-555555555555' }] } });
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const id = (await copy(source, { Encrypted: true, KmsKeyId: 'alias/dr' })).SnapshotId as string;
    expect((await describe1(id)).KmsKeyId).toBe(keyArn(DR, '11111111-2222-4333-8444-555555555555'));
  });
});

describe('Region isolation', () => {
  const twoRegions = {
    instances: [
      { instanceId: 'i-00000000000000001', volumes: [{ device: '/dev/sda1', sizeGiB: 30 }] },
      { instanceId: 'i-00000000000000002', region: DR, volumes: [{ device: '/dev/sda1', sizeGiB: 30 }] },
    ],
  };

  it('each Region sees only its own instances, volumes and snapshots; another Region\'s ids are NotFound', async () => {
    const world = account(twoRegions);
    const [home] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const [dr] = snapshotsOf(world, 'i-00000000000000002') as [string];
    const ids = async (region: string) => ((await ec2In(region).send(new DescribeInstancesCommand({}))).Reservations ?? []).flatMap((r) => r.Instances ?? []).map((i) => i.InstanceId);
    expect(await ids(HOME)).toEqual(['i-00000000000000001']);
    expect(await ids(DR)).toEqual(['i-00000000000000002']);
    expect(((await clients.ec2.send(new DescribeSnapshotsCommand({}))).Snapshots ?? []).map((s) => s.SnapshotId)).toEqual([home]);
    expect(((await ec2In(DR).send(new DescribeSnapshotsCommand({}))).Snapshots ?? []).map((s) => s.SnapshotId)).toEqual([dr]);
    expect(await errorOf(ec2In(DR).send(new DescribeSnapshotsCommand({ SnapshotIds: [home] })))).toBe('InvalidSnapshot.NotFound');
    expect(await errorOf(ec2In(DR).send(new DeleteSnapshotCommand({ SnapshotId: home })))).toBe('InvalidSnapshot.NotFound');
    expect(await errorOf(ec2In(DR).send(new CreateTagsCommand({ Resources: [home], Tags: [{ Key: 'a', Value: 'b' }] })))).toBe('InvalidSnapshot.NotFound');
    expect(await errorOf(clients.ec2.send(new DescribeInstancesCommand({ InstanceIds: ['i-00000000000000002'] })))).toBe('InvalidInstanceID.NotFound');
    const volumes = ((await ec2In(DR).send(new DescribeVolumesCommand({}))).Volumes ?? []).map((v) => v.AvailabilityZone);
    // The fleet's second instance is in zone b of its Region.
    expect(volumes).toEqual([`${DR}b`]);
    expect(((await ssmIn(DR).send(new DescribeInstanceInformationCommand({}))).InstanceInformationList ?? []).map((i) => i.InstanceId)).toEqual(['i-00000000000000002']);
    // SSM too: a command goes to an instance only through its own Region's endpoint, and is listed there only.
    provisionStack(world);
    const send = (client: typeof clients.ssm, id: string) => client.send(new SendCommandCommand({ DocumentName: 'AWSEC2-CreateVssSnapshot', InstanceIds: [id], Parameters: { ExcludeBootVolume: ['False'], CopyOnly: ['False'], NoWriters: ['False'], CreateAmi: ['False'], description: ['x'], tags: ['Key=a,Value=b'] } }));
    expect(await errorOf(send(clients.ssm, 'i-00000000000000002'))).toBe('InvalidInstanceId');
    const commandId = (await send(ssmIn(DR), 'i-00000000000000002')).Command?.CommandId as string;
    expect(((await ssmIn(DR).send(new ListCommandsCommand({ CommandId: commandId }))).Commands ?? []).length).toBe(1);
    expect(await errorOf(clients.ssm.send(new ListCommandsCommand({ CommandId: commandId })))).toBe('InvalidCommandId');
  });

  it('the stack\'s own SSM documents exist in its Region only, until deployed in another; AWS\'s exist everywhere', async () => {
    const world = account(twoRegions);
    provisionStack(world);
    const restore = (client: typeof clients.ssm) =>
      client.send(new SendCommandCommand({ DocumentName: RESTORE_DOCUMENT, InstanceIds: ['i-00000000000000002'], Parameters: {} }));
    expect(await errorOf(restore(ssmIn(DR)))).toBe('InvalidDocument');
    deployStackDocumentsTo(world, DR);
    provisionStack(world);
    // Past the document check now (the parameters are the next thing checked).
    expect(await errorOf(restore(ssmIn(DR)))).not.toBe('InvalidDocument');
  });

  it('images are per Region: an AMI over a home snapshot is not in the DR Region', async () => {
    const world = account(twoRegions);
    const [home] = snapshotsOf(world, 'i-00000000000000001') as [string];
    world.images.set('ami-00000000000000001', { imageId: 'ami-00000000000000001', name: 'golden', snapshotIds: [home], createdAt: world.now });
    expect(((await clients.ec2.send(new DescribeImagesCommand({ Owners: ['self'] }))).Images ?? []).map((i) => i.ImageId)).toEqual(['ami-00000000000000001']);
    expect(((await ec2In(DR).send(new DescribeImagesCommand({ Owners: ['self'] }))).Images ?? []).length).toBe(0);
    expect(await errorOf(ec2In(DR).send(new DescribeImagesCommand({ ImageIds: ['ami-00000000000000001'] })))).toBe('InvalidAMIID.NotFound');
    expect(world.dump().images[0]).toMatchObject({ region: HOME });
  });

  it('restores in the DR Region from a completed copy to an instance that lives there', async () => {
    const world = account(twoRegions);
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const id = (await copy(source)).SnapshotId as string;
    expect(await errorOf(ec2In(DR).send(new CreateVolumeCommand({ SnapshotId: id, AvailabilityZone: `${DR}a` })))).toBe('IncorrectState');
    world.advanceBy(copyDurationMs(world, 30, 'full'));
    expect(await errorOf(ec2In(DR).send(new CreateVolumeCommand({ SnapshotId: id, AvailabilityZone: `${HOME}a` })))).toBe('InvalidParameterValue');
    expect(await errorOf(clients.ec2.send(new CreateVolumeCommand({ SnapshotId: id, AvailabilityZone: `${HOME}a` })))).toBe('InvalidSnapshot.NotFound');
    const volume = await ec2In(DR).send(new CreateVolumeCommand({ SnapshotId: id, AvailabilityZone: `${DR}b` }));
    world.advanceBy(MINUTE);
    await ec2In(DR).send(new AttachVolumeCommand({ VolumeId: volume.VolumeId, InstanceId: 'i-00000000000000002', Device: 'xvdf' }));
    world.advanceBy(MINUTE);
    expect(world.dump().volumes.find((v) => v.volumeId === volume.VolumeId)).toMatchObject({ region: DR, instanceId: 'i-00000000000000002', snapshotId: id });
  });
});

describe('fleet file', () => {
  it('names the field of a bad value', () => {
    expect(() => parseFleet({ instances: [{ region: 'mars-1' }] })).toThrow(/instances\[0\]\.region: must be an AWS Region name/);
    expect(() => parseFleet({ instances: [], dr: { kmsKeys: [{ region: DR, alias: 'alias/x', state: 'gone' }] } })).toThrow(/dr\.kmsKeys\[0\]\.state: must be one of enabled, disabled, pending-deletion, no-grant/);
    expect(() => parseFleet({ instances: [], dr: { copyQuota: 0 } })).toThrow(/dr\.copyQuota: must be ≥ 1/);
    expect(() => parseFleet({ instances: [], dr: { copyTiming: { gibPerHour: 0 } } })).toThrow(/dr\.copyTiming\.gibPerHour/);
    expect(() => parseFleet({ instances: [], dr: { speed: 1 } })).toThrow(/dr.*speed/);
    expect(() => parseFleet({ instances: [{ volumes: [{ device: 'xvdf', kmsKeyId: 'alias/nope' }] }] })).toThrow(FleetError);
    expect(() => parseFleet({ instances: [{ volumes: [{ device: 'xvdf', kmsKeyId: 'alias/nope' }] }] })).toThrow(/instances\[0\]\.volumes\[0\]\.kmsKeyId "alias\/nope" names no key in us-east-1/);
    expect(() => parseFleet({ instances: [], dr: { kmsKeys: [{ region: DR }] } })).toThrow(/dr\.kmsKeys\[0\] needs an alias or a keyId/);
  });
});

describe('eventual consistency, rate limits, scale', () => {
  it('a new copy is unknown to DescribeSnapshots until its lag has passed, like any new snapshot', async () => {
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, consistency: { maxLagSeconds: 30 }, ...ONE }));
    uninstall = installWorld(clients, world);
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const id = (await copy(source)).SnapshotId as string;
    expect(await errorOf(describe1(id))).toBe('InvalidSnapshot.NotFound');
    expect(((await ec2In(DR).send(new DescribeSnapshotsCommand({}))).Snapshots ?? []).length).toBe(0);
    world.advanceBy(30_000);
    expect((await describe1(id)).SnapshotId).toBe(id);
  });

  it('CopySnapshot has its own token bucket (50 burst, 5 per second) per Region: RequestLimitExceeded beyond it', async () => {
    const { accountLimits, DEFAULT_LIMITS } = await import('../src/local/limits.ts');
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, consistency: { maxLagSeconds: 0 }, dr: { copyQuota: 1000 }, ...ONE }));
    const limits = accountLimits(world, { ...DEFAULT_LIMITS, latencyMs: { default: 0 } });
    uninstall = installWorld(clients, world, { interceptors: [limits.interceptor] });
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    // 60 calls at one instant, each its own lane: the first 50 take the burst; the SDK's retries back off.
    await Promise.all(Array.from({ length: 60 }, () => copy(source)));
    expect(limits.stats.throttled['ec2:CopySnapshot']).toBeGreaterThan(0);
    const throttledInDr = limits.stats.throttled['ec2:CopySnapshot'];
    // Another Region's bucket is full: its first 50 calls are not throttled.
    await Promise.all(Array.from({ length: 50 }, () => copy(source, {}, 'eu-west-1')));
    expect(limits.stats.throttled['ec2:CopySnapshot']).toBe(throttledInDr);
    limits.uninstall();
  });

  it('copies among 100,000 snapshots: 1,000 copies, 20 in flight at a time (the copy index, not a scan per call)', async () => {
    const instances = Array.from({ length: 1000 }, (_, n) => ({ instanceId: `i-0${(n + 1).toString(16).padStart(16, '0')}`, volumes: [{ device: '/dev/sda1', sizeGiB: 30 }, { device: 'xvdf', sizeGiB: 30 }] }));
    const world = account({ instances });
    for (let night = 0; night < 50; night += 1) for (const i of instances) snapshotsOf(world, i.instanceId, 60 + night * 24 * 60);
    expect(world.snapshots.size).toBe(100_000);
    const sources = instances.slice(0, 1000).flatMap((i) => world.snapshotsOfVolume(world.volumesOf(i.instanceId)[0]!.volumeId).slice(-1).map((s) => s.snapshotId));
    let made = 0;
    for (const [n, s] of sources.entries()) {
      if (n > 0 && n % 20 === 0) world.advanceBy(copyDurationMs(world, 30, 'full'));
      await copy(s);
      made += 1;
    }
    expect(made).toBe(1000);
    expect(world.dump().snapshots.filter((s) => s.sourceSnapshotId).length).toBe(1000);
  });
});

describe('what a copy holds', () => {
  it('dataSnapshot follows a copy (of a copy) to the snapshot whose data it holds', async () => {
    const { dataSnapshot } = await import('../src/local/snapshot-copy.ts');
    const world = account(ONE);
    const [source] = snapshotsOf(world, 'i-00000000000000001') as [string];
    const first = (await copy(source)).SnapshotId as string;
    world.advanceBy(copyDurationMs(world, 100, 'full'));
    const second = (await ec2In('eu-west-1').send(new CopySnapshotCommand({ SourceRegion: DR, SourceSnapshotId: first }))).SnapshotId as string;
    expect(dataSnapshot(world, world.snapshots.get(second)!).snapshotId).toBe(source);
    // And the copy of a copy is incremental against nothing yet in eu-west-1, but knows its origin volume.
    expect(world.snapshots.get(second)?.originVolumeId).toBe(world.snapshots.get(source)?.volumeId);
  });
});

describe('examples/fleets/dr.json', () => {
  it('builds encrypted volumes with their keys, and copies into us-west-2 work with its usable key and fail with its disabled one', async () => {
    const { loadFleetFile } = await import('../src/local/fleet.ts');
    const world = worldFromFleet({ ...loadFleetFile(new URL('../examples/fleets/dr.json', import.meta.url).pathname), faults: { rate: 0, seed: 1, kinds: ['throttle'] }, consistency: { maxLagSeconds: 0, seed: 1 } });
    uninstall = installWorld(clients, world);
    const volumes = (await clients.ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: ['i-0d000000000000001'] }] }))).Volumes ?? [];
    expect(volumes.map((v) => v.Encrypted)).toEqual([true, true]);
    expect(new Set(volumes.map((v) => v.KmsKeyId)).size).toBe(2);
    const [, data] = snapshotsOf(world, 'i-0d000000000000001') as [string, string];
    const good = (await copy(data, { Encrypted: true, KmsKeyId: 'alias/vss-dr' })).SnapshotId as string;
    const bad = (await copy(data, { Encrypted: true, KmsKeyId: 'alias/vss-dr-disabled' })).SnapshotId as string;
    world.advanceBy(copyDurationMs(world, 500, 'full'));
    expect((await describe1(good)).State).toBe('completed');
    expect((await describe1(bad)).State).toBe('error');
  });
});
