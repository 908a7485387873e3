import { clients } from '../lib/clients.ts';
import { finishRestore } from '../lib/restore/finish.ts';
import { restoreStep } from '../lib/restore/step.ts';

/** Restore state "Finish Restore": the report is the execution's output. */
export const handler = restoreStep('Finish Restore', (state) => finishRestore({ ec2: clients.ec2 }, state));
