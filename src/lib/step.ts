/**
 * The shape every middle step of the workflow shares: parse the run context, load the run state, do one
 * thing, save the state, and hand the next state the fresh counts it routes on.
 */
import { clients } from './clients.ts';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { logger } from './observability.ts';
import { parseRunContext } from './run-context.ts';
import type { RunContext } from './run-context.ts';
import { countPhases, loadRunState, saveRunState } from './run-state.ts';
import type { RunState } from './run-state.ts';

/** What a step may tell the state machine besides the counts: when to poll the snapshots again. */
export interface StepOutcome {
  nextPollSeconds?: number;
}

export function stepHandler(step: string, work: (state: RunState, config: Config) => Promise<void | StepOutcome>) {
  return async (event: unknown): Promise<RunContext> => {
    const context = parseRunContext(event);
    const config = loadConfig();
    const state = await loadRunState(clients.s3, config.reportBucket, context.runId);
    const outcome = await work(state, config);
    await saveRunState(clients.s3, config.reportBucket, state);
    // `discard`: unusable snapshots still to delete; the workflow polls on until there are none.
    const counts = { ...countPhases(state), discard: state.discard?.length ?? 0 };
    logger.info(step, { runId: state.runId, wave: state.wave, counts });
    const waits = outcome?.nextPollSeconds ? { ...context.waits, snapshotPollSeconds: outcome.nextPollSeconds } : context.waits;
    return { ...context, wave: state.wave, counts, waits };
  };
}
