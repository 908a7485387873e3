import { createHash } from 'node:crypto';

/**
 * A run id that is the same for every retry of a step of one execution (derived from the execution ARN
 * and start time), sorts by time, and is safe in tags, S3 keys and SSM parameters: `20261128T000000Z-3f2a9c1e`.
 */
export function runIdFor(executionArn: string, startTime: string): string {
  const started = new Date(startTime);
  const stamp = Number.isNaN(started.getTime()) ? '19700101T000000Z' : started.toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+Z$/, 'Z');
  const hash = createHash('sha256').update(executionArn).digest('hex').slice(0, 8);
  return `${stamp}-${hash}`;
}

/** Tag keys this project writes on every snapshot it creates. */
export const RUN_TAG = 'vss-snapshots:run-id';
export const ATTEMPT_TAG = 'vss-snapshots:attempt';
export const METHOD_TAG = 'vss-snapshots:method';
/** The shard of the run whose command made the snapshot (aws-vss: in the document's `tags`), for per-shard listings. */
export const SHARD_TAG = 'vss-snapshots:shard';
export const INSTANCE_TAG = 'vss-snapshots:instance-id';
/**
 * The stack that made the snapshot (`<service>-<stage>`, env STACK_ID): retention deletes only snapshots that carry
 * this stack's value, never another stage's, a manual, DLM or AWS Backup snapshot.
 */
export const STACK_TAG = 'vss-snapshots:stack';
/** Any value: retention never deletes the snapshot (contract §7). */
export const HOLD_TAG = 'vss-snapshots:hold';
/** Per-instance retention override: `count=N`, `days=N` or `count=N,days=M` (contract §7). */
export const RETAIN_TAG = 'vss-snapshots:retain';
/** On a DR copy: the snapshot it was copied from, that snapshot's Region and volume (a copy's own VolumeId is meaningless). */
export const SOURCE_SNAPSHOT_TAG = 'vss-snapshots:source-snapshot';
export const SOURCE_REGION_TAG = 'vss-snapshots:source-region';
export const SOURCE_VOLUME_TAG = 'vss-snapshots:source-volume';
/** On a DR copy: when its source snapshot was started (ISO-8601): DR retention measures ages from it. */
export const SOURCE_TIME_TAG = 'vss-snapshots:source-time';
/** On a DR copy: how many snapshots its set has (a restore in the DR Region tells a set with a copy never made). */
export const SET_SIZE_TAG = 'vss-snapshots:set-size';
