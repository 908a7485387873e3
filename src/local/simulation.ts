/**
 * Many nights in one simulated account (`vss-snapshots simulate`): the nightly execution runs once per night, 24
 * hours apart on the virtual clock, each starting at its scheduled time, against the same account — so what one
 * night leaves (snapshots, the run lease, reports, alerts) is what the next one finds, as in AWS. Each night
 * first takes the fleet's behaviours and terminations for that night (nights.ts).
 */
import type { RunReport } from '../lib/report.ts';
import { needsAlert } from '../lib/report.ts';
import { RUN_TAG, STACK_TAG } from '../lib/run-id.ts';
import { reportKey } from '../lib/run-state.ts';
import type { Fleet } from './fleet.ts';
import { LOCAL_STACK_ID } from './history.ts';
import { nightStart, startNight } from './nights.ts';
import { REPORT_BUCKET, runWorkflow } from './runner.ts';
import type { LocalRunResult, RunOptions } from './runner.ts';
import { REGION } from './world.ts';
import { tierOf } from './snapshot-tier.ts';
import type { SimSnapshot, World } from './world.ts';

/** What one night did, as `simulate --json` prints it (README "Multi-night simulation"). */
export interface NightResult {
  night: number;
  /** When the schedule started the night's execution (simulated clock). */
  scheduledAt: string;
  executionName: string;
  runId: string | null;
  status: 'SUCCEEDED' | 'FAILED';
  error?: string;
  cause?: string;
  /** The run needs an alert (an instance failed or nothing matched), or the workflow itself failed. */
  needsAttention: boolean;
  summary: RunReport['summary'] | null;
  /** Instances terminated at the start of this night. */
  terminated: string[];
  /** Snapshots this stack made that exist after the night (not deleted). */
  snapshotsOurs: number;
  /** Every other snapshot that exists after the night: manual, DLM, AWS Backup, another stage's. */
  snapshotsOthers: number;
  /** Snapshots DeleteSnapshot took effect on during the night (the mutation log), whoever's. */
  deleted: number;
  /** Of those, snapshots that were not this stack's (retention must never; anything above 0 is a bug). */
  othersDeleted: number;
  /** The run report's `retention` section, when the run has one. */
  retention?: unknown;
  /** DR copies on: this stack's snapshots in the DR Region after the night (`snapshotsOurs` counts the home Region). */
  drCopiesOurs?: number;
  /** DR copies on: snapshots deleted in the DR Region that night (the DR rule, errored or duplicate copies). */
  drDeleted?: number;
  /** DR copies on: the run report's `copies` section (protected, in progress, failed). */
  copies?: unknown;
  /** With the archive tier on (ARCHIVE_AFTER_DAYS): snapshots this night's retention sent to the archive... */
  archivedTonight?: number;
  /** ...and this stack's snapshots in the archive tier after the night (archival takes hours: those done). */
  snapshotsInArchive?: number;
  wallSeconds: number;
}

export interface SimulateOptions {
  nights: number;
  /** Execution input of every night (the schedule's input). */
  input?: unknown;
  /** Lambda environment overrides (e.g. RETAIN_COUNT, RETAIN_DAYS). */
  env?: Record<string, string>;
  /** Every event of every night's execution (as runWorkflow's `onEvent`). */
  onEvent?: RunOptions['onEvent'];
  /** Called after each night, with the world as the night left it. */
  onNight?: (result: NightResult, world: World, run: LocalRunResult) => void | Promise<void>;
}

/** A snapshot this stack made: it carries a run id, and this stack's id or (made before stacks were tagged) none. */
export function isOurs(snapshot: Pick<SimSnapshot, 'tags'>, stackId = LOCAL_STACK_ID): boolean {
  if (snapshot.tags[RUN_TAG] === undefined) return false;
  const stack = snapshot.tags[STACK_TAG];
  return stack === undefined || stack === stackId;
}

/**
 * Runs `options.nights` nights on `world`, which must be `worldFromFleet(fleet)` not yet run (it is set up for
 * night 1, at its start). Returns one result per night, in order; a night whose workflow fails does not stop the
 * next (the schedule fires regardless).
 */
