/**
 * The shape every middle step of the workflow shares: parse the run context, load the run state, do one
 * thing, save the state, and hand the next state the fresh counts and the next wait it routes on.
 */
import { clients } from './clients.ts';
import { clock } from './clock.ts';
import { loadConfig } from './config.ts';
import type { Config } from './config.ts';
import { logger } from './observability.ts';
import { parseRunContext } from './run-context.ts';
import type { RunContext } from './run-context.ts';
import { countPhases, loadRunState, runIsDone, saveRunState } from './run-state.ts';
import type { RunState } from './run-state.ts';

/** What a step may tell the state machine besides the counts. */
export interface StepOutcome {
  nextSeconds?: number;
  /** When the next thing is due (epoch ms); else `nextSeconds` from the end of the step. */
  resumeAtMs?: number;
  done?: boolean;
}

export function stepHandler(step: string, work: (state: RunState, config: Config) => Promise<void | StepOutcome>) {
  return async (event: unknown): Promise<RunContext> => {
    const context = parseRunContext(event);
    const config = loadConfig();
    // A child of the Distributed Map works on its shard; the parent's steps on the run object.
    const state = await loadRunState(clients.s3, config.reportBucket, context.runId, context.shard);
    const outcome = await work(state, config);
    await saveRunState(clients.s3, config.reportBucket, state);
    const counts = {
      ...countPhases(state),
      unconfirmed: state.commands.filter((c) => c.status === 'unconfirmed').length,
      discard: state.discard?.length ?? 0,
    };
    const done = outcome?.done ?? runIsDone(state);
    const nextSeconds = outcome?.nextSeconds ?? 1;
    logger.info(step, { runId: state.runId, shard: state.shard, counts, done });
    // On a whole second, rounded up: Step Functions reads a Wait's timestamp to the second and drops the rest
    // (developer guide, "Wait workflow state"), which would wake the step up to 999 ms before anything is due —
    // a wasted wake-up, and another one a second later.
    const resumeAt = new Date(Math.ceil((outcome?.resumeAtMs ?? clock.now() + nextSeconds * 1000) / 1000) * 1000).toISOString().replace(/\.000Z$/, 'Z');
    return { ...context, counts, done, waits: { nextSeconds, resumeAt } };
  };
}
