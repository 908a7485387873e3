/**
 * EBS volumes of the simulated account: CreateVolume (from a snapshot, `creating` then `available`),
 * DescribeVolumes (filters, pagination), AttachVolume (`attaching` then `attached`), DetachVolume and
 * DeleteVolume, with the error codes EC2 answers (InvalidVolume.NotFound, IncorrectState, VolumeInUse,
 * InvalidVolume.ZoneMismatch, InvalidParameterValue, IdempotentParameterMismatch, ...).
 */
import type { Filter } from '@aws-sdk/client-ec2';
import { awsError, checkRange, paginate } from './aws-error.ts';
import { filterValueMatches } from './ec2.ts';
import { AZS } from './world.ts';
import type { SimVolume, World } from './world.ts';

type Input = Record<string, unknown>;

/** A volume from a snapshot is usable after a few seconds (EBS loads the blocks lazily afterwards). */
const CREATE_MS = 6_000;
const ATTACH_MS = 4_000;
const DETACH_MS = 8_000;
/** A deleted volume is listed as `deleting` this long, then no more. */
const DELETING_MS = 2_000;
const VOLUME_TYPES = ['standard', 'io1', 'io2', 'gp2', 'gp3', 'sc1', 'st1'];
const DEVICE_NAME = /^(\/dev\/)?(sd[a-z]{1,2}[0-9]*|xvd[a-z]{1,2}[0-9]*)$/;

/** EC2 reports a volume's state from its lifecycle; `deleting` only briefly after DeleteVolume. */
function volumeState(world: World, v: SimVolume): string {
  if (v.deleted) return 'deleting';
  if (world.now < v.availableAt) return 'creating';
  return v.instanceId ? 'in-use' : 'available';
}

function visible(world: World, v: SimVolume): boolean {
  return !v.deleted || world.now < (v.deletedAt ?? 0) + DELETING_MS;
}

function attachmentState(v: SimVolume): string {
  return v.attachState ?? 'attached';
}

