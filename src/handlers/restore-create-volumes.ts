import { loadRestoreConfig } from '../lib/restore/config.ts';
import { ec2For } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';
import { createVolumes } from '../lib/restore/volumes.ts';

/** Restore state "Create Volumes". */
export const handler = restoreStep('Create Volumes', (state) => createVolumes({ ec2: ec2For(state), config: loadRestoreConfig() }, state));
