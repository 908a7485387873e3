import { clients } from '../lib/clients.ts';
import { sendSnapshotCommands } from '../lib/send-commands.ts';
import { stepHandler } from '../lib/step.ts';

/** State "Send Snapshot Commands". */
export const handler = stepHandler('Send Snapshot Commands', (state, config) => sendSnapshotCommands({ ssm: clients.ssm, config }, state));
