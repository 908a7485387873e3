/** The EC2 API of the simulated account: instances, volumes and snapshots. */
import type { Filter } from '@aws-sdk/client-ec2';
import { awsError, checkRange, paginate } from './aws-error.ts';
import { filterValueMatches } from './ec2-filters.ts';
import { shownAttachments, tagVolume, volumeOperations } from './ec2-volumes.ts';
import { inRegion, regionOf } from './regions.ts';
import type { CallContext } from './regions.ts';
import { copySnapshot } from './snapshot-copy.ts';
import { describeTier, tierOf, tierOperations } from './snapshot-tier.ts';
import { ACCOUNT_ID } from './world.ts';
import type { SimImage, SimInstance, SimSnapshot, World } from './world.ts';

export { filterValueMatches };

type Input = Record<string, unknown>;
function matchTags(filter: Filter, tags: Record<string, string>): boolean | undefined {
  const name = filter.Name ?? '';
  if (name.startsWith('tag:')) {
    const value = tags[name.slice(4)];
    return value !== undefined && (filter.Values ?? []).some((p) => filterValueMatches(p, value));
  }
  if (name === 'tag-key') return (filter.Values ?? []).some((p) => Object.keys(tags).some((k) => filterValueMatches(p, k)));
  if (name === 'tag-value') return (filter.Values ?? []).some((p) => Object.values(tags).some((v) => filterValueMatches(p, v)));
  return undefined;
}

function instanceMatches(world: World, instance: SimInstance, filter: Filter): boolean {
  const tagResult = matchTags(filter, instance.tags);
  if (tagResult !== undefined) return tagResult;
  const values = filter.Values ?? [];
  const any = (v: string) => values.some((p) => filterValueMatches(p, v));
  switch (filter.Name) {
    case 'instance-state-name':
      return any(instance.state);
    case 'instance-id':
      return any(instance.instanceId);
    case 'platform':
      return instance.platform === 'windows' && any('windows');
    case 'availability-zone':
      return any(instance.availabilityZone);
    default:
      throw awsError('InvalidParameterValue', `The filter '${filter.Name}' is invalid`);
  }
}

/**
 * "Recently terminated instances might appear in the returned results. This interval is usually less than one
 * hour." (EC2 API reference, DescribeInstances): a terminated instance is listed, in state `terminated`, for an
 * hour after its termination, then not at all (and its id is InvalidInstanceID.NotFound).
 */
export const TERMINATED_LISTED_MS = 60 * 60_000;

/** Whether DescribeInstances still knows the instance. */
export function instanceListed(world: World, instance: SimInstance): boolean {
  return instance.state !== 'terminated' || world.now < (instance.terminatedAt ?? world.now) + TERMINATED_LISTED_MS;
}

const STATE_CODES: Record<SimInstance['state'], number> = { running: 16, stopped: 80, terminated: 48 };

function describeInstance(world: World, instance: SimInstance) {
  return {
    InstanceId: instance.instanceId,
    InstanceType: 'm5.large',
    State: { Code: STATE_CODES[instance.state], Name: instance.state },
    // EC2 sends lowercase "windows" on the wire and omits Platform for Linux (aws-facts.md).
    ...(instance.platform === 'windows' ? { Platform: 'windows' } : {}),
    PlatformDetails: instance.platform === 'windows' ? 'Windows' : 'Linux/UNIX',
    Placement: { AvailabilityZone: instance.availabilityZone },
    RootDeviceName: instance.rootDevice,
    RootDeviceType: 'ebs',
    Tags: Object.entries(instance.tags).map(([Key, Value]) => ({ Key, Value })),
    // Attachments as DescribeInstances shows them: a restored volume's attachment (and its end) shows late.
    // A terminated instance has none: EC2 detached (and, DeleteOnTermination, deleted) its volumes.
    BlockDeviceMappings: (instance.state === 'terminated' ? [] : shownAttachments(world, instance.instanceId)).map((a) => ({
      DeviceName: a.device,
      Ebs: { VolumeId: a.volumeId, Status: a.state, DeleteOnTermination: a.device === instance.rootDevice, AttachTime: new Date(a.attachTime) },
    })),
  };
}

