/**
 * The one definition of the line this project's Windows scripts print and the orchestrator reads:
 *
 *     VSS-SNAPSHOTS-RESULT {"version":1,"operation":"snapshot",...}
 *
 * The scripts in src/scripts print it as the FIRST line of stdout (the human log follows), so it survives
 * the 2,500-character output cut of ListCommandInvocations; the JSON is compact and ASCII-only
 * (non-ASCII escaped as \uXXXX). The simulated instances print the same line, so the local run exercises
 * the parser that runs in AWS. Tests check the scripts' keys and exit-code tables against this module.
 */
import * as z from 'zod';
import type { FailureCode } from './failure-catalogue.ts';

export const RESULT_LINE_PREFIX = 'VSS-SNAPSHOTS-RESULT';
export const RESULT_LINE_VERSION = 1;

/**
 * Exit codes of src/scripts/diskshadow-snapshot.ps1. 0 success; 1 an unexpected error (PowerShell's own
 * code for an unhandled one). From 10 on, even codes are retryable and odd codes permanent.
 */
export const SNAPSHOT_EXIT_CODES = {
  success: 0,
  unexpected: 1,
  'vss-retryable': 10,
  'vss-permanent': 11,
  'ebs-retryable': 12,
  'ebs-permanent': 13,
  'instance-retryable': 14,
  'instance-permanent': 15,
} as const;

/** Exit codes of src/scripts/diskshadow-restore.ps1, same convention. */
export const RESTORE_EXIT_CODES = {
  success: 0,
  unexpected: 1,
  'instance-retryable': 14,
  'instance-permanent': 15,
  'disk-retryable': 20,
  'disk-permanent': 21,
  'revert-retryable': 22,
  'revert-permanent': 23,
} as const;

/** Whether a script exit code means another attempt can help (1: unexpected; ≥ 10: even). */
export function isRetryableExitCode(code: number): boolean {
  if (code === 1) return true;
  return code >= 10 && code % 2 === 0;
}

/**
 * The errorCodes the snapshot script reports: failure codes of src/lib/failure-catalogue.ts, with the
 * retryable flag the script uses (tests check both against the catalogue and the script).
 */
export const SNAPSHOT_ERROR_CODES = {
  'unshadowed-disk': false,
  'vss-component-excluded': false,
  'vss-timeout': true,
  'vss-writer-retryable': true,
  'vss-in-progress': true,
  'vss-writer-nonretryable': false,
  'vss-insufficient-storage': false,
  'concurrent-snapshot-limit': false,
  'language-mode': false,
  'script-failed': true,
} as const satisfies { [K in FailureCode]?: boolean };

/** The errorCodes the restore script reports, with whether another attempt can help. */
export const RESTORE_ERROR_CODES = {
  'disk-not-found': true,
  'disk-refused': false,
  'disk-online-failed': false,
  'signature-fix-failed': false,
  'shadow-copy-not-found': false,
  'revert-in-progress': true,
  'revert-volume-in-use': true,
  'shadow-not-on-disk': false,
  'revert-unsupported': false,
  'revert-failed': false,
  'language-mode': false,
  'script-failed': true,
} as const satisfies Record<string, boolean>;

/** The fields every script's result line carries (the snapshot, restore and self-test scripts). */
export const RESULT_LINE_COMMON = {
  version: z.literal(RESULT_LINE_VERSION),
  runId: z.string().nullable(),
  instanceId: z.string().nullable(),
  outcome: z.enum(['success', 'failed']),
  /** null on success; otherwise a code the orchestrator maps (newer scripts may add codes: a string). */
  errorCode: z.string().nullable(),
  retryable: z.boolean(),
  exitCode: z.number().int(),
  message: z.string(),
  warnings: z.array(z.string()),
};

export const SnapshotEntry = z.object({
  snapshotId: z.string(),
  volumeId: z.string(),
  /** From the instance's block device mapping; null when it could not be read. */
  device: z.string().nullable(),
});

export const ShadowedVolume = z.object({
  /** Windows path of the volume as shadowed: `C:\`, a mount point, or a volume GUID path. */
  path: z.string(),
  shadowCopyId: z.string().nullable(),
});

export const SnapshotResultLine = z.object({
  operation: z.literal('snapshot'),
  method: z.literal('diskshadow'),
  ...RESULT_LINE_COMMON,
  attempt: z.number().int().min(1).nullable(),
  /** What happened to the shadow copy set: never started, created (writers were involved), or failed. */
  vss: z.enum(['not-started', 'created', 'failed']),
  shadowSetId: z.string().nullable(),
  /** True only when the snapshots were requested while the whole shadow copy set existed. */
  appConsistent: z.boolean(),
  /** Whether this run's shadow copies were deleted again. */
  cleanup: z.enum(['not-needed', 'done', 'failed']),
  snapshots: z.array(SnapshotEntry),
  volumes: z.array(ShadowedVolume),
});

export const RevertedVolume = z.object({
  volume: z.string(),
  shadowCopyId: z.string().nullable(),
});

