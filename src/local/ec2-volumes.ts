/**
 * EBS volumes of the simulated account: CreateVolume (from a snapshot, `creating` then `available`),
 * DescribeVolumes (filters, pagination), AttachVolume (`attaching` then `attached`), DetachVolume and
 * DeleteVolume, with the error codes EC2 answers (InvalidVolume.NotFound, IncorrectState, VolumeInUse,
 * InvalidAttachment.NotFound, InvalidVolume.ZoneMismatch, InvalidParameterValue, IdempotentParameterMismatch, ...).
 *
 * Eventual consistency. "The Amazon EC2 API follows an eventual consistency model ... the result of an API
 * command you run that affects your Amazon EC2 resources might not be immediately visible to all subsequent
 * commands you run ... if you run a command to modify or describe the resource that you just created, its ID
 * might not have propagated throughout the system, and you will get an error responding that the resource does
 * not exist" (EC2 developer guide, "Eventual consistency in the Amazon EC2 API",
 * docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html; it advises describing "starting with a
 * couple of seconds of wait time, and increasing gradually up to a few minutes"). So the account keeps two
 * views of each volume made by CreateVolume:
 *
 * - the truth, which the mutating calls check (AttachVolume on an attached volume is VolumeInUse at once), and
 * - what DescribeVolumes and DescribeInstances show: every change becomes visible only after a seeded lag
 *   (`world.lagMs`, src/local/consistency.ts; 0.5–1 s floor, realistic maximum 10 s, fleet knob
 *   `consistency.maxLagSeconds`): a new volume is missing (InvalidVolume.NotFound for its id, absent from
 *   filtered lists) for a `volume-visible` lag, and every call that names it answers InvalidVolume.NotFound
 *   until then; its tags given on create show a `volume-tag` lag later (also in `tag:` filters); an attachment
 *   or its end shows a `volume-attachment` lag late (DescribeVolumes `Attachments`, DescribeInstances
 *   `BlockDeviceMappings`); `creating` → `available` and `deleting` show a `volume-state` lag late.
 *   Changes show in the order they happened: a later change is never visible before an earlier one.
 *
 * Fleet volumes (attached from the start, never changed) are shown as they are.
 */
import type { Filter } from '@aws-sdk/client-ec2';
import { awsError, checkRange, paginate } from './aws-error.ts';
import type { LagKind } from './consistency.ts';
import { filterValueMatches } from './ec2-filters.ts';
import { azsOf, callRegion, inRegion, regionField } from './regions.ts';
import type { CallContext } from './regions.ts';
import { usableTier } from './snapshot-tier.ts';
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

/** A volume as the read APIs show it at one moment. */
export interface VolumeView {
  state: 'creating' | 'available' | 'in-use' | 'deleting';
  attachment?: { instanceId: string; device: string; state: 'attaching' | 'attached' | 'detaching'; attachTime: number };
}

/** One change of a volume: true from `at`, shown by the read APIs from `visibleAt`; `view` undefined: gone. */
interface VolumeChange {
  at: number;
  visibleAt: number;
  view: VolumeView | undefined;
}

/** The changes of each volume made by CreateVolume, oldest first (fleet volumes have none: shown as they are). */
const histories = new WeakMap<SimVolume, VolumeChange[]>();
/** When each tag of a volume shows in DescribeVolumes (absent: at once). */
const tagTimes = new WeakMap<SimVolume, Record<string, number>>();
/** The volumes of each world that have a history: DescribeInstances looks their attachments up here. */
const tracked = new WeakMap<World, Set<SimVolume>>();

/**
 * Records changes of `volume`, each visible after its own lag but never before the change before it. Changes
 * the clock had not reached yet (an `attached` still ahead when DetachVolume comes) no longer happen.
 */
