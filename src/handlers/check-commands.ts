import { checkCommands } from '../lib/check-commands.ts';
import { clients } from '../lib/clients.ts';
import { stepHandler } from '../lib/step.ts';

/** State "Check Commands". */
export const handler = stepHandler('Check Commands', (state) => checkCommands({ ssm: clients.ssm }, state));
