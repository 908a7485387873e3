import { cleanUpRestore } from '../lib/restore/cleanup.ts';
import { loadRestoreConfig } from '../lib/restore/config.ts';
import { ec2For } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';

/** Restore state "Clean Up Restore": the Catch of every step that may have created something. */
export const handler = restoreStep('Clean Up Restore', (state) => cleanUpRestore({ ec2: ec2For(state), config: loadRestoreConfig() }, state));