export const RestoredDisk = z.object({
  volumeId: z.string(),
  diskNumber: z.number().int().nullable(),
  signatureChanged: z.boolean(),
  online: z.boolean(),
  /**
   * reverted: its shadow copies of the set were reverted now; already-reverted: an earlier run of the
   * restore document reverted it (its record on the instance says so); not-shadowed: the disk holds no
   * volume VSS can shadow, so its snapshot holds nothing to revert; pending: not reached. Absent in lines
   * of older scripts.
   */
  outcome: z.enum(['pending', 'reverted', 'already-reverted', 'not-shadowed']).optional(),
  reverted: z.array(RevertedVolume),
});

export const RestoreResultLine = z.object({
  operation: z.literal('restore'),
  ...RESULT_LINE_COMMON,
  shadowSetId: z.string().nullable(),
  disks: z.array(RestoredDisk),
});

export const ResultLine = z.discriminatedUnion('operation', [SnapshotResultLine, RestoreResultLine]);
export type SnapshotResultLine = z.infer<typeof SnapshotResultLine>;
export type RestoreResultLine = z.infer<typeof RestoreResultLine>;
export type ResultLine = z.infer<typeof ResultLine>;

/**
 * The longest result line each script prints (prefix included). The snapshot line is read through
 * ListCommandInvocations, which returns only the first 2,500 characters of a command's output (stdout
 * and stderr together), so the line and its line break must fit in them; the restore line is read through
 * GetCommandInvocation, which returns 24,000. The scripts' $MaxResultLineLength is the same (tested).
 */
export const RESULT_LINE_LIMITS = { snapshot: 2_400, restore: 23_000 } as const;
/** A message is cut to this length when the line is still too long without its lists. */
export const COMPACT_MESSAGE_LENGTH = 200;

function serialise(result: ResultLine): string {
  const json = JSON.stringify(result).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${RESULT_LINE_PREFIX} ${json}`;
}

/**
 * Shortens a result line that would not fit `max` characters, step by step until it fits, exactly as the
 * prelude's Format-ResultLine does: (1) warnings after the second become one "(N more warnings in the
 * log)"; (2) the shadowed volumes and (3) the snapshot ids are dropped (the orchestrator verifies
 * snapshots in EC2, not from the line); (4) the message is cut to 200 characters; (5) only a note remains
 * of the warnings. From step 2 on, the last warning says what was left out. The error code, exit code,
 * shadow set id and a restore's disks are never dropped.
 */
export function compactResultLine<T extends ResultLine>(result: T, max: number): T {
  const line: T = structuredClone(result);
  if (serialise(line).length <= max) return line;
  const original = line.warnings;
  const omitted: string[] = [];
  const note = (): string => `Result line shortened to ${max} characters (${omitted.join(', ')} left out); the log has everything.`;
  const kept = original.length > 2 ? [...original.slice(0, 2), `(${original.length - 2} more warnings in the log)`] : [...original];
  const steps: (() => void)[] = [
    () => {
      line.warnings = kept;
    },
    () => {
      if (line.operation === 'snapshot') line.volumes = [];
      omitted.push('volumes');
      line.warnings = [...kept, note()];
    },
    () => {
      if (line.operation === 'snapshot') line.snapshots = [];
      omitted.push('snapshot ids');
      line.warnings = [...kept, note()];
    },
    () => {
      if (line.message.length > COMPACT_MESSAGE_LENGTH) line.message = `${line.message.slice(0, COMPACT_MESSAGE_LENGTH - 3)}...`;
      omitted.push('the end of the message');
      line.warnings = [...kept, note()];
    },
    () => {
      omitted.push('warnings');
      line.warnings = [note()];
    },
  ];
  for (const step of steps) {
    step();
    if (serialise(line).length <= max) break;
  }
  return line;
}

/**
 * Formats a result line exactly as the scripts print it, shortened to its operation's limit
 * (compactResultLine); throws if the object does not fit the schema.
 */
export function formatResultLine(result: ResultLine): string {
  const checked = ResultLine.parse(result);
  return serialise(compactResultLine(checked, RESULT_LINE_LIMITS[checked.operation]));
}

/**
 * Finds the last result line in a command's output (CRLF or LF, surrounding log lines ignored) and
 * returns it when it is valid; undefined when there is none or the last one is truncated or malformed.
 */
export function parseResultLine(output: string): ResultLine | undefined {
  const lines = output.split(/\r?\n|\r/);
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const line = (lines[i] ?? '').replace(/^\uFEFF/, '').trim();
    if (!line.startsWith(`${RESULT_LINE_PREFIX} `) && !line.startsWith(`${RESULT_LINE_PREFIX}{`)) continue;
    let json: unknown;
    try {
      json = JSON.parse(line.slice(RESULT_LINE_PREFIX.length));
    } catch {
      return undefined;
    }
    const parsed = ResultLine.safeParse(json);
    return parsed.success ? parsed.data : undefined;
  }
  return undefined;
}
