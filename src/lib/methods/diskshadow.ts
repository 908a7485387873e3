/**
 * The DiskShadow method: this project's own SSM document, built from src/scripts/diskshadow-snapshot.ps1.
 * DiskShadow creates a persistent shadow copy set with the VSS writers, then the script requests one
 * CreateSnapshots for the instance. Writes resume before the EBS snapshots are requested, so the snapshots
 * are application-consistent only after a restore reverts them to the shadow copy they contain
 * (src/scripts/diskshadow-restore.ps1); the tag `vss-snapshots:shadow-set-id` says which one.
 *
 * The script reports through one result line (src/lib/result-line.ts); a failure is diagnosed from its
 * errorCode first and from the output text (as for the AWS document) when there is no valid line.
 */
import { validateDocumentParameters } from '../../documents/document-parameters.ts';
import { FAILURES } from '../failure-catalogue.ts';
import type { FailureCode } from '../failure-catalogue.ts';
import { parseResultLine } from '../result-line.ts';
import { diagnoseVssOutput } from './aws-vss.ts';
import type { CommandContext, Diagnosis, InvocationResult, MethodDriver } from './types.ts';

/** Logical name of the snapshot document (src/documents). */
export const DISKSHADOW_SNAPSHOT_DOCUMENT = 'diskshadow-snapshot' as const;
/** Logical name of the restore document, run by the restore workflow on the target instance. */
export const DISKSHADOW_RESTORE_DOCUMENT = 'diskshadow-restore' as const;
/** Tag the script puts on every snapshot: the shadow copy set to revert to on restore. */
export const SHADOW_SET_TAG = 'vss-snapshots:shadow-set-id';
/**
 * The tag that tells the truth about a DiskShadow snapshot. `AppConsistent=true` is what AWS's tooling,
 * the console and AWS Backup read as "application-consistent as it stands"; a DiskShadow snapshot is
 * crash-consistent as it stands and consistent only once the restore reverts it to its shadow copy, so it
 * never carries AppConsistent. The script tags `after-revert` on create, once DiskShadow created the set.
 */
export const CONSISTENCY_TAG = 'vss-snapshots:consistency';
export const CONSISTENCY = {
  /** The volume holds a shadow copy of the set named by SHADOW_SET_TAG: consistent after the revert. */
  afterRevert: 'after-revert',
  /**
   * The disk holds no volume VSS can shadow (raw, or an unsupported file system): nothing to revert, and
   * no VSS writer can keep data on it (a component that needed it would have failed the run as
   * vss-component-excluded). Restored as it stands; the restore does not revert it.
   */
  notShadowed: 'not-shadowed',
} as const;

function isReportableFailureCode(code: string): code is FailureCode {
  const kind = (FAILURES as Record<string, { skip?: boolean } | undefined>)[code];
  return kind !== undefined && kind.skip !== true;
}

/**
 * Reads a Failed invocation of the snapshot document. The script's errorCode is a failure-catalogue
 * code whose retryable flag matches its exit code; an unknown code (a newer script) becomes script-failed.
 */
export function diagnoseDiskShadowOutput(result: InvocationResult): Diagnosis {
  const line = parseResultLine(result.output);
  if (line?.operation === 'snapshot' && line.outcome === 'failed' && line.errorCode) {
    const exit = `exit code ${result.responseCode ?? line.exitCode}`;
    const shadowSet = line.shadowSetId ? `; shadow set ${line.shadowSetId}` : '';
    const message = line.message || 'no message';
    if (isReportableFailureCode(line.errorCode)) {
      return { code: line.errorCode, detail: `${message} (${exit}${shadowSet}).` };
    }
    return {
      code: 'script-failed',
      detail: `${message} (script error code ${line.errorCode}, ${line.retryable ? 'retryable' : 'not retryable'} by the script's account; ${exit}${shadowSet}).`,
    };
  }
  return diagnoseVssOutput(result.output, result.responseCode);
}

export const diskShadow: MethodDriver = {
  method: 'diskshadow',
  parameters(ctx: CommandContext): Record<string, string[]> {
    return validateDocumentParameters(DISKSHADOW_SNAPSHOT_DOCUMENT, {
      RunId: [ctx.runId],
      Attempt: [String(ctx.attempt)],
      ...(ctx.stackId ? { StackId: [ctx.stackId] } : {}),
      ExcludeBootVolume: [ctx.excludeBootVolume ? 'True' : 'False'],
      // DiskShadow makes a copy backup unless "begin backup" starts a full one (Windows Commands
      // reference, "begin backup"): the script leaves begin/end backup out for True.
      CopyOnly: [ctx.copyOnly ? 'True' : 'False'],
      executionTimeout: [String(ctx.commandTimeoutSeconds)],
    });
  },
  diagnose(result: InvocationResult): Diagnosis {
    return diagnoseDiskShadowOutput(result);
  },
  isConsistent(tags: Record<string, string>): boolean {
    const consistency = tags[CONSISTENCY_TAG];
    return !!tags[SHADOW_SET_TAG] && (consistency === CONSISTENCY.afterRevert || consistency === CONSISTENCY.notShadowed);
  },
  consistencyTag: `${CONSISTENCY_TAG}=${CONSISTENCY.afterRevert}`,
  // The script tags run, attempt and instance, not the shard: a shard lists its snapshots by volume.
  tagsShard: false,
};
