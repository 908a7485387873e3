/**
 * The deployment's settings, read from the Lambda environment and checked in one place. A missing or
 * malformed variable is a ConfigurationError that names it: a deployment mistake must never turn into a
 * silently different backup.
 */
import * as z from 'zod';
import { REGION_NAME } from './aws-region.ts';
import { ConfigurationError } from './errors.ts';
import { parseEnvironment, wholeNumber } from './environment.ts';

const bool = z.enum(['true', 'false']).transform((v) => v === 'true');
const int = wholeNumber;

export const SNAPSHOT_METHODS = ['aws-vss', 'diskshadow'] as const;
export type SnapshotMethod = (typeof SNAPSHOT_METHODS)[number];

/** The stack id of a local run (the simulated account): deployed stacks set STACK_ID to `<service>-<stage>`. */
export const LOCAL_STACK_ID = 'vss-snapshots-local';

const EnvSchema = z.object({
  TAG_KEY: z.string().min(1).max(128).default('ConsistentSnapshot'),
  TAG_VALUE: z.string().max(256).default('WindowsVSS'),
  SNAPSHOT_METHOD: z.enum(SNAPSHOT_METHODS).default('aws-vss'),
  MAX_ATTEMPTS: int(1, 5).default(3),
  RETRY_DELAY_SECONDS: int(0, 86_400).default(600),
  COMMAND_POLL_SECONDS: int(5, 3_600).default(60),
  SNAPSHOT_POLL_SECONDS: int(5, 3_600).default(120),
  SNAPSHOT_DEADLINE_SECONDS: int(60, 72_000).default(21_600),
  // EC2 is eventually consistent: a new snapshot, or a tag added after creation (AWSEC2-CreateVssSnapshot tags
  // AppConsistent after the thaw), may show in DescribeSnapshots only later — AWS advises retrying "up to a few
  // minutes". A snapshot missing, or not yet marked consistent, this long after its command succeeded is judged
  // missing or crash-consistent; sooner it is "not yet". The leftover sweep waits as long after the last outcome.
  CONSISTENCY_GRACE_SECONDS: int(0, 3_600).default(300),
  COMMAND_TIMEOUT_SECONDS: int(60, 172_800).default(1_800),
  DELIVERY_TIMEOUT_SECONDS: int(30, 2_592_000).default(600),
  // Each instance's VSS agent calls EC2 CreateSnapshots inside a freeze Windows ends after 10 s; the account
  // bucket for that call holds 100 tokens refilled at 5 per second (aws-facts.md). So commands go out in
  // slices of at most 100 instances, 20 s apart: 100 snapshot sets per 20 s is what the bucket sustains.
  SEND_SLICE_INSTANCES: int(1, 10_000).default(100),
  SEND_SLICE_SECONDS: int(1, 3_600).default(20),
  // Instances per shard: each shard is one object in the report bucket and one child execution of the
  // Distributed Map. Larger shards cost fewer state transitions per instance, smaller ones less Lambda work per step.
  SHARD_INSTANCES: int(1, 10_000).default(1_000),
  EXCLUDE_BOOT_VOLUME: bool.default(false),
  COPY_ONLY: bool.default(false),
  VSS_DOCUMENT_NAME: z.string().min(3).default('AWSEC2-CreateVssSnapshot'),
  VSS_DOCUMENT_VERSION: z.string().regex(/^([0-9]+|\$DEFAULT|\$LATEST)$/).default('1'),
  DISKSHADOW_DOCUMENT_NAME: z.string().min(3).optional(),
  DISKSHADOW_DOCUMENT_VERSION: z.string().regex(/^([0-9]+|\$DEFAULT|\$LATEST)$/).default('1'),
  // Where SSM streams each snapshot command's full output (the result line is also read from the
  // invocation's output, which SSM truncates at 24,000 characters). Unset: no CloudWatch output.
  COMMAND_LOG_GROUP: z
    .string()
    .regex(/^[A-Za-z0-9_./#-]{1,512}$/, 'must be a CloudWatch Logs group name')
    .optional(),
  // The stack that owns the snapshots (`<service>-<stage>`): every snapshot this stack creates carries it as
  // STACK_TAG, and retention deletes only snapshots with this exact value (never another stage's).
  STACK_ID: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/, 'must be 1-128 letters, digits, . _ - (the stack name, <service>-<stage>)')
    .default(LOCAL_STACK_ID),
  // Retention (docs/retention in README): keep a set while it is among the newest RETAIN_COUNT verified sets
  // of its instance OR younger than RETAIN_DAYS; 0 turns a rule off. The newest verified set of an existing
  // instance is always kept; a vanished instance's last set is kept TERMINATED_RETAIN_DAYS after it was first
  // seen gone. At most RETENTION_MAX_DELETES snapshots are deleted per run; the rest wait for the next night.
  RETAIN_COUNT: int(0, 1_000).default(7),
  RETAIN_DAYS: int(0, 3_650).default(14),
  TERMINATED_RETAIN_DAYS: int(0, 3_650).default(30),
  RETENTION_MAX_DELETES: int(0, 1_000_000).default(36_000),
  // DR copies (README "DR copies"): every verified set is copied into DR_REGION (empty: off) and kept there by its
  // own rule. CopySnapshot allows 20 concurrent copies per destination Region (EBS user guide, "Copy an Amazon
  // EBS snapshot"); DR_COPY_CONCURRENCY stays at or under the account's quota. Copies can take hours: the
  // workflow polls every DR_POLL_SECONDS until DR_COPY_DEADLINE_HOURS after the run started, then leaves what
  // is still copying to the next night's pass (never holding the report).
  DR_REGION: z
    .string()
    .regex(new RegExp(`^$|${REGION_NAME.source}`), 'must be an AWS Region code such as us-west-2 (empty: DR copies off)')
    .optional(),
  DR_KMS_KEY_ID: z
    .string()
    .regex(/^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:(key|alias)\/[A-Za-z0-9/_-]+|alias\/[A-Za-z0-9/_-]+|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$/, 'must be a KMS key id, key ARN, alias name (alias/...) or alias ARN in the DR Region')
    .optional(),
  DR_ENCRYPT: bool.default(false),
  DR_COPY_CONCURRENCY: int(1, 1_000).default(20),
  DR_COPY_ATTEMPTS: int(1, 5).default(3),
  // At most 20: the DR deletions that follow (up to RETENTION_MAX_DELETES at 4.5 a second, 2.2 hours) must end
  // before the state machine's 23-hour timeout, and before the next night.
  DR_COPY_DEADLINE_HOURS: int(1, 20).default(20),
  // At least 60 s: a 23-hour pass of 9-event turns stays far below Step Functions' 25,000 history events.
  DR_POLL_SECONDS: int(60, 3_600).default(120),
  DR_RETAIN_COUNT: int(0, 1_000).default(7),
  DR_RETAIN_DAYS: int(0, 3_650).default(14),
  AWS_REGION: z.string().optional(),
  // Archive tier (README "Archive tier"): sets at least ARCHIVE_AFTER_DAYS old that the policy keeps 90 more days
  // are moved to the EBS Snapshots Archive tier; 0 (the default) never archives.
  ARCHIVE_AFTER_DAYS: int(0, 3_650).default(0),
  ALERT_TOPIC_ARN: z.string().regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:[0-9]{12}:[A-Za-z0-9_.-]{1,256}$/),
  REPORT_BUCKET: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/),
});

