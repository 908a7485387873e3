/**
 * Every human sentence about a run report: the SNS alert of Finish Run, the workflow-failure alert, the
 * summary `vss-snapshots run` prints and the one `vss-snapshots report` prints. One module, so a count
 * means the same thing wherever an operator reads it.
 *
 * The one rule the wording keeps: a snapshot is counted as a backup only when it is usable — the verified,
 * application-consistent set of a succeeded instance. The crash-consistent set a failed instance keeps on
 * purpose (`fallbackSnapshots`) is named as a fallback, and anything else a failed attempt left is named
 * unusable, so "0 succeeded, 1 failed" is never followed by a bare "2 snapshots".
 */
import type { RetentionAnomaly, RetentionReport } from './retention/record.ts';
import { failureKind } from './failure-catalogue.ts';
import { MAX_INSTANCE_IDS } from './execution-input.ts';
import type { ReportInstance, RunReport } from './report.ts';

/** At most this many instances are named in an alert; the rest are counted and found in the report. */
export const ALERT_MAX_NAMED = 100;
/** The paste-ready retry input holds at most this many ids per execution (the execution input's limit). */
export const RETRY_CHUNK = MAX_INSTANCE_IDS;
/**
 * An alert carries at most this many retry inputs (2,000 ids, ~46 KB): mail clients clip messages above
 * ~100 KB and SNS caps a message at 256 KB. `vss-snapshots retry-failed RUNID` covers any number.
 */
export const ALERT_MAX_RETRY_CHUNKS = 2;
const SUBJECT_MAX = 100; // SNS: a subject of at most 100 printable ASCII characters.

/** `1 instance`, `2 instances`, `0 instances`. */
export function plural(n: number, singular: string, pluralForm = `${singular}s`): string {
  return `${n.toLocaleString('en-US')} ${n === 1 ? singular : pluralForm}`;
}

export interface SnapshotCounts {
  /** Verified, application-consistent snapshots of succeeded instances: the backups. */
  usable: number;
  /** Crash-consistent snapshots failed instances keep on purpose (complete sets, not app-consistent). */
  fallback: number;
  /** Failed instances that keep such a fallback set. */
  fallbackInstances: number;
  /** Anything else failed instances' last attempts left (crash-consistent leftovers, error, pending, incomplete). */
  unusable: number;
}

export function snapshotCounts(report: Pick<RunReport, 'instances'>): SnapshotCounts {
  const counts: SnapshotCounts = { usable: 0, fallback: 0, fallbackInstances: 0, unusable: 0 };
  for (const instance of report.instances) {
    if (instance.outcome === 'succeeded') {
      counts.usable += instance.snapshots.length;
      continue;
    }
    const fallback = new Set((instance.fallbackSnapshots ?? []).map((s) => s.snapshotId));
    counts.fallback += fallback.size;
    if (fallback.size > 0) counts.fallbackInstances += 1;
    counts.unusable += instance.snapshots.filter((s) => !fallback.has(s.snapshotId)).length;
  }
  return counts;
}

/** `2 succeeded, 1 failed, 0 skipped of 3 matched` (and planned instances of a dry run). */
export function outcomeLine(report: Pick<RunReport, 'summary'>): string {
  const s = report.summary;
  return `${s.succeeded} succeeded, ${s.failed} failed, ${s.skipped} skipped${s.planned ? `, ${s.planned} planned` : ''} of ${s.targeted} matched`;
}

/**
 * The snapshots of a run, usable first: `4 usable snapshots (verified, application-consistent); 1 failed
 * instance keeps a crash-consistent fallback set of 2 snapshots (not application-consistent); 1 unusable snapshot
 * (not a backup)`.
 */
