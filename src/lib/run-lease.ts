/**
 * The overlap guard: one run of a state machine at a time (unless `force`). Step Functions' ListExecutions is
 * eventually consistent ("best effort"): two executions started in the same second may each miss the other and
 * both send every server a VSS command. So the guard is a lease object in the report bucket taken with an S3
 * conditional write, which S3 serialises: `If-None-Match: *` creates it only if no one has, `If-Match: <ETag>`
 * replaces it only if no one changed it since it was read (S3 user guide, "How to prevent object overwrites with
 * conditional writes"; 412 PreconditionFailed or 409 ConditionalRequestConflict for the loser).
 *
 * A lease names its holder (the execution ARN). It is free when released, expired, or held by an execution
 * Step Functions reports as no longer RUNNING (DescribeExecution on a known ARN: aborted or timed-out runs never
 * release it themselves). A retried Prepare Run finds its own lease and keeps it.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand } from '@aws-sdk/client-sfn';
import type { SFNClient } from '@aws-sdk/client-sfn';
import { clock } from './clock.ts';
import { RunInProgressError } from './errors.ts';

/** A lease outlives the longest run (the state machine's 23-hour timeout) only by a margin. */
export const LEASE_TTL_MS = 24 * 3_600_000;
/** A holder Step Functions does not know yet (just started) is taken as running for this long. */
const UNKNOWN_HOLDER_GRACE_MS = 5 * 60_000;

export interface Lease {
  holder: string;
  holderName?: string;
  acquiredAt: string;
  expiresAt: string;
  released?: boolean;
}

export const leaseKey = (stateMachineArn: string): string => `leases/${stateMachineArn.split(':').at(-1) ?? 'state-machine'}.json`;

export interface LeaseDeps {
  s3: S3Client;
  sfn: SFNClient;
  bucket: string;
}

async function readLease(s3: S3Client, bucket: string, key: string): Promise<{ lease: Lease; etag: string } | undefined> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    const text = (await out.Body?.transformToString()) ?? '';
    return { lease: JSON.parse(text) as Lease, etag: out.ETag ?? '' };
  } catch (error) {
    if ((error as Error).name === 'NoSuchKey' || (error as Error).name === 'NotFound') return undefined;
    throw error;
  }
}

const lost = (error: unknown): boolean => {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'PreconditionFailed' || e.name === 'ConditionalRequestConflict' || e.$metadata?.httpStatusCode === 412 || e.$metadata?.httpStatusCode === 409;
};

/** Takes the lease for `execution` or throws RunInProgressError naming the run that holds it. Returns the key. */
export async function acquireLease(deps: LeaseDeps, execution: { id: string; name: string; stateMachineId: string }): Promise<string> {
  const key = leaseKey(execution.stateMachineId);
  for (let round = 0; round < 5; round += 1) {
    const now = clock.now();
    const mine: Lease = { holder: execution.id, holderName: execution.name, acquiredAt: new Date(now).toISOString(), expiresAt: new Date(now + LEASE_TTL_MS).toISOString() };
    const current = await readLease(deps.s3, deps.bucket, key);
    if (current?.lease.holder === execution.id && !current.lease.released) return key;
    if (current && !(await isFree(deps.sfn, current.lease, now))) {
      throw new RunInProgressError(
        `Another snapshot run is in progress: execution "${current.lease.holderName ?? current.lease.holder}" holds the run lease since ${current.lease.acquiredAt}. ` +
          'Nothing was done by this run. Wait for that run to finish, or start this one again with {"force": true} to run both.',
      );
    }
    try {
      await deps.s3.send(
        new PutObjectCommand({
          Bucket: deps.bucket,
          Key: key,
          Body: JSON.stringify(mine),
          ContentType: 'application/json',
          ...(current ? { IfMatch: current.etag } : { IfNoneMatch: '*' }),
        }),
      );
      return key;
    } catch (error) {
      // Someone else wrote it between our read and our write: read again and judge their lease.
      if (lost(error)) continue;
      throw error;
    }
  }
  throw new RunInProgressError('Could not take the run lease: it kept changing under this run. Nothing was done; start the run again.');
}

/**
 * The lease of a run in progress, if one holds it (what Prepare Run would refuse on); undefined when it is free:
 * released (the run wrote its report: retention and DR copies may still go on in its execution), expired, or
 * held by an execution that is no longer running.
 */
export async function heldLease(deps: LeaseDeps, stateMachineArn: string, now: number = clock.now()): Promise<Lease | undefined> {
  const current = await readLease(deps.s3, deps.bucket, leaseKey(stateMachineArn));
  if (!current || (await isFree(deps.sfn, current.lease, now))) return undefined;
  return current.lease;
}

async function isFree(sfn: SFNClient, lease: Lease, now: number): Promise<boolean> {
  if (lease.released || Date.parse(lease.expiresAt) <= now) return true;
  try {
    const out = await sfn.send(new DescribeExecutionCommand({ executionArn: lease.holder }));
    return out.status !== 'RUNNING';
  } catch (error) {
    if ((error as Error).name === 'ExecutionDoesNotExist') return now - Date.parse(lease.acquiredAt) > UNKNOWN_HOLDER_GRACE_MS;
    throw error;
  }
}

/** Releases the lease if `executionArn` still holds it (a newer holder's lease is left alone). */
export async function releaseLease(s3: S3Client, bucket: string, key: string, executionArn: string): Promise<void> {
  const current = await readLease(s3, bucket, key);
  if (!current || current.lease.holder !== executionArn || current.lease.released) return;
  try {
    await s3.send(
      new PutObjectCommand({
        Bucket: bucket,
        Key: key,
        Body: JSON.stringify({ ...current.lease, released: true, releasedAt: new Date(clock.now()).toISOString() }),
        ContentType: 'application/json',
        IfMatch: current.etag,
      }),
    );
  } catch (error) {
    if (!lost(error)) throw error;
  }
}
