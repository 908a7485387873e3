/**
 * When the account says "not now" to a shard's per-instance work (throttling or a 5xx the SDK gave up
 * retrying, errors.ts isTransientAwsError), the shard stops that kind of work for this turn and leaves it alone
 * for a while instead of failing the step: with a hundred shards at once, an account-wide rate (EC2's 5
 * DeleteSnapshot per second, SSM's read rate) stays overrun for minutes, longer than any retry of one call or
 * of the step. Each kind of work backs off on its own — deletions queued behind EC2's bucket must not hold back
 * the SSM polls that notice failures — and for longer each time in a row (30 s, doubling up to 5 minutes), so a
 * long overload costs few wake-ups. Sends are exempt: they are paced across shards already.
 */
import { clock } from './clock.ts';
import type { RunState } from './run-state.ts';

/** What backs off on its own: deletions (EC2 DeleteSnapshot), command polls (SSM reads), snapshot checks (EC2 reads). */
export type BackoffKind = 'delete' | 'poll' | 'check';

/** The first back-off, and the longest. */
export const THROTTLE_BACKOFF_MS = 30_000;
export const MAX_THROTTLE_BACKOFF_MS = 5 * 60_000;

/** Marks `kind` deferred: not done again before its back-off has passed (longer each time in a row). */
export function deferred(state: RunState, kind: BackoffKind): void {
  const backoff = (state.backoff ??= {});
  const times = (backoff[kind]?.times ?? 0) + 1;
  backoff[kind] = { until: clock.now() + Math.min(MAX_THROTTLE_BACKOFF_MS, THROTTLE_BACKOFF_MS * 2 ** (times - 1)), times };
}

/** Whether `kind` may be done now. */
export function mayDo(state: RunState, kind: BackoffKind): boolean {
  const until = state.backoff?.[kind]?.until;
  return until === undefined || clock.now() >= until;
}

/** `kind` went through without a "not now": its next back-off starts from the first again. */
export function succeeded(state: RunState, kind: BackoffKind): void {
  if (!state.backoff?.[kind]) return;
  delete state.backoff[kind];
  if (Object.keys(state.backoff).length === 0) delete state.backoff;
}

/** A time `kind` is due, moved past its back-off. */
export function afterBackoff(state: RunState, kind: BackoffKind, at: number): number {
  const until = state.backoff?.[kind]?.until;
  return until !== undefined && at < until ? until : at;
}
