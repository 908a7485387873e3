import { clients } from '../lib/clients.ts';
import { loadRestoreConfig } from '../lib/restore/config.ts';
import { planRestore } from '../lib/restore/plan.ts';
import { ec2For, ssmFor } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';

/** Restore state "Plan Restore". */
export const handler = restoreStep('Plan Restore', (state) =>
  planRestore({ ec2: ec2For(state), ssm: ssmFor(state), s3: clients.s3, reportBucket: loadRestoreConfig().reportBucket, restoreDocument: loadRestoreConfig().restoreDocument.name }, state),
);
