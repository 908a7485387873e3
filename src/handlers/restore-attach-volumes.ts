import { clients } from '../lib/clients.ts';
import { loadRestoreConfig } from '../lib/restore/config.ts';
import { restoreStep } from '../lib/restore/step.ts';
import { attachVolumes } from '../lib/restore/volumes.ts';

/** Restore state "Attach Volumes". */
export const handler = restoreStep('Attach Volumes', (state) => attachVolumes({ ec2: clients.ec2, config: loadRestoreConfig() }, state));
