/** `vss-snapshots report [FILE | s3://bucket/key | latest | RUNID]`: the human summary of any run report. */
import { formatRunSummary } from '../lib/report-text.ts';
import { needsAlert } from '../lib/report.ts';
import type { AwsOptions } from './aws-stack.ts';
import { EXIT } from './exit-codes.ts';
import type { ExitCode } from './exit-codes.ts';
import { loadReport } from './report-source.ts';

export interface ReportCommandOptions extends AwsOptions {
  failed?: boolean;
  json?: boolean;
}

export async function reportCommand(source: string, opts: ReportCommandOptions): Promise<ExitCode> {
  const { report, location } = await loadReport(source, opts);
  if (opts.json) {
    const shown = opts.failed ? { ...report, instances: report.instances.filter((i) => i.outcome === 'failed') } : report;
    process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
  } else {
    process.stdout.write(formatRunSummary(report, { failedOnly: opts.failed === true, withAlert: opts.failed !== true, reportLine: `Report: ${location}` }));
  }
  // The same rule as `run`: exit 3 when the run needs an alert (an instance failed, or nothing matched).
  return needsAlert(report) ? EXIT.alert : EXIT.ok;
}
