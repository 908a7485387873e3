/**
 * The small object that travels between the workflow's states: ids, counts and wait times, never
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
  /** Unusable snapshots not yet deleted (bounded per invocation); absent before a step reported it. */
  discard: z.number().int().min(0).default(0),
});

export const RunContextSchema = z.object({
  runId: z.string().regex(/^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/),
  dryRun: z.boolean(),
  wave: z.number().int().min(0),
  counts: Counts,
  waits: z.object({
    commandPollSeconds: z.number().int().positive(),
    /** Set by Prepare Run from the configuration, then by each Verify to its adaptive next wait. */
    snapshotPollSeconds: z.number().int().positive(),
    retryDelaySeconds: z.number().int().min(0),
    /** Between two slices of one wave's commands (config SEND_SLICE_SECONDS). */
    sendSliceSeconds: z.number().int().positive().default(20),
  }),
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
