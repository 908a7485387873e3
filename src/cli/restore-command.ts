/**
 * `vss-snapshots restore`: runs the restore state machine against a simulated account. A local world is
 * fresh in each process, so it first runs one nightly cycle on the fleet (quietly) to have snapshots to
 * restore, then starts the restore with the real definition and handlers, as an operator would.
 */
import { writeFileSync } from 'node:fs';
import type { RestoreReport } from '../lib/restore/finish.ts';
import { parseRestoreInput } from '../lib/restore/input.ts';
import type { RunReport } from '../lib/report.ts';
import { plural } from '../lib/report-text.ts';
import { reportKey } from '../lib/run-state.ts';
import { DEMO_FLEET } from '../local/demo-fleet.ts';
import { loadFleetFile, parseFleet } from '../local/fleet.ts';
import { REPORT_BUCKET, runWorkflow } from '../local/runner.ts';
import { worldFromFleet } from '../local/world.ts';
import type { World } from '../local/world.ts';
import { ExecutionWatcher } from './execution-watcher.ts';
import { CommandFailedError, EXIT, UsageError } from './exit-codes.ts';
import type { ExitCode } from './exit-codes.ts';
import { runWatched } from './local-observer.ts';
import { drEnvironment } from './dr-option.ts';
import { checkOutputPath, readInputFile } from './paths.ts';

export interface RestoreCommandOptions {
  source: string;
  target: string;
  run: string;
  devices?: string;
  keepOnFailure?: boolean;
  fleet?: string;
  method?: string;
  json?: boolean;
  dumpWorld?: string;
  quiet?: boolean;
  /** The DR Region: the nightly cycle copies every verified set there, and the restore uses those copies there. */
  drRegion?: string;
}

/** Errors of a restore that was refused before anything was created (contract §2: exit 2). */
const REFUSALS = new Set(['InvalidInputError', 'RestoreRefusedError']);
/** A run id that passes the input check; the real one is known once the nightly cycle ran. */
const PLACEHOLDER_RUN_ID = '19700101T000000Z-00000000';

