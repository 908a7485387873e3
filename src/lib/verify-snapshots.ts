/**
 * Verifying an instance's snapshots: the proof. As soon as an instance's own command has succeeded, each
 * volume it must snapshot needs one snapshot of this run and attempt — one whole set, never a mix of two —
 * `completed` (pending ones are waited for, up to the snapshot deadline), not `error`, and marked consistent
 * by the method (`AppConsistent=true` for AWS's document). Anything else is a failure with a reason; the
 * snapshots of an attempt that will be retried are deleted, and a duplicate set (a command that ran twice)
 * is deleted without failing the instance.
 *
 * EC2 is eventually consistent: a snapshot, or a tag added after it was created (AWS's document tags
 * `AppConsistent` after the thaw), may show up late. Missing or not-yet-consistent is therefore "not yet" for
 * CONSISTENCY_GRACE_SECONDS after the command succeeded, and only then a failure.
 *
 * Polls adaptively per instance: a pending snapshot is looked at again when its Progress says it should be
 * done (a fixed 2-minute poll would list a 6-hour snapshot 180 times), never later than 30 minutes, the next
 * deadline, or the end of a grace. Deletions are bounded per invocation (EC2 allows 5 DeleteSnapshot per
 * second); the rest wait in `state.discard` for the next one.
 */
import { DeleteSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import { clock } from './clock.ts';
import type { Config } from './config.ts';
import { chunk, expectedVolumes } from './discovery.ts';
import { deferred, mayDo, succeeded } from './backoff.ts';
import { TRANSIENT_AWS_ERRORS, isTransientAwsError } from './errors.ts';
import { methodDriver } from './methods/index.ts';
import { fail, succeed } from './record-failure.ts';
import { RUN_TAG, SHARD_TAG } from './run-id.ts';
import { onGrid } from './run-state.ts';
import type { InstanceRecord, RunState, SnapshotRef } from './run-state.ts';
import { attemptOf, bestSet, groupSets, idsOf, refOf, tagMap } from './snapshot-sets.ts';

/** The longest wait between two looks at a pending snapshot. */
export const MAX_SNAPSHOT_POLL_SECONDS = 1_800;
/** The shortest wait before looking again at a snapshot not yet visible or not yet marked consistent. */
const MIN_RECHECK_MS = 15_000;
/** Time one invocation spends deleting unusable snapshots; the rest are left in `state.discard`. */
export const DISCARD_BUDGET_MS = 120_000;
/** The grid that checks far ahead are put on (see verifyDue), and from how far ahead. */
const LONG_CHECK_GRID_MS = 5 * 60_000;
const LONG_CHECK_FROM_MS = 3 * 60_000;
/** EC2 accepts up to 200 values in one filter. */
const VOLUMES_PER_FILTER = 200;

/** Whether this state holds every instance of the run (a run of one shard, or a state from before sharding). */
export const isWholeRun = (state: RunState): boolean => (state.ofShards ?? 1) <= 1;

/** Which of a run's snapshots to list: all, a shard's (by SHARD_TAG), or those of some volumes. */
export type SnapshotScope = { all: true } | { shard: number } | { volumeIds: readonly string[] };

/**
 * The widest listing a state may make, and its cost in calls: the whole run when the state is the whole run;
 * the shard's own snapshots when its method tags them with the shard; else none (volume by volume only).
 */
export function widestScope(state: RunState): SnapshotScope | undefined {
  if (isWholeRun(state)) return { all: true };
  if (state.shard !== undefined && methodDriver(state.options.method).tagsShard) return { shard: state.shard };
  return undefined;
}

/** This run's snapshots in `scope`, every page. */
export async function listRunSnapshots(ec2: EC2Client, runId: string, scope: SnapshotScope = { all: true }): Promise<Snapshot[]> {
  const all: Snapshot[] = [];
  const groups: (readonly string[] | undefined)[] = 'volumeIds' in scope ? chunk(scope.volumeIds, VOLUMES_PER_FILTER) : [undefined];
  const shardFilter = 'shard' in scope ? [{ Name: `tag:${SHARD_TAG}`, Values: [String(scope.shard)] }] : [];
  for (const ids of groups) {
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeSnapshotsCommand({
          OwnerIds: ['self'],
          Filters: [{ Name: `tag:${RUN_TAG}`, Values: [runId] }, ...shardFilter, ...(ids ? [{ Name: 'volume-id', Values: [...ids] }] : [])],
          MaxResults: 1000,
          NextToken: nextToken,
        }),
      );
      all.push(...(page.Snapshots ?? []));
      nextToken = page.NextToken;
    } while (nextToken);
  }
  return all;
}

export interface VerifyDeps {
  ec2: EC2Client;
  config: Config;
  /**
   * Saves the run state. Given, the verdicts are saved before any snapshot is deleted, so a retried
   * invocation (the Lambda timed out after deleting) never judges an instance by its own deletions.
   */
  save?: (state: RunState) => Promise<void>;
}

