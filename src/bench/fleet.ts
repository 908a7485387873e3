/**
 * The benchmark's simulated account: N tagged, running Windows instances with V volumes each, the same
 * command and snapshot times, and a share of them failing every attempt. Deterministic: the same options
 * always give the same fleet (and, through the world's id counter, the same ids).
 */
import type { Behaviour, Fleet } from '../local/fleet.ts';
import { parseFleet } from '../local/fleet.ts';

export interface BenchFleetOptions {
  instances: number;
  volumes: number;
  /** Share of instances (0..1) whose snapshot command fails on every attempt. */
  failRate: number;
  /** Share of instances (0..1) whose command hangs on every attempt (ends ExecutionTimedOut at its deadline). */
  hangRate: number;
  commandSeconds: number;
  snapshotMinutes: number;
}

/**
 * What failing instances do, in turn. Every failure row of the fleet table except `hang` (which only adds
 * polling until the command deadline, and would make the failure runs measure the deadline instead).
 */
export const FAILURE_MIX: readonly Behaviour[] = [
  'vss-timeout',
  'writer-failure',
  'access-denied',
  'undeliverable',
  'no-snapshots',
  'untagged',
  'crash-consistent',
  'snapshot-error',
];

const DATA_DEVICES = 'fghijklmnopqrstuvwxyz'.split('').map((c) => `xvd${c}`);

export function benchFleet(options: BenchFleetOptions): Fleet {
  const volumes = Array.from({ length: options.volumes }, (_, v) => (v === 0 ? { device: '/dev/sda1', sizeGiB: 60 } : { device: DATA_DEVICES[v - 1] ?? `xvd${v}`, sizeGiB: 200 }));
  let failing = 0;
  const instances = Array.from({ length: options.instances }, (_, i) => {
    // Evenly spread: exactly round(N x rate) instances fail (or hang), not a random number of them; hanging
    // ones are spread from the other end of the fleet so the two shares rarely meet (where they do, it hangs).
    const fails = Math.floor((i + 1) * options.failRate) > Math.floor(i * options.failRate);
    const j = options.instances - 1 - i;
    const hangs = Math.floor((j + 1) * options.hangRate) > Math.floor(j * options.hangRate);
    const attempts: Behaviour[] = hangs ? ['hang'] : fails ? [FAILURE_MIX[failing++ % FAILURE_MIX.length] as Behaviour] : ['ok'];
    return {
      name: `srv-${String(i + 1).padStart(6, '0')}`,
      volumes,
      attempts,
      commandSeconds: options.commandSeconds,
      snapshotMinutes: options.snapshotMinutes,
    };
  });
  return parseFleet({ instances }, `bench fleet of ${options.instances}`);
}
