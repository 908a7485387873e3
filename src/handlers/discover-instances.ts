import { clients } from '../lib/clients.ts';
import { loadConfig } from '../lib/config.ts';
import { discoverInstances } from '../lib/discovery.ts';
import { logger } from '../lib/observability.ts';
import { parseRunContext } from '../lib/run-context.ts';
import type { RunContext } from '../lib/run-context.ts';
import { writeShards } from '../lib/run-shards.ts';
import { countPhases, loadRunState, saveRunState } from '../lib/run-state.ts';

/** State "Discover Instances": finds the instances, writes them into shards, names the shards with work. */
export const handler = async (event: unknown): Promise<RunContext> => {
  const context = parseRunContext(event);
  const config = loadConfig();
  const run = await loadRunState(clients.s3, config.reportBucket, context.runId);
  await discoverInstances({ ec2: clients.ec2, ssm: clients.ssm, sendScope: { tagKey: config.tagKey, tagValue: config.tagValue } }, run);
  const counts = { ...countPhases(run), unconfirmed: 0, discard: 0 };
  const shards = await writeShards({ s3: clients.s3, config }, run);
  await saveRunState(clients.s3, config.reportBucket, run);
  logger.info('Discover Instances', { runId: run.runId, counts, shards: run.shards });
  return { ...context, counts, shards, done: shards.length === 0, waits: { nextSeconds: 1 } };
};
