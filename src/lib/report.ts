/**
 * The run report of contract §4, built from the run state, and the alert text that goes with it.
 */
import { failureKind } from './failure-catalogue.ts';
import type { InstanceRecord, RunState, SnapshotRef } from './run-state.ts';

export type Outcome = 'succeeded' | 'failed' | 'skipped' | 'planned';

export interface ReportInstance {
  instanceId: string;
  name?: string;
  outcome: Outcome;
  reason?: string;
  code?: string;
  detail?: string;
  attempts: number;
  /** When this instance's outcome became final. */
  finishedAt?: string;
  snapshots: SnapshotRef[];
  /** Failed instances: the complete crash-consistent set of the last attempt, kept on purpose (may be empty). */
  fallbackSnapshots?: SnapshotRef[];
}

export interface RunReport {
  runId: string;
  startedAt: string;
  finishedAt: string;
  dryRun: boolean;
  method: string;
  selector: { tagKey: string; tagValue: string; instanceIds?: string[] };
  /** `snapshots`: verified snapshots of succeeded instances; `fallbackSnapshots`: crash-consistent sets kept for failed ones. */
  summary: { targeted: number; succeeded: number; failed: number; skipped: number; planned: number; snapshots: number; fallbackSnapshots: number };
  instances: ReportInstance[];
  notFound?: string[];
  reportLocation?: string;
  alert: null | { subject: string; message: string };
}

/** At most this many instances are named in an alert; the rest are counted and found in the report. */
export const ALERT_MAX_NAMED = 100;

export function buildReport(state: RunState, finishedAt: string, reportLocation: string): RunReport {
  const instances = state.instances.map(toReportInstance);
  const count = (o: Outcome) => instances.filter((i) => i.outcome === o).length;
  const report: RunReport = {
    runId: state.runId,
    startedAt: state.startedAt,
    finishedAt,
    dryRun: state.dryRun,
    method: state.options.method,
    selector: state.selector,
    summary: {
      targeted: instances.length,
      succeeded: count('succeeded'),
      failed: count('failed'),
      skipped: count('skipped'),
      planned: count('planned'),
      snapshots: instances.reduce((n, i) => n + i.snapshots.length, 0),
      fallbackSnapshots: instances.reduce((n, i) => n + (i.fallbackSnapshots?.length ?? 0), 0),
    },
    instances,
    ...(state.notFound.length > 0 ? { notFound: state.notFound } : {}),
    reportLocation,
    alert: null,
  };
  if (!state.dryRun && needsAlert(report)) report.alert = composeAlert(report, state.executionArn);
  return report;
}

/** Contract §2/§4: an alert is due when an instance failed or nothing matched the selector. */
export function needsAlert(report: Pick<RunReport, 'summary'>): boolean {
  return report.summary.failed > 0 || report.summary.targeted === 0;
}

function toReportInstance(record: InstanceRecord): ReportInstance {
  // A run that ended mid-flight (workflow failure) reports unfinished instances as failed, code `unfinished`:
  // whatever its last attempt said is not its outcome.
  const final = record.phase === 'succeeded' || record.phase === 'skipped' || record.phase === 'planned' || record.phase === 'failed';
  const outcome: Outcome = final ? (record.phase as Outcome) : 'failed';
  const out: ReportInstance = {
    instanceId: record.instanceId,
    ...(record.name !== undefined ? { name: record.name } : {}),
    outcome,
    attempts: record.attempts,
    ...(record.finishedAt !== undefined ? { finishedAt: new Date(record.finishedAt).toISOString() } : {}),
    snapshots: outcome === 'succeeded' ? record.snapshots : [],
    ...(outcome === 'failed' ? { fallbackSnapshots: record.fallbackSnapshots ?? [] } : {}),
  };
  if (!final) {
    const last = record.detail ? ` Its last attempt: ${record.detail}` : '';
    out.reason = `The workflow stopped before this instance was finished (it was ${PHASE_WORDS[record.phase]}); see the workflow failure alert.${last}`;
    out.code = 'unfinished';
    out.detail = `Not finished: the workflow stopped while it was ${PHASE_WORDS[record.phase]}.`;
  } else if (outcome !== 'succeeded') {
    out.reason = record.reason ?? 'The workflow stopped before this instance was finished; see the workflow failure alert.';
    out.code = record.code ?? 'unfinished';
    if (record.detail) out.detail = record.detail;
  }
  return out;
}

