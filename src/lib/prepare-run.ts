/**
 * "Prepare Run": checks the operator's input, refuses to overlap a running execution (unless `force`),
 * fixes the run id and settings, and writes the run state object every later step works on.
 */
import { ListExecutionsCommand } from '@aws-sdk/client-sfn';
import type { SFNClient } from '@aws-sdk/client-sfn';
import type { S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod';
import type { Config } from './config.ts';
import { InvalidStateInputError, RunInProgressError } from './errors.ts';
import { parseExecutionInput } from './execution-input.ts';
import type { RunContext } from './run-context.ts';
import { runIdFor } from './run-id.ts';
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

  if (input.force !== true) await refuseOverlap(deps.sfn, execution);

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
    },
    notFound: [],
    wave: 0,
    commands: [],
    instances: [],
  };
  await saveRunState(deps.s3, config.reportBucket, state);
  return {
    runId,
    dryRun: state.dryRun,
    wave: 0,
    counts: { ...countPhases(state), discard: 0 },
    waits: {
      commandPollSeconds: config.commandPollSeconds,
      snapshotPollSeconds: config.snapshotPollSeconds,
      retryDelaySeconds: config.retryDelaySeconds,
      sendSliceSeconds: config.sendSliceSeconds,
    },
  };
}

/**
 * Two executions can start together (the schedule and an operator). Each sees the other as running, so
 * the earlier one (then the smaller ARN) wins and the other stops before doing anything.
 */
async function refuseOverlap(sfn: SFNClient, execution: PrepareRunEvent['execution']): Promise<void> {
  const ownStart = new Date(execution.startTime).getTime();
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn: execution.stateMachineId, statusFilter: 'RUNNING', maxResults: 100, nextToken }),
    );
    for (const other of page.executions ?? []) {
      if (!other.executionArn || other.executionArn === execution.id) continue;
      const otherStart = other.startDate ? new Date(other.startDate).getTime() : 0;
      const otherFirst = otherStart < ownStart || (otherStart === ownStart && other.executionArn < execution.id);
      if (otherFirst) {
        throw new RunInProgressError(
          `Another snapshot run is in progress: execution "${other.name ?? other.executionArn}" started ${new Date(otherStart).toISOString()}. ` +
            'Nothing was done by this run. Wait for that run to finish, or start this one again with {"force": true} to run both.',
        );
      }
    }
    nextToken = page.nextToken;
  } while (nextToken);
}
