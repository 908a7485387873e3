/**
 * `vss-snapshots restore`: runs the restore state machine against a simulated account. A local world is
 * fresh in each process, so it first runs one nightly cycle on the fleet (quietly) to have snapshots to
 * restore, then starts the restore with the real definition and handlers, as an operator would.
 */
import { progressWriter } from './progress.ts';
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SNAPSHOT_METHODS } from '../lib/config.ts';
import type { RestoreReport } from '../lib/restore/finish.ts';
import { DEMO_FLEET } from '../local/demo-fleet.ts';
import { loadFleetFile, parseFleet } from '../local/fleet.ts';
import { runWorkflow } from '../local/runner.ts';
import type { EventLog } from '../local/runner.ts';
import { worldFromFleet } from '../local/world.ts';
import type { World } from '../local/world.ts';
import { EXIT, UsageError } from './main.ts';

export async function restoreCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        run: { type: 'string', default: 'latest' },
        source: { type: 'string' },
        target: { type: 'string' },
        devices: { type: 'string' },
        'keep-on-failure': { type: 'boolean', default: false },
        fleet: { type: 'string' },
        method: { type: 'string' },
        json: { type: 'boolean', default: false },
        'dump-world': { type: 'string' },
        quiet: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const opts = parsed.values;
  if (!opts.source) throw new UsageError('restore needs --source <instance id>: the instance whose snapshots are restored.');
  if (!opts.target) throw new UsageError('restore needs --target <instance id>: the instance the restored volumes are attached to.');
  if (opts.method !== undefined && !(SNAPSHOT_METHODS as readonly string[]).includes(opts.method)) {
    throw new UsageError(`--method must be one of ${SNAPSHOT_METHODS.join(', ')} (got "${opts.method}").`);
  }
  const fleet = opts.fleet ? loadFleetFile(opts.fleet) : parseFleet(DEMO_FLEET, 'built-in demo fleet');
  const world = worldFromFleet(fleet);
  const progress = progressWriter((text) => process.stderr.write(text), opts.quiet);
  const env: Record<string, string> = opts.method ? { SNAPSHOT_METHOD: opts.method } : {};

  // 1. One nightly cycle, so the simulated account has a run's snapshots.
  const nightly = await runWorkflow(world, { env });
  const latest = (nightly.output as { runId?: string; summary?: { succeeded: number; failed: number; snapshots: number } } | undefined) ?? {};
  if (nightly.status !== 'SUCCEEDED' || !latest.runId) {
    process.stderr.write(`vss-snapshots: the nightly run that provides the snapshots failed: ${nightly.error}: ${nightly.cause}\n`);
    return EXIT.failed;
  }
  progress(
    `vss-snapshots: nightly run ${latest.runId} in the simulated account (${opts.fleet ?? 'the built-in demo fleet'}, method ${opts.method ?? 'aws-vss'}): ${latest.summary?.succeeded ?? 0} instance(s) succeeded, ${latest.summary?.snapshots ?? 0} snapshot(s)`,
  );

  // 2. The restore, with the input an operator would give the console.
  const runId = opts.run === 'latest' ? latest.runId : opts.run;
  const input: Record<string, unknown> = { runId, sourceInstanceId: opts.source, targetInstanceId: opts.target };
  if (opts.devices !== undefined) input.devices = opts.devices.split(',').map((d) => d.trim()).filter(Boolean);
  if (opts['keep-on-failure']) input.keepOnFailure = true;
  progress(`vss-snapshots: restore of run ${runId}, ${opts.source} -> ${opts.target}`);
  const start = world.now;
  const result = await runWorkflow(world, { workflow: 'restore', input, env, onEvent: (event) => progress(describeEvent(event, world, start)) });
  if (opts['dump-world']) writeFileSync(opts['dump-world'], `${JSON.stringify(world.dump(), null, 2)}\n`);

  if (result.status === 'FAILED') {
    if (opts.json) process.stdout.write(`${JSON.stringify({ status: 'FAILED', error: result.error, cause: result.cause }, null, 2)}\n`);
    if (result.error === 'InvalidInputError') {
      process.stderr.write(`vss-snapshots: ${result.cause ?? 'invalid restore input'}\n`);
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

export function formatRestore(report: RestoreReport, simulatedSeconds: number): string {
  const rows = report.volumes.map((v) => [v.sourceDevice, v.snapshotId, v.volumeId, `${v.sizeGiB}`, v.device, v.attachment]);
  const header = ['SOURCE DEVICE', 'SNAPSHOT', 'NEW VOLUME', 'GIB', 'TARGET DEVICE', 'STATE'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  const revert = report.revert
    ? `Reverted to DiskShadow shadow copy set ${report.revert.shadowSetId} (command ${report.revert.commandId}): ${report.revert.disks.map((d) => `${d.volumeId} disk ${d.diskNumber ?? '?'}${d.signatureChanged ? ' (new disk signature)' : ''}`).join(', ')}${report.revert.warnings.length > 0 ? `\nWarnings: ${report.revert.warnings.join('; ')}` : ''}`
    : 'AWS VSS snapshots: application-consistent as restored, no revert needed.';
  return [
    `Restore ${report.restoreId}: run ${report.runId}, ${report.sourceInstanceId} -> ${report.targetInstanceId} in ${report.availabilityZone} (method ${report.method})`,
    `Simulated time ${Math.floor(simulatedSeconds / 60)}m${String(simulatedSeconds % 60).padStart(2, '0')}s`,
    '',
    line(header),
    ...rows.map(line),
    '',
    revert,
    '',
  ].join('\n');
}

const elapsed = (ms: number): string => {
  const s = Math.round(ms / 1000);
  return `+${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};

function describeEvent(event: EventLog, world: World, start: number): string {
  const at = `[${elapsed(world.now - start)}]`;
  if (event.type === 'StateExited' && event.state.type === 'Task') return `${at} ${event.state.name}: done`;
  if (event.type === 'StateEntered' && event.state.type === 'Wait') return `${at} ${event.state.name}`;
  if (event.type === 'StateRetried') return `${at} ${event.state.name}: retried after an error`;
  if (event.type === 'StateCaught') return `${at} ${event.state.name}: failed, cleaning up`;
  return '';
}
