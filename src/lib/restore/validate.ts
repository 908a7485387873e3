/**
 * "Validate Input": checks the operator's input and fixes the restore id, before any AWS call. The
 * restore id comes from the execution ARN and start time, so every retry of every step agrees on it.
 */
import * as z from 'zod';
import { InvalidStateInputError } from '../errors.ts';
import { runIdFor } from '../run-id.ts';
import { normalizeDevice } from './devices.ts';
import { parseRestoreInput } from './input.ts';
import { restoreRegion } from './region.ts';
import type { RestoreState } from './state.ts';

const ValidateEvent = z.object({
  input: z.unknown(),
  execution: z.object({ id: z.string().min(1), startTime: z.string().min(1) }),
});

export function validateRestoreInput(event: unknown): RestoreState {
  const parsed = ValidateEvent.safeParse(event);
  if (!parsed.success) throw new InvalidStateInputError('Validate Input needs {input, execution: {id, startTime}} from the state machine.');
  const input = parseRestoreInput(parsed.data.input);
  const region = restoreRegion(input.region);
  const { id, startTime } = parsed.data.execution;
  return {
    restore: {
      restoreId: runIdFor(id, startTime),
      executionId: id,
      runId: input.runId,
      sourceInstanceId: input.sourceInstanceId,
      targetInstanceId: input.targetInstanceId,
      devices: input.devices ? input.devices.map(normalizeDevice) : null,
      keepOnFailure: input.keepOnFailure ?? false,
      startedAt: Number.isNaN(Date.parse(startTime)) ? new Date(0).toISOString() : new Date(startTime).toISOString(),
      ...(region ? { region } : {}),
    },
  };
}
