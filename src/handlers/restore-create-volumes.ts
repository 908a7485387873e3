import { clients } from '../lib/clients.ts';
import { loadRestoreConfig } from '../lib/restore/config.ts';
import { restoreStep } from '../lib/restore/step.ts';
import { createVolumes } from '../lib/restore/volumes.ts';

/** Restore state "Create Volumes". */
export const handler = restoreStep('Create Volumes', (state) => createVolumes({ ec2: clients.ec2, config: loadRestoreConfig() }, state));
