/**
 * The nights of a simulation (`vss-snapshots simulate`, fleet file `nights` and `terminatedOnNight`): night 1
 * starts at the world's start, each next one 24 hours later, as the nightly schedule fires. At the start of a
 * night, before its run, each instance takes that night's behaviours and an instance due to be terminated is.
 * `vss-snapshots run` is night 1.
 */
import type { FleetInstance } from './fleet.ts';
import type { World } from './world.ts';

export const NIGHT_MS = 24 * 3_600_000;

/** When night `night` (1, 2, ...) is scheduled, for a simulation that starts at `start`. */
export function nightStart(start: number, night: number): number {
  return start + (night - 1) * NIGHT_MS;
}

/**
 * Sets up night `night` at time `at`: every instance's snapshot commands that night act out `nights["<night>"]`
 * (else `attempts`), counted from the night's first command (a night starts over, as `attempts` describes one
 * night), and an instance whose `terminatedOnNight` has come is terminated. `instanceIds[i]` is `specs[i]`'s id.
 */
export function startNight(world: World, specs: FleetInstance[], instanceIds: string[], night: number, at: number): void {
  for (const [index, spec] of specs.entries()) {
    const instance = world.instances.get(instanceIds[index] as string);
    if (!instance) continue;
    instance.behaviours = spec.nights?.[String(night)] ?? spec.attempts;
    instance.snapshotCommandsRun = 0;
    if (spec.terminatedOnNight !== undefined && spec.terminatedOnNight <= night && instance.state !== 'terminated') terminate(world, instance.instanceId, at);
  }
}

/**
 * Terminates an instance as EC2 does: its root volume goes with it (DeleteOnTermination is true for the root
 * volume by default, false for volumes attached later: EC2 user guide, "Preserve data when an instance is
 * terminated"), its other volumes are detached and stay. Its snapshots stay.
 */
export function terminate(world: World, instanceId: string, at: number): void {
  const instance = world.instances.get(instanceId);
  if (!instance) return;
  instance.state = 'terminated';
  instance.terminatedAt = at;
  for (const volume of world.volumesOf(instanceId)) {
    if (volume.device === instance.rootDevice) {
      volume.deleted = true;
      volume.deletedAt = at;
    }
    delete volume.instanceId;
    delete volume.device;
    delete volume.attachState;
  }
  world.reindexVolumes();
}
