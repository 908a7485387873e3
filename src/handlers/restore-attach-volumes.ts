import { loadRestoreConfig } from '../lib/restore/config.ts';
import { ec2For } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';
import { attachVolumes } from '../lib/restore/volumes.ts';

/** Restore state "Attach Volumes". */
export const handler = restoreStep('Attach Volumes', (state) => attachVolumes({ ec2: ec2For(state), config: loadRestoreConfig() }, state));
