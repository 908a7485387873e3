/**
 * Every error the workflow can route on. Each class sets `name` to the exact string the state machine's
 * Retry/Catch `ErrorEquals` uses, so Step Functions can tell a bad input from a throttled API.
 */

/** The execution input (contract §3) is not acceptable. Never retried, nothing has been sent. */
export class InvalidInputError extends Error {
  override name = 'InvalidInputError';
}

/** Another execution of this workflow is running and `force` was not set. */
export class RunInProgressError extends Error {
  override name = 'RunInProgressError';
}

/** A Lambda's environment is missing or malformed: a deployment problem, not retried. */
export class ConfigurationError extends Error {
  override name = 'ConfigurationError';
}

/** The run's state object is missing from the report bucket (deleted, or wrong bucket). */
export class RunStateNotFoundError extends Error {
  override name = 'RunStateNotFoundError';
}

/** A state handler got an input it cannot have been given by this state machine. */
export class InvalidStateInputError extends Error {
  override name = 'InvalidStateInputError';
}

/**
 * AWS error names worth retrying at the workflow level once the SDK's own retries are exhausted: the
 * throttling, 5xx and timeout names the five services' SDK clients really raise (SNS: ThrottledException and
 * InternalErrorException; EC2: RequestLimitExceeded, InternalError, Unavailable; S3: SlowDown; SSM:
 * InternalServerError; a lost socket: TimeoutError). The state machine's Retry lists the same names.
 */
export const TRANSIENT_AWS_ERRORS = [
  'ThrottlingException',
  'ThrottledException',
  'Throttling',
  'RequestLimitExceeded',
  'SlowDown',
  'TooManyRequestsException',
  'InternalError',
  'InternalErrorException',
  'InternalFailure',
  'InternalServerError',
  'InternalServerErrorException',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'Unavailable',
  'TimeoutError',
  'RequestTimeout',
  'RequestTimeoutException',
] as const;

/**
 * An AWS error that the SDK gave up retrying but that says "not now" rather than "no": throttling, a 5xx, a lost
 * socket. A step that meets one in per-instance work stops that work for this turn and comes back after
 * THROTTLE_BACKOFF_MS instead of failing: with many shards at once, an account's shared rate (EC2's 5
 * DeleteSnapshot per second, SSM's read rate) is overrun for minutes, longer than any retry of one call.
 */
export function isTransientAwsError(error: unknown): boolean {
  return (TRANSIENT_AWS_ERRORS as readonly string[]).includes((error as { name?: string } | undefined)?.name ?? '');
}

/** Turns any thrown value into a short, single-line message safe to put into a report or alert. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.slice(0, 1000);
  return String(error).slice(0, 1000);
}

/**
 * A restore cannot be done as asked, for a reason found before anything was created: the run's snapshots
 * of the source are not usable (pending, in error, not app-consistent), or the target cannot take them.
 */
export class RestoreRefusedError extends Error {
  override name = 'RestoreRefusedError';
}

/** A restored volume went to state `error`, or a volume or attachment did not become ready in time. */
export class RestoreVolumeError extends Error {
  override name = 'RestoreVolumeError';
}

/** The DiskShadow restore document failed or timed out on the target: the volumes are not consistent. */
export class RevertFailedError extends Error {
  override name = 'RevertFailedError';
}
