/**
 * CopySnapshot in the simulated account: a copy of a completed snapshot, made in the Region whose endpoint is
 * called (the destination) from `SourceRegion` (EC2 API reference, CopySnapshot:
 * docs.aws.amazon.com/AWSEC2/latest/APIReference/API_CopySnapshot.html). The JS SDK v3 fills in `PresignedUrl`
 * and `DestinationRegion` itself (aws-sdk-js-v3 middleware-sdk-ec2).
 *
 * Answered at call time (the copy is not made):
 * - `MissingParameter`: no SourceRegion or SourceSnapshotId.
 * - `InvalidParameterValue`: SourceRegion not a Region name; TagSpecifications for another resource type or with
 *   a bad tag; CompletionDurationMinutes not 15–2,880 in steps of 15 (CopySnapshot).
 * - `InvalidParameterDependency`: KmsKeyId without Encrypted=true ("If KmsKeyId is specified, the encrypted state
 *   must be true", CopySnapshot; EC2 error codes: "Indicates an incorrect combination of parameters, or a
 *   missing parameter").
 * - `InvalidSnapshot.NotFound`: no such snapshot in the source Region (EC2 error codes), also one not visible
 *   yet (eventual consistency) or deleted.
 * - `IncorrectState`: the source is not `completed` ("After you create a snapshot, and it has reached the
 *   completed state, you can create a copy of it": EBS user guide, "Copy an Amazon EBS snapshot"), or it is in
 *   the archive tier ("You can't copy ... an archived snapshot": EBS user guide, "Archive Amazon EBS
 *   snapshots"). The exact code AWS answers for these two is not documented: IncorrectState is EC2's code for
 *   "the resource is in an incorrect state for the request" (EC2 error codes).
 * - `ResourceLimitExceeded`: the destination already has `world.dr.copyQuota` copies in flight ("There is a
 *   limit of 20 concurrent snapshot copy requests per destination Region. If you exceed this quota, you receive
 *   a ResourceLimitExceeded error": "Copy an Amazon EBS snapshot"). Pending copies count until they end,
 *   also one already deleted (a deleted pending snapshot goes only once it completes).
 *
 * Answered later, in the copy (`State: error`, `StateMessage`): a KMS key that EBS cannot use — unknown in the
 * destination, in another Region, disabled, pending deletion, or without the grants EBS needs — and a source
 * key that can no longer decrypt. "Encrypted Amazon EBS snapshots are copied asynchronously. If a snapshot copy
 * operation fails (for example, if the proper KMS permissions are not obtained) this field displays error
 * state details" (EC2 API reference, Snapshot, StateMessage); "If you specify an ID, alias, or ARN that is not
 * valid, the action can appear to complete, but eventually fails" (CopySnapshot, KmsKeyId). The message
 * wording here is the simulator's own.
 *
 * The copy: `VolumeId` is the arbitrary `vol-ffffffff` ("Snapshots copies have an arbitrary source volume ID.
 * Do not use this volume ID for any purpose": CopySnapshot; EC2 API reference, Snapshot), its tags are only the
 * TagSpecifications (user tags are not copied: "Copy an Amazon EBS snapshot"), an encrypted source gives an
 * encrypted copy ("you can't use it to create an unencrypted copy of an encrypted snapshot", CopySnapshot,
 * Encrypted), with KmsKeyId, else — across Regions — the destination's default EBS key (`alias/aws/ebs`), and
 * within a Region the source's key. It is `pending` with a growing `Progress`, then `completed`.
 *
 * Copy time (the model; AWS promises none: "best effort", CopySnapshot, CompletionDurationMinutes):
 *
 *   duration = startMinutes + (volumeSize × share) / gibPerHour          (world.dr.copyTiming, fleet `dr.copyTiming`)
 *
 * with share = 1 for a full copy and `incrementalFraction` for an incremental one. A copy is incremental when a
 * completed earlier copy of the same source volume exists in the destination, not deleted, encrypted the same
 * way with the same key; otherwise full ("Incremental snapshot copying", "Copy an Amazon EBS snapshot";
 * aws-facts-lifecycle §3). A copy whose earlier copy of the same volume is still pending in the destination
 * starts only when that one ends (same page), and counts against the quota meanwhile. With
 * `CompletionDurationMinutes` (a time-based copy) the copy ends by then at the latest.
 */
import { REGION_NAME } from '../lib/aws-region.ts';
import { awsError } from './aws-error.ts';
import { DEFAULT_EBS_KEY_ALIAS, keyArn, keyByArn, resolveKey, unusable } from './kms.ts';
import { callRegion, regionOf } from './regions.ts';
import { tierOf, usableTier } from './snapshot-tier.ts';
import type { CallContext } from './regions.ts';
import type { SimSnapshot, World } from './world.ts';

type Input = Record<string, unknown>;

