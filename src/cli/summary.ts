/** The readable end-of-run table `vss-snapshots run` prints. */
import type { RunReport } from '../lib/report.ts';
import type { LocalRunResult } from '../local/runner.ts';

function duration(seconds: number): string {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s).padStart(2, '0')}s`;
}

export function formatSummary(report: RunReport, result: LocalRunResult): string {
  const rows = report.instances.map((i) => [
    i.instanceId,
    i.name ?? '',
    i.outcome,
    String(i.attempts),
    String(i.snapshots.length),
    i.outcome === 'succeeded' ? '' : `${i.detail ?? i.reason ?? ''}${i.fallbackSnapshots?.length ? ` [crash-consistent fallback kept: ${i.fallbackSnapshots.length}]` : ''}`,
  ]);
  const header = ['INSTANCE', 'NAME', 'OUTCOME', 'ATTEMPTS', 'SNAPSHOTS', 'REASON'];
  const widths = header.map((h, col) => Math.min(col === 5 ? 200 : 40, Math.max(h.length, ...rows.map((r) => (r[col] ?? '').length))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const s = report.summary;
  const verified = report.instances.filter((i) => i.outcome === 'succeeded').reduce((n, i) => n + i.snapshots.length, 0);
  const fallbacks = report.instances.reduce((n, i) => n + (i.fallbackSnapshots?.length ?? 0), 0);
  const out = [
    '',
    `Run ${report.runId}${report.dryRun ? ' (dry run)' : ''}, method ${report.method}, selector ${report.selector.tagKey}=${report.selector.tagValue}${report.selector.instanceIds ? ` + ${report.selector.instanceIds.length} instance id(s)` : ''}`,
    `Simulated time ${duration(result.stats.simulatedSeconds)}, real time ${result.stats.wallSeconds.toFixed(2)} s`,
    '',
    line(header),
    ...rows.map(line),
    '',
    `${s.succeeded} succeeded, ${s.failed} failed, ${s.skipped} skipped${s.planned ? `, ${s.planned} planned` : ''} of ${s.targeted} matched; ${verified} snapshots verified${fallbacks > 0 ? `; ${fallbacks} crash-consistent fallback snapshot(s) kept for failed instances (NOT application-consistent)` : ''}`,
    ...(report.notFound ? [`Requested but not found: ${report.notFound.join(', ')}`] : []),
    report.alert ? `ALERT published: ${report.alert.subject}` : report.dryRun ? 'Dry run: nothing sent, no alert published.' : 'No alert needed: every targeted instance has a verified application-consistent snapshot.',
    `Report: ${report.reportLocation ?? '(none)'} in the simulated account (use --report FILE or --json to get it)`,
    '',
  ];
  if (report.alert) out.splice(out.length - 2, 0, '', report.alert.message, '');
  return `${out.join('\n')}\n`;
}