export async function simulateNights(world: World, fleet: Fleet, options: SimulateOptions): Promise<NightResult[]> {
  // worldFromFleet adds the fleet's instances first, in the file's order.
  const instanceIds = [...world.instances.keys()].slice(0, fleet.instances.length);
  const start = world.accountNow;
  const results: NightResult[] = [];
  for (let night = 1; night <= options.nights; night += 1) {
    // The schedule fires at the night's time; a night that ran past it (it cannot, by the state machine's 23-hour
    // timeout) would delay the next.
    const at = Math.max(nightStart(start, night), world.accountNow);
    world.advanceTo(at);
    if (night > 1) startNight(world, fleet.instances, instanceIds, night, at);
    const terminated = fleet.instances.flatMap((spec, i) => (spec.terminatedOnNight === night ? [instanceIds[i] as string] : []));
    const mark = world.mutations.length;
    const executionName = `nightly-${new Date(at).toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+Z$/, 'Z')}`;
    const run = await runWorkflow(world, { input: options.input ?? {}, executionName, ...(options.env ? { env: options.env } : {}), ...(options.onEvent ? { onEvent: options.onEvent } : {}) });
    const report = readNightReport(world, run);
    const drRegion = options.env?.DR_REGION;
    const allDeletions = deletedSince(world, mark, at);
    // `deleted` stays what it always was, the home Region's; the DR Region's deletions are counted apart.
    const deletions = allDeletions.filter((s) => !drRegion || (s.region ?? REGION) !== drRegion);
    let ours = 0;
    let others = 0;
    let drOurs = 0;
    let inArchive = 0;
    for (const s of world.snapshots.values()) {
      if (s.deleted) continue;
      if (drRegion && (s.region ?? REGION) === drRegion) {
        if (isOurs(s)) drOurs += 1;
        continue;
      }
      if (isOurs(s)) {
        ours += 1;
        if (s.tier && tierOf(world, s).storageTier === 'archive') inArchive += 1;
      } else others += 1;
    }
    const archive = report?.retention?.archive;
    const result: NightResult = {
      night,
      scheduledAt: new Date(at).toISOString(),
      executionName,
      runId: report?.runId ?? null,
      status: run.status,
      ...(run.status === 'FAILED' ? { error: run.error ?? 'Error', cause: run.cause ?? '' } : {}),
      needsAttention: run.status === 'FAILED' || !report || needsAlert(report),
      summary: report?.summary ?? null,
      terminated,
      snapshotsOurs: ours,
      snapshotsOthers: others,
      deleted: deletions.length,
      othersDeleted: deletions.filter((s) => !isOurs(s)).length,
      ...(report && 'retention' in report ? { retention: (report as { retention?: unknown }).retention } : {}),
      ...(drRegion ? { drCopiesOurs: drOurs, drDeleted: allDeletions.length - deletions.length, ...(report?.copies ? { copies: report.copies } : {}) } : {}),
      ...(archive ? { archivedTonight: archive.archived.length, snapshotsInArchive: inArchive } : {}),
      wallSeconds: run.stats.wallSeconds,
    };
    results.push(result);
    await options.onNight?.(result, world, run);
  }
  return results;
}

/** Snapshots that DeleteSnapshot took effect on since mutation `mark` and time `since` (each once). */
function deletedSince(world: World, mark: number, since: number): SimSnapshot[] {
  const ids = new Set<string>();
  for (let i = mark; i < world.mutations.length; i += 1) {
    const m = world.mutations[i];
    if (m?.call === 'ec2:DeleteSnapshot' && m.ok) for (const id of m.ids) ids.add(id);
  }
  return [...ids].flatMap((id) => {
    const s = world.snapshots.get(id);
    // A second delete of a snapshot still pending is accepted too: counted on the night of the first.
    return s && (s.deletedAt ?? since) >= since ? [s] : [];
  });
}

function readNightReport(world: World, run: LocalRunResult): RunReport | undefined {
  const runId = (run.output as { runId?: string } | undefined)?.runId;
  const text = runId ? world.buckets.get(REPORT_BUCKET)?.get(reportKey(runId)) : undefined;
  return text ? (JSON.parse(text) as RunReport) : undefined;
}