export type Config = {
  tagKey: string;
  tagValue: string;
  method: SnapshotMethod;
  maxAttempts: number;
  retryDelaySeconds: number;
  commandPollSeconds: number;
  snapshotPollSeconds: number;
  snapshotDeadlineSeconds: number;
  /** How long "not visible yet" / "not tagged yet" is given the benefit of the doubt (EC2 eventual consistency). */
  consistencyGraceSeconds: number;
  commandTimeoutSeconds: number;
  deliveryTimeoutSeconds: number;
  /** At most this many instances get their snapshot command per Send invocation... */
  sendSliceInstances: number;
  /** ...and the workflow waits this long between two such slices. */
  sendSliceSeconds: number;
  /** Instances per shard of the run state (one Distributed Map child each). */
  shardInstances: number;
  excludeBootVolume: boolean;
  copyOnly: boolean;
  documents: Record<SnapshotMethod, { name: string | undefined; version: string }>;
  /** CloudWatch Logs group for the commands' full output, if any. */
  commandLogGroup: string | undefined;
  alertTopicArn: string;
  reportBucket: string;
  /** This stack's id (STACK_TAG value on every snapshot it creates). */
  stackId: string;
  retention: RetentionDefaults;
  /** DR copies into another Region; undefined: off. */
  dr: DrSettings | undefined;
};

/** Where and how verified sets are copied for disaster recovery (README "DR copies"). */
export interface DrSettings {
  /** The destination Region (never the home Region). */
  region: string;
  /** The home Region, where the sets are (the Lambdas' own Region). */
  sourceRegion: string;
  /** KMS key in the DR Region for the copies (then always encrypted); undefined: EC2's choice (see README). */
  kmsKeyId: string | undefined;
  /** Encrypt every copy even when its source is not (with the DR Region's default EBS key unless kmsKeyId). */
  encrypt: boolean;
  /** Copies in flight at most (per destination Region: 20 by default in AWS). */
  concurrency: number;
  /** Copy attempts per snapshot before it is reported failed. */
  maxAttempts: number;
  /** Hours after the run started when the pass stops polling; unfinished copies go to the next pass. */
  deadlineHours: number;
  pollSeconds: number;
  /** The DR Region's own retention rule (the instance's retain tag does not apply there). */
  retention: RetentionDefaults;
}

