import { loadRestoreConfig } from '../lib/restore/config.ts';
import { sendRevertCommand } from '../lib/restore/revert.ts';
import { ssmFor } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';

/** Restore state "Send Revert Command". */
export const handler = restoreStep('Send Revert Command', (state) => sendRevertCommand({ ssm: ssmFor(state), config: loadRestoreConfig() }, state));