const PHASE_WORDS: Record<InstanceRecord['phase'], string> = {
  send: 'waiting for its snapshot command',
  command: 'running its snapshot command',
  verify: 'waiting for its snapshots to complete',
  retry: 'waiting to retry',
  succeeded: 'succeeded',
  failed: 'failed',
  skipped: 'skipped',
  planned: 'planned',
};

function composeAlert(report: RunReport, executionArn: string): { subject: string; message: string } {
  const { summary, selector } = report;
  const what = selector.instanceIds ? `tag ${selector.tagKey}=${selector.tagValue} and ${selector.instanceIds.length} listed instance id(s)` : `tag ${selector.tagKey}=${selector.tagValue}`;
  if (summary.targeted === 0) {
    const subject = truncate(`vss-snapshots: no instance matched (run ${report.runId})`, 100);
    const message = [
      `Snapshot run ${report.runId} found no instance to back up.`,
      `Selector: ${what}.`,
      ...(report.notFound ? [`Requested but not found (absent, untagged or terminated): ${report.notFound.join(', ')}.`] : []),
      '',
      'What to do: check that the instances carry exactly this tag (keys and values are case-sensitive) and are not terminated, and that the schedule input selects what you expect. No snapshot was taken.',
      '',
      `Full report: ${report.reportLocation}`,
      `Execution: ${executionArn}`,
    ].join('\n');
    return { subject, message };
  }

  const failed = report.instances.filter((i) => i.outcome === 'failed');
  const subject = truncate(`vss-snapshots: ${summary.failed} of ${summary.targeted} instances without a snapshot (run ${report.runId})`, 100);
  const groups = new Map<string, ReportInstance[]>();
  for (const i of failed) groups.set(i.code ?? 'unfinished', [...(groups.get(i.code ?? 'unfinished') ?? []), i]);
  const lines = [
    `Snapshot run ${report.runId} finished with ${summary.failed} failed instance(s): they have NO application-consistent snapshot from this run.`,
    `Selector: ${what}. Started ${report.startedAt}, finished ${report.finishedAt}.`,
    `Result: ${summary.succeeded} succeeded, ${summary.failed} failed, ${summary.skipped} skipped of ${summary.targeted}; ${summary.snapshots} verified application-consistent snapshot(s).`,
    ...(summary.fallbackSnapshots > 0
      ? [`${summary.fallbackSnapshots} crash-consistent snapshot(s) of failed instances were kept as a fallback (tagged vss-snapshots:fallback): better than nothing, NOT application-consistent.`]
      : []),
  ];
  let named = 0;
  for (const [code, members] of [...groups.entries()].sort((a, b) => b[1].length - a[1].length)) {
    const kind = failureKind(code);
    lines.push('', `== ${code === 'unfinished' ? 'Not finished' : kind.title} (${members.length}) ==`, `What to do: ${code === 'unfinished' ? 'see the workflow failure alert and start a new run.' : kind.action}`);
    for (const member of members) {
      if (named >= ALERT_MAX_NAMED) break;
      named += 1;
      const fallback = member.fallbackSnapshots?.length ? ` Crash-consistent fallback kept: ${member.fallbackSnapshots.map((f) => f.snapshotId).join(', ')}.` : '';
      lines.push(`- ${member.instanceId}${member.name ? ` (${member.name})` : ''}, ${member.attempts} attempt(s): ${member.detail ?? member.reason ?? ''}${fallback}`);
    }
  }
  if (failed.length > named) lines.push('', `... and ${failed.length - named} more failed instances, listed in the full report.`);
  lines.push('', `Full report: ${report.reportLocation}`, `Execution: ${executionArn}`, 'To retry only the failed instances, start an execution with {"instanceIds": [...]} listing them.');
  return { subject, message: lines.join('\n') };
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}
