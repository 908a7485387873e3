/**
 * When the account says "not now" to a shard's per-instance work (throttling or a 5xx the SDK gave up
 * retrying, errors.ts isTransientAwsError), the shard stops that work for this turn and leaves the account alone
 * for a while instead of failing the step: with a hundred shards at once, an account-wide rate (EC2's 5
 * DeleteSnapshot per second, SSM's read rate) stays overrun for minutes, longer than any retry of one call or
 * of the step. Sends are exempt: they are paced across shards already and their delay is a retry's delay.
 */
import { clock } from './clock.ts';
import type { RunState } from './run-state.ts';

/** How long a shard leaves the account alone after it said "not now". */
export const THROTTLE_BACKOFF_MS = 30_000;

/** Marks the shard's work deferred: nothing but sends before THROTTLE_BACKOFF_MS from now. */
export function deferred(state: RunState): void {
  state.backoffUntil = clock.now() + THROTTLE_BACKOFF_MS;
}

/** A time something is due, moved past the back-off (sends excepted by the caller). */
export function afterBackoff(state: RunState, at: number): number {
  return state.backoffUntil !== undefined && at < state.backoffUntil ? state.backoffUntil : at;
}