/** The stack's retention defaults (an instance's `vss-snapshots:retain` tag replaces count and days). */
export interface RetentionDefaults {
  /** Keep the newest N verified sets of an instance (0: rule off). */
  count: number;
  /** Keep every set younger than N days (0: rule off). */
  days: number;
  /** Keep a vanished instance's last set this many days after it was first seen gone. */
  terminatedDays: number;
  /** Snapshots deleted per run at most; the rest are deferred to the next run. */
  maxDeletes: number;
  /** Archive sets at least this many days old (0: never archive). README "Archive tier". */
  archiveAfterDays: number;
}

/** Reads and checks the environment. Cheap enough to call per invocation; throws ConfigurationError. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const e = parseEnvironment(EnvSchema, env);
  return {
    tagKey: e.TAG_KEY,
    tagValue: e.TAG_VALUE,
    method: e.SNAPSHOT_METHOD,
    maxAttempts: e.MAX_ATTEMPTS,
    retryDelaySeconds: e.RETRY_DELAY_SECONDS,
    commandPollSeconds: e.COMMAND_POLL_SECONDS,
    snapshotPollSeconds: e.SNAPSHOT_POLL_SECONDS,
    snapshotDeadlineSeconds: e.SNAPSHOT_DEADLINE_SECONDS,
    consistencyGraceSeconds: e.CONSISTENCY_GRACE_SECONDS,
    commandTimeoutSeconds: e.COMMAND_TIMEOUT_SECONDS,
    deliveryTimeoutSeconds: e.DELIVERY_TIMEOUT_SECONDS,
    sendSliceInstances: e.SEND_SLICE_INSTANCES,
    sendSliceSeconds: e.SEND_SLICE_SECONDS,
    shardInstances: e.SHARD_INSTANCES,
    excludeBootVolume: e.EXCLUDE_BOOT_VOLUME,
    copyOnly: e.COPY_ONLY,
    documents: {
      'aws-vss': { name: e.VSS_DOCUMENT_NAME, version: e.VSS_DOCUMENT_VERSION },
      diskshadow: { name: e.DISKSHADOW_DOCUMENT_NAME, version: e.DISKSHADOW_DOCUMENT_VERSION },
    },
    commandLogGroup: e.COMMAND_LOG_GROUP,
    alertTopicArn: e.ALERT_TOPIC_ARN,
    reportBucket: e.REPORT_BUCKET,
    stackId: e.STACK_ID,
    retention: { count: e.RETAIN_COUNT, days: e.RETAIN_DAYS, terminatedDays: e.TERMINATED_RETAIN_DAYS, maxDeletes: e.RETENTION_MAX_DELETES, archiveAfterDays: e.ARCHIVE_AFTER_DAYS },
    dr: drSettings(e),
  };
}

function drSettings(e: z.output<typeof EnvSchema>): DrSettings | undefined {
  if (!e.DR_REGION) return undefined;
  const sourceRegion = e.AWS_REGION ?? 'us-east-1';
  if (e.DR_REGION === sourceRegion) {
    throw new ConfigurationError(`Lambda environment is invalid: DR_REGION ${e.DR_REGION} is the stack's own Region; name another Region (or leave it empty to turn DR copies off).`);
  }
  const keyRegion = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):/.exec(e.DR_KMS_KEY_ID ?? '')?.[1];
  if (keyRegion !== undefined && keyRegion !== e.DR_REGION) {
    throw new ConfigurationError(`Lambda environment is invalid: DR_KMS_KEY_ID is a key of ${keyRegion}; a copy can only be encrypted with a key of the DR Region ${e.DR_REGION}.`);
  }
  return {
    region: e.DR_REGION,
    sourceRegion,
    kmsKeyId: e.DR_KMS_KEY_ID || undefined,
    encrypt: e.DR_ENCRYPT,
    concurrency: e.DR_COPY_CONCURRENCY,
    maxAttempts: e.DR_COPY_ATTEMPTS,
    deadlineHours: e.DR_COPY_DEADLINE_HOURS,
    pollSeconds: e.DR_POLL_SECONDS,
    // Copies are not archived (as DLM: archive rules apply to the source snapshots only).
    retention: { count: e.DR_RETAIN_COUNT, days: e.DR_RETAIN_DAYS, terminatedDays: e.TERMINATED_RETAIN_DAYS, maxDeletes: e.RETENTION_MAX_DELETES, archiveAfterDays: 0 },
  };
}
