/**
 * The per-instance detail of a run. Step Functions payloads are capped at 256 KiB, so the workflow passes
 * only ids and counts between states (see `RunContext`) and keeps this object in the report bucket, where
 * every step reads and rewrites it. Steps run one after another, so there is a single writer at a time.
 */
import type { RetentionMode } from './execution-input.ts';
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { inParallel } from './in-parallel.ts';
import type { SnapshotMethod } from './config.ts';
import { RunStateNotFoundError } from './errors.ts';

/** Where an instance is in the run. The last four are final. */
export type Phase =
  | 'send' // due for its first snapshot command
  | 'command' // command sent (or possibly sent: see SentCommand.status), waiting for its own invocation to be final
  | 'verify' // its invocation succeeded; waiting for its snapshots to be visible, completed and consistent
  | 'retry' // failed in a way worth retrying; gets its next command at `dueAt` (its own failure + the retry delay)
  | 'succeeded'
  | 'failed'
  | 'skipped'
  | 'planned';

export const FINAL_PHASES: readonly Phase[] = ['succeeded', 'failed', 'skipped', 'planned'];
export const isFinal = (phase: Phase): boolean => FINAL_PHASES.includes(phase);

export interface VolumeRef {
  volumeId: string;
  device: string;
  boot: boolean;
}

export interface SnapshotRef {
  snapshotId: string;
  volumeId: string;
  device?: string;
  state: string;
}

export interface InstanceRecord {
  instanceId: string;
  name?: string;
  availabilityZone?: string;
  volumes: VolumeRef[];
  /**
   * Whether the instance carries the deployed selector tag, which the stack's IAM requires for the snapshot
   * command (false only when the run's input selected by another tag). Absent in older states: true.
   */
  inSendScope?: boolean;
  phase: Phase;
  /** Snapshot commands sent to this instance so far (the attempt number of the latest). */
  attempts: number;
  /** Phase `send`/`retry`: not to be sent before this (epoch ms). */
  dueAt?: number;
  /** Machine-readable cause of the last failure (see failure-catalogue.ts). */
  code?: string;
  reason?: string;
  /** The reason without the advice: what the alert lists per instance. */
  detail?: string;
  /** The comment of the send that carried the current command (its id may still be unknown). */
  sendComment?: string;
  commandId?: string;
  /** When the command was seen final: the start of the snapshot verification window. */
  verifySince?: number;
  /** Phase `verify`: when to look at its snapshots next. */
  nextCheckAt?: number;
  /** When the outcome became final (epoch ms; contract §4 `finishedAt`). */
  finishedAt?: number;
  /** The verified set (succeeded). Failed instances report none here: see `fallbackSnapshots`. */
  snapshots: SnapshotRef[];
  /** Failed instances: the last attempt's complete crash-consistent set, kept on purpose and tagged so. */
  fallbackSnapshots?: SnapshotRef[];
  /** Not final because the execution working on it failed: what failed (set when the whole run is read). */
  stoppedBy?: string;
}

/**
 * One SendCommand of this run. `unconfirmed`: its answer was lost (or the Lambda died around it) and SSM does
 * not list it yet — it may exist; `lost`: it stayed unlisted past the confirm window and its instances were
 * sent again; `open`: running; `done`: every targeted instance judged.
 */
export interface SentCommand {
  comment: string;
  commandId?: string;
  attempt: number;
  instanceIds: string[];
  sentAt: number;
  status: 'unconfirmed' | 'open' | 'done' | 'lost';
  /** Give-up time: past it, what is not final is cancelled and counted as `no-result`. */
  deadline: number;
  /** When to read its invocations (or look for it, if unconfirmed) next. */
  nextPollAt: number;
  /** Final invocations ListCommands counted when last read (reading again pays only when it grows). */
  completedSeen: number;
}

