import { clients } from '../lib/clients.ts';
import { discoverInstances } from '../lib/discovery.ts';
import { stepHandler } from '../lib/step.ts';

/** State "Discover Instances". */
export const handler = stepHandler('Discover Instances', (state) => discoverInstances({ ec2: clients.ec2, ssm: clients.ssm }, state));
