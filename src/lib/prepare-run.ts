/**
 * "Prepare Run": checks the operator's input, refuses to overlap a running execution (unless `force`) by
 * taking the run lease (run-lease.ts), fixes the run id and settings, and writes the run state object every
 * later step works on.
 */
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod';
import type { Config } from './config.ts';
import { InvalidStateInputError } from './errors.ts';
import { parseExecutionInput } from './execution-input.ts';
import type { RunContext } from './run-context.ts';
import { runIdFor } from './run-id.ts';
import { acquireLease } from './run-lease.ts';
import { countPhases, saveRunState } from './run-state.ts';
import type { RunState } from './run-state.ts';

export const PrepareRunEvent = z.object({
  input: z.unknown(),
  execution: z.object({
    id: z.string().min(1),
    name: z.string().min(1),
    startTime: z.string().min(1),
    stateMachineId: z.string().min(1),
  }),
});
export type PrepareRunEvent = z.infer<typeof PrepareRunEvent>;

export interface PrepareRunDeps {
  sfn: SFNClient;
  s3: S3Client;
  config: Config;
}

export async function prepareRun(event: unknown, deps: PrepareRunDeps): Promise<RunContext> {
  const parsedEvent = PrepareRunEvent.safeParse(event);
  if (!parsedEvent.success) throw new InvalidStateInputError('Prepare Run needs {input, execution{id,name,startTime,stateMachineId}}.');
  const { execution } = parsedEvent.data;
  const input = parseExecutionInput(parsedEvent.data.input);
  const { config } = deps;

  const leaseKey = input.force === true ? undefined : await acquireLease({ s3: deps.s3, sfn: deps.sfn, bucket: config.reportBucket }, execution);

  const runId = runIdFor(execution.id, execution.startTime);
  const state: RunState = {
    runId,
    executionArn: execution.id,
    startedAt: new Date(execution.startTime).toISOString(),
    dryRun: input.dryRun ?? false,
    selector: {
      tagKey: input.tagKey ?? config.tagKey,
      tagValue: input.tagValue ?? config.tagValue,
      ...(input.instanceIds ? { instanceIds: input.instanceIds } : {}),
    },
    options: {
      method: config.method,
      excludeBootVolume: input.excludeBootVolume ?? config.excludeBootVolume,
      maxAttempts: input.maxAttempts ?? config.maxAttempts,
      // A dry run never deletes: at most it previews.
      retention: input.dryRun === true && (input.retention ?? 'apply') === 'apply' ? 'preview' : (input.retention ?? 'apply'),
    },
    notFound: [],
    commands: [],
    instances: [],
    tickSeq: 0,
    ...(leaseKey ? { lease: { key: leaseKey } } : {}),
  };
  await saveRunState(deps.s3, config.reportBucket, state);
  return { runId, dryRun: state.dryRun, done: false, counts: { ...countPhases(state), unconfirmed: 0, discard: 0 }, waits: { nextSeconds: 1 } };
}
