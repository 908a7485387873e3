/**
 * The leftover sweep: no snapshot of this run is left unaccounted for (contract §4, "No leaked snapshot").
 * Once every instance is final and EC2 has had the consistency grace to show what the last commands made, every
 * snapshot carrying this run's id is either
 * - in the verified set of a succeeded instance (kept),
 * - the complete set of a failed instance's last attempt — every volume, none in `error` — kept on purpose as a
 *   crash-consistent fallback (a crash-consistent copy beats nothing), tagged `vss-snapshots:fallback` with the
 *   failure code and `vss-snapshots:consistency=crash-consistent` unless it is in fact consistent, reported in
 *   `fallbackSnapshots` and named in the alert,
 * - or deleted: sets of earlier attempts (a VSS freeze that timed out still leaves snapshots, without
 *   `AppConsistent`), a duplicate set, an incomplete or errored set, anything that showed up late.
 */
import { CreateTagsCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import { clock } from './clock.ts';
import type { Config } from './config.ts';
import { deferred, succeeded } from './backoff.ts';
import { expectedVolumes } from './discovery.ts';
import { isTransientAwsError } from './errors.ts';
import { methodDriver } from './methods/index.ts';
import { isFinal } from './run-state.ts';
import type { InstanceRecord, RunState, SnapshotRef } from './run-state.ts';
import { attemptOf, bestSet, groupSets, refOf, tagMap } from './snapshot-sets.ts';
import { DISCARD_BUDGET_MS, discardSnapshots, listRunSnapshots, widestScope } from './verify-snapshots.ts';

export const FALLBACK_TAG = 'vss-snapshots:fallback';
export const CONSISTENCY_TAG = 'vss-snapshots:consistency';
/** CreateTags takes up to 1,000 resources a call (EC2 API reference). */
const TAG_BATCH = 1_000;

export interface SweepDeps {
  ec2: EC2Client;
  config: Config;
  save?: (state: RunState) => Promise<void>;
}

/**
 * When the sweep may run (undefined while instances are not final). Snapshots of this run come only from its
 * commands; a command that failed, was cancelled or was sent twice may have made some that EC2 shows late, so
 * the sweep then waits the consistency grace after the last outcome. On a clean night — every instance that got
 * a command succeeded on its one attempt, no send lost — nothing else can exist, and it runs at once.
 */
export function sweepDueAt(state: RunState, config: Config): number | undefined {
  if (state.swept || state.dryRun || state.commands.length === 0) return undefined;
  if (!state.instances.every((i) => isFinal(i.phase))) return undefined;
  const lastOutcome = Math.max(0, ...state.instances.map((i) => i.finishedAt ?? 0), ...state.commands.map((c) => c.sentAt));
  const clean = state.instances.every((i) => i.attempts === 0 || (i.phase === 'succeeded' && i.attempts === 1)) && state.commands.every((c) => c.status === 'done' && c.commandId !== undefined);
  return clean ? lastOutcome : lastOutcome + config.consistencyGraceSeconds * 1000;
}

export async function sweepRun(deps: SweepDeps, state: RunState): Promise<void> {
  const dueAt = sweepDueAt(state, deps.config);
  if (dueAt === undefined || clock.now() < dueAt) return;
  // The whole run's snapshots when this shard is the whole run, or the shard's own (SHARD_TAG); else those of
  // every volume of the shard's instances (the other shards' snapshots are theirs to keep or delete) — then a
  // volume attached after discovery is not looked at: its snapshot, if the command took one, stays
  // (docs/reliability.md).
  const scope = widestScope(state) ?? { volumeIds: [...new Set(state.instances.filter((i) => i.attempts > 0).flatMap((i) => i.volumes.map((v) => v.volumeId)))] };
  let snapshots: Snapshot[];
  try {
    snapshots = await listRunSnapshots(deps.ec2, state.runId, scope);
  } catch (error) {
    // Throttled (or a 5xx) past the SDK's retries, as the snapshot checks can be: the sweep waits out the same
    // back-off (backoff.ts) instead of failing the shard and leaving its leftovers undeleted.
    if (!isTransientAwsError(error)) throw error;
    deferred(state, 'check');
    return;
  }
  const driver = methodDriver(state.options.method);
  const isConsistent = (s: Snapshot) => driver.isConsistent(tagMap(s));
  const keep = new Set(state.instances.filter((i) => i.phase === 'succeeded').flatMap((i) => i.snapshots.map((s) => s.snapshotId)));

  const byVolume = new Map<string, Snapshot[]>();
  for (const s of snapshots) if (s.VolumeId) byVolume.set(s.VolumeId, [...(byVolume.get(s.VolumeId) ?? []), s]);
  const toTag = new Map<string, string[]>();
  for (const record of state.instances.filter((i) => i.phase === 'failed' && i.attempts > 0)) {
    const fallback = fallbackOf(record, byVolume, state, isConsistent);
    record.fallbackSnapshots = fallback.refs;
    for (const ref of fallback.refs) keep.add(ref.snapshotId);
    for (const [tags, ids] of fallback.tags) toTag.set(tags, [...(toTag.get(tags) ?? []), ...ids]);
  }
  try {
    for (const [tags, ids] of toTag) {
      const list = JSON.parse(tags) as { Key: string; Value: string }[];
      for (let i = 0; i < ids.length; i += TAG_BATCH) await deps.ec2.send(new CreateTagsCommand({ Resources: ids.slice(i, i + TAG_BATCH), Tags: list }));
    }
  } catch (error) {
    // The same for the fallback tags: nothing is marked swept, the whole sweep runs again after the back-off.
    if (!isTransientAwsError(error)) throw error;
    deferred(state, 'check');
    return;
  }
  succeeded(state, 'check');
  const leftovers = snapshots.map((s) => s.SnapshotId ?? '').filter((id) => id && !keep.has(id));
  state.discard = [...new Set([...(state.discard ?? []), ...leftovers])];
  state.swept = true;
  await deps.save?.(state);
  await discardSnapshots(deps.ec2, state, clock.now() + DISCARD_BUDGET_MS);
}

/** The complete, error-free set of the instance's last attempt (if any), and how to tag it. */
function fallbackOf(record: InstanceRecord, byVolume: Map<string, Snapshot[]>, state: RunState, isConsistent: (s: Snapshot) => boolean): { refs: SnapshotRef[]; tags: Map<string, string[]> } {
  const volumes = expectedVolumes(record, state.options.excludeBootVolume);
  const last = volumes.flatMap((v) => byVolume.get(v.volumeId) ?? []).filter((s) => attemptOf(s) === record.attempts);
  const best = bestSet(groupSets(last), volumes, isConsistent);
  const members = best ? volumes.map((v) => best.byVolume.get(v.volumeId)) : [];
  const complete = members.length > 0 && members.every((s) => s !== undefined && s.State !== 'error');
  if (!complete) return { refs: [], tags: new Map() };
  const tags = new Map<string, string[]>();
  const refs = volumes.map((v, i) => {
    const snap = members[i] as Snapshot;
    const list = [{ Key: FALLBACK_TAG, Value: record.code ?? 'failed' }, ...(isConsistent(snap) ? [] : [{ Key: CONSISTENCY_TAG, Value: 'crash-consistent' }])];
    const key = JSON.stringify(list);
    tags.set(key, [...(tags.get(key) ?? []), snap.SnapshotId ?? '']);
    return refOf(snap, v);
  });
  return { refs, tags };
}
