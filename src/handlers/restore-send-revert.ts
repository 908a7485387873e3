import { clients } from '../lib/clients.ts';
import { loadRestoreConfig } from '../lib/restore/config.ts';
import { sendRevertCommand } from '../lib/restore/revert.ts';
import { restoreStep } from '../lib/restore/step.ts';

/** Restore state "Send Revert Command". */
export const handler = restoreStep('Send Revert Command', (state) => sendRevertCommand({ ssm: clients.ssm, config: loadRestoreConfig() }, state));