/** The attachment slot a device name takes: `xvdf`, `/dev/sdf` and `/dev/xvdf` are all `f`. */
function slot(device: string): string {
  const name = device.replace(/^\/dev\//, '');
  return /^(?:xv|s)d([a-z]{1,2})[0-9]*$/.exec(name)?.[1] ?? name;
}

export function describeVolume(world: World, v: SimVolume) {
  world.settleVolume(v);
  return {
    VolumeId: v.volumeId,
    Size: v.sizeGiB,
    SnapshotId: v.snapshotId ?? '',
    AvailabilityZone: v.availabilityZone,
    State: volumeState(world, v),
    CreateTime: new Date(v.createdAt),
    VolumeType: v.volumeType ?? 'gp3',
    Encrypted: false,
    MultiAttachEnabled: false,
    Tags: Object.entries(v.tags).map(([Key, Value]) => ({ Key, Value })),
    Attachments: v.instanceId
      ? [{ VolumeId: v.volumeId, InstanceId: v.instanceId, Device: v.device, State: attachmentState(v), AttachTime: new Date(v.attachedAt ?? v.createdAt), DeleteOnTermination: false }]
      : [],
  };
}

function volumeMatches(world: World, v: SimVolume, filter: Filter): boolean {
  const values = filter.Values ?? [];
  const any = (value: string | undefined) => value !== undefined && values.some((p) => filterValueMatches(p, value));
  const name = filter.Name ?? '';
  if (name.startsWith('tag:')) return any(v.tags[name.slice(4)]);
  switch (name) {
    case 'tag-key':
      return Object.keys(v.tags).some((k) => any(k));
    case 'volume-id':
      return any(v.volumeId);
    case 'status':
      return any(volumeState(world, v));
    case 'availability-zone':
      return any(v.availabilityZone);
    case 'snapshot-id':
      return any(v.snapshotId ?? '');
    case 'volume-type':
      return any(v.volumeType ?? 'gp3');
    case 'size':
      return any(String(v.sizeGiB));
    case 'attachment.instance-id':
      return any(v.instanceId);
    case 'attachment.device':
      return any(v.device);
    case 'attachment.status':
      return v.instanceId !== undefined && any(attachmentState(v));
    default:
      throw awsError('InvalidParameterValue', `The filter '${name}' is invalid`);
  }
}

function findVolume(world: World, id: unknown): SimVolume {
  if (typeof id !== 'string' || id === '') throw awsError('MissingParameter', 'The request must contain the parameter volumeId');
  const v = world.volumes.get(id);
  if (!v || v.deleted) throw awsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
  return world.settleVolume(v);
}

export const volumeOperations: Record<string, (world: World, input: Input) => unknown> = {
  CreateVolume(world, input) {
    const az = input.AvailabilityZone as string | undefined;
    if (!az) throw awsError('MissingParameter', 'The request must contain the parameter AvailabilityZone');
    if (!AZS.includes(az)) throw awsError('InvalidParameterValue', `Invalid availability zone: [${az}]`);
    const snapshotId = input.SnapshotId as string | undefined;
    const size = input.Size as number | undefined;
    if (!snapshotId && size === undefined) throw awsError('MissingParameter', 'The request must contain the parameter size or snapshotId');
    const volumeType = (input.VolumeType as string | undefined) ?? 'gp2';
    if (!VOLUME_TYPES.includes(volumeType)) throw awsError('InvalidParameterValue', `Value (${volumeType}) for parameter volumeType is invalid.`);
    const specs = (input.TagSpecifications as { ResourceType?: string; Tags?: { Key?: string; Value?: string }[] }[] | undefined) ?? [];
    const tags: Record<string, string> = {};
    for (const spec of specs) {
      if (spec.ResourceType !== 'volume') throw awsError('InvalidParameterValue', `'${spec.ResourceType}' is not a valid taggable resource type for this operation.`);
      for (const t of spec.Tags ?? []) {
        if (!t.Key || t.Key.toLowerCase().startsWith('aws:')) throw awsError('InvalidParameterValue', `Tag key '${t.Key}' is not valid.`);
        tags[t.Key] = t.Value ?? '';
      }
    }
    const token = input.ClientToken as string | undefined;
    if (token !== undefined && (token.length === 0 || token.length > 64)) throw awsError('InvalidParameterValue', 'ClientToken must be 1-64 ASCII characters.');
    const request = JSON.stringify({ az, snapshotId, size, volumeType, tags });
    if (token) {
      const earlier = [...world.volumes.values()].find((v) => v.clientToken === token);
      if (earlier) {
        if (earlier.createRequest !== request) throw awsError('IdempotentParameterMismatch', `The client token ${token} has been used with different parameters.`);
        return describeVolume(world, earlier);
      }
    }
    let sizeGiB = size ?? 0;
    if (snapshotId) {
      const snapshot = world.snapshots.get(snapshotId);
      if (!snapshot || snapshot.deleted || snapshot.visibleAt > world.now) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
      const state = world.snapshotState(snapshot);
      if (state !== 'completed') throw awsError('IncorrectState', `Snapshot '${snapshotId}' is in state ${state}, not completed.`);
      if (size !== undefined && size < snapshot.volumeSize) throw awsError('InvalidParameterValue', `Volume of ${size}GiB is too small; minimum is ${snapshot.volumeSize}GiB.`);
      sizeGiB = size ?? snapshot.volumeSize;
    }
    checkRange(sizeGiB, 1, 65_536, 'Size', 'InvalidParameterValue');
    const volumeId = `vol-0${world.nextHex(16)}`;
    const volume: SimVolume = {
      volumeId,
      sizeGiB,
      availabilityZone: az,
      ...(snapshotId ? { snapshotId } : {}),
      createdAt: world.now,
      availableAt: world.now + CREATE_MS + Math.min(30_000, sizeGiB * 10),
      tags,
      volumeType,
      ...(token ? { clientToken: token } : {}),
      createRequest: request,
    };
    world.volumes.set(volumeId, volume);
    return describeVolume(world, volume);
  },

  DescribeVolumes(world, input) {
    const ids = input.VolumeIds as string[] | undefined;
    const maxResults = input.MaxResults as number | undefined;
    if (ids && ids.length > 0 && maxResults !== undefined) throw awsError('InvalidParameterCombination', 'The parameter volumeSet cannot be used with the parameter maxResults');
    checkRange(maxResults, 5, 500, 'MaxResults', 'InvalidParameterValue');
    const filters = (input.Filters as Filter[] | undefined) ?? [];
    for (const id of ids ?? []) {
      const v = world.volumes.get(id);
      if (!v || !visible(world, v)) throw awsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    }
    const idSet = ids && ids.length > 0 ? new Set(ids) : undefined;
    const matching = [...world.volumes.values()].filter((v) => visible(world, v) && (!idSet || idSet.has(v.volumeId)) && filters.every((f) => volumeMatches(world, world.settleVolume(v), f)));
    const { page, nextToken } = paginate(matching, maxResults ?? 1000, input.NextToken as string | undefined, 'ec2');
    return { Volumes: page.map((v) => describeVolume(world, v)), ...(nextToken ? { NextToken: nextToken } : {}) };
  },

  AttachVolume(world, input) {
    const device = input.Device as string | undefined;
    if (!device) throw awsError('MissingParameter', 'The request must contain the parameter device');
    const instanceId = input.InstanceId as string | undefined;
    if (!instanceId) throw awsError('MissingParameter', 'The request must contain the parameter instanceId');
    const volume = findVolume(world, input.VolumeId);
    const instance = world.instances.get(instanceId);
    if (!instance) throw awsError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`);
    if (!DEVICE_NAME.test(device)) throw awsError('InvalidParameterValue', `Value (${device}) for parameter device is invalid. ${device} is not a valid EBS device name.`);
    if (volume.instanceId) throw awsError('VolumeInUse', `${volume.volumeId} is already attached to an instance`);
    if (volumeState(world, volume) !== 'available') throw awsError('IncorrectState', `${volume.volumeId} is not 'available'.`);
    if (instance.state !== 'running' && instance.state !== 'stopped') throw awsError('IncorrectInstanceState', `The instance '${instanceId}' is not in a valid state for this operation.`);
    if (volume.availabilityZone !== instance.availabilityZone) {
      throw awsError('InvalidVolume.ZoneMismatch', `The volume '${volume.volumeId}' is not in the same availability zone as instance '${instanceId}'`);
    }
    const used = world.volumesOf(instanceId).map((v) => world.settleVolume(v)).filter((v) => v.instanceId === instanceId);
    if (slot(device) === slot(instance.rootDevice) || used.some((v) => v.device !== undefined && slot(v.device) === slot(device))) {
      throw awsError('InvalidParameterValue', `Invalid value '${device}' for unixDevice. Attachment point ${device} is already in use`);
    }
    volume.instanceId = instanceId;
    volume.device = device;
    volume.attachState = 'attaching';
    volume.attachedAt = world.now + ATTACH_MS;
    world.reindexVolumes();
    return { VolumeId: volume.volumeId, InstanceId: instanceId, Device: device, State: 'attaching', AttachTime: new Date(world.now) };
  },

  DetachVolume(world, input) {
    const volume = findVolume(world, input.VolumeId);
    const instanceId = input.InstanceId as string | undefined;
    if (!volume.instanceId) throw awsError('IncorrectState', `Volume '${volume.volumeId}' is in the '${volumeState(world, volume)}' state.`);
    if (instanceId && instanceId !== volume.instanceId) throw awsError('InvalidAttachment.NotFound', `Volume '${volume.volumeId}' is not attached to instance '${instanceId}'.`);
    if (input.Device && input.Device !== volume.device) throw awsError('InvalidAttachment.NotFound', `Volume '${volume.volumeId}' is not attached at '${String(input.Device)}'.`);
    if (volume.attachState === 'detaching') throw awsError('IncorrectState', `Volume '${volume.volumeId}' is already detaching.`);
    const instance = world.instances.get(volume.instanceId);
    if (instance && volume.device === instance.rootDevice && instance.state === 'running') {
      throw awsError('OperationNotPermitted', `The volume '${volume.volumeId}' is the root device of running instance '${instance.instanceId}'.`);
    }
    volume.attachState = 'detaching';
    volume.detachAt = world.now + DETACH_MS;
    return { VolumeId: volume.volumeId, InstanceId: volume.instanceId, Device: volume.device, State: 'detaching', AttachTime: new Date(volume.attachedAt ?? volume.createdAt) };
  },

  DeleteVolume(world, input) {
    const volume = findVolume(world, input.VolumeId);
    if (volume.instanceId) throw awsError('VolumeInUse', `Volume ${volume.volumeId} is currently attached to ${volume.instanceId}`);
    if (volumeState(world, volume) === 'creating') throw awsError('IncorrectState', `The volume '${volume.volumeId}' is 'creating'.`);
    volume.deleted = true;
    volume.deletedAt = world.now;
    world.reindexVolumes();
    return {};
  },
};
