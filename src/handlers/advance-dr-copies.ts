import { clients, ec2In } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { advanceDrCopies } from '../lib/dr/advance.ts';
import { DISABLED } from '../lib/dr/plan.ts';
import { logger } from '../lib/observability.ts';
import { parseRunContext } from '../lib/run-context.ts';

/** State "Advance DR Copies": one turn of the DR pass — poll, start, delete (src/lib/dr/advance.ts). */
export const handler = async (event: unknown) => {
  const context = parseRunContext(event);
  const config = loadConfig();
  if (!config.dr) return DISABLED;
  const progress = await advanceDrCopies({ home: clients.ec2, dr: ec2In(config.dr.region), s3: clients.s3, sns: clients.sns, config }, context.runId);
  logger.info('Advance DR Copies', { runId: context.runId, ...progress });
  return progress;
};
