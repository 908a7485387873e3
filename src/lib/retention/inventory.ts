/**
 * What retention looks at: every snapshot of this account tagged with this stack's id (DescribeSnapshots
 * `OwnerIds: self`, filter `tag:vss-snapshots:stack=<STACK_ID>`, 1,000 a page — never another stage's, a
 * manual, DLM or AWS Backup snapshot, which do not carry this tag and value), grouped into sets, and the
 * instances EC2 knows (DescribeInstances, 1,000 a page: state, the retain tag, attached volumes).
 *
 * The instance of a snapshot is its `vss-snapshots:instance-id` tag (DiskShadow tags it), else the instance its
 * volume is attached to now (AWS's document tags no instance id; one command serves many instances, so its
 * `tags` cannot carry one), else the instance retention last saw the volume attached to (the ledger remembers
 * it: a terminated instance's volumes are detached or gone), else the volume itself stands for the owner: its sets are
 * then judged as those of a vanished instance (conservatively: the newest is kept TERMINATED_RETAIN_DAYS).
 */
import { DescribeInstancesCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import { methodDriver } from '../methods/index.ts';
import { SNAPSHOT_METHODS } from '../config.ts';
import type { SnapshotMethod } from '../config.ts';
import { ATTEMPT_TAG, HOLD_TAG, INSTANCE_TAG, METHOD_TAG, RETAIN_TAG, RUN_TAG, STACK_TAG } from '../run-id.ts';
import { tagMap } from '../snapshot-sets.ts';
import { FALLBACK_TAG } from '../sweep-run.ts';
import type { RetentionSet, SetKind } from './policy.ts';

/** Tag keys of snapshots another lifecycle manages: DLM (`aws:dlm:*`) and AWS Backup (`aws:backup:*`). */
const MANAGED_ELSEWHERE = /^aws:(dlm|backup):/i;

export interface InstanceInfo {
  instanceId: string;
  state: string;
  /** The `vss-snapshots:retain` tag, if any. */
  retainTag?: string;
  volumeIds: string[];
}

/** Every snapshot carrying this stack's tag, every page. */
export async function listStackSnapshots(ec2: EC2Client, stackId: string): Promise<Snapshot[]> {
  const all: Snapshot[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({ OwnerIds: ['self'], Filters: [{ Name: `tag:${STACK_TAG}`, Values: [stackId] }], MaxResults: 1000, NextToken: nextToken }),
    );
    all.push(...(page.Snapshots ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
  return all;
}

/** Every instance EC2 lists (terminated ones only for about an hour after termination), every page. */
export async function listInstances(ec2: EC2Client): Promise<Map<string, InstanceInfo>> {
  const out = new Map<string, InstanceInfo>();
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(new DescribeInstancesCommand({ MaxResults: 1000, NextToken: nextToken }));
    for (const reservation of page.Reservations ?? []) {
      for (const i of reservation.Instances ?? []) {
        if (!i.InstanceId) continue;
        const retainTag = i.Tags?.find((t) => t.Key === RETAIN_TAG)?.Value;
        out.set(i.InstanceId, {
          instanceId: i.InstanceId,
          state: i.State?.Name ?? 'unknown',
          ...(retainTag !== undefined ? { retainTag } : {}),
          volumeIds: (i.BlockDeviceMappings ?? []).flatMap((m) => (m.Ebs?.VolumeId ? [m.Ebs.VolumeId] : [])),
        });
      }
    }
    nextToken = page.NextToken;
  } while (nextToken);
  return out;
}

export interface Inventory {
  sets: RetentionSet[];
  /**
   * Snapshots with the stack tag but no run id or attempt (not made by a run as we know it), or managed by DLM
   * or AWS Backup: never deleted.
   */
  unidentified: string[];
  /** Volume → instance, for the volumes of the stack's snapshots whose instance is known (kept in the ledger). */
  volumeOwners: Record<string, string>;
}

/** Groups the stack's snapshots into sets by owner, run and attempt, and says what kind each set is. */
export function groupIntoSets(snapshots: readonly Snapshot[], instances: ReadonlyMap<string, InstanceInfo>, knownOwners: Readonly<Record<string, string>> = {}): Inventory {
  // Where a volume is attached now, else where retention last saw it attached (ledger): an instance that is
  // terminated takes its volumes' attachments with it, and its sets must still be told apart as its own.
  const ownerOfVolume = new Map<string, string>(Object.entries(knownOwners));
  for (const i of instances.values()) if (i.state !== 'terminated') for (const v of i.volumeIds) ownerOfVolume.set(v, i.instanceId);
  const byKey = new Map<string, { owner: string; runId: string; attempt: number; members: Snapshot[] }>();
  const unidentified: string[] = [];
  for (const s of snapshots) {
    if (!s.SnapshotId) continue;
    const tags = tagMap(s);
    const runId = tags[RUN_TAG];
    const attempt = Number(tags[ATTEMPT_TAG]);
    const owner = tags[INSTANCE_TAG] || (s.VolumeId ? ownerOfVolume.get(s.VolumeId) : undefined) || s.VolumeId;
    // Belt and braces: a snapshot that Data Lifecycle Manager or AWS Backup manages is theirs, whatever else it
    // carries (a copy that took our tags along): never ours to delete.
    const managedElsewhere = Object.keys(tags).some((k) => MANAGED_ELSEWHERE.test(k));
    if (!runId || !Number.isInteger(attempt) || attempt < 1 || !owner || managedElsewhere) {
      unidentified.push(s.SnapshotId);
      continue;
    }
    const key = `${owner}/${runId}/${attempt}`;
    const entry = byKey.get(key) ?? { owner, runId, attempt, members: [] };
    entry.members.push(s);
    byKey.set(key, entry);
  }
  const sets: RetentionSet[] = [...byKey.entries()].map(([key, e]) => ({
    key,
    owner: e.owner,
    runId: e.runId,
    attempt: e.attempt,
    start: Math.min(...e.members.map((m) => m.StartTime?.getTime() ?? 0)),
    kind: kindOf(e.members),
    snapshotIds: e.members.map((m) => m.SnapshotId as string).sort(),
    held: e.members.filter((m) => tagMap(m)[HOLD_TAG] !== undefined).map((m) => m.SnapshotId as string),
    pending: e.members.some((m) => m.State === 'pending'),
    completed: e.members.every((m) => m.State === 'completed'),
    archived: e.members.filter((m) => m.StorageTier === 'archive').map((m) => m.SnapshotId as string),
    volumes: Object.fromEntries(e.members.map((m) => [m.SnapshotId as string, m.VolumeId ?? ''])),
  }));
  const volumeOwners: Record<string, string> = {};
  for (const s of snapshots) {
    const owner = s.VolumeId ? ownerOfVolume.get(s.VolumeId) : undefined;
    if (s.VolumeId && owner) volumeOwners[s.VolumeId] = owner;
  }
  return { sets, unidentified, volumeOwners };
}

/**
 * Verified: every member completed, marked consistent by the method that made it (the same test verify uses),
 * none a crash-consistent fallback. A fallback: any member tagged `vss-snapshots:fallback`. Anything else
 * (errored, never marked consistent, an unknown method) is unverified: it never counts as a good set.
 */
function kindOf(members: readonly Snapshot[]): SetKind {
  const tags = members.map(tagMap);
  if (tags.some((t) => t[FALLBACK_TAG] !== undefined)) return 'fallback';
  const verified = members.every((m, n) => {
    const t = tags[n] as Record<string, string>;
    const method = t[METHOD_TAG];
    if (!(SNAPSHOT_METHODS as readonly string[]).includes(method ?? '')) return false;
    return m.State === 'completed' && methodDriver(method as SnapshotMethod).isConsistent(t);
  });
  return verified ? 'verified' : 'unverified';
}
