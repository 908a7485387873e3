/**
 * Plugs the simulated account beneath the project's SDK clients: a middleware in the deserialize step
 * (inside the SDK's retry loop) answers each call from the world instead of the network. The handlers'
 * code, the SDK's validation, retries and paginators all run as they do in AWS.
 */
import { ConfiguredRetryStrategy } from '@smithy/core/retry';
import { onRegionalClient, regionalClients } from '../lib/clients.ts';
import type { Clients } from '../lib/clients.ts';
import { clock } from '../lib/clock.ts';
import { applyCall } from './operations.ts';
import type { World } from './world.ts';

/**
 * Hook for fault injection and rate limits: runs before each call; may throw an AWS-shaped error. `region` is
 * the Region of the client that made the call (the home Region's clients, or `ec2In`/`ssmIn`'s).
 */
export type CallInterceptor = (call: { service: string; operation: string; input: Record<string, unknown>; region?: string }) => void | Promise<void>;

const MIDDLEWARE = 'vssSnapshotsSimulatedAccount';

/** The part of an SDK v3 client this module touches. */
interface PluggableClient {
  middlewareStack: {
    add(middleware: unknown, options: { step: 'deserialize'; priority: 'high'; name: string; override: boolean }): void;
    remove(name: string): boolean;
  };
  config: { credentials: unknown; retryStrategy: unknown; region: () => Promise<string> };
}

/** Same attempts and exponential backoff as the SDK, but the wait moves the virtual clock, not the real one. */
export function virtualRetryStrategy(world: World, maxAttempts = 5): ConfiguredRetryStrategy {
  return new ConfiguredRetryStrategy(maxAttempts, (attempt: number) => {
    world.advanceBy(Math.min(20_000, 100 * 2 ** attempt));
    return 0;
  });
}

export interface InstallOptions {
  interceptors?: CallInterceptor[];
}

/**
 * Routes every call of these clients to `world` until `uninstall` is called, and of every regional client
 * (`ec2In`, `ssmIn` in src/lib/clients.ts), those made before and those made while installed. Each call
 * carries its client's Region: the simulated account answers from that Region's resources only.
 */
export function installWorld(clients: Clients, world: World, options: InstallOptions = {}): () => void {
  process.env.AWS_REGION ??= 'us-east-1';
  const plugged: PluggableClient[] = [];
  const plug = (service: string, sdkClient: unknown) => {
    const client = sdkClient as PluggableClient;
    plugged.push(client);
    client.middlewareStack.remove(MIDDLEWARE);
    client.middlewareStack.add(
      (_next: unknown, context: { commandName?: string }) => async (args: { input?: unknown }) => {
        const operation = String(context.commandName ?? '').replace(/Command$/, '');
        const input = (args.input ?? {}) as Record<string, unknown>;
        const region = await client.config.region();
        const call = async () => {
          const wallStart = performance.now();
          try {
            world.countCall(`${service}:${operation}`);
            world.settle();
            for (const intercept of options.interceptors ?? []) await intercept({ service, operation, input, region });
            return await applyCall(world, service, operation, input, { region });
          } finally {
            // The simulated service's own work: not the Lambda's (the runner leaves it out of billed time).
            world.simulatorMillis += performance.now() - wallStart;
          }
        };
        // Each call on its own lane of the Lambda's turn: concurrent calls overlap in virtual time (scheduler.ts).
        const output = world.scheduler ? await world.scheduler.lane(call) : await call();
        return { output: { ...output, $metadata: { httpStatusCode: 200, requestId: 'simulated', attempts: 1 } }, response: {} };
      },
      { step: 'deserialize', priority: 'high', name: MIDDLEWARE, override: true },
    );
    // No real credentials are needed: the call never leaves the process.
    client.config.credentials = async () => ({ accessKeyId: 'SIMULATED', secretAccessKey: 'SIMULATED' });
    // Retries (throttling, 5xx) follow the SDK's rules; their backoff costs virtual time only.
    const strategy = virtualRetryStrategy(world);
    client.config.retryStrategy = async () => strategy;
  };
  for (const [service, sdkClient] of Object.entries(clients)) plug(service, sdkClient);
  for (const made of regionalClients()) plug(made.service, made.client);
  const stopListening = onRegionalClient((made) => plug(made.service, made.client));
  const previousNow = clock.now;
  clock.now = () => world.now;
  return () => {
    stopListening();
    for (const client of plugged) client.middlewareStack.remove(MIDDLEWARE);
    clock.now = previousNow;
  };
}
