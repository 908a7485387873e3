import type { SnapshotMethod } from '../config.ts';
import type { FailureCode } from '../failure-catalogue.ts';

/** What a method needs to build the parameters of one snapshot command. */
export interface CommandContext {
  runId: string;
  attempt: number;
  excludeBootVolume: boolean;
  copyOnly: boolean;
  commandTimeoutSeconds: number;
}

/** One instance's final invocation, as ListCommandInvocations (with Details) reports it. */
export interface InvocationResult {
  status: string;
  statusDetails: string;
  responseCode?: number;
  output: string;
}

export interface Diagnosis {
  code: FailureCode;
  detail: string;
}

/**
 * The seam between the orchestrator and what runs on Windows. Each method knows its document's
 * parameters and how to read its failures; the rest of the workflow is the same for all methods.
 */
export interface MethodDriver {
  readonly method: SnapshotMethod;
  /** SSM parameters for SendCommand; every value already checked against the document's pattern. */
  parameters(ctx: CommandContext): Record<string, string[]>;
  /** Explains an invocation that ended `Failed` (script exit code non-zero). */
  diagnose(result: InvocationResult): Diagnosis;
  /** Whether a snapshot's tags mark it consistent the way this method promises (else: crash-consistent). */
  isConsistent(tags: Record<string, string>): boolean;
}
