/** Shared fixtures: run the real workflow on a simulated fleet and read back the report and the world. */
import type { RunReport } from '../src/lib/report.ts';
import { reportKey } from '../src/lib/run-state.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { REPORT_BUCKET, runWorkflow } from '../src/local/runner.ts';
import type { LocalRunResult, RunOptions } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import type { World, WorldDump } from '../src/local/world.ts';

export interface FleetRun {
  result: LocalRunResult;
  report: RunReport | undefined;
  dump: WorldDump;
  world: World;
}

export async function runFleet(fleet: unknown, options: RunOptions = {}): Promise<FleetRun> {
  const world = worldFromFleet(parseFleet(fleet, 'test fleet'));
  const result = await runWorkflow(world, options);
  return { result, report: readReport(world, result), dump: world.dump(), world };
}

export function readReport(world: World, result: LocalRunResult): RunReport | undefined {
  const runId = (result.output as { runId?: string } | undefined)?.runId;
  if (!runId) return undefined;
  const text = world.buckets.get(REPORT_BUCKET)?.get(reportKey(runId));
  return text ? (JSON.parse(text) as RunReport) : undefined;
}

/** Snapshots of a run in the world, grouped by volume. */
export function runSnapshotsByVolume(dump: WorldDump, runId: string): Map<string, WorldDump['snapshots']> {
  const map = new Map<string, WorldDump['snapshots']>();
  for (const s of dump.snapshots.filter((x) => x.tags['vss-snapshots:run-id'] === runId)) map.set(s.volumeId, [...(map.get(s.volumeId) ?? []), s]);
  return map;
}

export const twoVolumes = [{ device: '/dev/sda1', sizeGiB: 60 }, { device: 'xvdf', sizeGiB: 200 }];
