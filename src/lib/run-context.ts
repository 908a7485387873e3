/**
 * The small object that travels between the workflow's states: ids, counts and the next wait, never
 * per-instance detail (that lives in the run state object, see run-state.ts). Its size does not grow
 * with the fleet, which keeps every state far below Step Functions' 256 KiB payload limit.
 */
import * as z from 'zod';
import { InvalidStateInputError } from './errors.ts';

const Counts = z.object({
  send: z.number().int(),
  command: z.number().int(),
  verify: z.number().int(),
  retry: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  skipped: z.number().int(),
  planned: z.number().int(),
  /** Sends whose answer was lost and whose command SSM does not list yet. */
  unconfirmed: z.number().int().min(0).default(0),
  /** Snapshots decided for deletion and not deleted yet (bounded per invocation). */
  discard: z.number().int().min(0).default(0),
});

const EMPTY_COUNTS = { send: 0, command: 0, verify: 0, retry: 0, succeeded: 0, failed: 0, skipped: 0, planned: 0, unconfirmed: 0, discard: 0 };

export const RunContextSchema = z.object({
  runId: z.string().regex(/^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/),
  dryRun: z.boolean(),
  /** In a child execution of the Distributed Map: the shard it advances. */
  shard: z.number().int().min(0).optional(),
  /** From Discover Instances: the shards with work to do (the Map's items). */
  shards: z.array(z.number().int().min(0)).optional(),
  /** Every instance final and the leftovers swept: the shard's loop ends (the run's: on to Finish Run). */
  done: z.boolean().default(false),
  counts: Counts.default(EMPTY_COUNTS),
  waits: z
    .object({
      /** Seconds until something is due: a send, a poll, a snapshot check, the sweep (Advance Instances sets it). */
      nextSeconds: z.number().int().positive(),
      /** The same as a time: the Wait state waits until then (TimestampPath). */
      resumeAt: z.string().optional(),
    })
    .default({ nextSeconds: 1 }),
});

export type RunContext = z.infer<typeof RunContextSchema>;

/** Parses a state's input; anything else means the definition and the handlers disagree. */
export function parseRunContext(raw: unknown): RunContext {
  const result = RunContextSchema.safeParse(raw);
  if (!result.success) {
    throw new InvalidStateInputError(`State input is not a run context: ${result.error.issues[0]?.path.join('.')} ${result.error.issues[0]?.message}`);
  }
  return result.data;
}
