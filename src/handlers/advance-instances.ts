import { advanceInstances } from '../lib/advance-instances.ts';
import { clients } from '../lib/clients.ts';
import { saveRunState } from '../lib/run-state.ts';
import { stepHandler } from '../lib/step.ts';

/** State "Advance Instances". */
export const handler = stepHandler('Advance Instances', (state, config) =>
  advanceInstances({ ec2: clients.ec2, ssm: clients.ssm, s3: clients.s3, config, save: (s) => saveRunState(clients.s3, config.reportBucket, s) }, state),
);
