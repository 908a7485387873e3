import { clients } from '../lib/clients.ts';
import { saveRunState } from '../lib/run-state.ts';
import { stepHandler } from '../lib/step.ts';
import { verifySnapshots } from '../lib/verify-snapshots.ts';

/** State "Verify Snapshots". */
export const handler = stepHandler('Verify Snapshots', (state, config) =>
  verifySnapshots({ ec2: clients.ec2, config, save: (s) => saveRunState(clients.s3, config.reportBucket, s) }, state),
);
