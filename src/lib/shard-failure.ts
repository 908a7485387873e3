/**
 * "Record Shard Failure": when a child execution of the Distributed Map fails (a step's retries exhausted), it
 * records the error in its shard and ends, so that the other shards go on — one shard's trouble never stops
 * the others' snapshots — and Finish Run reports that shard's unfinished instances with the error, in the
 * run's one alert.
 */
import type { S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod';
import type { Config } from './config.ts';
import { InvalidStateInputError } from './errors.ts';
import { loadRunState, saveRunState } from './run-state.ts';

const ShardFailureEvent = z.object({
  runId: z.string().regex(/^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/),
  shard: z.number().int().min(0),
  error: z.object({ Error: z.string().default('Unknown'), Cause: z.unknown().optional() }).default({ Error: 'Unknown' }),
});

export async function recordShardFailure(deps: { s3: S3Client; config: Config }, event: unknown): Promise<{ shard: number; recorded: true }> {
  const parsed = ShardFailureEvent.safeParse(event);
  if (!parsed.success) throw new InvalidStateInputError('Record Shard Failure needs {runId, shard, error}.');
  const { runId, shard, error } = parsed.data;
  const state = await loadRunState(deps.s3, deps.config.reportBucket, runId, shard);
  const cause = typeof error.Cause === 'string' ? causeText(error.Cause) : JSON.stringify(error.Cause ?? '(none)');
  state.shardError = { error: error.Error, cause: cause.slice(0, 1000) };
  await saveRunState(deps.s3, deps.config.reportBucket, state);
  return { shard, recorded: true };
}

function causeText(cause: string): string {
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    if (parsed.errorMessage) return parsed.errorMessage;
  } catch {
    // A plain message.
  }
  return cause;
}
