/**
 * "Verify Snapshots": the proof. For every instance whose command succeeded, each volume it must
 * snapshot needs exactly one snapshot tagged with this run and attempt, `completed` (pending ones are
 * waited for, up to the snapshot deadline), not `error`, and tagged `AppConsistent=true`. Anything else
 * is a failure with a reason; unusable snapshots of an attempt that will be retried are deleted so a
 * successful instance ends with exactly one snapshot per volume from this run.
 *
 * Polls adaptively: the next poll comes when the slowest pending snapshot should be done, judged by its
 * Progress (EBS snapshots can stay pending for hours: a fixed 2-minute poll would list every snapshot of a
 * 10,000-instance run 180 times in 6 hours), but never later than 30 minutes, the next deadline, or the
 * end of a missing snapshot's visibility grace. Deletions are bounded per invocation (EC2 allows 5
 * DeleteSnapshot per second: thousands would outlast the Lambda); the rest wait for the next invocation.
 */
import { DeleteSnapshotCommand, DescribeSnapshotsCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Snapshot } from '@aws-sdk/client-ec2';
import { fail } from './record-failure.ts';
import { clock } from './clock.ts';
import type { Config } from './config.ts';
import { expectedVolumes } from './discovery.ts';
import { TRANSIENT_AWS_ERRORS } from './errors.ts';
import { methodDriver } from './methods/index.ts';
import { tagMap } from './methods/types.ts';
import { ATTEMPT_TAG, RUN_TAG } from './run-id.ts';
import type { InstanceRecord, RunState, SnapshotRef } from './run-state.ts';

/** After a command succeeds, EC2 may take a moment to list its snapshots (eventual consistency). */
export const SNAPSHOT_VISIBILITY_GRACE_MS = 120_000;
/** The longest wait between two polls of pending snapshots. */
export const MAX_SNAPSHOT_POLL_SECONDS = 1_800;
/** Time one invocation spends deleting unusable snapshots; the rest are left in `state.discard`. */
export const DISCARD_BUDGET_MS = 120_000;

export interface VerifyOutcome {
  /** When to poll again (the state machine's "Wait For Snapshots"). */
  nextPollSeconds: number;
}

const tagOf = (s: Snapshot, key: string): string | undefined => s.Tags?.find((t) => t.Key === key)?.Value;

