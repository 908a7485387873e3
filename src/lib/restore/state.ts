/**
 * The object that travels between the restore workflow's states. A restore has at most 40 volumes, so
 * everything it needs fits in the payload (a few KB at 40 volumes): no state object in S3.
 */
import * as z from 'zod';
import { InvalidStateInputError } from '../errors.ts';

export const RESTORE_TAGS = {
  /** Every volume a restore creates carries its restore id: cleanup and IAM find them by it. */
  restoreId: 'vss-snapshots:restore-id',
  runId: 'vss-snapshots:run-id',
  sourceInstance: 'vss-snapshots:source-instance-id',
  sourceDevice: 'vss-snapshots:source-device',
  targetInstance: 'vss-snapshots:target-instance-id',
} as const;

const isoDate = z.string().refine((v) => !Number.isNaN(Date.parse(v)), 'must be an ISO-8601 date');

export const RestoreRequest = z.object({
  /** `<UTC start>-<hash of the execution ARN>`: the same for every retry of every step of one execution. */
  restoreId: z.string().regex(/^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/),
  executionId: z.string(),
  runId: z.string(),
  sourceInstanceId: z.string(),
  targetInstanceId: z.string(),
  /** Normalized device names (`xvdf`) to restore; null: every volume of the source in the run. */
  devices: z.array(z.string()).nullable(),
  keepOnFailure: z.boolean(),
  startedAt: isoDate,
  /**
   * The Region the restore acts in: the target instance's, the snapshots', the volumes'.
   * Region. Absent: the stack's own Region; present only for the stack's DR Region, which restores from the DR
   * copies there (dr-copies.ts).
   */
  region: z.string().optional(),
});

export const PlannedVolume = z.object({
  sourceDevice: z.string(),
  sourceVolumeId: z.string(),
  snapshotId: z.string(),
  /** A DR copy's source snapshot (in the home Region); absent for a run's own snapshot. */
  copyOf: z.string().optional(),
  sizeGiB: z.number().int().positive(),
  /** Device name on the target: planned by Plan Restore, confirmed by Attach Volumes. */
  device: z.string(),
  /** Set by Create Volumes. */
  volumeId: z.string().nullable(),
});

export const RestorePlan = z.object({
  method: z.enum(['aws-vss', 'diskshadow']),
  availabilityZone: z.string(),
  targetState: z.string(),
  /** The DiskShadow shadow copy set the volumes are reverted to; null for aws-vss snapshots. */
  shadowSetId: z.string().nullable(),
  volumes: z.array(PlannedVolume).min(1).max(40),
});

export const RevertStatus = z.object({
  /** Null while a send is unconfirmed (its answer was lost and SSM does not list the command yet). */
  commandId: z.string().nullable(),
  documentName: z.string(),
  /**
   * pending: sent, running; success: reverted; unconfirmed: a send may have reached SSM, look it up before
   * anything else; not-sent: SSM has not listed it for longer than its listing can lag, so send again.
   */
  status: z.enum(['pending', 'success', 'unconfirmed', 'not-sent']),
  /** SendCommand calls this restore has made (or may have made) of the revert. */
  sends: z.number().int().min(0).default(1),
  /** When the restore first found the latest send unconfirmed: the listing lag is waited out from then. */
  unconfirmedSince: isoDate.optional(),
  deadline: isoDate,
  disks: z
    .array(z.object({ volumeId: z.string(), diskNumber: z.number().int().nullable(), signatureChanged: z.boolean(), online: z.boolean(), reverted: z.number().int() }))
    .default([]),
  warnings: z.array(z.string()).default([]),
});

export const CleanupStatus = z.object({
  done: z.boolean(),
  deadline: isoDate,
  /** The first round: a volume EC2 does not show yet (a new volume, its tag) is waited for from then, within a grace. */
  startedAt: isoDate.optional(),
  deleted: z.array(z.string()),
  detached: z.array(z.string()),
  kept: z.array(z.string()),
  waiting: z.array(z.string()),
  /** Volume ids this restore holds that DescribeVolumes did not list, and since when. */
  missingSince: z.record(z.string(), isoDate).default({}),
  /** Held ids that stayed unlisted past the grace: deleted by an earlier, interrupted round, or never made. */
  notFound: z.array(z.string()).default([]),
});

export const RestoreStateSchema = z.object({
  restore: RestoreRequest,
  plan: RestorePlan.optional(),
  /** What Check Volumes waits for: created volumes `available`, or attachments `attached`. */
  phase: z.enum(['creating', 'attaching']).optional(),
  ready: z.boolean().optional(),
  deadline: isoDate.optional(),
  /** When Create Volumes or Attach Volumes returned: what EC2 does not show yet is waited for from then, within a grace. */
  phaseStartedAt: isoDate.optional(),
  revert: RevertStatus.optional(),
  /** Added by a Catch: the error that sent the execution to cleanup. */
  error: z.object({ Error: z.string(), Cause: z.unknown().optional() }).optional(),
  /** Added by Send Revert Command's Catch: its Lambda failed in a way that may have sent the command. */
  revertSendError: z.object({ Error: z.string(), Cause: z.unknown().optional() }).optional(),
  cleanup: CleanupStatus.optional(),
  failure: z.object({ error: z.string(), cause: z.string() }).optional(),
});

export type RestoreState = z.infer<typeof RestoreStateSchema>;
export type RestorePlan = z.infer<typeof RestorePlan>;
export type PlannedVolume = z.infer<typeof PlannedVolume>;

/** Parses a state's input; anything else means the definition and the handlers disagree. */
export function parseRestoreState(raw: unknown): RestoreState {
  const result = RestoreStateSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new InvalidStateInputError(`State input is not a restore state: ${issue?.path.join('.')} ${issue?.message}`);
  }
  return result.data;
}

/** The plan, which every step after Plan Restore needs. */
export function planOf(state: RestoreState): RestorePlan {
  if (!state.plan) throw new InvalidStateInputError('State input has no restore plan: the step ran before Plan Restore.');
  return state.plan;
}

/** Ids of the volumes created so far. */
export function createdVolumeIds(state: RestoreState): string[] {
  return (state.plan?.volumes ?? []).flatMap((v) => (v.volumeId ? [v.volumeId] : []));
}
