/**
 * Starts and stops `moto_server` (the Python AWS emulator) on a free loopback port for the wire-level
 * tests, and builds SDK clients pointed at it. When moto is not installed, `motoAvailability()` says why,
 * and the tests skip with that notice.
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';

export const MOTO_REGION = 'us-east-1';
export const MOTO_ACCOUNT = '123456789012';
export const MOTO_COMMAND = process.env.MOTO_SERVER ?? 'moto_server';

/** Whether `moto_server` can run here; `reason` says why not. */
export function motoAvailability(): { available: boolean; reason: string } {
  if (process.env.SKIP_MOTO) return { available: false, reason: 'SKIP_MOTO is set' };
  const probe = spawnSync(MOTO_COMMAND, ['--help'], { encoding: 'utf8', timeout: 20_000 });
  if (probe.error) return { available: false, reason: `${MOTO_COMMAND} is not installed (${probe.error.message}); install it with: python3 -m pip install 'moto[server]'` };
  if (probe.status !== 0) return { available: false, reason: `${MOTO_COMMAND} --help failed (exit ${probe.status}): ${(probe.stderr || probe.stdout).trim().split('\n').at(-1)}` };
  return { available: true, reason: '' };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface MotoServer {
  endpoint: string;
  /** Clears every resource (POST /moto-api/reset): each test starts from an empty account. */
  reset(): Promise<void>;
  stop(): Promise<void>;
  /** The client options every test client uses: this endpoint, test credentials, no SDK retries (moto answers 500 for what it lacks). */
  clientConfig: {
    endpoint: string;
    region: string;
    credentials: { accessKeyId: string; secretAccessKey: string };
    maxAttempts: number;
  };
}

/** Starts moto_server on a free port of 127.0.0.1 and waits until it answers. */
export async function startMoto(): Promise<MotoServer> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  // MOTO_PORT: where moto's own Step Functions interpreter calls back (Lambda tasks) when it executes a state machine.
  const child: ChildProcess = spawn(MOTO_COMMAND, ['-H', '127.0.0.1', '-p', String(port)], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, MOTO_PORT: String(port) } });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = `${stderr}${chunk.toString()}`.slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };

  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${stderr}`);
    try {
      const response = await fetch(`${endpoint}/moto-api/`, { signal: AbortSignal.timeout(2_000) });
      if (response.ok) break;
    } catch {
      // Not listening yet.
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`moto_server did not answer on ${endpoint} within 30 s: ${stderr}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 150));
  }

  return {
    endpoint,
    stop,
    reset: async () => {
      const response = await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' });
      if (!response.ok) throw new Error(`moto reset failed: HTTP ${response.status}`);
    },
    clientConfig: { endpoint, region: MOTO_REGION, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, maxAttempts: 1 },
  };
}