export function snapshotLine(report: Pick<RunReport, 'instances' | 'dryRun'>): string {
  if (report.dryRun) return 'no snapshot taken (dry run)';
  const c = snapshotCounts(report);
  const parts = [`${plural(c.usable, 'usable snapshot')} (verified, application-consistent)`];
  if (c.fallback > 0) {
    parts.push(
      `${plural(c.fallbackInstances, 'failed instance keeps', 'failed instances keep')} a crash-consistent fallback set (${plural(c.fallback, 'snapshot')}, NOT application-consistent)`,
    );
  }
  if (c.unusable > 0) parts.push(`${plural(c.unusable, 'unusable snapshot')} of failed attempts (not a backup)`);
  return parts.join('; ');
}

/** The failed instances' ids in chunks of at most RETRY_CHUNK, each a valid execution input. */
export function retryInputs(report: Pick<RunReport, 'instances' | 'selector'>): { tagKey: string; tagValue: string; instanceIds: string[] }[] {
  const ids = report.instances.filter((i) => i.outcome === 'failed').map((i) => i.instanceId);
  const chunks: { tagKey: string; tagValue: string; instanceIds: string[] }[] = [];
  // The selector's tag goes with the ids: a run that selected by another tag would otherwise find none of them.
  for (let i = 0; i < ids.length; i += RETRY_CHUNK) chunks.push({ tagKey: report.selector.tagKey, tagValue: report.selector.tagValue, instanceIds: ids.slice(i, i + RETRY_CHUNK) });
  return chunks;
}

/** The lines that tell an operator how to retry the failed instances of `report` (none when nothing failed). */
export function retryLines(report: Pick<RunReport, 'runId' | 'instances' | 'selector'>, maxChunks = Number.POSITIVE_INFINITY): string[] {
  const chunks = retryInputs(report);
  if (chunks.length === 0) return [];
  const failed = chunks.reduce((n, c) => n + c.instanceIds.length, 0);
  const lines = [
    `To retry only the ${plural(failed, 'failed instance')} once the cause is fixed: vss-snapshots retry-failed ${report.runId} --follow`,
    chunks.length === 1
      ? 'or start an execution of the state machine with this input:'
      : `or start ${chunks.length} executions of the state machine one after another (at most ${RETRY_CHUNK.toLocaleString('en-US')} ids each; runs do not overlap), with these inputs:`,
  ];
  chunks.slice(0, maxChunks).forEach((chunk, i) => lines.push(`${chunks.length > 1 ? `${i + 1}/${chunks.length}: ` : ''}${JSON.stringify(chunk)}`));
  if (chunks.length > maxChunks) {
    const rest = chunks.slice(maxChunks).reduce((n, c) => n + c.instanceIds.length, 0);
    lines.push(`... ${chunks.length - maxChunks} more (${plural(rest, 'id')}): in the full report, or let retry-failed start them.`);
  }
  return lines;
}

function selectorText(report: Pick<RunReport, 'selector'>): string {
  const { selector } = report;
  return selector.instanceIds ? `tag ${selector.tagKey}=${selector.tagValue} and ${plural(selector.instanceIds.length, 'listed instance id')}` : `tag ${selector.tagKey}=${selector.tagValue}`;
}