/** Verifies every instance whose check is due by `horizon` (default now). */
export async function verifyDue(deps: VerifyDeps, state: RunState, horizon = clock.now()): Promise<void> {
  const now = clock.now();
  const due = state.instances.filter((i) => i.phase === 'verify' && (i.nextCheckAt ?? 0) <= horizon);
  if (due.length === 0) return;
  const volumeIds = due.flatMap((r) => expectedVolumes(r, state.options.excludeBootVolume).map((v) => v.volumeId));
  // The cheaper listing: the due instances' volumes (200 a filter), or the whole run or shard (1,000 a page) when
  // most of it is due at once (never the whole run from one shard of several: that would grow with the fleet).
  const runVolumes = state.instances.filter((i) => i.attempts > 0).reduce((n, r) => n + expectedVolumes(r, state.options.excludeBootVolume).length, 0);
  const wide = widestScope(state);
  const scope: SnapshotScope = wide && Math.ceil(runVolumes / 1000) < Math.ceil(volumeIds.length / VOLUMES_PER_FILTER) ? wide : { volumeIds };
  const byVolume = new Map<string, Snapshot[]>();
  let listed: Snapshot[];
  try {
    listed = await listRunSnapshots(deps.ec2, state.runId, scope);
  } catch (error) {
    if (!isTransientAwsError(error)) throw error;
    // Nothing judged: the due checks come back after the back-off.
    deferred(state, 'check');
    return;
  }
  succeeded(state, 'check');
  for (const s of listed) {
    if (s.VolumeId) byVolume.set(s.VolumeId, [...(byVolume.get(s.VolumeId) ?? []), s]);
  }
  const toDiscard: string[] = [];
  for (const record of due) {
    const volumes = expectedVolumes(record, state.options.excludeBootVolume);
    const snapshots = volumes.flatMap((v) => byVolume.get(v.volumeId) ?? []).filter((s) => attemptOf(s) === record.attempts);
    const verdict = judge(record, snapshots, state, deps.config);
    if (verdict.kind === 'pending') {
      // On the run's poll grid, so the checks of instances verified at different times share wake-ups; a check
      // three minutes or more away (snapshots still copying) goes on a 5-minute grid: a few minutes either way
      // change nothing there, and a shard's slices, sent 20 s apart, then wake the workflow together.
      const gridMs = verdict.recheckInMs >= LONG_CHECK_FROM_MS ? LONG_CHECK_GRID_MS : deps.config.commandPollSeconds * 1000;
      record.nextCheckAt = onGrid(now + verdict.recheckInMs, state, gridMs);
      continue;
    }
    // A second set of this attempt (a command that ran twice) is deleted; the instance is judged by the best.
    toDiscard.push(...verdict.duplicates);
    if (verdict.kind === 'ok') {
      succeed(record, verdict.snapshots);
      continue;
    }
    record.snapshots = [];
    fail(record, state, verdict.code, verdict.detail, deps.config.retryDelaySeconds);
    // A retry replaces this attempt's set: delete it now. A final failure's set is left to the sweep, which keeps
    // a complete one as the crash-consistent fallback (sweep-run.ts).
    if (record.phase === 'retry') toDiscard.push(...verdict.unusable);
  }
  if (toDiscard.length > 0) {
    state.discard = [...new Set([...(state.discard ?? []), ...toDiscard])];
    await deps.save?.(state);
    await discardSnapshots(deps.ec2, state, now + DISCARD_BUDGET_MS);
  }
}

/** Time until a pending snapshot should complete, from its Progress (or, at 0 %, as long again as so far). */
export function estimatedRemainingMs(snapshot: Snapshot, now: number): number {
  const elapsed = Math.max(0, now - (snapshot.StartTime?.getTime() ?? now));
  const progress = Number.parseInt(snapshot.Progress ?? '', 10);
  if (!(progress > 0 && progress < 100)) return elapsed;
  return (elapsed * (100 - progress)) / progress;
}

type FailureVerdictCode = 'no-snapshots' | 'crash-consistent' | 'snapshot-error' | 'snapshot-timeout';
type Verdict =
  | { kind: 'ok'; snapshots: SnapshotRef[]; duplicates: string[] }
  | { kind: 'pending'; recheckInMs: number }
  | { kind: 'bad'; code: FailureVerdictCode; detail: string; unusable: string[]; duplicates: string[] };

