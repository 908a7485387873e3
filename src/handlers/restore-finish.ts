import { finishRestore } from '../lib/restore/finish.ts';
import { ec2For } from '../lib/restore/region.ts';
import { restoreStep } from '../lib/restore/step.ts';

/** Restore state "Finish Restore": the report is the execution's output. */
export const handler = restoreStep('Finish Restore', (state) => finishRestore({ ec2: ec2For(state) }, state));