/** A matcher for a filter's values: a set lookup when none has a wildcard (the hot path of large fleets). */
const matchers = new WeakMap<string[], (v: string) => boolean>();
function valueMatcher(values: string[]): (v: string) => boolean {
  let matcher = matchers.get(values);
  if (!matcher) {
    if (values.some((p) => /[*?\\]/.test(p))) matcher = (v) => values.some((p) => filterValueMatches(p, v));
    else {
      const set = new Set(values);
      matcher = (v) => set.has(v);
    }
    matchers.set(values, matcher);
  }
  return matcher;
}

function snapshotMatches(world: World, snapshot: SimSnapshot, filter: Filter): boolean {
  const tagResult = matchTags(filter, world.visibleTags(snapshot));
  if (tagResult !== undefined) return tagResult;
  const any = valueMatcher(filter.Values ?? []);
  switch (filter.Name) {
    case 'status':
      return any(world.snapshotState(snapshot));
    case 'volume-id':
      return any(snapshot.volumeId);
    case 'snapshot-id':
      return any(snapshot.snapshotId);
    case 'owner-id':
      return any(ACCOUNT_ID);
    // `archive` or `standard` (DescribeSnapshots filter `storage-tier`, EC2 API reference).
    case 'storage-tier':
      return any(tierOf(world, snapshot).storageTier);
    default:
      throw awsError('InvalidParameterValue', `The filter '${filter.Name}' is invalid`);
  }
}

export function describeSnapshot(world: World, s: SimSnapshot) {
  const state = world.snapshotState(s);
  const progress = state === 'pending' ? Math.min(99, Math.floor(((world.now - s.startTime) / Math.max(1, s.completeAt - s.startTime)) * 100)) : 100;
  return {
    SnapshotId: s.snapshotId,
    VolumeId: s.volumeId,
    VolumeSize: s.volumeSize,
    State: state,
    Progress: `${progress}%`,
    StartTime: new Date(s.startTime),
    OwnerId: ACCOUNT_ID,
    Description: s.description,
    Encrypted: s.encrypted === true,
    ...(s.encrypted && s.kmsKeyId ? { KmsKeyId: s.kmsKeyId } : {}),
    // Why a copy failed (EC2 API reference, Snapshot, StateMessage).
    ...(state === 'error' && s.stateMessage ? { StateMessage: s.stateMessage } : {}),
    Tags: Object.entries(world.visibleTags(s)).map(([Key, Value]) => ({ Key, Value })),
    ...describeTier(world, s),
  };
}

/** The Region an image is registered in: its own, else its first snapshot's. */
function imageRegion(world: World, image: SimImage): string {
  return image.region ?? regionOf(world.snapshots.get(image.snapshotIds[0] ?? ''));
}

/** Registered images whose block device mappings use the snapshot. */
export function imagesUsing(world: World, snapshotId: string): SimImage[] {
  return [...world.images.values()].filter((image) => image.snapshotIds.includes(snapshotId));
}

/** CreateTags accepts at most 50 tags per resource and these resource kinds here. */
const TAGGABLE = /^(snap|vol|i)-[0-9a-f]+$/;

/** DescribeSnapshots listings with pages left, by world and listing number (their tokens: `sim:<offset>:<listing>`). */
const snapshotListings = new WeakMap<World, Map<number, SimSnapshot[]>>();
let nextListing = 0;

/** A token of the plain form (`sim:<offset>`): the old paging over a list filtered again. */
function paginateOld(visible: SimSnapshot[], pageSize: number, nextToken: string, world: World) {
  const { page, nextToken: next } = paginate(visible, pageSize, nextToken, 'ec2');
  return { Snapshots: page.map((s) => describeSnapshot(world, s)), ...(next ? { NextToken: next } : {}) };
}

/**
 * Every operation answers from the Region of its call only (regions.ts): ids of another Region's resources are
 * NotFound there, lists leave them out.
 */
