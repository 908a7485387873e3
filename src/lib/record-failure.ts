/**
 * One place that records a failed attempt of an instance: its reason code, whether another attempt can
 * help (the failure catalogue says which failures are retryable; the run's maxAttempts says how many),
 * and the operator-facing reason with what to do next.
 */
import { FAILURES } from './failure-catalogue.ts';
import type { FailureCode } from './failure-catalogue.ts';
import type { InstanceRecord, RunState } from './run-state.ts';

/** Records a failure of the current attempt: retry if worth it and attempts remain, else final. */
export function fail(record: InstanceRecord, state: RunState, code: FailureCode, detail: string): void {
  const kind = FAILURES[code];
  const canRetry = kind.retryable && record.attempts < state.options.maxAttempts;
  record.code = code;
  record.phase = canRetry ? 'retry' : 'failed';
  const attemptNote = kind.retryable
    ? canRetry
      ? ` (attempt ${record.attempts} of ${state.options.maxAttempts}; will retry)`
      : ` (gave up after ${record.attempts} attempt${record.attempts === 1 ? '' : 's'})`
    : ' (not retried: another attempt cannot fix this)';
  record.detail = `${detail}${attemptNote}`;
  record.reason = `${kind.title}: ${record.detail} ${kind.action}`;
}
