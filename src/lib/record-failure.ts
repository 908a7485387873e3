/**
 * One place that records a failed attempt of an instance: its reason code, whether another attempt can
 * help (the failure catalogue says which failures are retryable; the run's maxAttempts says how many),
 * when that attempt may go (the retry delay counts from this instance's own failure, whatever the others
 * do), and the operator-facing reason with what to do next.
 */
import { clock } from './clock.ts';
import { FAILURES } from './failure-catalogue.ts';
import type { FailureCode } from './failure-catalogue.ts';
import type { InstanceRecord, RunState } from './run-state.ts';

/** Records a failure of the current attempt: retry after `retryDelaySeconds` if worth it and attempts remain, else final. */
export function fail(record: InstanceRecord, state: RunState, code: FailureCode, detail: string, retryDelaySeconds = 0): void {
  const kind = FAILURES[code];
  const canRetry = kind.retryable && record.attempts < state.options.maxAttempts;
  const now = clock.now();
  record.code = code;
  record.phase = canRetry ? 'retry' : 'failed';
  delete record.commandId;
  delete record.sendComment;
  delete record.verifySince;
  delete record.nextCheckAt;
  if (canRetry) {
    record.dueAt = now + retryDelaySeconds * 1000;
  } else {
    delete record.dueAt;
    record.finishedAt = now;
  }
  const attemptNote = kind.retryable
    ? canRetry
      ? ` (attempt ${record.attempts} of ${state.options.maxAttempts}; will retry)`
      : ` (gave up after ${record.attempts} attempt${record.attempts === 1 ? '' : 's'})`
    : ' (not retried: another attempt cannot fix this)';
  record.detail = `${detail}${attemptNote}`;
  record.reason = `${kind.title}: ${record.detail} ${kind.action}`;
}

/** Records success: the verified set, and the time. */
export function succeed(record: InstanceRecord, snapshots: InstanceRecord['snapshots']): void {
  record.phase = 'succeeded';
  record.snapshots = snapshots;
  record.finishedAt = clock.now();
  delete record.code;
  delete record.reason;
  delete record.detail;
  delete record.dueAt;
  delete record.nextCheckAt;
}
