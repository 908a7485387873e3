import { clients } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { planRetention } from '../lib/retention/plan.ts';
import { parseRunContext } from '../lib/run-context.ts';
import { loadWholeRun } from '../lib/run-state.ts';

/** State "Plan Retention": what the stack's retention policy expires tonight (src/lib/retention/plan.ts). */
export const handler = async (event: unknown) => {
  const context = parseRunContext(event);
  const config = loadConfig();
  // The whole run: retention waits until every instance of it reached its outcome.
  const state = await loadWholeRun(clients.s3, config.reportBucket, context.runId);
  const progress = await planRetention({ ec2: clients.ec2, s3: clients.s3, config }, state);
  logger.info('Plan Retention', { runId: context.runId, ...progress });
  return progress;
};
