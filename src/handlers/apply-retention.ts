import { clients } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { logger } from '../lib/observability.ts';
import { applyRetention } from '../lib/retention/apply.ts';
import { parseRunContext } from '../lib/run-context.ts';

/** State "Apply Retention": deletes the next slice of the sets Plan Retention queued (src/lib/retention/apply.ts). */
export const handler = async (event: unknown) => {
  const context = parseRunContext(event);
  const progress = await applyRetention({ ec2: clients.ec2, s3: clients.s3, config: loadConfig() }, context.runId);
  logger.info('Apply Retention', { runId: context.runId, ...progress });
  return progress;
};
