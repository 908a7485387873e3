import { loadRestoreConfig } from '../lib/restore/config.ts';
import { checkRevertCommand } from '../lib/restore/revert.ts';
import { ssmFor } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';

/** Restore state "Check Revert Command". */
export const handler = restoreStep('Check Revert Command', (state) => checkRevertCommand({ ssm: ssmFor(state), config: loadRestoreConfig() }, state));