function recordChanges(world: World, volume: SimVolume, changes: { at: number; kind: LagKind; view: VolumeView | undefined }[]): void {
  const history = (histories.get(volume) ?? []).filter((c) => c.at <= world.now);
  for (const change of changes) {
    const previous = history.at(-1)?.visibleAt ?? 0;
    history.push({ at: change.at, view: change.view, visibleAt: Math.max(change.at + world.lagMs(change.kind), previous) });
  }
  histories.set(volume, history);
  let set = tracked.get(world);
  if (!set) tracked.set(world, (set = new Set()));
  set.add(volume);
}

/** The truth: EC2 reports a volume's state from its lifecycle; `deleting` only briefly after DeleteVolume. */
function volumeState(world: World, v: SimVolume): VolumeView['state'] {
  if (v.deleted) return 'deleting';
  if (world.now < v.availableAt) return 'creating';
  return v.instanceId ? 'in-use' : 'available';
}

function trueView(world: World, v: SimVolume): VolumeView | undefined {
  world.settleVolume(v);
  if (v.deleted && world.now >= (v.deletedAt ?? 0) + DELETING_MS) return undefined;
  const state = volumeState(world, v);
  return v.instanceId
    ? { state, attachment: { instanceId: v.instanceId, device: v.device ?? '', state: v.attachState ?? 'attached', attachTime: v.attachedAt ?? v.createdAt } }
    : { state };
}

/**
 * What DescribeVolumes and DescribeInstances show of `v` now: undefined while a new volume has not
 * propagated yet, and once a deleted one is gone.
 */
export function shownView(world: World, v: SimVolume): VolumeView | undefined {
  const history = histories.get(v);
  if (!history) return trueView(world, v);
  let shown: VolumeChange | undefined;
  for (const change of history) {
    if (change.visibleAt > world.now) break;
    shown = change;
  }
  return shown?.view;
}

/** A new volume's id has propagated: calls that name it know it (before, InvalidVolume.NotFound). */
function propagated(world: World, v: SimVolume): boolean {
  const first = histories.get(v)?.[0];
  return !first || first.visibleAt <= world.now;
}

function shownTags(world: World, v: SimVolume): Record<string, string> {
  const times = tagTimes.get(v);
  if (!times) return v.tags;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(v.tags)) if ((times[key] ?? 0) <= world.now) out[key] = value;
  return out;
}

/** Tags added to an existing volume (CreateTags) show in DescribeVolumes after a `volume-tag` lag. */
export function tagVolume(world: World, v: SimVolume, tags: Record<string, string>): void {
  const times = tagTimes.get(v) ?? {};
  for (const [key, value] of Object.entries(tags)) {
    v.tags[key] = value;
    times[key] = world.now + world.lagMs('volume-tag');
  }
  tagTimes.set(v, times);
}

/** The attachments DescribeInstances shows on `instanceId` (BlockDeviceMappings), in the order the volumes were made. */
export function shownAttachments(world: World, instanceId: string): { volumeId: string; device: string; state: string; attachTime: number }[] {
  const lagging = tracked.get(world);
  const rows = [];
  for (const v of world.volumesOf(instanceId)) {
    world.settleVolume(v);
    if (lagging?.has(v) || v.instanceId !== instanceId) continue;
    rows.push({ volumeId: v.volumeId, device: v.device ?? '', state: v.attachState ?? 'attached', attachTime: v.attachedAt ?? v.createdAt });
  }
  for (const v of lagging ?? []) {
    const a = shownView(world, v)?.attachment;
    if (a?.instanceId === instanceId) rows.push({ volumeId: v.volumeId, device: a.device, state: a.state, attachTime: a.attachTime });
  }
  return rows;
}

