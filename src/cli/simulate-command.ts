/**
 * `vss-snapshots simulate`: N nightly cycles 24 hours apart in one simulated account (src/local/simulation.ts),
 * one line per night and a chart of this stack's snapshots over the nights — what months of hands-off nights do
 * to an account, in seconds.
 */
import { writeFileSync } from 'node:fs';
import { parseExecutionInput } from '../lib/execution-input.ts';
import { plural } from '../lib/report-text.ts';
import { DEMO_FLEET } from '../local/demo-fleet.ts';
import { loadFleetFile, parseFleet } from '../local/fleet.ts';
import type { Fleet } from '../local/fleet.ts';
import { simulateNights } from '../local/simulation.ts';
import type { NightResult } from '../local/simulation.ts';
import { worldFromFleet } from '../local/world.ts';
import { CommandFailedError, EXIT } from './exit-codes.ts';
import type { ExitCode } from './exit-codes.ts';
import { nightChart } from './night-chart.ts';
import { readJsonOption } from './options.ts';
import { checkOutputPath, readInputFile } from './paths.ts';
import { drEnvironment } from './dr-option.ts';
import { archiveEnvironment, formatRetainPolicy, retainEnvironment } from './retain-option.ts';
import type { RetainPolicy } from './retain-option.ts';

export interface SimulateCommandOptions {
  nights: number;
  fleet?: string;
  input?: string;
  json?: boolean;
  dumpWorld?: string;
  retain?: RetainPolicy;
  /** `--dr-region`: DR copies into this Region of the simulated account, every night. */
  drRegion?: string;
  /** The stack's ArchiveAfterDays (0: never archive); on, the night lines get the archive's columns. */
  archiveAfter?: number;
  quiet?: boolean;
}