export async function restoreCommand(opts: RestoreCommandOptions): Promise<ExitCode> {
  // Everything that can be checked without the night is checked before it (it takes a whole simulated cycle).
  const input: Record<string, unknown> = {
    runId: opts.run === 'latest' ? PLACEHOLDER_RUN_ID : opts.run,
    sourceInstanceId: opts.source,
    targetInstanceId: opts.target,
  };
  if (opts.devices !== undefined) input.devices = opts.devices.split(',').map((d) => d.trim()).filter(Boolean);
  if (opts.keepOnFailure) input.keepOnFailure = true;
  if (opts.drRegion) input.region = opts.drRegion;
  checkRestoreInput(input);
  if (opts.dumpWorld) checkOutputPath(opts.dumpWorld, '--dump-world');
  if (opts.fleet) readInputFile(opts.fleet, '--fleet');
  const fleet = opts.fleet ? loadFleetFile(opts.fleet) : parseFleet(DEMO_FLEET, 'built-in demo fleet');
  const world = worldFromFleet(fleet);
  for (const [flag, id] of [['--source', opts.source], ['--target', opts.target]] as const) {
    if (!world.instances.has(id)) {
      const known = [...world.instances.keys()];
      throw new UsageError(`${flag}: instance ${id} is not in ${opts.fleet ?? 'the built-in demo fleet'} (${plural(known.length, 'instance')}: ${known.slice(0, 10).join(', ')}${known.length > 10 ? ', ...' : ''}).`);
    }
  }

  const watcher = new ExecutionWatcher({ workflow: 'restore', quiet: opts.quiet === true, stream: process.stderr });
  const env: Record<string, string> = { ...(opts.method ? { SNAPSHOT_METHOD: opts.method } : {}), ...drEnvironment(opts.drRegion) };

  // 1. One nightly cycle, so the simulated account has a run's snapshots (and with --dr-region, their DR copies).
  const nightly = await runWorkflow(world, { env });
  const latest = (nightly.output as { runId?: string; summary?: { succeeded: number; failed: number; snapshots: number } } | undefined) ?? {};
  if (nightly.status !== 'SUCCEEDED' || !latest.runId) {
    process.stderr.write(`vss-snapshots: the nightly run that provides the snapshots failed: ${nightly.error}: ${nightly.cause}\n`);
    return EXIT.failed;
  }
  watcher.line(
    `vss-snapshots: nightly run ${latest.runId} in the simulated account (${opts.fleet ?? 'the built-in demo fleet'}, method ${opts.method ?? 'aws-vss'}): ${plural(latest.summary?.succeeded ?? 0, 'instance')} succeeded${opts.drRegion ? `, DR copies in ${opts.drRegion}: ${drSummary(world, latest.runId)}` : ''}`,
  );

  // 2. The restore, with the input an operator would give the console.
  input.runId = opts.run === 'latest' ? latest.runId : opts.run;
  watcher.line(`vss-snapshots: restore of run ${String(input.runId)}, ${opts.source} -> ${opts.target}${opts.drRegion ? ` in ${opts.drRegion} from the DR copies there` : ''}`);
  const result = await runWatched(world, watcher, { workflow: 'restore', input, env });
  if (opts.dumpWorld) {
    try {
      writeFileSync(opts.dumpWorld, `${JSON.stringify(world.dump(), null, 2)}\n`);
    } catch (error) {
      throw new CommandFailedError(`--dump-world: could not write ${opts.dumpWorld} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
    }
  }

  if (result.status === 'FAILED') {
    if (opts.json) process.stdout.write(`${JSON.stringify({ status: 'FAILED', error: result.error, cause: result.cause }, null, 2)}\n`);
    if (result.error && REFUSALS.has(result.error)) {
      process.stderr.write(`vss-snapshots: restore refused, nothing created: ${result.cause ?? result.error}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`vss-snapshots: the restore failed: ${result.error}: ${result.cause}\n`);
    return EXIT.failed;
  }
  const report = result.output as RestoreReport;
  if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(formatRestore(report, result.stats.simulatedSeconds));
  return EXIT.ok;
}

/** What the nightly run's report says of its DR copies (`copies`, docs/report.md). */
function drSummary(world: World, runId: string): string {
  const text = world.buckets.get(REPORT_BUCKET)?.get(reportKey(runId));
  const copies = text ? (JSON.parse(text) as RunReport).copies : undefined;
  if (!copies) return 'none reported';
  return `${plural(copies.protected, 'instance')} protected, ${copies.inProgress} in progress, ${copies.failed.length} failed`;
}

/** The restore workflow's own input check, run before the night, its field names said as the options. */
function checkRestoreInput(input: Record<string, unknown>): void {
  try {
    parseRestoreInput(input);
  } catch (error) {
    if (!(error instanceof Error) || error.name !== 'InvalidInputError') throw error;
    const flags: Record<string, string> = { runId: '--run', sourceInstanceId: '--source', targetInstanceId: '--target', devices: '--devices', region: '--dr-region' };
    throw new UsageError(error.message.replace(/field "(runId|sourceInstanceId|targetInstanceId|devices|region)(\[[0-9]+\])?"/g, (_m, field: string, index = '') => `${flags[field]}${index}`));
  }
}

export function formatRestore(report: RestoreReport, simulatedSeconds: number): string {
  const rows = report.volumes.map((v) => [v.sourceDevice, v.snapshotId, v.volumeId, `${v.sizeGiB}`, v.device, v.attachment]);
  const header = ['SOURCE DEVICE', 'SNAPSHOT', 'NEW VOLUME', 'GIB', 'TARGET DEVICE', 'STATE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const revert = report.revert
    ? `Reverted to DiskShadow shadow copy set ${report.revert.shadowSetId} (command ${report.revert.commandId}): ${report.revert.disks.map((d) => `${d.volumeId} disk ${d.diskNumber ?? '?'}${d.signatureChanged ? ' (new disk signature)' : ''}`).join(', ')}${report.revert.warnings.length > 0 ? `\nWarnings: ${report.revert.warnings.join('; ')}` : ''}`
    : 'AWS VSS snapshots: application-consistent as restored, no revert needed.';
  return [
    `Restore ${report.restoreId}: run ${report.runId}${report.fromDrCopies ? ` from its DR copies in ${report.region}` : ''}, ${report.sourceInstanceId} -> ${report.targetInstanceId} in ${report.availabilityZone} (method ${report.method})`,
    `Simulated time ${Math.floor(simulatedSeconds / 60)}m${String(simulatedSeconds % 60).padStart(2, '0')}s`,
    '',
    line(header),
    ...rows.map(line),
    '',
    revert,
    '',
  ].join('\n');
}
