/**
 * Where each instance of a run is, for people watching it (`vss-snapshots run` progress, `--follow` on a
 * deployed stack). The workflow's payloads carry only counts; the per-instance detail is in the run state in
 * the report bucket. Every reader of progress goes through `readRunProgress`, so when that storage changes
 * (e.g. the run state is split into shards) only this function changes.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import type { Phase } from './run-state.ts';
import { loadWholeRun } from './run-state.ts';

export interface InstanceProgress {
  instanceId: string;
  name?: string;
  phase: Phase;
  /** Snapshot commands sent to this instance so far. */
  attempts: number;
  code?: string;
  /** Why the last attempt failed, without the advice. */
  detail?: string;
  reason?: string;
}

export interface RunProgress {
  runId: string;
  dryRun: boolean;
  /** Attempts an instance gets in this run (1-5). */
  maxAttempts: number;
  finishedAt?: string;
  instances: InstanceProgress[];
}

/** The progress of run `runId`, or undefined while its state does not exist yet (before Prepare Run wrote it). */
export async function readRunProgress(s3: S3Client, bucket: string, runId: string): Promise<RunProgress | undefined> {
  let state;
  try {
    state = await loadWholeRun(s3, bucket, runId);
  } catch (error) {
    if (error instanceof Error && error.name === 'RunStateNotFoundError') return undefined;
    throw error;
  }
  return {
    runId: state.runId,
    dryRun: state.dryRun,
    maxAttempts: state.options.maxAttempts,
    ...(state.finishedAt ? { finishedAt: state.finishedAt } : {}),
    instances: state.instances.map((i) => ({
      instanceId: i.instanceId,
      ...(i.name !== undefined ? { name: i.name } : {}),
      phase: i.phase,
      attempts: i.attempts,
      ...(i.code !== undefined ? { code: i.code } : {}),
      ...(i.detail !== undefined ? { detail: i.detail } : {}),
      ...(i.reason !== undefined ? { reason: i.reason } : {}),
    })),
  };
}
