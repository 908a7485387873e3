/**
 * Splitting a run into shards (Discover Instances, after discovery): the run's instances go into shards of
 * at most SHARD_INSTANCES, each its own object in the report bucket and its own child execution of the
 * Distributed Map, so every step reads and rewrites only the shard it works on — the same few hundred KB
 * whatever the fleet — and no execution's history grows with the fleet.
 *
 * The shards send in turn: shard n's first slice is due when the slices of the shards before it have gone
 * out, one slice per SEND_SLICE_SECONDS, the pace the account's CreateSnapshots bucket sustains (send-commands.ts),
 * with one empty slice between two shards.
 */
import { clock } from './clock.ts';
import type { Config } from './config.ts';
import { inParallel } from './in-parallel.ts';
import { SHARD_IO_IN_FLIGHT, isFinal, saveRunState } from './run-state.ts';
import type { RunState } from './run-state.ts';
import type { S3Client } from '@aws-sdk/client-s3';

/** Writes the shards of `run` (whose `instances` discovery filled), empties the run object's list; returns the shards with work. */
export async function writeShards(deps: { s3: S3Client; config: Config }, run: RunState): Promise<number[]> {
  const { config } = deps;
  const now = clock.now();
  const size = config.shardInstances;
  const count = Math.ceil(run.instances.length / size);
  const withWork: number[] = [];
  const shards: RunState[] = [];
  let slicesBefore = 0;
  for (let n = 0; n < count; n += 1) {
    const instances = run.instances.slice(n * size, (n + 1) * size);
    const sendable = instances.filter((i) => !isFinal(i.phase)).length;
    const shard: RunState = {
      ...run,
      shard: n,
      ofShards: count,
      instances,
      commands: [],
      tickSeq: 0,
      // The shard's first slice waits for the slices of the shards before it, and one slice more: a shard's last
      // slice may go out a few seconds late (its step's own latency), and two slices in one 20 s would overrun
      // the CreateSnapshots bucket and fail VSS freezes.
      nextSendAt: now + (slicesBefore + n) * config.sendSliceSeconds * 1000,
    };
    delete shard.shards;
    delete shard.lease;
    slicesBefore += Math.ceil(sendable / config.sendSliceInstances);
    shards.push(shard);
    if (sendable > 0) withWork.push(n);
  }
  await inParallel(shards, SHARD_IO_IN_FLIGHT, (shard) => saveRunState(deps.s3, config.reportBucket, shard));
  run.shards = count;
  run.instances = [];
  return withWork;
}
