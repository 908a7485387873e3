import { clients, ec2In } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { DISABLED, planDrCopies } from '../lib/dr/plan.ts';
import { logger } from '../lib/observability.ts';
import { parseRunContext } from '../lib/run-context.ts';
import { loadWholeRun } from '../lib/run-state.ts';

/** State "Plan DR Copies": what the DR pass copies into the DR Region and deletes there (src/lib/dr/plan.ts). */
export const handler = async (event: unknown) => {
  const context = parseRunContext(event);
  const config = loadConfig();
  if (!config.dr) return DISABLED;
  const state = await loadWholeRun(clients.s3, config.reportBucket, context.runId);
  const progress = await planDrCopies({ home: clients.ec2, dr: ec2In(config.dr.region), s3: clients.s3, config }, state);
  logger.info('Plan DR Copies', { runId: context.runId, ...progress });
  return progress;
};
