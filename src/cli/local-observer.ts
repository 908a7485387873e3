/**
 * The CLI's view of a local run. An S3 client that reads the simulated account's report bucket for the CLI's progress lines. It answers
 * from the world directly, beside the clients the handlers use: it is not counted in the world's API calls
 * and never meets the fleet's injected faults, so watching a run cannot change what the run does.
 */
import { S3Client } from '@aws-sdk/client-s3';
import { runWorkflow } from '../local/runner.ts';
import type { LocalRunResult, RunOptions } from '../local/runner.ts';
import { s3Operations } from '../local/services.ts';
import { REGION } from '../local/world.ts';
import type { World } from '../local/world.ts';
import type { ExecutionWatcher } from './execution-watcher.ts';
import { fromLocalEvent } from './workflow-progress.ts';
import type { LocalEvent } from './workflow-progress.ts';

export function observerS3(world: World): S3Client {
  const client = new S3Client({ region: REGION, credentials: { accessKeyId: 'LOCAL', secretAccessKey: 'LOCAL' }, maxAttempts: 1 });
  client.middlewareStack.add(
    (_next: unknown, context: { commandName?: string }) => async (args: { input?: unknown }) => {
      const operation = String(context.commandName ?? '').replace(/Command$/, '');
      const handler = s3Operations[operation];
      if (!handler) throw new Error(`The local observer does not read S3 ${operation}.`);
      const output = (await handler(world, (args.input ?? {}) as Record<string, unknown>)) as Record<string, unknown>;
      return { output: { ...output, $metadata: { httpStatusCode: 200 } }, response: {} };
    },
    { step: 'deserialize', priority: 'high', name: 'vssSnapshotsLocalObserver' },
  );
  return client;
}

/**
 * Runs a workflow in the simulated account with its progress shown by `watcher`: each step event, timed from
 * the run's start on the virtual clock, printed in order once the run has moved on.
 */
export async function runWatched(world: World, watcher: ExecutionWatcher, options: Omit<RunOptions, 'onEvent'>): Promise<LocalRunResult> {
  const start = world.now;
  let printing = Promise.resolve();
  const result = await runWorkflow(world, {
    ...options,
    onEvent: (event) => {
      const step = fromLocalEvent(event as LocalEvent);
      if (!step) return;
      const atMs = world.now - start;
      printing = printing.then(() => watcher.event(step, atMs));
    },
  });
  await printing;
  watcher.finish();
  return result;
}
