/**
 * AWS's own `AWSEC2-CreateVssSnapshot` document (needs AwsVssComponents on the instance). The EC2 VSS
 * provider requests the EBS snapshots inside the VSS freeze, so they are application-consistent as they
 * stand, and tags them `AppConsistent=true` only when VSS succeeded.
 */
import { InvalidInputError } from '../errors.ts';
import { ATTEMPT_TAG, METHOD_TAG, RUN_TAG, SHARD_TAG, STACK_TAG } from '../run-id.ts';
import type { CommandContext, Diagnosis, InvocationResult, MethodDriver } from './types.ts';

/** Tags the document adds itself; passing any of them makes the document fail. */
export const RESERVED_VSS_TAGS = ['Device', 'AppConsistent', 'AwsVssConfig'] as const;

// The `tags` parameter is `Key=k,Value=v;Key=...`: commas, semicolons and `=` inside a key or value would
// change its meaning, so keys and values are limited to characters that cannot.
const TAG_PART = /^[A-Za-z0-9 _.:/+\-@]{1,128}$/;
const TAG_VALUE = /^[A-Za-z0-9 _.:/+\-@]{0,256}$/;

/** Builds the document's `tags` string; refuses reserved or unrepresentable tags with a clear error. */
export function formatVssTags(tags: Record<string, string>): string {
  return Object.entries(tags)
    .map(([key, value]) => {
      if ((RESERVED_VSS_TAGS as readonly string[]).includes(key)) {
        throw new InvalidInputError(`Snapshot tag "${key}" is reserved by AWSEC2-CreateVssSnapshot (${RESERVED_VSS_TAGS.join(', ')}); choose another key.`);
      }
      if (!TAG_PART.test(key)) throw new InvalidInputError(`Snapshot tag key "${key}" may only use letters, digits, spaces and _ . : / + - @.`);
      if (!TAG_VALUE.test(value)) throw new InvalidInputError(`Snapshot tag "${key}" value may only use letters, digits, spaces and _ . : / + - @.`);
      return `Key=${key},Value=${value}`;
    })
    .join(';');
}

/**
 * Known failure messages of the AWS VSS components, most specific first: by the VSS_E_* name, by its HRESULT
 * (the document may print only the code; values from vsserror.h, learn.microsoft.com "Volume Shadow Copy
 * Service Error Codes"), or by phrase. Read from the full output (GetCommandInvocation): ListCommandInvocations
 * cuts it at 2,500 characters, before the error in a long log.
 */
const KNOWN_FAILURES: { pattern: RegExp; diagnosis: Diagnosis }[] = [
  { pattern: /VSS_E_WRITERERROR_NONRETRYABLE|0x800423F4\b/i, diagnosis: { code: 'vss-writer-nonretryable', detail: 'A VSS writer failed with VSS_E_WRITERERROR_NONRETRYABLE (0x800423F4).' } },
  { pattern: /VSS_E_WRITERERROR_(TIMEOUT|OUTOFRESOURCES|RETRYABLE)|0x800423F[123]\b/i, diagnosis: { code: 'vss-writer-retryable', detail: 'A VSS writer reported a retryable error.' } },
  { pattern: /VSS_E_SNAPSHOT_SET_IN_PROGRESS|0x80042316\b/i, diagnosis: { code: 'vss-in-progress', detail: 'Another shadow copy was being created (VSS_E_SNAPSHOT_SET_IN_PROGRESS, 0x80042316).' } },
  { pattern: /VSS_E_INSUFFICIENT_STORAGE|0x8004231F\b/i, diagnosis: { code: 'vss-insufficient-storage', detail: 'VSS reported VSS_E_INSUFFICIENT_STORAGE (0x8004231F).' } },
  {
    pattern: /timeout waiting for VSS Freeze|Thaw pipe connection timed out|VSS_E_(FLUSH|HOLD)_WRITES_TIMEOUT|0x8004231[34]\b/i,
    diagnosis: { code: 'vss-timeout', detail: 'The VSS freeze timed out.' },
  },
  { pattern: /language mode|ConstrainedLanguage/i, diagnosis: { code: 'language-mode', detail: 'PowerShell is not running in FullLanguage mode.' } },
  {
    pattern: /AwsVssComponents[^\n]*(not (be )?(installed|found)|is missing)|ec2-vss-agent[^\n]*not found|package[^\n]*AwsVssComponents[^\n]*not installed/i,
    diagnosis: { code: 'package-missing', detail: 'The AwsVssComponents package is not installed.' },
  },
  { pattern: /ConcurrentSnapshotLimitExceeded/i, diagnosis: { code: 'concurrent-snapshot-limit', detail: 'EBS refused the snapshot: ConcurrentSnapshotLimitExceeded.' } },
];

export function diagnoseVssOutput(output: string, responseCode: number | undefined): Diagnosis {
  for (const known of KNOWN_FAILURES) if (known.pattern.test(output)) return known.diagnosis;
  const lastLine = output.trim().split(/\r?\n/).filter(Boolean).at(-1)?.slice(0, 200);
  return {
    code: 'script-failed',
    detail: `The snapshot command failed (exit code ${responseCode ?? 'unknown'})${lastLine ? `: "${lastLine}"` : ''}.`,
  };
}

export const awsVss: MethodDriver = {
  method: 'aws-vss',
  parameters(ctx: CommandContext): Record<string, string[]> {
    const tags = formatVssTags({ [RUN_TAG]: ctx.runId, [ATTEMPT_TAG]: String(ctx.attempt), [METHOD_TAG]: 'aws-vss', ...(ctx.shard !== undefined ? { [SHARD_TAG]: String(ctx.shard) } : {}), ...(ctx.stackId ? { [STACK_TAG]: ctx.stackId } : {}) });
    return {
      ExcludeBootVolume: [ctx.excludeBootVolume ? 'True' : 'False'],
      CopyOnly: [ctx.copyOnly ? 'True' : 'False'],
      NoWriters: ['False'],
      CreateAmi: ['False'],
      description: [`vss-snapshots run ${ctx.runId} attempt ${ctx.attempt}`],
      tags: [tags],
      executionTimeout: [String(ctx.commandTimeoutSeconds)],
      CollectDiagnosticLogs: ['True'],
    };
  },
  diagnose(result: InvocationResult): Diagnosis {
    return diagnoseVssOutput(result.output, result.responseCode);
  },
  // AWS's document tags AppConsistent=true only when the snapshots were taken inside a successful VSS
  // freeze (EC2 user guide, "Create VSS based snapshots"); on a VSS error its snapshots stay, untagged.
  isConsistent(tags: Record<string, string>): boolean {
    return tags.AppConsistent === 'true';
  },
  consistencyTag: 'AppConsistent=true',
  tagsShard: true,
};