export const ec2Operations: Record<string, (world: World, input: Input, context?: CallContext) => unknown> = {
  ...volumeOperations,
  ...tierOperations,
  CopySnapshot: copySnapshot,
  DescribeInstances(world, input, context) {
    const ids = input.InstanceIds as string[] | undefined;
    const filters = (input.Filters as Filter[] | undefined) ?? [];
    const maxResults = input.MaxResults as number | undefined;
    if (ids && ids.length > 0 && maxResults !== undefined) {
      throw awsError('InvalidParameterCombination', 'The parameter instancesSet cannot be used with the parameter maxResults');
    }
    checkRange(maxResults, 5, 1000, 'MaxResults', 'InvalidParameterValue');
    for (const id of ids ?? []) {
      const known = world.instances.get(id);
      if (!known || !inRegion(known, context) || !instanceListed(world, known)) throw awsError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
    }
    const idSet = ids && ids.length > 0 ? new Set(ids) : undefined;
    const matching = [...world.instances.values()].filter(
      (i) => inRegion(i, context) && instanceListed(world, i) && (!idSet || idSet.has(i.instanceId)) && filters.every((f) => instanceMatches(world, i, f)),
    );
    const { page, nextToken } = paginate(matching, maxResults ?? 1000, input.NextToken as string | undefined, 'ec2');
    return {
      Reservations: page.map((i) => ({ ReservationId: `r-0${i.instanceId.slice(3)}`, OwnerId: ACCOUNT_ID, Instances: [describeInstance(world, i)] })),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  },

  DescribeSnapshots(world, input, context) {
    const filters = (input.Filters as Filter[] | undefined) ?? [];
    const ids = input.SnapshotIds as string[] | undefined;
    const maxResults = input.MaxResults as number | undefined;
    checkRange(maxResults, 5, 1000, 'MaxResults', 'InvalidParameterValue');
    for (const id of ids ?? []) {
      const s = world.snapshots.get(id);
      if (!s || !inRegion(s, context) || world.snapshotGone(s) || s.visibleAt > world.now) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
    }
    const idSet = ids && ids.length > 0 ? new Set(ids) : undefined;
    // A volume-id filter of plain ids narrows the scan to those volumes' snapshots (same answer, far less work).
    const byVolume = filters.find((f) => f.Name === 'volume-id' && (f.Values ?? []).every((v) => !/[*?\\]/.test(v)));
    // Likewise a tag filter of plain values: those tags' snapshots (the index may hold a few that lost the tag since;
    // the filters below decide).
    // The most selective such filter (fewest indexed snapshots) gives the candidates.
    const tagged = byVolume
      ? []
      : filters
          .filter((f) => f.Name?.startsWith('tag:') && (f.Values ?? []).every((v) => !/[*?\\]/.test(v)))
          .map((f) => [...new Set(f.Values ?? [])].map((v) => world.snapshotsWithTag((f.Name as string).slice(4), v)))
          .sort((a, b) => a.reduce((n, l) => n + l.length, 0) - b.reduce((n, l) => n + l.length, 0));
    const candidates = byVolume
      ? [...new Set(byVolume.Values ?? [])].flatMap((v) => world.snapshotsOfVolume(v))
      : tagged[0]
        ? [...new Set(tagged[0].flat())]
        : [...world.snapshots.values()];
    // A listing's later pages come from the list its first page matched (the token names it): filtering every
    // snapshot again for each of 200 pages made a 100,000-instance listing quadratic. A snapshot deleted since
    // is left out of its page.
    const pageSize = maxResults ?? 1000;
    const token = /^sim:([0-9]+):([0-9]+)$/.exec((input.NextToken as string | undefined) ?? '');
    const listed = token ? snapshotListings.get(world)?.get(Number(token[2])) : undefined;
    if (token && !listed) throw awsError('InvalidParameterValue', `The token ${String(input.NextToken)} is invalid.`);
    let visible: SimSnapshot[];
    let start = 0;
    let listing: number;
    if (token && listed) {
      visible = listed;
      start = Number(token[1]);
      listing = Number(token[2]);
    } else {
      visible = candidates.filter(
        (s) => inRegion(s, context) && !world.snapshotGone(s) && s.visibleAt <= world.now && (!idSet || idSet.has(s.snapshotId)) && filters.every((f) => snapshotMatches(world, s, f)),
      );
      if (input.NextToken !== undefined) return paginateOld(visible, pageSize, input.NextToken as string, world);
      listing = (nextListing += 1);
      if (visible.length > pageSize) {
        const byWorld = snapshotListings.get(world) ?? new Map<number, SimSnapshot[]>();
        snapshotListings.set(world, byWorld);
        byWorld.set(listing, visible);
      }
    }
    const page = visible.slice(start, start + pageSize).filter((s) => !world.snapshotGone(s));
    const more = start + pageSize < visible.length;
    if (!more) snapshotListings.get(world)?.delete(listing);
    return { Snapshots: page.map((s) => describeSnapshot(world, s)), ...(more ? { NextToken: `sim:${start + pageSize}:${listing}` } : {}) };
  },

  DeleteSnapshot(world, input, context) {
    const id = input.SnapshotId as string;
    const s = world.snapshots.get(id);
    if (!s || !inRegion(s, context) || world.snapshotGone(s) || s.visibleAt > world.now) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
    const inUse = world.volumesFromSnapshot(id).some((v) => v.createdAt > world.now);
    if (inUse) throw awsError('InvalidSnapshot.InUse', `The snapshot ${id} is currently in use`);
    // A snapshot behind a registered AMI cannot be deleted until the AMI is deregistered (EC2 API reference,
    // DeleteSnapshot). EC2's message names the AMI: "The snapshot snap-… is currently in use by ami-…"
    // (observed, gruntwork-io/cloud-nuke#727; error code list: EC2 API reference, "Error codes").
    const image = imagesUsing(world, id).find((i) => imageRegion(world, i) === regionOf(s));
    if (image) throw awsError('InvalidSnapshot.InUse', `The snapshot ${id} is currently in use by ${image.imageId}`);
    // A pending snapshot is still listed, and still counts as pending, until it completes (EBS user guide,
    // "Delete a snapshot"); deleting it again meanwhile is accepted.
    if (!s.deleted) {
      s.deleted = true;
      s.deletedAt = world.now;
    }
    return {};
  },

  /**
   * Images of this account (Owners `self`, or the account id): by ImageIds and the filters `image-id`, `name`,
   * `state` and `block-device-mapping.snapshot-id` (EC2 API reference, DescribeImages), 5-1,000 a page.
   */
  DescribeImages(world, input, context) {
    const owners = (input.Owners as string[] | undefined) ?? [];
    const ids = (input.ImageIds as string[] | undefined) ?? [];
    const filters = (input.Filters as Filter[] | undefined) ?? [];
    const maxResults = input.MaxResults as number | undefined;
    if (ids.length > 0 && maxResults !== undefined) throw awsError('InvalidParameterCombination', 'The parameter ImageIds cannot be used with the parameter MaxResults');
    checkRange(maxResults, 5, 1000, 'MaxResults', 'InvalidParameterValue');
    // Only this account owns images here: other owners (amazon, aws-marketplace, another account) have none.
    const ours = owners.length === 0 || owners.some((o) => o === 'self' || o === ACCOUNT_ID);
    for (const id of ids) {
      const image = world.images.get(id);
      if (!image || imageRegion(world, image) !== regionOf({ region: context?.region })) throw awsError('InvalidAMIID.NotFound', `The image id '[${id}]' does not exist`);
    }
    const idSet = new Set(ids);
    const matching = ours
      ? [...world.images.values()].filter(
          (image) =>
            imageRegion(world, image) === regionOf({ region: context?.region }) &&
            (idSet.size === 0 || idSet.has(image.imageId)) &&
            filters.every((f) => {
              const any = (v: string) => (f.Values ?? []).some((p) => filterValueMatches(p, v));
              switch (f.Name) {
                case 'block-device-mapping.snapshot-id':
                  return image.snapshotIds.some(any);
                case 'image-id':
                  return any(image.imageId);
                case 'name':
                  return any(image.name);
                case 'state':
                  return any('available');
                default:
                  throw awsError('InvalidParameterValue', `The filter '${f.Name}' is invalid`);
              }
            }),
        )
      : [];
    const { page, nextToken } = paginate(matching, maxResults ?? 1000, input.NextToken as string | undefined, 'ec2');
    return {
      Images: page.map((image) => ({
        ImageId: image.imageId,
        Name: image.name,
        State: 'available',
        OwnerId: ACCOUNT_ID,
        CreationDate: new Date(image.createdAt).toISOString(),
        RootDeviceType: 'ebs',
        BlockDeviceMappings: image.snapshotIds.map((snapshotId, n) => ({ DeviceName: n === 0 ? '/dev/sda1' : `xvd${String.fromCharCode(98 + n)}`, Ebs: { SnapshotId: snapshotId } })),
      })),
      ...(nextToken ? { NextToken: nextToken } : {}),
    };
  },

  CreateTags(world, input, context) {
    const resources = (input.Resources as string[] | undefined) ?? [];
    const tags = (input.Tags as { Key?: string; Value?: string }[] | undefined) ?? [];
    if (resources.length === 0) throw awsError('MissingParameter', 'The request must contain the parameter resourceIdSet');
    if (resources.length > 1000) throw awsError('InvalidParameterValue', 'Tags can be applied to at most 1000 resources per call.');
    for (const t of tags) {
      if (!t.Key || t.Key.length > 128 || t.Key.toLowerCase().startsWith('aws:')) throw awsError('InvalidParameterValue', `Tag key '${t.Key}' is not valid.`);
      if ((t.Value ?? '').length > 256) throw awsError('InvalidParameterValue', `Tag value for '${t.Key}' is longer than 256 characters.`);
    }
    for (const id of resources) {
      if (!TAGGABLE.test(id)) throw awsError('InvalidID', `The ID '${id}' is not valid`);
      if (id.startsWith('snap-')) {
        const s = world.snapshots.get(id);
        if (!s || !inRegion(s, context) || world.snapshotGone(s) || s.visibleAt > world.now) throw awsError('InvalidSnapshot.NotFound', `The snapshot '${id}' does not exist.`);
      } else if (id.startsWith('vol-')) {
        const v = world.volumes.get(id);
        if (!v || !inRegion(v, context) || v.deleted) throw awsError('InvalidVolume.NotFound', `The volume '${id}' does not exist.`);
      } else if (!inRegion(world.instances.get(id), context) || !world.instances.has(id)) {
        throw awsError('InvalidInstanceID.NotFound', `The instance ID '${id}' does not exist`);
      }
    }
    // All or nothing: the resources were checked first. New tags show in Describe calls after a lag.
    for (const id of resources) {
      if (id.startsWith('snap-')) {
        const s = world.snapshots.get(id) as SimSnapshot;
        s.tagVisibleAt ??= {};
        for (const t of tags) {
          s.tags[t.Key as string] = t.Value ?? '';
          s.tagVisibleAt[t.Key as string] = world.now + world.lagMs('snapshot-tag');
          world.snapshotTagged(s, t.Key as string, t.Value ?? '');
        }
        if (Object.keys(s.tags).length > 50) throw awsError('TagLimitExceeded', `The maximum number of tags for ${id} (50) would be exceeded.`);
      } else if (id.startsWith('vol-')) {
        const v = world.volumes.get(id);
        if (v) tagVolume(world, v, Object.fromEntries(tags.map((t) => [t.Key as string, t.Value ?? ''])));
      } else {
        const i = world.instances.get(id);
        for (const t of tags) if (i) i.tags[t.Key as string] = t.Value ?? '';
      }
    }
    return {};
  },
};
