/** `vss-snapshots bench`: the scale benchmark (logic in src/bench). */
import { parseArgs } from 'node:util';
import { markdownTable, formatBench } from '../bench/format.ts';
import { BENCH_DEFAULTS, runBench } from '../bench/run.ts';
import type { BenchResult } from '../bench/run.ts';
import { EXIT, UsageError } from './main.ts';

export async function benchCommand(args: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        instances: { type: 'string' },
        volumes: { type: 'string' },
        'fail-rate': { type: 'string' },
        'command-seconds': { type: 'string' },
        'snapshot-minutes': { type: 'string' },
        'ssm-rate': { type: 'string' },
        'no-pressure': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        markdown: { type: 'boolean', default: false },
        quiet: { type: 'boolean', default: false },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.instances === undefined) throw new UsageError('bench needs --instances N (or a list: --instances 10,100,1000,10000).');
  const sizes = values.instances.split(',').map((s) => wholeNumber(s.trim(), '--instances', 1, 20_000));
  const volumes = values.volumes === undefined ? BENCH_DEFAULTS.volumes : wholeNumber(values.volumes, '--volumes', 1, 22);
  const failRate = values['fail-rate'] === undefined ? BENCH_DEFAULTS.failRate : fraction(values['fail-rate'], '--fail-rate');
  const commandSeconds = values['command-seconds'] === undefined ? BENCH_DEFAULTS.commandSeconds : wholeNumber(values['command-seconds'], '--command-seconds', 0, 172_800);
  const snapshotMinutes = values['snapshot-minutes'] === undefined ? BENCH_DEFAULTS.snapshotMinutes : wholeNumber(values['snapshot-minutes'], '--snapshot-minutes', 0, 10_000);
  const ssmRate = values['ssm-rate'] === undefined ? undefined : positive(values['ssm-rate'], '--ssm-rate');
  const progress = values.quiet || values.json ? undefined : (line: string) => process.stderr.write(`${line}\n`);

  const results: BenchResult[] = [];
  for (const instances of sizes) {
    progress?.(`vss-snapshots bench: ${instances} instances...`);
    const result = await runBench({ instances, volumes, failRate, commandSeconds, snapshotMinutes, pressure: !values['no-pressure'], ...(ssmRate !== undefined ? { ssmRate } : {}), ...(progress ? { progress } : {}) });
    results.push(result);
    if (!values.json && !values.markdown) process.stdout.write(`${formatBench(result)}\n`);
  }
  if (values.json) process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : results, null, 2)}\n`);
  else if (values.markdown || results.length > 1) process.stdout.write(markdownTable(results));
  return results.every((r) => r.status === 'SUCCEEDED') ? EXIT.ok : EXIT.failed;
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const n = Number(text);
  if (!/^[0-9]+$/.test(text) || n < min || n > max) throw new UsageError(`${flag} must be a whole number from ${min} to ${max} (got "${text}").`);
  return n;
}

function fraction(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n < 0 || n > 1) throw new UsageError(`${flag} must be a number from 0 to 1 (got "${text}").`);
  return n;
}

function positive(text: string, flag: string): number {
  const n = Number(text);
  if (text.trim() === '' || !Number.isFinite(n) || n <= 0) throw new UsageError(`${flag} must be a positive number (got "${text}").`);
  return n;
}
