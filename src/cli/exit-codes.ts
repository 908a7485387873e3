/**
 * The exit codes every `vss-snapshots` command follows (contract §2), the one table the usage text and the
 * README print, and the error a command throws for bad input or usage.
 */
export const EXIT = {
  /** Done, and nothing needs attention. */
  ok: 0,
  /** The run, restore or AWS call itself failed. */
  failed: 1,
  /** Bad input or usage, or a request refused: nothing was run or changed. */
  usage: 2,
  /** Finished, and needs attention: an instance failed or nothing matched (the alert was published). */
  alert: 3,
} as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

export const EXIT_CODE_TABLE = `Exit codes (every command):
  0  done, nothing needs attention: every targeted instance succeeded, was skipped or planned (run,
     report, --follow; every night of simulate); restored (restore); started (start, retry-failed);
     listed (status)
  1  failed: the workflow (simulate: on any night) or the restore failed, or an AWS call failed
     (credentials, permissions)
  2  bad input or usage, or refused: nothing was run or changed (unknown option, file not found,
     invalid input, no such stack or run, restore refused, another run in progress)
  3  finished but needs attention: an instance failed or nothing matched (simulate: on any night);
     the alert was published (a dry run publishes none)`;

/** Bad input or usage: the command prints the message (and where to get help) and exits 2, having done nothing. */
export class UsageError extends Error {
  override name = 'UsageError';
}

/**
 * The command could not do its work (an AWS call failed, a file could not be written): exit 1 with this
 * message, no stack trace.
 */
export class CommandFailedError extends Error {
  override name = 'CommandFailedError';
}
