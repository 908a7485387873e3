/**
 * The bench's DR figures (`bench --dr-region R`): what the DR pass of one night did and took, read from its record
 * (runs/<runId>/dr.json) and the simulated account. With `--dr-steady`, every volume already has a completed copy
 * in the DR Region from an earlier night, so tonight's copies are incremental (the steady state); without it
 * they are the first, full copies.
 */
import { drRecordKey } from '../lib/dr/record.ts';
import type { DrRecord } from '../lib/dr/record.ts';
import { COPY_VOLUME_ID } from '../local/snapshot-copy.ts';
import { REPORT_BUCKET } from '../local/runner.ts';
import type { World } from '../local/world.ts';

export interface DrBenchResult {
  region: string;
  concurrency: number;
  steady: boolean;
  /** Snapshots to copy (one job each) and sets. */
  snapshots: number;
  sets: number;
  protectedSets: number;
  completed: number;
  failed: number;
  /** Jobs still copying or never started when the pass ended (carried over to the next night's pass). */
  unfinished: number;
  fullCopies: number;
  incrementalCopies: number;
  /** GiB the copies moved across Regions (full: the volume; incremental: the changed share), by the copy model. */
  gibTransferred: number;
  /** Run start to the last copy completed, when every set was protected within the pass; else null. */
  secondsUntilAllProtected: number | null;
  /** Run start to the end of the DR pass. */
  passSeconds: number;
  /** Copies completed per hour of the pass, as measured. */
  copiesPerHour: number;
  /** State transitions of the DR states (Plan DR Copies, DR Pass Done?, Wait For Copies, Advance DR Copies). */
  transitions: number;
  advanceInvocations: number;
  /** EC2 calls made in the DR Region, by operation (home-Region calls of the DR pass, a few reads a turn, are in apiCalls). */
  drRegionCalls: Record<string, number>;
}

export const DR_STATES = new Set(['Plan DR Copies', 'DR Pass Done?', 'Wait For Copies', 'Advance DR Copies']);

/** Gives every fleet volume a completed copy in `region` from a night before (so the next copies are incremental). */
export function seedPreviousCopies(world: World, region: string): void {
  const before = world.now - 86_400_000;
  for (const volume of world.volumes.values()) {
    const id = `snap-0${world.nextHex(16)}`;
    world.addSnapshot({
      snapshotId: id,
      volumeId: COPY_VOLUME_ID,
      instanceId: volume.instanceId ?? '',
      volumeSize: volume.sizeGiB,
      startTime: before,
      completeAt: before + 3_600_000,
      finalState: 'completed',
      visibleAt: before,
      description: 'an earlier night\'s DR copy (bench --dr-steady)',
      tags: {},
      deleted: false,
      region,
      originVolumeId: volume.volumeId,
      sourceSnapshotId: `snap-0${world.nextHex(16)}`,
      sourceRegion: 'us-east-1',
      copyKind: 'full',
    });
  }
}

export function drBenchResult(world: World, runId: string | undefined, runStartMs: number, counts: { transitions: number; advanceInvocations: number }, options: { region: string; concurrency: number; steady: boolean; drRegionCalls: Record<string, number> }): DrBenchResult | null {
  const text = runId ? world.buckets.get(REPORT_BUCKET)?.get(drRecordKey(runId)) : undefined;
  if (!text) return null;
  const record = JSON.parse(text) as DrRecord;
  const bySet = new Map<string, DrRecord['jobs']>();
  for (const j of record.jobs) bySet.set(`${j.instanceId}/${j.runId}/${j.attempt}`, [...(bySet.get(`${j.instanceId}/${j.runId}/${j.attempt}`) ?? []), j]);
  const protectedSets = [...bySet.values()].filter((jobs) => jobs.every((j) => j.state === 'completed')).length;
  const completed = record.jobs.filter((j) => j.state === 'completed');
  const copies = completed.flatMap((j) => (j.copyId ? [world.snapshots.get(j.copyId)] : [])).filter((c) => c !== undefined);
  const share = world.dr.copyTiming.incrementalFraction;
  const lastDone = Math.max(0, ...completed.map((j) => j.completedAt ?? 0));
  const passEnd = record.finishedAt ? Date.parse(record.finishedAt) : world.now;
  const allProtected = protectedSets === bySet.size && bySet.size > 0;
  return {
    region: options.region,
    concurrency: options.concurrency,
    steady: options.steady,
    snapshots: record.jobs.length,
    sets: bySet.size,
    protectedSets,
    completed: completed.length,
    failed: record.jobs.filter((j) => j.state === 'failed').length,
    unfinished: record.jobs.filter((j) => j.state !== 'completed' && j.state !== 'failed').length,
    fullCopies: copies.filter((c) => c.copyKind === 'full').length,
    incrementalCopies: copies.filter((c) => c.copyKind === 'incremental').length,
    gibTransferred: Math.round(copies.reduce((n, c) => n + c.volumeSize * (c.copyKind === 'incremental' ? share : 1), 0)),
    secondsUntilAllProtected: allProtected ? Math.round((lastDone - runStartMs) / 1000) : null,
    passSeconds: Math.round((passEnd - runStartMs) / 1000),
    copiesPerHour: Math.round(completed.length / Math.max(1 / 60, (passEnd - Date.parse(record.plannedAt)) / 3_600_000)),
    transitions: counts.transitions,
    advanceInvocations: counts.advanceInvocations,
    drRegionCalls: options.drRegionCalls,
  };
}
