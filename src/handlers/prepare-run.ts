import { clients } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { prepareRun } from '../lib/prepare-run.ts';

/** State "Prepare Run". */
export const handler = async (event: unknown) => prepareRun(event, { sfn: clients.sfn, s3: clients.s3, config: loadConfig() });
