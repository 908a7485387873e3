/** `vss-snapshots run`: one nightly cycle against a simulated account, with progress and a summary. */
import { progressWriter } from './progress.ts';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { SNAPSHOT_METHODS } from '../lib/config.ts';
import type { RunReport } from '../lib/report.ts';
import { reportKey } from '../lib/run-state.ts';
import { DEMO_FLEET } from '../local/demo-fleet.ts';
import { loadFleetFile, parseFleet } from '../local/fleet.ts';
import { REPORT_BUCKET, runWorkflow } from '../local/runner.ts';
import type { EventLog, LocalRunResult } from '../local/runner.ts';
import { worldFromFleet } from '../local/world.ts';
import type { World } from '../local/world.ts';
import { EXIT, UsageError } from './main.ts';
import { formatSummary } from './summary.ts';

export async function runCommand(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        fleet: { type: 'string' },
        input: { type: 'string' },
        method: { type: 'string' },
        json: { type: 'boolean', default: false },
        report: { type: 'string' },
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
  const input: unknown = opts.input === undefined ? {} : parseInputOption(opts.input);
  if (opts.method !== undefined && !(SNAPSHOT_METHODS as readonly string[]).includes(opts.method)) {
    throw new UsageError(`--method must be one of ${SNAPSHOT_METHODS.join(', ')} (got "${opts.method}").`);
  }
  const fleet = opts.fleet ? loadFleetFile(opts.fleet) : parseFleet(DEMO_FLEET, 'built-in demo fleet');
  const world = worldFromFleet(fleet);
  const progress = progressWriter((text) => process.stderr.write(text), opts.quiet);
  progress(`vss-snapshots: one nightly run against a simulated AWS account (${fleet.instances.length} instances in ${opts.fleet ?? 'the built-in demo fleet'}, method ${opts.method ?? 'aws-vss'})`);

  const start = world.now;
  const caught = new Set<string>();
  const result = await runWorkflow(world, {
    input,
    env: opts.method ? { SNAPSHOT_METHOD: opts.method } : {},
    onEvent: (event) => progress(describeEvent(event, world, start, caught)),
  });
  const report = readReport(world, result);
  if (opts['dump-world']) writeFileSync(opts['dump-world'], `${JSON.stringify(world.dump(), null, 2)}\n`);
  if (opts.report && report) writeFileSync(opts.report, `${JSON.stringify(report, null, 2)}\n`);

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
  else process.stdout.write(formatSummary(report, result));
  const needsAlert = report.summary.failed > 0 || report.summary.targeted === 0;
  return needsAlert ? EXIT.alert : EXIT.ok;
}

/**
 * `--input` is the execution input as JSON text (contract §2). A value that is not JSON but names an
 * existing file is read as that file's JSON, so `--input input.json` works as well.
 */
function parseInputOption(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    if (existsSync(value) && statSync(value).isFile()) {
      try {
        return JSON.parse(readFileSync(value, 'utf8'));
      } catch (fileError) {
        throw new UsageError(`--input file ${value} is not valid JSON (${(fileError as Error).message}).`);
      }
    }
    throw new UsageError(`--input is not valid JSON (${(error as Error).message}). Example: --input '{"dryRun": true}'`);
  }
}

function readReport(world: World, result: LocalRunResult): RunReport | undefined {
  const objects = world.buckets.get(REPORT_BUCKET);
  if (!objects) return undefined;
  const runId = (result.output as { runId?: string } | undefined)?.runId;
  const key = runId ? reportKey(runId) : [...objects.keys()].filter((k) => k.startsWith('reports/')).sort().at(-1);
  const text = key ? objects.get(key) : undefined;
  return text ? (JSON.parse(text) as RunReport) : undefined;
}

const elapsed = (ms: number): string => {
  const s = Math.round(ms / 1000);
  return `+${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
};

/** One progress line per event worth telling; `caught` remembers states whose error a Catch took. */
function describeEvent(event: EventLog, world: World, start: number, caught = new Set<string>()): string {
  const at = `[${elapsed(world.now - start)}]`;
  if (event.type === 'StateCaught') {
    caught.add(event.state.name);
    // InvalidInputError goes to "Input Rejected": the execution fails, nothing is sent and nothing is alerted.
    if (event.catch.catcher.Next === 'Input Rejected') return `${at} ${event.state.name}: input rejected, nothing sent`;
    return `${at} ${event.state.name}: failed, alerting`;
  }
  if (event.type === 'StateExited' && caught.delete(event.state.name)) return '';
  if (event.type === 'StateExited' && event.state.type === 'Task') {
    const out = event.state.output as { counts?: Record<string, number>; summary?: Record<string, number> } | undefined;
    if (out?.counts && event.state.name !== 'Prepare Run') {
      const c = out.counts;
      const parts = Object.entries({
        'awaiting command': c.send,
        'commands running': c.command,
        verifying: c.verify,
        'waiting to retry': c.retry,
        succeeded: c.succeeded,
        failed: c.failed,
        skipped: c.skipped,
        planned: c.planned,
      })
        .filter(([, n]) => (n ?? 0) > 0)
        .map(([k, n]) => `${n} ${k}`);
      const extra = [c.unconfirmed ? `${c.unconfirmed} send${c.unconfirmed === 1 ? '' : 's'} unconfirmed` : '', c.discard ? `${c.discard} snapshot${c.discard === 1 ? '' : 's'} to delete` : ''].filter(Boolean);
      return `${at} ${event.state.name}: ${[...parts, ...extra].join(', ') || 'no instances'}`;
    }
    if (out?.summary) return `${at} ${event.state.name}: report written`;
    if (event.state.name === 'Prepare Run') return `${at} Prepare Run: input accepted, no other run in progress`;
    return `${at} ${event.state.name}: done`;
  }
  if (event.type === 'StateEntered' && event.state.type === 'Wait') return `${at} ${event.state.name}`;
  if (event.type === 'StateRetried') return `${at} ${event.state.name}: retried after an error`;
  return '';
}
