import { clients } from '../lib/clients.ts';
import { discoverInstances } from '../lib/discovery.ts';
import { stepHandler } from '../lib/step.ts';

/** State "Discover Instances". */
export const handler = stepHandler('Discover Instances', (state, config) =>
  discoverInstances({ ec2: clients.ec2, ssm: clients.ssm, sendScope: { tagKey: config.tagKey, tagValue: config.tagValue } }, state),
);
