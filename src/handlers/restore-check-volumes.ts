import { clients } from '../lib/clients.ts';
import { loadRestoreConfig } from '../lib/restore/config.ts';
import { restoreStep } from '../lib/restore/step.ts';
import { checkVolumes } from '../lib/restore/volumes.ts';

/** Restore states "Check Volumes" and "Check Attachments". */
export const handler = restoreStep('Check Volumes', (state) => checkVolumes({ ec2: clients.ec2, config: loadRestoreConfig() }, state));
