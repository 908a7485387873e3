/** The shape of every restore step after Validate Input: parse the restore state, do one thing, log, return it. */
import { logger } from '../observability.ts';
import { parseRestoreState } from './state.ts';
import type { RestoreState } from './state.ts';

export function restoreStep<T>(step: string, work: (state: RestoreState) => Promise<T>) {
  return async (event: unknown): Promise<T> => {
    const state = parseRestoreState(event);
    const result = await work(state);
    logger.info(step, { restoreId: state.restore.restoreId, runId: state.restore.runId, target: state.restore.targetInstanceId });
    return result;
  };
}