/** The slot a device name takes: `xvdf`, `/dev/sdf` and `/dev/xvdf` are all `f`. */
function slot(device: string): string {
  const name = device.replace(/^\/dev\//, '');
  return /^(?:xv|s)d([a-z]{1,2})[0-9]*$/.exec(name)?.[1] ?? name;
}

function toWire(v: SimVolume, view: VolumeView, tags: Record<string, string>) {
  return {
    VolumeId: v.volumeId,
    Size: v.sizeGiB,
    SnapshotId: v.snapshotId ?? '',
    AvailabilityZone: v.availabilityZone,
    State: view.state,
    CreateTime: new Date(v.createdAt),
    VolumeType: v.volumeType ?? 'gp3',
    Encrypted: v.encrypted === true,
    ...(v.encrypted && v.kmsKeyId ? { KmsKeyId: v.kmsKeyId } : {}),
    MultiAttachEnabled: false,
    Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })),
    Attachments: view.attachment
      ? [{ VolumeId: v.volumeId, InstanceId: view.attachment.instanceId, Device: view.attachment.device, State: view.attachment.state, AttachTime: new Date(view.attachment.attachTime), DeleteOnTermination: false }]
      : [],
  };
}
type WireVolume = ReturnType<typeof toWire>;

/** The volume as DescribeVolumes shows it now, or undefined when it does not list it. */
export function describeVolume(world: World, v: SimVolume): WireVolume | undefined {
  const view = shownView(world, v);
  return view ? toWire(v, view, shownTags(world, v)) : undefined;
}

function volumeMatches(v: WireVolume, filter: Filter): boolean {
  const values = filter.Values ?? [];
  const any = (value: string | undefined) => value !== undefined && values.some((p) => filterValueMatches(p, value));
  const name = filter.Name ?? '';
  const attachment = v.Attachments[0];
  if (name.startsWith('tag:')) {
    const key = name.slice(4);
    return any(v.Tags.find((t) => t.Key === key)?.Value);
  }
  switch (name) {
    case 'tag-key':
      return v.Tags.some((t) => any(t.Key));
    case 'volume-id':
      return any(v.VolumeId);
    case 'status':
      return any(v.State);
    case 'availability-zone':
      return any(v.AvailabilityZone);
    case 'snapshot-id':
      return any(v.SnapshotId);
    case 'volume-type':
      return any(v.VolumeType);
    case 'size':
      return any(String(v.Size));
    case 'attachment.instance-id':
      return any(attachment?.InstanceId);
    case 'attachment.device':
      return any(attachment?.Device);
    case 'attachment.status':
      return any(attachment?.State);
    default:
      throw awsError('InvalidParameterValue', `The filter '${name}' is invalid`);
  }
}

/** The volume a mutating call names, as EC2 knows it in the call's Region (not as Describe shows it). */
function findVolume(world: World, id: unknown, context: CallContext | undefined): SimVolume {
  if (typeof id !== 'string' || id === '') throw awsError('MissingParameter', 'The request must contain the parameter volumeId');
  const v = world.volumes.get(id);
  if (!v || !inRegion(v, context) || v.deleted || !propagated(world, v)) throw awsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
  return world.settleVolume(v);
}

