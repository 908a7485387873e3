import { clients } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { recordShardFailure } from '../lib/shard-failure.ts';

/** State "Record Shard Failure": a child of the Distributed Map caught its own failure (see shard-failure.ts). */
export const handler = async (event: unknown) => recordShardFailure({ s3: clients.s3, config: loadConfig() }, event);
