/** `vss-snapshots run`: one nightly cycle against a simulated account, with progress and a summary. */
import { writeFileSync } from 'node:fs';
import type { RunReport } from '../lib/report.ts';
import { formatRunSummary } from '../lib/report-text.ts';
import { readRunProgress } from '../lib/run-progress.ts';
import { reportKey } from '../lib/run-state.ts';
import { DEMO_FLEET } from '../local/demo-fleet.ts';
import { loadFleetFile, parseFleet } from '../local/fleet.ts';
import { REPORT_BUCKET } from '../local/runner.ts';
import type { LocalRunResult } from '../local/runner.ts';
import { worldFromFleet } from '../local/world.ts';
import type { World } from '../local/world.ts';
import { ExecutionWatcher } from './execution-watcher.ts';
import { CommandFailedError, EXIT } from './exit-codes.ts';
import type { ExitCode } from './exit-codes.ts';
import { observerS3, runWatched } from './local-observer.ts';
import { readJsonOption } from './options.ts';
import { drEnvironment } from './dr-option.ts';
import { archiveEnvironment, retainEnvironment } from './retain-option.ts';
import type { RetainPolicy } from './retain-option.ts';
import { checkOutputPath, readInputFile } from './paths.ts';

export interface RunCommandOptions {
  fleet?: string;
  input?: string;
  method?: string;
  json?: boolean;
  report?: string;
  dumpWorld?: string;
  quiet?: boolean;
  /** `count=N,days=M`: the retention defaults of this run (the stack's RetainCount/RetainDays). */
  retain?: RetainPolicy;
  /** `--dr-region`: DR copies into this Region of the simulated account. */
  drRegion?: string;
  /** The stack's ArchiveAfterDays (0: never archive). */
  archiveAfter?: number;
}

export async function runCommand(opts: RunCommandOptions): Promise<ExitCode> {
  // Every file the user named is checked before the simulated night starts (the input itself is checked by
  // Prepare Run, as in AWS: it rejects it before anything is sent).
  const input: unknown = opts.input === undefined ? {} : readJsonOption(opts.input);
  const retainEnv = { ...(opts.retain === undefined ? {} : retainEnvironment(opts.retain)), ...archiveEnvironment(opts.archiveAfter) };
  if (opts.report) checkOutputPath(opts.report, '--report');
  if (opts.dumpWorld) checkOutputPath(opts.dumpWorld, '--dump-world');
  if (opts.fleet) readInputFile(opts.fleet, '--fleet');
  const fleet = opts.fleet ? loadFleetFile(opts.fleet) : parseFleet(DEMO_FLEET, 'built-in demo fleet');
  const world = worldFromFleet(fleet);

  const observer = observerS3(world);
  const watcher = new ExecutionWatcher({
    workflow: 'nightly',
    quiet: opts.quiet === true,
    stream: process.stderr,
    readProgress: (runId) => readRunProgress(observer, REPORT_BUCKET, runId),
  });
  watcher.line(
    `vss-snapshots: one nightly run against a simulated AWS account (${fleet.instances.length} instances in ${opts.fleet ?? 'the built-in demo fleet'}, method ${opts.method ?? 'aws-vss'})`,
  );
  const result = await runWatched(world, watcher, { input, env: { ...(opts.method ? { SNAPSHOT_METHOD: opts.method } : {}), ...retainEnv, ...drEnvironment(opts.drRegion) } });
  const report = readReport(world, result);
  writeOutputs(opts, world, report);

  if (result.status === 'FAILED') {
    if (result.error === 'InvalidInputError') {
      process.stderr.write(`vss-snapshots: ${result.cause ?? 'invalid input'}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`vss-snapshots: the workflow failed: ${result.error}: ${result.cause}\n`);
    const alert = world.published.at(-1);
    if (alert) process.stderr.write(`\nAlert published: ${alert.subject}\n${alert.message}\n`);
    if (opts.json && report) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return EXIT.failed;
  }
  if (!report) {
    process.stderr.write('vss-snapshots: the run finished but wrote no report.\n');
    return EXIT.failed;
  }
  if (opts.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else process.stdout.write(formatRunSummary(report, { context: [simulatedTime(result)], withAlert: true, reportLine: reportLine(report, opts) }));
  const needsAlert = report.summary.failed > 0 || report.summary.targeted === 0;
  return needsAlert ? EXIT.alert : EXIT.ok;
}

function writeOutputs(opts: RunCommandOptions, world: World, report: RunReport | undefined): void {
  const write = (path: string, flag: string, value: unknown) => {
    try {
      writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`);
    } catch (error) {
      throw new CommandFailedError(`${flag}: could not write ${path} after the run (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
    }
  };
  if (opts.dumpWorld) write(opts.dumpWorld, '--dump-world', world.dump());
  if (opts.report && report) write(opts.report, '--report', report);
}

function simulatedTime(result: LocalRunResult): string {
  const seconds = result.stats.simulatedSeconds;
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  const text = h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
  return `Simulated time ${text}, real time ${result.stats.wallSeconds.toFixed(2)} s`;
}

function reportLine(report: RunReport, opts: RunCommandOptions): string {
  if (opts.report) return `Report: ${opts.report} (and ${report.reportLocation ?? '(none)'} in the simulated account)`;
  return `Report: ${report.reportLocation ?? '(none)'} in the simulated account (use --report FILE or --json to get it)`;
}

function readReport(world: World, result: LocalRunResult): RunReport | undefined {
  const objects = world.buckets.get(REPORT_BUCKET);
  if (!objects) return undefined;
  const runId = (result.output as { runId?: string } | undefined)?.runId;
  const key = runId ? reportKey(runId) : [...objects.keys()].filter((k) => k.startsWith('reports/')).sort().at(-1);
  const text = key ? objects.get(key) : undefined;
  return text ? (JSON.parse(text) as RunReport) : undefined;
}