/** What EC2 shows as a copy's VolumeId. */
export const COPY_VOLUME_ID = 'vol-ffffffff';
const MINUTE = 60_000;

/**
 * The account's copies, indexed: those still in flight per destination Region, and every copy per destination
 * Region and origin volume. Built from the world's snapshots of `vol-ffffffff` (append-only, in order), so a
 * copy added any way (a test's addSnapshot too) is indexed on the next call; a scan of every snapshot per
 * CopySnapshot would make a 10,000-instance night quadratic.
 */
interface CopyIndex {
  seen: number;
  inFlight: Map<string, Set<SimSnapshot>>;
  byOrigin: Map<string, SimSnapshot[]>;
}
const indexes = new WeakMap<World, CopyIndex>();
const originKey = (region: string, volumeId: string) => `${region}\u0000${volumeId}`;

function copyIndex(world: World): CopyIndex {
  let index = indexes.get(world);
  if (!index) indexes.set(world, (index = { seen: 0, inFlight: new Map(), byOrigin: new Map() }));
  const all = world.snapshotsOfVolume(COPY_VOLUME_ID);
  for (; index.seen < all.length; index.seen += 1) {
    const s = all[index.seen] as SimSnapshot;
    if (s.sourceSnapshotId === undefined) continue;
    const region = regionOf(s);
    let inFlight = index.inFlight.get(region);
    if (!inFlight) index.inFlight.set(region, (inFlight = new Set()));
    inFlight.add(s);
    const key = originKey(region, s.originVolumeId ?? s.volumeId);
    const list = index.byOrigin.get(key);
    if (list) list.push(s);
    else index.byOrigin.set(key, [s]);
  }
  return index;
}

/** Copies still in flight in `region` (pending: queued or moving data), deleted ones included. */
export function copiesInFlight(world: World, region: string): SimSnapshot[] {
  const inFlight = copyIndex(world).inFlight.get(region);
  if (!inFlight) return [];
  // Forget the ended ones for good only by the account's clock (a Lambda turn's clock may lag behind it).
  const ended = Math.min(world.now, world.accountNow);
  for (const s of inFlight) if (s.completeAt <= ended) inFlight.delete(s);
  return [...inFlight].filter((s) => world.now < s.completeAt);
}

/**
 * The snapshot whose data a snapshot holds: itself, or for a copy (of a copy …) the original it was copied from.
 * What a restored disk contains (its shadow copies, its signature) is the original's, whatever the copy's tags
 * say: the simulated instances read it from here.
 */
export function dataSnapshot(world: World, snapshot: SimSnapshot): SimSnapshot {
  let current = snapshot;
  for (let hops = 0; current.sourceSnapshotId !== undefined && hops < 100; hops += 1) {
    const source = world.snapshots.get(current.sourceSnapshotId);
    if (!source) break;
    current = source;
  }
  return current;
}

/** The copy-time model: how long a copy of `sizeGiB` takes once started, full or incremental (ms). */
export function copyDurationMs(world: World, sizeGiB: number, kind: 'full' | 'incremental'): number {
  const t = world.dr.copyTiming;
  const gib = sizeGiB * (kind === 'full' ? 1 : t.incrementalFraction);
  return Math.round(t.startMinutes * MINUTE + (gib / t.gibPerHour) * 60 * MINUTE);
}

function tagsOf(input: Input): Record<string, string> {
  const specs = (input.TagSpecifications as { ResourceType?: string; Tags?: { Key?: string; Value?: string }[] }[] | undefined) ?? [];
  const tags: Record<string, string> = {};
  for (const spec of specs) {
    if (spec.ResourceType !== 'snapshot') throw awsError('InvalidParameterValue', `'${spec.ResourceType}' is not a valid taggable resource type for this operation.`);
    for (const t of spec.Tags ?? []) {
      if (!t.Key || t.Key.length > 128 || t.Key.toLowerCase().startsWith('aws:')) throw awsError('InvalidParameterValue', `Tag key '${t.Key}' is not valid.`);
      if ((t.Value ?? '').length > 256) throw awsError('InvalidParameterValue', `Tag value for '${t.Key}' is longer than 256 characters.`);
      tags[t.Key] = t.Value ?? '';
    }
  }
  if (Object.keys(tags).length > 50) throw awsError('TagLimitExceeded', 'A snapshot can have at most 50 tags.');
  return tags;
}