/**
 * The run's state. The run itself (written by Prepare Run: selector, options, lease, alert records) is one
 * object, `runs/<runId>/state.json`; its instances live in shards of at most SHARD_INSTANCES, one object each
 * (`runs/<runId>/shards/<n>.json`), each advanced by its own child execution of the Distributed Map. A shard has
 * the same shape, with `shard` set: every step touches only the shard it works on.
 */
export interface RunState {
  runId: string;
  /** Set on a shard: its number (0-based). */
  shard?: number;
  /** Set on the run object once Discover Instances has written the shards: how many there are. */
  shards?: number;
  /**
   * Set on a shard: how many shards the run has. With more than one, this run's snapshots in EC2 are not all
   * this shard's, so its listings ask for its own volumes only (verify-snapshots.ts, sweep-run.ts).
   */
  ofShards?: number;
  /** Set on a shard whose child execution failed: the error, for the report (Record Shard Failure). */
  shardError?: { error: string; cause: string };
  executionArn: string;
  startedAt: string;
  dryRun: boolean;
  selector: { tagKey: string; tagValue: string; instanceIds?: string[] };
  options: {
    method: SnapshotMethod;
    excludeBootVolume: boolean;
    maxAttempts: number;
    /** The retention pass of this run (execution input `retention`; absent in states of older versions: apply). */
    retention?: RetentionMode;
  };
  /** Requested instance ids that matched nothing (absent, untagged or terminated). */
  notFound: string[];
  commands: SentCommand[];
  instances: InstanceRecord[];
  /** Incremented by every save of a step that sends: tells a retried step the intents of its own earlier try. */
  tickSeq?: number;
  /** Numbers sends within the run (their Comments are unique). */
  sendCounter?: number;
  /** The next slice of commands may go out at this time (pacing, config SEND_SLICE_SECONDS). */
  nextSendAt?: number;
  /** This shard's share of the run's send clock (send-clock.ts), claimed for later: when, and for how many. */
  sendClaim?: { at: number; instances: number };
  /** The leftover sweep ran: every snapshot of the run is kept, kept as a fallback, or queued for deletion. */
  swept?: boolean;
  finishedAt?: string;
  alertMessageId?: string;
  /** The workflow-failure alert, once published (workflow-failure.ts): a retried alert step does not repeat it. */
  failureAlertMessageId?: string;
  /** Snapshots to delete, saved before any deletion (verify-snapshots.ts, sweep-run.ts). */
  discard?: string[];
  /**
   * Kinds of work the account said "not now" to (throttling, 5xx after the SDK's retries): when each may be
   * done again, and how many times in a row (backoff.ts).
   */
  backoff?: Partial<Record<'delete' | 'poll' | 'check', { until: number; times: number }>>;
  /** The run lease this run holds (run-lease.ts), released when it finishes. */
  lease?: { key: string };
}

export const stateKey = (runId: string): string => `runs/${runId}/state.json`;
export const shardKey = (runId: string, shard: number): string => `runs/${runId}/shards/${shard}.json`;
const keyOf = (state: Pick<RunState, 'runId' | 'shard'>): string => (state.shard === undefined ? stateKey(state.runId) : shardKey(state.runId, state.shard));
export const reportKey = (runId: string): string => `reports/${runId}.json`;

/** Shard objects read or written at once (Discover Instances writes them, Finish Run reads them back). */
export const SHARD_IO_IN_FLIGHT = 8;

/** What is saved of a whole run (loadWholeRun) as the run object: without its shards' instances and commands. */
export function runObjectOf(state: RunState & { shardErrors?: unknown }): RunState {
  const { shardErrors: _shardErrors, ...rest } = state;
  return state.shards === undefined ? rest : { ...rest, instances: [], commands: [] };
}

