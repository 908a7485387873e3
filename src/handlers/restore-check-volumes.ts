import { loadRestoreConfig } from '../lib/restore/config.ts';
import { ec2For } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';
import { checkVolumes } from '../lib/restore/volumes.ts';

/** Restore states "Check Volumes" and "Check Attachments". */
export const handler = restoreStep('Check Volumes', (state) => checkVolumes({ ec2: ec2For(state), config: loadRestoreConfig() }, state));
