/**
 * The snapshots an account already holds when a simulation starts (fleet file `history`, contract §5): sets left
 * by past runs of this stack (good ones and crash-consistent fallbacks), by another stage of it, and by someone
 * else (Data Lifecycle Manager, AWS Backup, an operator by hand) — the mix retention has to tell apart. Each entry
 * is one completed set, one snapshot per volume of the instance, created `ageDays` before the first night, and
 * tagged exactly as its maker leaves it.
 */
import { CONSISTENCY_TAG, FALLBACK_TAG } from '../lib/sweep-run.ts';
import { ATTEMPT_TAG, HOLD_TAG, INSTANCE_TAG, METHOD_TAG, RUN_TAG, SHARD_TAG, STACK_TAG, runIdFor } from '../lib/run-id.ts';
import { LOCAL_STACK_ID } from '../lib/config.ts';
import type { FleetInstance, HistoryEntry } from './fleet.ts';
import type { SimImage, SimInstance, World } from './world.ts';

/** The stack id of a local deployment (config.ts, the default the Lambdas read): its snapshots are this stack's. */
export { LOCAL_STACK_ID };
/** Another stage of the same service in the same account (its snapshots are never this stack's to delete). */
export const OTHER_STAGE_STACK_ID = 'vss-snapshots-other';
const DAY_MS = 86_400_000;
/** The nightly execution whose run id a past set carries (the state machine name of the local stack). */
const PAST_EXECUTION = 'arn:aws:states:us-east-1:123456789012:execution:vss-snapshots-nightly:';

/** What a foreign set looks like: the makers that share an account with this tool, taken in turn. */
const FOREIGN_MAKERS: ((instance: SimInstance, createdAt: number) => Record<string, string>)[] = [
  // Data Lifecycle Manager tags what its policies create with aws:dlm:* (EBS user guide, "Automate snapshot lifecycles").
  () => ({ 'aws:dlm:lifecycle-policy-id': 'policy-0a1b2c3d4e5f60718', 'aws:dlm:lifecycle-schedule-name': 'Default Schedule', 'dlm:managed': 'true' }),
  // An operator's snapshot before a change, by hand.
  (instance, createdAt) => ({ Name: `${instance.name ?? instance.instanceId} before patching ${new Date(createdAt).toISOString().slice(0, 10)}` }),
  // AWS Backup's recovery points carry aws:backup:source-resource (AWS Backup developer guide).
  (instance) => ({ 'aws:backup:source-resource': `arn:aws:ec2:us-east-1:123456789012:instance/${instance.instanceId}` }),
];

/** Tags of one snapshot of a past set, as its maker left them. */
export function historyTags(entry: HistoryEntry, instance: SimInstance, device: string, runId: string, createdAt: number, foreignIndex: number): Record<string, string> {
  const hold: Record<string, string> = entry.hold ? { [HOLD_TAG]: 'true' } : {};
  if (entry.owner === 'foreign') return { ...(FOREIGN_MAKERS[foreignIndex % FOREIGN_MAKERS.length] as (typeof FOREIGN_MAKERS)[number])(instance, createdAt), ...hold };
  const stack = entry.owner === 'other-stage' ? OTHER_STAGE_STACK_ID : LOCAL_STACK_ID;
  // What AWSEC2-CreateVssSnapshot leaves for a run of this stack (src/local/agent.ts createSnapshotSet).
  const run = { [RUN_TAG]: runId, [METHOD_TAG]: 'aws-vss', [SHARD_TAG]: '0', [INSTANCE_TAG]: instance.instanceId, [STACK_TAG]: stack, Device: device, AwsVssConfig: 'AwsVssComponents 2.5.0' };
  if (entry.owner === 'ours-fallback') {
    // The sweep's crash-consistent fallback: the last attempt's complete set, labelled (src/lib/sweep-run.ts).
    return { ...run, [ATTEMPT_TAG]: '3', [FALLBACK_TAG]: 'vss-timeout', [CONSISTENCY_TAG]: 'crash-consistent', ...hold };
  }
  return { ...run, [ATTEMPT_TAG]: '1', AppConsistent: 'true', ...hold };
}

/**
 * Adds every instance's `history` to the world, as of `start` (the first night): completed snapshots, and an AMI
 * over a set marked `usedByImage`. `instanceIds[i]` is the id of `specs[i]`. Past runs of one night share a run id.
 */
export function seedHistory(world: World, specs: FleetInstance[], instanceIds: string[], start: number): void {
  for (const [index, spec] of specs.entries()) {
    const instance = world.instances.get(instanceIds[index] as string);
    if (!instance || !spec.history?.length) continue;
    const volumes = world.volumesOf(instance.instanceId);
    const sameAge = new Map<number, number>();
    let foreign = 0;
    for (const entry of spec.history) {
      const createdAt = start - Math.round(entry.ageDays * DAY_MS);
      // Two sets of one age on one instance come from two runs (the same run never made two good sets).
      const nth = sameAge.get(createdAt) ?? 0;
      sameAge.set(createdAt, nth + 1);
      const runId = runIdFor(`${PAST_EXECUTION}history-${nth}`, new Date(createdAt).toISOString());
      const snapshotIds: string[] = [];
      for (const volume of volumes) {
        const snapshotId = `snap-0${world.nextHex(16)}`;
        world.addSnapshot({
          snapshotId,
          volumeId: volume.volumeId,
          instanceId: instance.instanceId,
          volumeSize: volume.sizeGiB,
          startTime: createdAt,
          completeAt: createdAt + instance.snapshotMinutes * 60_000,
          finalState: 'completed',
          visibleAt: createdAt,
          description: entry.owner === 'foreign' ? `Created for ${instance.instanceId}` : `vss-snapshots run ${runId} attempt ${entry.owner === 'ours-fallback' ? 3 : 1}`,
          tags: historyTags(entry, instance, volume.device ?? '', runId, createdAt, foreign),
          deleted: false,
        });
        snapshotIds.push(snapshotId);
      }
      if (entry.owner === 'foreign') foreign += 1;
      if (entry.usedByImage && snapshotIds.length > 0) {
        const image: SimImage = { imageId: `ami-0${world.nextHex(16)}`, name: `${instance.name ?? instance.instanceId}-golden-${new Date(createdAt).toISOString().slice(0, 10)}`, snapshotIds, createdAt };
        world.images.set(image.imageId, image);
      }
    }
  }
}