function judge(record: InstanceRecord, snapshots: Snapshot[], state: RunState, config: Config): Verdict {
  const now = clock.now();
  const elapsed = now - (record.verifySince ?? now);
  const graceMs = config.consistencyGraceSeconds * 1000;
  const pollMs = config.snapshotPollSeconds * 1000;
  const driver = methodDriver(state.options.method);
  const isConsistent = (s: Snapshot) => driver.isConsistent(tagMap(s));
  const volumes = expectedVolumes(record, state.options.excludeBootVolume);
  const sets = groupSets(snapshots);
  const best = bestSet(sets, volumes, isConsistent);
  const duplicates = idsOf(sets.filter((s) => s !== best));
  const unusable = idsOf(sets);
  const withinGrace = (): Verdict => ({ kind: 'pending', recheckInMs: Math.max(MIN_RECHECK_MS, Math.min(pollMs, graceMs - elapsed)) });

  const missing: string[] = [];
  const errored: string[] = [];
  const inconsistent: string[] = [];
  const pending: string[] = [];
  const refs: SnapshotRef[] = [];
  let pendingWaitMs = 0;
  for (const volume of volumes) {
    const snap = best?.byVolume.get(volume.volumeId);
    if (!snap) {
      missing.push(`${volume.device} (${volume.volumeId})`);
      continue;
    }
    const ref = refOf(snap, volume);
    refs.push(ref);
    if (snap.State === 'error') errored.push(`${ref.snapshotId} of ${volume.device}`);
    else if (!isConsistent(snap)) inconsistent.push(`${ref.snapshotId} of ${volume.device}`);
    else if (snap.State !== 'completed') {
      pending.push(`${ref.snapshotId} of ${volume.device}`);
      pendingWaitMs = Math.max(pendingWaitMs, estimatedRemainingMs(snap, now));
    }
  }

  if (errored.length > 0) {
    return { kind: 'bad', code: 'snapshot-error', detail: `Snapshot(s) in state error: ${errored.join(', ')}.`, unusable, duplicates };
  }
  if (missing.length > 0) {
    if (elapsed < graceMs) return withinGrace();
    return { kind: 'bad', code: 'no-snapshots', detail: `No snapshot tagged with this run and attempt for ${missing.join(', ')}.`, unusable, duplicates };
  }
  if (inconsistent.length > 0) {
    if (elapsed < graceMs) return withinGrace();
    const mark = driver.consistencyTag;
    return { kind: 'bad', code: 'crash-consistent', detail: `Snapshot(s) not tagged ${mark} ${Math.round(graceMs / 1000)} s after the command succeeded: ${inconsistent.join(', ')}.`, unusable, duplicates };
  }
  if (pending.length > 0) {
    const deadlineInMs = config.snapshotDeadlineSeconds * 1000 - elapsed;
    if (deadlineInMs > 0) {
      return { kind: 'pending', recheckInMs: Math.min(Math.max(pollMs, pendingWaitMs), deadlineInMs, MAX_SNAPSHOT_POLL_SECONDS * 1000) };
    }
    return {
      kind: 'bad',
      code: 'snapshot-timeout',
      detail: `Still pending after ${Math.round(config.snapshotDeadlineSeconds / 60)} minutes: ${pending.join(', ')}.`,
      unusable,
      duplicates,
    };
  }
  return { kind: 'ok', snapshots: refs, duplicates };
}

/**
 * Deletes the snapshots listed in `state.discard`, removing each from the list, until the list is empty or
 * `until` (epoch ms) has passed; the rest stay for the next invocation. EC2 refusing a deletion is not
 * fatal (already gone — a retried invocation repeats deletions —, in use by an AMI, not permitted): the
 * snapshot stays, tagged with the run and its attempt, and the run goes on. Anything else (throttling
 * the SDK could not ride out, a timeout) fails the step, which is retried with the list saved.
 */
export async function discardSnapshots(ec2: EC2Client, state: RunState, until: number): Promise<void> {
  const ids = state.discard ?? [];
  // Deletions the account throttled wait out their back-off (backoff.ts); the list stays in the run state.
  if (ids.length === 0 || !mayDo(state, 'delete')) return;
  // A share of the send clock claimed for later (send-clock.ts) must not be missed for deletions: they stop
  // two seconds before it.
  if (state.sendClaim) until = Math.min(until, state.sendClaim.at - 2_000);
  let done = 0;
  let throttled = false;
  try {
    for (const id of ids) {
      if (clock.now() >= until) break;
      try {
        await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
      } catch (error) {
        // Throttled past the SDK's retries (other shards share the account's 5 deletions per second): the rest
        // wait for the next turn.
        if (isTransientAwsError(error)) {
          deferred(state, 'delete');
          throttled = true;
          break;
        }
        if (!isRefusal(error)) throw error;
      }
      done += 1;
    }
    if (!throttled) succeeded(state, 'delete');
  } finally {
    if (done >= ids.length) delete state.discard;
    else state.discard = ids.slice(done);
  }
}

/** An answer from EC2 that this request will not succeed (4xx, not throttling). */
export function isRefusal(error: unknown): boolean {
  const e = error as { name?: string; $fault?: string } | undefined;
  return e?.$fault === 'client' && !(TRANSIENT_AWS_ERRORS as readonly string[]).includes(e.name ?? '');
}
