/**
 * Eventual consistency of the simulated account. AWS's read APIs do not show a change at once:
 *
 * - EC2: "the result of an API command you run that affects your Amazon EC2 resources might not be immediately
 *   visible to all subsequent commands you run"; AWS advises retrying a Describe "starting with a couple of
 *   seconds of wait time, and increasing gradually up to a few minutes" (EC2 developer guide, "Eventual
 *   consistency in the Amazon EC2 API", docs.aws.amazon.com/ec2/latest/devguide/eventual-consistency.html).
 *   New snapshots, tags added after creation (AWSEC2-CreateVssSnapshot tags `AppConsistent` after the thaw),
 *   new volumes, their tags and attachments.
 * - SSM: right after SendCommand, ListCommandInvocations returns nothing and GetCommandInvocation answers
 *   InvocationDoesNotExist for a while (aws-facts.md, "Behaviours that break orchestrators"); ListCommands may
 *   lag too (not documented either way: modelled, the harder case).
 * - Step Functions: ListExecutions is "best effort" / eventually consistent (API reference): a just-started
 *   execution may be missing from the list.
 *
 * Each lag is drawn from a seeded generator: `min + (max - min) * u²`, u uniform in [0, 1) — most lags are
 * short, a few reach the maximum. `maxLagSeconds` (fleet file `consistency`) scales them all: 0 turns them off
 * for a test that needs it; the default is a realistic 10 s (the "couple of seconds" AWS names, with a tail);
 * stress runs use 30 s or more. S3 needs no lag: it is strongly consistent for reads after writes and lists
 * (S3 user guide, "Amazon S3 data consistency model").
 */
import { seededRandom, streamSeed } from './random.ts';

export const DEFAULT_MAX_LAG_SECONDS = 10;

/** What becomes visible late. Each kind has a floor in ms that applies whenever lags are on at all. */
export const LAG_KINDS = {
  /** DescribeSnapshots lists a new snapshot. */
  'snapshot-visible': 1_000,
  /** A tag added to an existing snapshot (CreateTags after creation) shows in DescribeSnapshots and its filters. */
  'snapshot-tag': 1_000,
  /** ListCommands lists a new command. */
  'command-listed': 500,
  /** ListCommandInvocations knows the invocation of a new command. */
  'invocation-visible': 1_000,
  /**
   * GetCommandInvocation knows it only this much later again: each read API is eventually consistent on its own
   * (an invocation listed as Failed can still answer InvocationDoesNotExist to GetCommandInvocation; SSM API
   * reference, GetCommandInvocation, "InvocationDoesNotExist"). Found by the mutation review: a poll that left
   * such an invocation unjudged must read it again.
   */
  'invocation-detail': 500,
  /** ListExecutions lists a new execution. */
  'execution-listed': 500,
  /** DescribeVolumes lists a new volume. */
  'volume-visible': 1_000,
  /** A volume's tags (given on create) show in DescribeVolumes and its filters. */
  'volume-tag': 1_000,
  /** An attachment (or the end of one) shows in DescribeVolumes / DescribeInstances. */
  'volume-attachment': 1_000,
  /** A volume's state change (creating → available) shows in DescribeVolumes. */
  'volume-state': 500,
} as const;
export type LagKind = keyof typeof LAG_KINDS;

export interface ConsistencySpec {
  /** The longest lag in seconds (0: every change is visible at once). */
  maxLagSeconds: number;
  seed: number;
}

export class ConsistencyModel {
  private readonly random: () => number;

  /** `fixed`: exact lags (ms) for some kinds, for a test of one precise behaviour. */
  constructor(
    readonly spec: ConsistencySpec,
    private readonly fixed: Partial<Record<LagKind, number>> = {},
  ) {
    this.random = seededRandom(streamSeed(spec.seed, 'consistency'));
  }

  /** A lag for one change of this kind, in ms. */
  lagMs(kind: LagKind): number {
    const fixed = this.fixed[kind];
    if (fixed !== undefined) return fixed;
    const max = this.spec.maxLagSeconds * 1000;
    if (max <= 0) return 0;
    const min = Math.min(LAG_KINDS[kind], max);
    const u = this.random();
    return Math.round(min + (max - min) * u * u);
  }
}
