/** Shared fixtures: run the real workflow on a simulated fleet and read back the report and the world. */
import type { RunReport } from '../src/lib/report.ts';
import { reportKey } from '../src/lib/run-state.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { REPORT_BUCKET, runWorkflow } from '../src/local/runner.ts';
import type { LocalRunResult, RunOptions } from '../src/local/runner.ts';
import { LOCAL_STACK_ID } from '../src/lib/config.ts';
import { ATTEMPT_TAG, HOLD_TAG, METHOD_TAG, RUN_TAG, STACK_TAG } from '../src/lib/run-id.ts';
import { FALLBACK_TAG } from '../src/lib/sweep-run.ts';
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

const SEED_DAY = 86_400_000;
const STACK = LOCAL_STACK_ID;

export interface SeedOptions {
  ageDays: number;
  /** The STACK_TAG value; null: no stack tag at all. */
  stack?: string | null;
  fallback?: boolean;
  hold?: boolean;
  /** Register an AMI from this set's snapshots. */
  image?: boolean;
  /** Not marked consistent (a set that never passed verification). */
  inconsistent?: boolean;
  /** Other tags (DLM's, AWS Backup's, ...); replace the run tags when `bare`. */
  tags?: Record<string, string>;
  bare?: boolean;
}

/** Puts one completed snapshot set of `instanceId` (all its volumes) into the account, `ageDays` old. */
export function seedSet(world: World, instanceId: string, o: SeedOptions): { runId: string; ids: string[]; imageId?: string } {
  const start = world.now - o.ageDays * SEED_DAY;
  const runId = `${new Date(start).toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+Z$/, 'Z')}-${world.nextHex(8)}`;
  const ids: string[] = [];
  for (const volume of world.volumesOf(instanceId)) {
    const snapshotId = `snap-0${world.nextHex(16)}`;
    const runTags: Record<string, string> = o.bare
      ? {}
      : {
          [RUN_TAG]: runId,
          [ATTEMPT_TAG]: '1',
          [METHOD_TAG]: 'aws-vss',
          Device: volume.device ?? '',
          ...(o.inconsistent ? {} : { AppConsistent: 'true' }),
          ...(o.stack === null ? {} : { [STACK_TAG]: o.stack ?? STACK }),
          ...(o.fallback ? { [FALLBACK_TAG]: 'crash-consistent' } : {}),
        };
    world.addSnapshot({
      snapshotId,
      volumeId: volume.volumeId,
      instanceId,
      volumeSize: volume.sizeGiB,
      startTime: start,
      completeAt: start + 120_000,
      finalState: 'completed',
      visibleAt: start,
      description: `seeded ${o.ageDays} days old`,
      tags: { ...runTags, ...(o.hold ? { [HOLD_TAG]: 'legal' } : {}), ...(o.tags ?? {}) },
      deleted: false,
    });
    ids.push(snapshotId);
  }
  let imageId: string | undefined;
  if (o.image) {
    imageId = `ami-0${world.nextHex(16)}`;
    world.images.set(imageId, { imageId, name: `golden-${runId}`, snapshotIds: ids, createdAt: start + SEED_DAY });
  }
  return { runId, ids, ...(imageId ? { imageId } : {}) };
}
