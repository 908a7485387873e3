import type { SnapshotMethod } from '../config.ts';
import type { FailureCode } from '../failure-catalogue.ts';

/** What a method needs to build the parameters of one snapshot command. */
export interface CommandContext {
  runId: string;
  attempt: number;
  excludeBootVolume: boolean;
  copyOnly: boolean;
  commandTimeoutSeconds: number;
  /** The shard the command is sent for (a run of several shards). */
  shard?: number;
  /** The stack the snapshots belong to (STACK_TAG; config STACK_ID): what retention may delete. */
  stackId?: string;
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
  /**
   * Whether a snapshot's tags say this method made it restorable to an application-consistent state:
   * as it stands (aws-vss, `AppConsistent=true`) or after the restore reverts it (diskshadow). Verify
   * and restore ask only this.
   */
  isConsistent(tags: Record<string, string>): boolean;
  /** The tag that says so, as messages name it. */
  readonly consistencyTag: string;
  /**
   * Whether this method's snapshots carry SHARD_TAG, so a shard can list its own snapshots by tag (pages of
   * 1,000) instead of by volume (200 volumes a call).
   */
  readonly tagsShard: boolean;
}

/** The tags of an EC2 resource as a map (the SDK returns a list of Key/Value pairs). */
export function tagMap(tags: readonly { Key?: string; Value?: string }[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const t of tags ?? []) if (t.Key !== undefined) out[t.Key] = t.Value ?? '';
  return out;
}