export function copySnapshot(world: World, input: Input, context?: CallContext) {
  const destination = callRegion(context);
  const sourceRegion = input.SourceRegion as string | undefined;
  const sourceId = input.SourceSnapshotId as string | undefined;
  if (!sourceRegion) throw awsError('MissingParameter', 'The request must contain the parameter SourceRegion');
  if (!sourceId) throw awsError('MissingParameter', 'The request must contain the parameter SourceSnapshotId');
  if (!REGION_NAME.test(sourceRegion)) throw awsError('InvalidParameterValue', `Value (${sourceRegion}) for parameter SourceRegion is invalid.`);
  const requestedKey = input.KmsKeyId as string | undefined;
  if (requestedKey !== undefined && input.Encrypted !== true) throw awsError('InvalidParameterDependency', 'The parameter KmsKeyId requires the parameter Encrypted to be set.');
  const minutes = input.CompletionDurationMinutes as number | undefined;
  if (minutes !== undefined && (!Number.isInteger(minutes) || minutes < 15 || minutes > 2880 || minutes % 15 !== 0)) {
    throw awsError('InvalidParameterValue', `Value (${minutes}) for parameter CompletionDurationMinutes is invalid: 15 to 2880 in increments of 15.`);
  }
  const tags = tagsOf(input);
  const source = world.snapshots.get(sourceId);
  if (!source || regionOf(source) !== sourceRegion || world.snapshotGone(source) || source.visibleAt > world.now) {
    throw awsError('InvalidSnapshot.NotFound', `The snapshot '${sourceId}' does not exist.`);
  }
  const state = world.snapshotState(source);
  if (state !== 'completed') throw awsError('IncorrectState', `Snapshot '${sourceId}' is in state ${state}; only a completed snapshot can be copied.`);
  // The archive tier: an archived snapshot can't be copied ("Archive Amazon EBS snapshots").
  const tier = tierOf(world, source).storageTier;
  if (!usableTier(world, source)) throw awsError('IncorrectState', `Snapshot '${sourceId}' is in the ${tier} tier; restore it (RestoreSnapshotTier) before copying it.`);
  if (copiesInFlight(world, destination).length >= world.dr.copyQuota) {
    throw awsError('ResourceLimitExceeded', `You have reached the limit of ${world.dr.copyQuota} concurrent snapshot copies into ${destination}. Wait for a copy to complete, then try again.`);
  }

  // Encryption outcome, and what will make the copy fail later.
  const encrypted = source.encrypted === true || input.Encrypted === true;
  let kmsKeyId: string | undefined;
  let failure: string | undefined;
  if (source.encrypted && source.kmsKeyId) {
    const sourceKey = keyByArn(world, source.kmsKeyId);
    failure = 'problem' in sourceKey ? sourceKey.problem : unusable(sourceKey.key);
  }
  if (encrypted) {
    const reference = requestedKey ?? (source.encrypted && sourceRegion === destination && source.kmsKeyId ? source.kmsKeyId : DEFAULT_EBS_KEY_ALIAS);
    const key = resolveKey(world, destination, reference);
    if ('problem' in key) failure ??= key.problem;
    else {
      kmsKeyId = keyArn(key.key.region, key.key.keyId);
      failure ??= unusable(key.key);
    }
    // Unresolvable: EBS would name what was asked.
    kmsKeyId ??= reference;
  }

  // Waits for a pending earlier copy of the same volume into this Region; incremental after a completed one.
  const originVolumeId = source.originVolumeId ?? source.volumeId;
  const earlier = copyIndex(world).byOrigin.get(originKey(destination, originVolumeId)) ?? [];
  const startAt = Math.max(world.now, ...earlier.filter((s) => world.now < s.completeAt).map((s) => s.completeAt));
  const base = earlier.some(
    (s) => s.finalState === 'completed' && s.completeAt <= startAt && !(s.deleted && (s.deletedAt ?? 0) <= world.now) && (s.encrypted === true) === encrypted && s.kmsKeyId === kmsKeyId,
  );
  const kind = base ? 'incremental' : 'full';
  let completeAt = startAt + copyDurationMs(world, source.volumeSize, kind);
  if (minutes !== undefined) completeAt = Math.min(completeAt, world.now + minutes * MINUTE);
  if (failure) completeAt = Math.min(completeAt, world.now + world.dr.copyTiming.kmsFailureMinutes * MINUTE);

  const snapshotId = `snap-0${world.nextHex(16)}`;
  world.addSnapshot({
    snapshotId,
    volumeId: COPY_VOLUME_ID,
    instanceId: source.instanceId,
    volumeSize: source.volumeSize,
    startTime: world.now,
    completeAt,
    finalState: failure ? 'error' : 'completed',
    visibleAt: world.now + world.lagMs('snapshot-visible'),
    description: (input.Description as string | undefined) ?? `[Copied ${sourceId} from ${sourceRegion}]`,
    tags,
    deleted: false,
    region: destination,
    ...(encrypted ? { encrypted: true, kmsKeyId } : {}),
    sourceSnapshotId: sourceId,
    sourceRegion,
    originVolumeId,
    copyKind: kind,
    ...(failure ? { stateMessage: failure } : {}),
  });
  return { SnapshotId: snapshotId, Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) };
}