function truncate(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function instanceLabel(i: Pick<ReportInstance, 'instanceId' | 'name'>): string {
  return `${i.instanceId}${i.name ? ` (${i.name})` : ''}`;
}

function fallbackText(i: ReportInstance): string {
  const kept = i.fallbackSnapshots ?? [];
  if (kept.length === 0) return '';
  return ` Crash-consistent fallback kept (not application-consistent): ${kept.map((s) => `${s.snapshotId}${s.device ? ` (${s.device})` : ''}`).join(', ')}.`;
}

/** The alert of a finished run (Finish Run publishes it when an instance failed or nothing matched). */
export function composeRunAlert(report: RunReport, executionArn: string): { subject: string; message: string } {
  const { summary } = report;
  if (summary.targeted === 0) {
    const subject = truncate(`vss-snapshots: no instance matched (run ${report.runId})`, SUBJECT_MAX);
    const message = [
      `Snapshot run ${report.runId} found no instance to back up. No snapshot was taken.`,
      `Selector: ${selectorText(report)}.`,
      ...(report.notFound ? [`Requested but not found (absent, untagged or terminated): ${report.notFound.join(', ')}.`] : []),
      '',
      'What to do: check that the instances carry exactly this tag (keys and values are case-sensitive) and are not terminated, and that the schedule input selects what you expect.',
      '',
      `Full report: ${report.reportLocation}`,
      `Execution: ${executionArn}`,
    ].join('\n');
    return { subject, message };
  }

  const failed = report.instances.filter((i) => i.outcome === 'failed');
  const subject = truncate(`vss-snapshots: ${summary.failed} of ${summary.targeted} instances without a usable snapshot (run ${report.runId})`, SUBJECT_MAX);
  const groups = new Map<string, ReportInstance[]>();
  for (const i of failed) groups.set(i.code ?? 'unfinished', [...(groups.get(i.code ?? 'unfinished') ?? []), i]);
  const lines = [
    `Snapshot run ${report.runId}: ${plural(summary.failed, 'instance has', 'instances have')} NO application-consistent snapshot from this run.`,
    `Selector: ${selectorText(report)}. Started ${report.startedAt}, finished ${report.finishedAt}.`,
    `Instances: ${outcomeLine(report)}.`,
    `Snapshots: ${snapshotLine(report)}.`,
  ];
  let named = 0;
  for (const [code, members] of [...groups.entries()].sort((a, b) => b[1].length - a[1].length)) {
    const kind = failureKind(code);
    lines.push('', `== ${code === 'unfinished' ? 'Not finished' : kind.title} (${members.length}) ==`, `What to do: ${code === 'unfinished' ? 'see the workflow failure alert and start a new run.' : kind.action}`);
    for (const member of members) {
      if (named >= ALERT_MAX_NAMED) break;
      named += 1;
      lines.push(`- ${instanceLabel(member)}, ${plural(member.attempts, 'attempt')}: ${member.detail ?? member.reason ?? ''}${fallbackText(member)}`);
    }
  }
  if (failed.length > named) lines.push('', `... and ${failed.length - named} more failed instances, listed in the full report.`);
  if (report.retention) lines.push('', ...retentionAlertLines(report.retention));
  lines.push('', ...retryLines(report, ALERT_MAX_RETRY_CHUNKS), '', `Full report: ${report.reportLocation}`, `Execution: ${executionArn}`);
  return { subject, message: lines.join('\n') };
}

export interface WorkflowFailure {
  failedStep: string;
  runId?: string;
  executionId?: string;
  error: string;
  cause: string;
  /** What is known of the run's instances (from the partial report), when the run got that far. */
  known?: { summary: Pick<RunReport['summary'], 'targeted' | 'succeeded' | 'failed' | 'skipped' | 'planned'>; location: string };
  /** Why the run state could not be read, when it could not. */
  stateProblem?: string;
}

/** The alert of a workflow that failed at one of its steps: which run, which step, why, and what to do next. */
export function composeWorkflowFailureAlert(failure: WorkflowFailure): { subject: string; message: string } {
  const run = failure.runId ? `run ${failure.runId}` : failure.executionId ? `execution ${failure.executionId.split(':').at(-1)}` : 'a run';
  // The subject stays `... workflow failed at <Step>` (mail filters match it); the body names the run.
  const subject = truncate(`vss-snapshots: workflow failed at ${failure.failedStep}`, SUBJECT_MAX);
  const lines = [
    `The snapshot workflow failed at step "${failure.failedStep}" (${run}).`,
    `Error: ${failure.error}`,
    `Cause: ${failure.cause}`,
  ];
  if (failure.known) {
    const s = failure.known.summary;
    const unfinished = s.targeted - s.succeeded - s.failed - s.skipped - s.planned;
    lines.push(
      '',
      `Known so far: ${s.succeeded} succeeded, ${s.failed + unfinished} failed or unfinished, ${s.skipped} skipped of ${s.targeted}. Partial report: ${failure.known.location}`,
    );
  }
  if (failure.stateProblem) lines.push('', `The run state could not be read (${failure.stateProblem}).`);
  lines.push('', `What to do: ${workflowFailureAdvice(failure.error)}`);
  if (failure.runId && failure.known) lines.push(`Then retry the instances without a snapshot: vss-snapshots retry-failed ${failure.runId} --follow`);
  if (failure.executionId) lines.push(`Execution: ${failure.executionId}`);
  return { subject, message: lines.join('\n') };
}

function workflowFailureAdvice(error: string): string {
  switch (error) {
    case 'RunInProgressError':
      return 'Another run is still going; nothing was done by this one. Wait for it (vss-snapshots status), or start again with {"force": true}.';
    case 'ConfigurationError':
      return 'A Lambda environment variable is wrong: check the stack parameters and redeploy, then start a new run.';
    case 'RunStateNotFoundError':
      return 'The run state object is missing from the report bucket; check the bucket and its lifecycle rules, then start a new run.';
    default:
      return 'Open the execution below in the Step Functions console to see why the step failed, fix the cause, and start a new run (vss-snapshots start --follow); instances that already succeeded keep their snapshots.';
  }
}

export interface SummaryOptions {
  /** Lines printed under the run's heading (e.g. the simulated time of a local run). */
  context?: string[];
  /** Where the full report is (replaces the report's own location line). */
  reportLine?: string;
  /** Only the failed instances, with the retry input. */
  failedOnly?: boolean;
  /** Print the alert text as it was published. */
  withAlert?: boolean;
}

/** The readable summary of a run report: a table of instances, the counts, the alert and where the report is. */
export function formatRunSummary(report: RunReport, options: SummaryOptions = {}): string {
  const shown = options.failedOnly ? report.instances.filter((i) => i.outcome === 'failed') : report.instances;
  const rows = shown.map((i) => [
    i.instanceId,
    i.name ?? '',
    i.outcome,
    String(i.attempts),
    i.outcome === 'succeeded' ? String(i.snapshots.length) : (i.fallbackSnapshots?.length ?? 0) > 0 ? `${i.fallbackSnapshots?.length} fallback` : '0',
    i.outcome === 'succeeded' ? '' : (i.detail ?? i.reason ?? ''),
  ]);
  const header = ['INSTANCE', 'NAME', 'OUTCOME', 'ATTEMPTS', 'USABLE SNAPSHOTS', 'REASON'];
  const widths = header.map((h, col) => Math.min(col === 5 ? 200 : 40, Math.max(h.length, ...rows.map((r) => (r[col] ?? '').length))));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  const selector = `${report.selector.tagKey}=${report.selector.tagValue}${report.selector.instanceIds ? ` + ${plural(report.selector.instanceIds.length, 'instance id')}` : ''}`;
  const out = [
    '',
    `Run ${report.runId}${report.dryRun ? ' (dry run)' : ''}, method ${report.method}, selector ${selector}`,
    `Started ${report.startedAt}, finished ${report.finishedAt}`,
    ...(options.context ?? []),
    '',
  ];
  if (rows.length > 0) out.push(line(header), ...rows.map(line), '');
  else if (options.failedOnly) out.push('No failed instance in this run.', '');
  out.push(`${outcomeLine(report)}; ${snapshotLine(report)}`);
  if (report.notFound) out.push(`Requested but not found: ${report.notFound.join(', ')}`);
  if (report.retention) out.push(retentionLine(report.retention), ...report.retention.anomalies.map((a) => `Retention: ${a}`));
  if (report.copies) out.push(copiesLine(report.copies));
  if (report.alert) out.push(`ALERT published: ${report.alert.subject}`);
  else if (report.dryRun) out.push('Dry run: nothing sent, no alert published.');
  else if (report.summary.failed === 0 && report.summary.targeted > 0) out.push('No alert needed: every targeted instance has a verified application-consistent snapshot or was skipped.');
  if (options.withAlert && report.alert) out.push('', report.alert.message);
  else if (options.failedOnly) {
    const retry = retryLines(report);
    if (retry.length > 0) out.push('', ...retry);
  }
  out.push('', options.reportLine ?? `Report: ${report.reportLocation ?? '(none)'}`, '');
  return `${out.join('\n')}\n`;
}

/** One line on what the run's retention pass did. */
/** The DR copies in one line: how much of the run is protected in the DR Region, and what is not (yet). */
export function copiesLine(c: NonNullable<RunReport['copies']>): string {
  if (c.skipped) return `DR copies to ${c.region}: none (${c.skipped})`;
  const sets = c.protected + c.inProgress + new Set(c.failed.map((f) => `${f.instanceId}/${f.runId}`)).size;
  const parts = [`${c.protected} of ${plural(sets, 'set')} protected`];
  if (c.inProgress) parts.push(`${c.inProgress} in progress${c.complete ? ' (the next night\'s pass finishes them)' : ''}`);
  if (c.failed.length) parts.push(`${plural(c.failed.length, 'snapshot')} not copied (${[...new Set(c.failed.map((f) => f.code))].join(', ')})`);
  if (c.carriedOver) parts.push(`${c.carriedOver} carried over from an earlier pass`);
  const state = c.complete ? (c.alert ? '; DR alert published' : '') : '; the DR pass is still running';
  return `DR copies to ${c.region}: ${parts.join(', ')}${state}`;
}

export function retentionLine(r: RetentionReport): string {
  if (r.skipped) return `Retention (${r.mode}): ${r.skipped}`;
  const deleted = r.mode === 'preview' ? `would delete ${r.planned?.length ?? 0}` : `deleted ${r.deleted.length}`;
  const parts = [deleted, `kept ${r.kept}`, `held ${r.held.length}`, `in use by AMIs ${r.inUse.length}`, `deferred ${r.deferred}`];
  if (r.partial.length > 0) parts.push(`${plural(r.partial.length, 'set')} partly deleted`);
  return `Retention (${r.mode}, count=${r.policy.count} days=${r.policy.days}): ${parts.join(', ')} snapshot(s)`;
}

/** The retention section of the run alert: the line, then anomalies (sets that cannot be deleted, a backlog that grows). */
export function retentionAlertLines(r: RetentionReport): string[] {
  if (r.anomalies.length === 0 && r.deferred === 0) return [retentionLine(r)];
  return ['== Retention ==', retentionLine(r), ...r.anomalies.map((a) => `- ${a}`)];
}

/** An anomaly of the retention pass, as the report and the alert say it: what happened and what to do. */
export function retentionAnomalyText(a: RetentionAnomaly): string {
  switch (a.kind) {
    case 'in-use': {
      const images = `${a.imageIds.slice(0, 5).join(', ')}${a.imageIds.length > 5 ? ', ...' : ''}`;
      return `${plural(a.sets, 'set')} due for deletion ${a.sets === 1 ? 'has' : 'have'} been in use by AMIs for ${a.runs}+ runs (${images}): deregister the AMIs, or tag the snapshots vss-snapshots:hold to keep them on purpose.`;
    }
    case 'partial-before':
      return `${plural(a.sets, 'set')} ${a.sets === 1 ? 'was' : 'were'} only partly deleted by earlier runs; retention tries the rest again (see retention.partial in those runs' reports).`;
    case 'partial':
      return `Set of run ${a.runId} attempt ${a.attempt} of ${a.owner} was only partly deleted (${a.deleted} of ${a.of}): ${a.reason}. The rest is kept and tried again next run.`;
    case 'backlog':
      return `The retention backlog is not shrinking: ${a.deferred} snapshot(s) deferred (${a.previous} the run before) with RetentionMaxDeletes ${a.maxDeletes}: raise RetentionMaxDeletes, or shorten the policy.`;
    case 'retain-tag':
      return `Instance ${a.instanceId}: vss-snapshots:retain ${a.error}.`;
  }
}

/** Why a run's retention pass did nothing. */
export function retentionSkippedText(why: 'input' | 'unfinished'): string {
  return why === 'input'
    ? 'Retention skipped: the execution input says "retention": "skip".'
    : "Retention skipped: not every instance of this run reached its outcome (a shard failed), so this run's sets are not all verified; retention runs again with the next complete run.";
}

/** A snapshot with no DR copy, as the DR alert names it. */
export interface DrAlertEntry {
  instanceId: string;
  snapshotId: string;
  runId: string;
  code: string;
  reason: string;
}

const DR_ADVICE: Record<string, string> = {
  kms: 'Fix the KMS key in the DR Region (enabled, in the DR Region, key policy allowing the stack role), then the next night copies the newest set again.',
  'source-deleted': 'Nothing to copy any more; the next verified set will be copied. If this repeats, check what deletes snapshots before they are copied (a lifecycle policy, retention set too short).',
  quota: 'The DR Region refused more concurrent copies: ask AWS for a higher "concurrent snapshot copies per destination Region" quota, lower DR_COPY_CONCURRENCY to leave room for other tools, or copy fewer nights.',
  superseded: 'The DR Region\'s copy slots cannot keep up with the fleet: only the newest sets get copied. Raise the concurrent copy quota and DR_COPY_CONCURRENCY, or give DR to fewer instances.',
  timeout: 'Copies cannot keep up: raise the concurrent copy quota and DR_COPY_CONCURRENCY, or lengthen DR_COPY_DEADLINE_HOURS.',
  'copy-error': 'EC2 reported the copy failed; it was retried. Check the DR Region (service health, snapshot quotas); the next night copies the newest set again.',
  refused: 'EC2 refused the copy; the reason is above. Fix it, then the next night copies the newest set again.',
};

/**
 * The DR alert, separate from the run's: every snapshot that has a backup at home but no copy in the DR Region,
 * with the reason and what to do; and how many were still copying when the pass ended (the next pass finishes them).
 */
export function composeDrAlert(d: { runId: string; region: string; sourceRegion: string; failed: readonly DrAlertEntry[]; unfinished: number; protectedSets: number; sets: number; deadline: string }): { subject: string; message: string } {
  const missing = d.failed.length;
  const subject = truncate(`vss-snapshots: DR copy missing for ${plural(missing + d.unfinished, 'snapshot')} in ${d.region}`, SUBJECT_MAX);
  const lines = [
    `Run ${d.runId}: ${d.protectedSets} of ${plural(d.sets, 'set')} protected in ${d.region}. The backups exist in ${d.sourceRegion}; these have no completed copy in ${d.region}.`,
  ];
  if (missing > 0) {
    lines.push('', `${plural(missing, 'snapshot')} not copied (after the retries):`);
    for (const f of d.failed.slice(0, ALERT_MAX_NAMED)) lines.push(`- ${f.instanceId} ${f.snapshotId} (run ${f.runId}): ${f.code}: ${f.reason}`);
    if (missing > ALERT_MAX_NAMED) lines.push(`- and ${missing - ALERT_MAX_NAMED} more (see the report's copies.failed)`);
    const codes = [...new Set(d.failed.map((f) => f.code))];
    lines.push('', 'What to do:', ...codes.map((c) => `- ${c}: ${DR_ADVICE[c] ?? DR_ADVICE.refused}`));
  }
  if (d.unfinished > 0) {
    lines.push('', `${plural(d.unfinished, 'snapshot')} still copying or waiting for a copy slot at the pass's deadline (${d.deadline}): the next nightly pass carries them over and completes the record. If this repeats night after night: ${DR_ADVICE.timeout}`);
  }
  return { subject, message: lines.join('\n') };
}