/** The run object (no `shard`), or one shard of it. */
export async function loadRunState(s3: S3Client, bucket: string, runId: string, shard?: number): Promise<RunState> {
  const key = keyOf({ runId, ...(shard !== undefined ? { shard } : {}) });
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = await out.Body?.transformToString();
    if (!text) throw new RunStateNotFoundError(`Run state s3://${bucket}/${key} is empty.`);
    return JSON.parse(text) as RunState;
  } catch (error) {
    if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) {
      throw new RunStateNotFoundError(`Run state s3://${bucket}/${key} does not exist; was it deleted, or does REPORT_BUCKET point elsewhere?`);
    }
    throw error;
  }
}

/** Saves the run object or a shard (by its `shard`). */
export async function saveRunState(s3: S3Client, bucket: string, state: RunState): Promise<void> {
  await s3.send(new PutObjectCommand({ Bucket: bucket, Key: keyOf(state), Body: JSON.stringify(state), ContentType: 'application/json' }));
}

/**
 * The whole run: the run object with the instances and commands of every shard, in shard order (what the
 * report, the alert and progress read). Shards not written yet (or lost) are left out.
 */
export async function loadWholeRun(s3: S3Client, bucket: string, runId: string): Promise<RunState & { shardErrors: { shard: number; error: string; cause: string }[] }> {
  const run = await loadRunState(s3, bucket, runId);
  const whole = { ...run, instances: [...run.instances], commands: [...run.commands], shardErrors: [] as { shard: number; error: string; cause: string }[] };
  // A few at a time (a run of 100,000 instances has 100 shards), then joined in shard order.
  const shards = await inParallel(Array.from({ length: run.shards ?? 0 }, (_, n) => n), SHARD_IO_IN_FLIGHT, async (n) => {
    try {
      return await loadRunState(s3, bucket, runId, n);
    } catch (error) {
      if (error instanceof RunStateNotFoundError) return undefined;
      throw error;
    }
  });
  for (const [n, shard] of shards.entries()) {
    if (!shard) {
      // Its instances are unknown without it: the run must not look complete (Finish Run alerts a shard failure).
      whole.shardErrors.push({ shard: n, error: 'ShardStateMissing', cause: `the run-state object of shard ${n} (${shardKey(runId, n)}) is missing from the report bucket; its instances are not in this report.` });
      continue;
    }
    if (shard.shardError) {
      whole.shardErrors.push({ shard: n, ...shard.shardError });
      const stoppedBy = `the execution working on its shard (${n}) failed: ${shard.shardError.error}: ${shard.shardError.cause}`.slice(0, 600);
      for (const i of shard.instances) if (!isFinal(i.phase)) i.stoppedBy = stoppedBy;
    }
    whole.instances.push(...shard.instances);
    whole.commands.push(...shard.commands);
  }
  return whole;
}

/** Counts of instances per phase: what the progress shows and the state machine's Choice states route on. */
export interface PhaseCounts {
  send: number;
  command: number;
  verify: number;
  retry: number;
  succeeded: number;
  failed: number;
  skipped: number;
  planned: number;
}

export function countPhases(state: RunState): PhaseCounts {
  const counts: PhaseCounts = { send: 0, command: 0, verify: 0, retry: 0, succeeded: 0, failed: 0, skipped: 0, planned: 0 };
  for (const instance of state.instances) counts[instance.phase] += 1;
  return counts;
}

/**
 * `t` rounded up to the run's grid of `stepMs` (counted from the run's start). Polls and checks of different
 * instances fall on the same grid points, so one wake-up of the workflow serves them all.
 */
export function onGrid(t: number, state: Pick<RunState, 'startedAt'>, stepMs: number): number {
  const start = Date.parse(state.startedAt);
  if (!(stepMs > 0) || Number.isNaN(start) || t <= start) return t;
  return start + Math.ceil((t - start) / stepMs) * stepMs;
}

/** Every instance is final, every command settled, the leftovers swept and deleted: Finish Run may go. */
export function runIsDone(state: RunState): boolean {
  return state.instances.every((i) => isFinal(i.phase)) && (state.swept === true || state.dryRun || state.commands.length === 0) && (state.discard ?? []).length === 0;
}