export const volumeOperations: Record<string, (world: World, input: Input, context?: CallContext) => unknown> = {
  CreateVolume(world, input, context) {
    const az = input.AvailabilityZone as string | undefined;
    if (!az) throw awsError('MissingParameter', 'The request must contain the parameter AvailabilityZone');
    if (!azsOf(callRegion(context)).includes(az)) throw awsError('InvalidParameterValue', `Invalid availability zone: [${az}]`);
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
      // (A zone names its Region, so a token's request never matches across Regions.)
      // Idempotent: the same request with the same token answers with the volume the first one made, whether
      // or not it has propagated to DescribeVolumes yet (EC2 API reference, "Ensuring idempotency").
      const earlier = [...world.volumes.values()].find((v) => v.clientToken === token && inRegion(v, context));
      if (earlier) {
        if (earlier.createRequest !== request) throw awsError('IdempotentParameterMismatch', `The client token ${token} has been used with different parameters.`);
        return createResponse(world, earlier);
      }
    }
    let sizeGiB = size ?? 0;
    // A volume from an encrypted snapshot is encrypted with the snapshot's key (EBS user guide, "Amazon EBS encryption").
    let encryption: Pick<SimVolume, 'encrypted' | 'kmsKeyId'> = {};
    if (snapshotId) {
      const snapshot = world.snapshots.get(snapshotId);
      if (!snapshot || !inRegion(snapshot, context) || snapshot.deleted || snapshot.visibleAt > world.now) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${snapshotId}' does not exist.`);
      const state = world.snapshotState(snapshot);
      if (state !== 'completed') throw awsError('IncorrectState', `Snapshot '${snapshotId}' is in state ${state}, not completed.`);
      // An archived snapshot cannot be used until it is restored to the standard tier (snapshot-tier.ts).
      if (!usableTier(world, snapshot)) throw awsError('IncorrectState', `Snapshot '${snapshotId}' is in the archive tier; restore it to the standard tier first (RestoreSnapshotTier).`);
      if (size !== undefined && size < snapshot.volumeSize) throw awsError('InvalidParameterValue', `Volume of ${size}GiB is too small; minimum is ${snapshot.volumeSize}GiB.`);
      sizeGiB = size ?? snapshot.volumeSize;
      if (snapshot.encrypted) encryption = { encrypted: true, ...(snapshot.kmsKeyId ? { kmsKeyId: snapshot.kmsKeyId } : {}) };
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
      ...regionField(callRegion(context)),
      ...encryption,
    };
    world.volumes.set(volumeId, volume);
    recordChanges(world, volume, [
      { at: world.now, kind: 'volume-visible', view: { state: 'creating' } },
      { at: volume.availableAt, kind: 'volume-state', view: { state: 'available' } },
    ]);
    // Tags given on create show late, never before the volume itself.
    const shownFrom = (histories.get(volume)?.[0]?.visibleAt ?? world.now) as number;
    tagTimes.set(volume, Object.fromEntries(Object.keys(tags).map((key) => [key, Math.max(shownFrom, world.now + world.lagMs('volume-tag'))])));
    return createResponse(world, volume);
  },

  DescribeVolumes(world, input, context) {
    const ids = input.VolumeIds as string[] | undefined;
    const maxResults = input.MaxResults as number | undefined;
    if (ids && ids.length > 0 && maxResults !== undefined) throw awsError('InvalidParameterCombination', 'The parameter volumeSet cannot be used with the parameter maxResults');
    checkRange(maxResults, 5, 500, 'MaxResults', 'InvalidParameterValue');
    const filters = (input.Filters as Filter[] | undefined) ?? [];
    const shown = new Map<string, WireVolume>();
    for (const v of world.volumes.values()) {
      if (!inRegion(v, context)) continue;
      const wire = describeVolume(world, v);
      if (wire) shown.set(v.volumeId, wire);
    }
    for (const id of ids ?? []) if (!shown.has(id)) throw awsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
    const idSet = ids && ids.length > 0 ? new Set(ids) : undefined;
    const matching = [...shown.values()].filter((v) => (!idSet || idSet.has(v.VolumeId)) && filters.every((f) => volumeMatches(v, f)));
    const { page, nextToken } = paginate(matching, maxResults ?? 1000, input.NextToken as string | undefined, 'ec2');
    return { Volumes: page, ...(nextToken ? { NextToken: nextToken } : {}) };
  },

  AttachVolume(world, input, context) {
    const device = input.Device as string | undefined;
    if (!device) throw awsError('MissingParameter', 'The request must contain the parameter device');
    const instanceId = input.InstanceId as string | undefined;
    if (!instanceId) throw awsError('MissingParameter', 'The request must contain the parameter instanceId');
    const volume = findVolume(world, input.VolumeId, context);
    const instance = world.instances.get(instanceId);
    if (!instance || !inRegion(instance, context)) throw awsError('InvalidInstanceID.NotFound', `The instance ID '${instanceId}' does not exist`);
    if (!DEVICE_NAME.test(device)) throw awsError('InvalidParameterValue', `Value (${device}) for parameter device is invalid. ${device} is not a valid EBS device name.`);
    // Also what a retry meets after the answer of an attach that took effect was lost.
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
    const attachment = { instanceId, device, attachTime: world.now };
    recordChanges(world, volume, [
      { at: world.now, kind: 'volume-attachment', view: { state: 'in-use', attachment: { ...attachment, state: 'attaching' } } },
      { at: volume.attachedAt, kind: 'volume-attachment', view: { state: 'in-use', attachment: { ...attachment, state: 'attached' } } },
    ]);
    return { VolumeId: volume.volumeId, InstanceId: instanceId, Device: device, State: 'attaching', AttachTime: new Date(world.now) };
  },

  DetachVolume(world, input, context) {
    const volume = findVolume(world, input.VolumeId, context);
    const instanceId = input.InstanceId as string | undefined;
    // Also what a retry meets once the detach whose answer was lost has ended.
    if (!volume.instanceId) throw awsError('IncorrectState', `Volume '${volume.volumeId}' is in the '${volumeState(world, volume)}' state.`);
    if (instanceId && instanceId !== volume.instanceId) throw awsError('InvalidAttachment.NotFound', `Volume '${volume.volumeId}' is not attached to instance '${instanceId}'.`);
    if (input.Device && input.Device !== volume.device) throw awsError('InvalidAttachment.NotFound', `Volume '${volume.volumeId}' is not attached at '${String(input.Device)}'.`);
    // ...and while it is still detaching.
    if (volume.attachState === 'detaching') throw awsError('IncorrectState', `Volume '${volume.volumeId}' is already detaching.`);
    const instance = world.instances.get(volume.instanceId);
    if (instance && volume.device === instance.rootDevice && instance.state === 'running') {
      throw awsError('OperationNotPermitted', `The volume '${volume.volumeId}' is the root device of running instance '${instance.instanceId}'.`);
    }
    volume.attachState = 'detaching';
    volume.detachAt = world.now + DETACH_MS;
    if (histories.has(volume)) {
      const attachment = { instanceId: volume.instanceId, device: volume.device ?? '', attachTime: volume.attachedAt ?? volume.createdAt };
      recordChanges(world, volume, [
        { at: world.now, kind: 'volume-attachment', view: { state: 'in-use', attachment: { ...attachment, state: 'detaching' } } },
        { at: volume.detachAt, kind: 'volume-attachment', view: { state: 'available' } },
      ]);
    }
    return { VolumeId: volume.volumeId, InstanceId: volume.instanceId, Device: volume.device, State: 'detaching', AttachTime: new Date(volume.attachedAt ?? volume.createdAt) };
  },

  DeleteVolume(world, input, context) {
    // A retry after the answer of a delete that took effect was lost meets InvalidVolume.NotFound.
    const volume = findVolume(world, input.VolumeId, context);
    if (volume.instanceId) throw awsError('VolumeInUse', `Volume ${volume.volumeId} is currently attached to ${volume.instanceId}`);
    if (volumeState(world, volume) === 'creating') throw awsError('IncorrectState', `The volume '${volume.volumeId}' is 'creating'.`);
    volume.deleted = true;
    volume.deletedAt = world.now;
    world.reindexVolumes();
    if (histories.has(volume)) {
      recordChanges(world, volume, [
        { at: world.now, kind: 'volume-state', view: { state: 'deleting' } },
        { at: world.now + DELETING_MS, kind: 'volume-state', view: undefined },
      ]);
    }
    return {};
  },
};

/** CreateVolume's own answer: the volume as EC2 made it (no lag: it is the response, not a read). */
function createResponse(world: World, v: SimVolume) {
  const view = trueView(world, v) ?? { state: 'deleting' as const };
  return toWire(v, view, v.tags);
}
