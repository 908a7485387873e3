/**
 * What the self-test document (src/scripts/selftest.ps1) reports: the result line every script of this
 * project prints (src/lib/result-line.ts: prefix, version, outcome, error code), with operation
 * "selftest" and, per action, the facts the driver judges. Read through GetCommandInvocation.
 */
import * as z from 'zod';
import { RESULT_LINE_COMMON, RESULT_LINE_PREFIX } from '../lib/result-line.ts';

/** Exit codes of selftest.ps1: the convention of result-line.ts (even retryable, odd permanent). */
export const SELFTEST_EXIT_CODES = {
  success: 0,
  unexpected: 1,
  'instance-retryable': 14,
  'instance-permanent': 15,
  'disk-retryable': 20,
  'disk-permanent': 21,
  'selftest-retryable': 30,
  'selftest-permanent': 31,
} as const;

/** The errorCodes selftest.ps1 reports, with whether another attempt can help. */
export const SELFTEST_ERROR_CODES = {
  'language-mode': false,
  'script-failed': true,
  'disk-not-found': true,
  'signature-fix-failed': false,
  'data-drive-missing': false,
  'workload-not-running': true,
} as const satisfies Record<string, boolean>;

export const Journal = z.object({
  found: z.boolean(),
  entries: z.number(),
  lastSeq: z.number(),
  firstUtc: z.string().nullable(),
  lastUtc: z.string().nullable(),
  chainValid: z.boolean(),
  firstInvalidEntry: z.number().nullable(),
  tornTail: z.boolean(),
  inWindow: z.number(),
});
export type Journal = z.infer<typeof Journal>;

export const Pages = z.object({ found: z.boolean(), pages: z.number(), written: z.number(), valid: z.number() });
export type Pages = z.infer<typeof Pages>;

export const KnownFiles = z.object({ expected: z.number(), matching: z.number(), differing: z.number(), missing: z.number() });
export type KnownFiles = z.infer<typeof KnownFiles>;

export const PrepareFacts = z.object({
  os: z.string(),
  osVersion: z.string(),
  build: z.string(),
  powershell: z.string(),
  languageMode: z.string(),
  hypervisor: z.enum(['nitro', 'xen']),
  diskshadow: z.boolean(),
  awsTools: z.boolean(),
  awsVssComponents: z.string().nullable(),
  dataVolume: z.object({ drive: z.string(), fileSystem: z.string(), sizeBytes: z.number(), diskNumber: z.number(), volumeId: z.string().nullable() }),
  shadowStorageHere: z.boolean(),
  stateFolder: z.object({ path: z.string(), owner: z.string(), protected: z.boolean(), identities: z.array(z.string()) }),
  knownFiles: z.object({ count: z.number(), bytes: z.number(), digest: z.string() }),
  workload: z.object({ task: z.string(), folder: z.string(), intervalMs: z.number(), journal: Journal }),
});
export type PrepareFacts = z.infer<typeof PrepareFacts>;

export const StopFacts = z.object({ workloadStopped: z.boolean(), journal: Journal, pages: Pages, knownFiles: KnownFiles });
export type StopFacts = z.infer<typeof StopFacts>;

export const RestoredVolumeFacts = z.object({
  volumeId: z.string(),
  diskNumber: z.number(),
  folder: z.string().nullable(),
  knownFiles: KnownFiles.nullable(),
  journal: Journal.nullable(),
  pages: Pages.nullable(),
});
export type RestoredVolumeFacts = z.infer<typeof RestoredVolumeFacts>;

export const VerifyFacts = z.object({ volumes: z.array(RestoredVolumeFacts) });
export type VerifyFacts = z.infer<typeof VerifyFacts>;

export const CleanupFacts = z.object({ workloadStopped: z.boolean(), folderRemoved: z.boolean(), shadowCopiesLeft: z.array(z.string()) });
export type CleanupFacts = z.infer<typeof CleanupFacts>;

export const SelfTestLine = z.object({
  ...RESULT_LINE_COMMON,
  operation: z.literal('selftest'),
  action: z.enum(['prepare', 'stop', 'verify', 'cleanup']).nullable(),
  facts: z.record(z.string(), z.unknown()),
});
export type SelfTestLine = z.infer<typeof SelfTestLine>;

/**
 * The self-test line in a command's output (PowerShell's ConvertTo-Json prints an empty ordered
 * dictionary as {} and a one-element array as that array), or undefined.
 */
export function parseSelfTestLine(output: string): SelfTestLine | undefined {
  for (const raw of output.split(/\r?\n/).reverse()) {
    const line = raw.replace(/^\uFEFF/, '').trim();
    if (!line.startsWith(`${RESULT_LINE_PREFIX} `)) continue;
    try {
      const parsed = SelfTestLine.safeParse(JSON.parse(line.slice(RESULT_LINE_PREFIX.length)));
      return parsed.success ? parsed.data : undefined;
    } catch {
      return undefined;
    }
  }
  return undefined;
}