export async function listRunSnapshots(ec2: EC2Client, runId: string): Promise<Snapshot[]> {
  const all: Snapshot[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ec2.send(
      new DescribeSnapshotsCommand({
        OwnerIds: ['self'],
        Filters: [{ Name: `tag:${RUN_TAG}`, Values: [runId] }],
        MaxResults: 1000,
        NextToken: nextToken,
      }),
    );
    all.push(...(page.Snapshots ?? []));
    nextToken = page.NextToken;
  } while (nextToken);
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

export async function verifySnapshots(deps: VerifyDeps, state: RunState): Promise<VerifyOutcome> {
  // Deletions an interrupted earlier try decided on (and saved) but may not have finished.
  const started = clock.now();
  await discardSnapshots(deps.ec2, state, started + DISCARD_BUDGET_MS);
  const minPoll = deps.config.snapshotPollSeconds;
  const checking = state.instances.filter((i) => i.phase === 'verify');
  if (checking.length === 0) return { nextPollSeconds: minPoll };
  const snapshots = await listRunSnapshots(deps.ec2, state.runId);
  const byVolume = new Map<string, Snapshot[]>();
  for (const s of snapshots) if (s.VolumeId) byVolume.set(s.VolumeId, [...(byVolume.get(s.VolumeId) ?? []), s]);

  // When a decision is next possible: the slowest pending snapshot, unless a missing one is due sooner.
  let progressWaitMs = 0;
  let missingWaitMs = Infinity;
  for (const record of checking) {
    const verdict = judge(record, byVolume, state, deps.config);
    if (verdict.kind === 'pending') {
      if (verdict.missing) missingWaitMs = Math.min(missingWaitMs, verdict.decisionInMs);
      else progressWaitMs = Math.max(progressWaitMs, verdict.decisionInMs);
      continue;
    }
    if (verdict.kind === 'ok') {
      record.phase = 'succeeded';
      record.snapshots = verdict.snapshots;
      delete record.code;
      delete record.reason;
      delete record.detail;
      continue;
    }
    record.snapshots = verdict.snapshots;
    fail(record, state, verdict.code, verdict.detail);
    if (record.phase === 'retry') {
      // The retry replaces them: delete them, and stop reporting them as this instance's snapshots.
      const unusable = new Set(verdict.unusable.filter(Boolean));
      record.snapshots = record.snapshots.filter((s) => !unusable.has(s.snapshotId));
      state.discard = [...(state.discard ?? []), ...unusable];
    }
  }
  if ((state.discard ?? []).length > 0) {
    await deps.save?.(state);
    await discardSnapshots(deps.ec2, state, started + DISCARD_BUDGET_MS);
  }
  const waitSeconds = Math.ceil(Math.min(progressWaitMs, missingWaitMs, MAX_SNAPSHOT_POLL_SECONDS * 1000) / 1000);
  return { nextPollSeconds: Math.max(minPoll, waitSeconds) };
}

/** Time until a pending snapshot should complete, from its Progress (or, at 0 %, as long again as so far). */
export function estimatedRemainingMs(snapshot: Snapshot, now: number): number {
  const elapsed = Math.max(0, now - (snapshot.StartTime?.getTime() ?? now));
  const progress = Number.parseInt(snapshot.Progress ?? '', 10);
  if (!(progress > 0 && progress < 100)) return elapsed;
  return (elapsed * (100 - progress)) / progress;
}

type Verdict =
  | { kind: 'ok'; snapshots: SnapshotRef[] }
  | { kind: 'pending'; missing: boolean; decisionInMs: number }
  | { kind: 'bad'; code: 'no-snapshots' | 'crash-consistent' | 'snapshot-error' | 'snapshot-timeout'; detail: string; snapshots: SnapshotRef[]; unusable: string[] };

function judge(record: InstanceRecord, byVolume: Map<string, Snapshot[]>, state: RunState, config: Config): Verdict {
  const now = clock.now();
  const since = record.verifySince ?? now;
  const volumes = expectedVolumes(record, state.options.excludeBootVolume);
  const refs: SnapshotRef[] = [];
  const unusable: string[] = [];
  const missing: string[] = [];
  const errored: string[] = [];
  const crash: string[] = [];
  const pending: string[] = [];
  let pendingWaitMs = 0;

  for (const volume of volumes) {
    const mine = (byVolume.get(volume.volumeId) ?? []).filter((s) => tagOf(s, ATTEMPT_TAG) === String(record.attempts));
    if (mine.length === 0) {
      missing.push(`${volume.device} (${volume.volumeId})`);
      continue;
    }
    // Newest first: should an attempt ever produce two, judge the latest and treat the rest as unusable.
    mine.sort((a, b) => (b.StartTime?.getTime() ?? 0) - (a.StartTime?.getTime() ?? 0));
    const [snap, ...extra] = mine as [Snapshot, ...Snapshot[]];
    unusable.push(...extra.map((s) => s.SnapshotId ?? ''));
    const ref: SnapshotRef = {
      snapshotId: snap.SnapshotId ?? '',
      volumeId: volume.volumeId,
      device: tagOf(snap, 'Device') ?? volume.device,
      state: snap.State ?? 'unknown',
    };
    refs.push(ref);
    if (snap.State === 'error') {
      errored.push(`${ref.snapshotId} of ${volume.device}`);
      unusable.push(ref.snapshotId);
    } else if (!methodDriver(state.options.method).isConsistent(tagMap(snap.Tags))) {
      crash.push(`${ref.snapshotId} of ${volume.device}`);
      unusable.push(ref.snapshotId);
    } else if (snap.State !== 'completed') {
      pending.push(`${ref.snapshotId} of ${volume.device}`);
      pendingWaitMs = Math.max(pendingWaitMs, estimatedRemainingMs(snap, now));
    }
  }

  if (errored.length > 0) {
    return { kind: 'bad', code: 'snapshot-error', detail: `Snapshot(s) in state error: ${errored.join(', ')}.`, snapshots: refs, unusable };
  }
  if (crash.length > 0) {
    return { kind: 'bad', code: 'crash-consistent', detail: `Snapshot(s) not tagged ${methodDriver(state.options.method).consistencyTag}: ${crash.join(', ')}.`, snapshots: refs, unusable };
  }
  if (missing.length > 0) {
    if (now - since < SNAPSHOT_VISIBILITY_GRACE_MS) return { kind: 'pending', missing: true, decisionInMs: SNAPSHOT_VISIBILITY_GRACE_MS - (now - since) };
    return { kind: 'bad', code: 'no-snapshots', detail: `No snapshot tagged with this run for ${missing.join(', ')}.`, snapshots: refs, unusable: refs.map((r) => r.snapshotId) };
  }
  if (pending.length > 0) {
    const deadlineInMs = config.snapshotDeadlineSeconds * 1000 - (now - since);
    if (deadlineInMs > 0) return { kind: 'pending', missing: false, decisionInMs: Math.min(pendingWaitMs, deadlineInMs) };
    return {
      kind: 'bad',
      code: 'snapshot-timeout',
      detail: `Still pending after ${Math.round(config.snapshotDeadlineSeconds / 60)} minutes: ${pending.join(', ')}.`,
      snapshots: refs,
      unusable: [],
    };
  }
  return { kind: 'ok', snapshots: refs };
}

/**
 * Deletes the snapshots listed in `state.discard`, removing each from the list, until the list is empty or
 * `until` (epoch ms) has passed; the rest stay for the next invocation. EC2 refusing a deletion is not
 * fatal (already gone — a retried invocation repeats deletions —, in use by an AMI, not permitted): the
 * snapshot stays, tagged with the run and its attempt, and the retry goes ahead. Anything else (throttling
 * the SDK could not ride out, a timeout) fails the step, which is retried with the list saved.
 */
async function discardSnapshots(ec2: EC2Client, state: RunState, until: number): Promise<void> {
  const ids = state.discard ?? [];
  let done = 0;
  try {
    for (const id of ids) {
      if (clock.now() >= until) break;
      try {
        await ec2.send(new DeleteSnapshotCommand({ SnapshotId: id }));
      } catch (error) {
        if (!isRefusal(error)) throw error;
      }
      done += 1;
    }
  } finally {
    if (done >= ids.length) delete state.discard;
    else state.discard = ids.slice(done);
  }
}

/** An answer from EC2 that this request will not succeed (4xx, not throttling). */
function isRefusal(error: unknown): boolean {
  const e = error as { name?: string; $fault?: string } | undefined;
  return e?.$fault === 'client' && !(TRANSIENT_AWS_ERRORS as readonly string[]).includes(e.name ?? '');
}
