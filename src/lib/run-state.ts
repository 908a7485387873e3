/**
 * The per-instance detail of a run. Step Functions payloads are capped at 256 KiB, so the workflow passes
 * only ids and counts between states (see `RunContext`) and keeps this object in the report bucket, where
 * every step reads and rewrites it. Steps run one after another, so there is a single writer at a time.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SnapshotMethod } from './config.ts';
import { RunStateNotFoundError } from './errors.ts';

/** Where an instance is in the run. The last four are final. */
export type Phase =
  | 'send' // waiting for its next snapshot command
  | 'command' // command sent, waiting for its invocation to be final
  | 'verify' // command succeeded, waiting for the snapshots to be completed and checked
  | 'retry' // failed in a way worth retrying; gets a new command after the retry delay
  | 'succeeded'
  | 'failed'
  | 'skipped'
  | 'planned';

export const FINAL_PHASES: readonly Phase[] = ['succeeded', 'failed', 'skipped', 'planned'];

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
  phase: Phase;
  /** Snapshot commands sent to this instance so far. */
  attempts: number;
  /** Machine-readable cause of the last failure (see failure-catalogue.ts). */
  code?: string;
  reason?: string;
  /** The reason without the advice: what the alert lists per instance. */
  detail?: string;
  commandId?: string;
  /** When the command was seen final: the start of the snapshot verification window. */
  verifySince?: number;
  snapshots: SnapshotRef[];
}

export interface SentCommand {
  commandId: string;
  wave: number;
  attempt: number;
  instanceIds: string[];
  sentAt: number;
}

export interface RunState {
  runId: string;
  executionArn: string;
  startedAt: string;
  dryRun: boolean;
  selector: { tagKey: string; tagValue: string; instanceIds?: string[] };
  options: {
    method: SnapshotMethod;
    excludeBootVolume: boolean;
    maxAttempts: number;
  };
  /** Requested instance ids that matched nothing (absent, untagged or terminated). */
  notFound: string[];
  /** Current wave of commands (1 = first attempt for everyone). */
  wave: number;
  /** Give-up time of the current wave's commands (epoch ms). */
  commandDeadline?: number;
  commands: SentCommand[];
  instances: InstanceRecord[];
  finishedAt?: string;
  alertMessageId?: string;
  /** The workflow-failure alert, once published (workflow-failure.ts): a retried alert step does not repeat it. */
  failureAlertMessageId?: string;
  /** Unusable snapshots of attempts being retried, to delete once the verdicts are saved (verify-snapshots.ts). */
  discard?: string[];
}

export const stateKey = (runId: string): string => `runs/${runId}/state.json`;
export const reportKey = (runId: string): string => `reports/${runId}.json`;

export async function loadRunState(s3: S3Client, bucket: string, runId: string): Promise<RunState> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: stateKey(runId) }));
    const text = await out.Body?.transformToString();
    if (!text) throw new RunStateNotFoundError(`Run state s3://${bucket}/${stateKey(runId)} is empty.`);
    return JSON.parse(text) as RunState;
  } catch (error) {
    if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) {
      throw new RunStateNotFoundError(
        `Run state s3://${bucket}/${stateKey(runId)} does not exist; was it deleted, or does REPORT_BUCKET point elsewhere?`,
      );
    }
    throw error;
  }
}

export async function saveRunState(s3: S3Client, bucket: string, state: RunState): Promise<void> {
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: stateKey(state.runId),
      Body: JSON.stringify(state),
      ContentType: 'application/json',
    }),
  );
}

/** Counts of instances per phase: what the state machine's Choice states route on. */
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
