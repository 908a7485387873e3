/** `vss-snapshots bench`: the scale benchmark (logic in src/bench). */
import { writeFileSync } from 'node:fs';
import { scalingChartSvg } from '../bench/chart.ts';
import { formatBench, formatScaling, markdownTable } from '../bench/format.ts';
import { BENCH_DEFAULTS, runBench, scaling } from '../bench/run.ts';
import type { BenchResult } from '../bench/run.ts';
import { EXIT, UsageError } from './exit-codes.ts';
import { checkOutputPath } from './paths.ts';
import type { ExitCode } from './exit-codes.ts';

export interface BenchCommandOptions {
  instances: string;
  volumes?: number;
  failRate?: number;
  hangRate?: number;
  drRegion?: string;
  drConcurrency?: number;
  drSteady?: boolean;
  commandSeconds?: number;
  snapshotMinutes?: number;
  ssmRate?: number;
  pressure: boolean;
  json?: boolean;
  markdown?: boolean;
  chart?: string;
  quiet?: boolean;
}

/** The largest fleet the bench (and a fleet file) takes. */
const MAX_INSTANCES = 100_000;

export async function benchCommand(opts: BenchCommandOptions): Promise<ExitCode> {
  const sizes = opts.instances.split(',').map((s) => {
    const text = s.trim();
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || n < 1 || n > MAX_INSTANCES) throw new UsageError(`--instances: each size must be a whole number from 1 to ${MAX_INSTANCES} (got "${text}").`);
    return n;
  });
  if (opts.chart !== undefined) {
    if (new Set(sizes).size < 2) throw new UsageError('--chart: give two fleet sizes or more in --instances (e.g. 1000,10000,100000).');
    checkOutputPath(opts.chart, '--chart');
  }
  const progress = opts.quiet || opts.json ? undefined : (line: string) => process.stderr.write(`${line}\n`);
  const results: BenchResult[] = [];
  for (const instances of sizes) {
    progress?.(`vss-snapshots bench: ${instances} instances...`);
    const result = await runBench({
      instances,
      volumes: opts.volumes ?? BENCH_DEFAULTS.volumes,
      failRate: opts.failRate ?? BENCH_DEFAULTS.failRate,
      hangRate: opts.hangRate ?? BENCH_DEFAULTS.hangRate,
      commandSeconds: opts.commandSeconds ?? BENCH_DEFAULTS.commandSeconds,
      snapshotMinutes: opts.snapshotMinutes ?? BENCH_DEFAULTS.snapshotMinutes,
      pressure: opts.pressure,
      ...(opts.ssmRate !== undefined ? { ssmRate: opts.ssmRate } : {}),
      ...(opts.drRegion ? { drRegion: opts.drRegion, ...(opts.drConcurrency ? { drConcurrency: opts.drConcurrency } : {}), drSteady: opts.drSteady === true } : {}),
      ...(progress ? { progress } : {}),
    });
    results.push(result);
    if (!opts.json && !opts.markdown) process.stdout.write(`${formatBench(result)}\n`);
  }
  const spread = scaling(results);
  if (opts.json) process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
  else if (opts.markdown || results.length > 1) process.stdout.write(markdownTable(results));
  if (spread && !opts.json) process.stdout.write(formatScaling(spread));
  if (opts.chart !== undefined) {
    // From 1,000 instances on when there are two such sizes (below, the run's fixed costs dominate per instance).
    const large = results.filter((r) => r.instances >= 1000);
    writeFileSync(opts.chart, scalingChartSvg(new Set(large.map((r) => r.instances)).size >= 2 ? large : results));
  }
  return results.every((r) => r.status === 'SUCCEEDED') ? EXIT.ok : EXIT.failed;
}