export async function simulateCommand(opts: SimulateCommandOptions): Promise<ExitCode> {
  // Everything is checked before the first night: files, the input (as Prepare Run would check it each night).
  const input: unknown = opts.input === undefined ? {} : readJsonOption(opts.input);
  parseExecutionInput(input);
  if (opts.dumpWorld) checkOutputPath(opts.dumpWorld, '--dump-world');
  if (opts.fleet) readInputFile(opts.fleet, '--fleet');
  const fleetName = opts.fleet ?? 'the built-in demo fleet';
  const fleet = opts.fleet ? loadFleetFile(opts.fleet) : parseFleet(DEMO_FLEET, 'built-in demo fleet');
  const world = worldFromFleet(fleet);
  const started = performance.now();

  // Night lines are the output in text mode (stdout); with --json they are progress (stderr, unless --quiet).
  const lineOut = (text: string) => {
    if (!opts.json) process.stdout.write(text);
    else if (!opts.quiet) process.stderr.write(text);
  };
  const note = (text: string) => {
    if (!opts.quiet) process.stderr.write(text);
  };
  note(
    `vss-snapshots: ${plural(opts.nights, 'night')} 24 h apart in one simulated AWS account (${plural(fleet.instances.length, 'instance')} in ${fleetName}` +
      `${opts.retain ? `, --retain ${formatRetainPolicy(opts.retain)}` : ''}${opts.archiveAfter ? `, --archive-after ${opts.archiveAfter}` : ''}${opts.drRegion ? `, DR copies into ${opts.drRegion}` : ''})\n`,
  );
  for (const text of unusedNights(fleet, opts.nights)) note(`note: ${text}\n`);
  const archiveColumns = (opts.archiveAfter ?? 0) > 0;
  lineOut(`${HEADER}${archiveColumns ? ARCHIVE_HEADER : ''}${opts.drRegion ? DR_HEADER : ''}\n`);

  const results = await simulateNights(world, fleet, {
    nights: opts.nights,
    input,
    env: { ...(opts.retain ? retainEnvironment(opts.retain) : {}), ...archiveEnvironment(opts.archiveAfter), ...drEnvironment(opts.drRegion) },
    onNight: (night) => lineOut(`${nightLine(night, world.instances)}\n`),
  });
  const wallSeconds = (performance.now() - started) / 1000;

  if (opts.dumpWorld) {
    try {
      writeFileSync(opts.dumpWorld, `${JSON.stringify(world.dump(), null, 2)}\n`);
    } catch (error) {
      throw new CommandFailedError(`--dump-world: could not write ${opts.dumpWorld} after the simulation (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
    }
  }
  if (opts.json) {
    process.stdout.write(`${JSON.stringify({ nights: results, ...(opts.retain ? { retain: opts.retain } : {}), ...(opts.archiveAfter !== undefined ? { archiveAfter: opts.archiveAfter } : {}), ...(opts.drRegion ? { drRegion: opts.drRegion } : {}), simulatedDays: opts.nights, wallSeconds: Number(wallSeconds.toFixed(2)) }, null, 2)}\n`);
  } else {
    process.stdout.write(`\n${nightChart(results.map((r) => r.snapshotsOurs), { title: 'Snapshots of this stack in the account, after each night:' })}`);
    if (opts.drRegion) process.stdout.write(`\n${nightChart(results.map((r) => r.drCopiesOurs ?? 0), { title: `DR copies of this stack in ${opts.drRegion}, after each night:` })}`);
    process.stdout.write(`\n${closingLine(results, wallSeconds)}\n`);
  }
  if (results.some((r) => r.status === 'FAILED')) return EXIT.failed;
  return results.some((r) => r.needsAttention) ? EXIT.alert : EXIT.ok;
}

const HEADER = 'night  date        outcome                              ours  deleted  others';
/** With --dr-region: this stack's copies in the DR Region, and the night's sets protected there / not (yet). */
const DR_HEADER = '  in-DR  protected  missing';
/** With the archive tier on: snapshots sent to the archive that night, this stack's snapshots in the archive after it. */
const ARCHIVE_HEADER = '  archived  in-archive';

/** One night: when, how it went, this stack's snapshots after it, deletions that night, everyone else's snapshots. */
export function nightLine(night: NightResult, instances: ReadonlyMap<string, { name?: string }>): string {
  const date = night.scheduledAt.slice(0, 10);
  let outcome: string;
  if (night.status === 'FAILED') outcome = `WORKFLOW FAILED: ${night.error}`;
  else if (!night.summary) outcome = 'no report';
  else {
    const s = night.summary;
    const counts = [`${s.succeeded} ok`, ...(s.failed ? [`${s.failed} failed`] : []), ...(s.skipped ? [`${s.skipped} skipped`] : []), ...(s.planned ? [`${s.planned} planned`] : [])].join(', ');
    outcome = `${night.needsAttention ? 'attention' : 'clean    '} ${counts}`;
  }
  const extras = [
    ...night.terminated.map((id) => `${instances.get(id)?.name ?? id} terminated`),
    ...(night.othersDeleted > 0 ? [`!! ${plural(night.othersDeleted, 'snapshot')} not made by this stack deleted`] : []),
  ];
  const copies = night.copies as { protected?: number; inProgress?: number; failed?: unknown[] } | undefined;
  const dr =
    night.drCopiesOurs === undefined
      ? ''
      : `  ${String(night.drCopiesOurs).padStart(5)}  ${String(copies?.protected ?? 0).padStart(9)}  ${String((copies?.inProgress ?? 0) + (copies?.failed?.length ?? 0)).padStart(7)}`;
  const archive = night.archivedTonight !== undefined ? `  ${String(night.archivedTonight).padStart(8)}  ${String(night.snapshotsInArchive ?? 0).padStart(10)}` : '';
  const line = `${String(night.night).padStart(5)}  ${date}  ${outcome.slice(0, 35).padEnd(35)}  ${String(night.snapshotsOurs).padStart(5)}  ${String(night.deleted).padStart(7)}  ${String(night.snapshotsOthers).padStart(6)}${archive}${dr}`;
  return extras.length ? `${line}  (${extras.join('; ')})` : line;
}

function closingLine(results: NightResult[], wallSeconds: number): string {
  const attention = results.filter((r) => r.needsAttention).map((r) => r.night);
  const deleted = results.reduce((n, r) => n + r.deleted, 0);
  const first = results[0]?.snapshotsOurs ?? 0;
  const last = results.at(-1)?.snapshotsOurs ?? 0;
  return [
    `${plural(results.length, 'night')} in ${wallSeconds.toFixed(1)} s: ${attention.length === 0 ? 'every night clean' : `${plural(attention.length, 'night')} needed attention (${attention.slice(0, 12).join(', ')}${attention.length > 12 ? ', ...' : ''})`}.`,
    `This stack's snapshots: ${first} after night 1, ${last} after night ${results.length}; ${plural(deleted, 'snapshot')} deleted in all.`,
  ].join('\n');
}

/** Fleet `nights` and `terminatedOnNight` beyond the last night: said, not an error (the same file serves shorter runs). */
function unusedNights(fleet: Fleet, nights: number): string[] {
  const out: string[] = [];
  for (const [i, spec] of fleet.instances.entries()) {
    for (const night of Object.keys(spec.nights ?? {})) if (Number(night) > nights) out.push(`instances[${i}].nights["${night}"] is after the last night (${nights}): not used.`);
    if (spec.terminatedOnNight !== undefined && spec.terminatedOnNight > nights) out.push(`instances[${i}].terminatedOnNight ${spec.terminatedOnNight} is after the last night (${nights}): not terminated.`);
  }
  return out;
}
