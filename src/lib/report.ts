/**
 * The run report of contract §4, built from the run state. Its wording (alert, summary) is in report-text.ts.
 */
import { composeRunAlert } from './report-text.ts';
import type { CopiesReport } from './dr/report.ts';
import type { RetentionReport } from './retention/record.ts';
import type { InstanceRecord, RunState, SnapshotRef } from './run-state.ts';

export { ALERT_MAX_NAMED } from './report-text.ts';

export type Outcome = 'succeeded' | 'failed' | 'skipped' | 'planned';

export interface ReportInstance {
  instanceId: string;
  name?: string;
  outcome: Outcome;
  reason?: string;
  code?: string;
  detail?: string;
  attempts: number;
  snapshots: SnapshotRef[];
  /** When this instance's outcome became final (contract §4). */
  finishedAt?: string;
  /**
   * Failed instances only: the complete crash-consistent set of the last attempt, kept on purpose — not
   * application-consistent, but better than nothing (contract §4).
   */
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
  /** What this run's retention pass kept, deleted, held and deferred (absent when it did not run). */
  retention?: RetentionReport;
  /** DR copies of this run's verified sets (DR on only): protected, in progress, failed; completed by the DR pass. */
  copies?: CopiesReport;
  alert: null | { subject: string; message: string };
}

export function buildReport(state: RunState, finishedAt: string, reportLocation: string, retention?: RetentionReport): RunReport {
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
    ...(retention ? { retention } : {}),
    alert: null,
  };
  if (!state.dryRun && needsAlert(report)) report.alert = composeRunAlert(report, state.executionArn);
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
    const why = record.stoppedBy ? `: ${record.stoppedBy}. Start a run for it again` : '; see the workflow failure alert';
    out.reason = `The workflow stopped before this instance was finished (it was ${PHASE_WORDS[record.phase]})${why}.${last}`;
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
