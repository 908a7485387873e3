import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { clock } from '../../src/lib/clock.ts';
import { acquireLease, leaseKey, releaseLease } from '../../src/lib/run-lease.ts';

const s3 = mockClient(S3Client);
const sfn = mockClient(SFNClient);
const NOW = Date.parse('2026-11-28T00:00:00Z');
const MACHINE = 'arn:aws:states:us-east-1:123456789012:stateMachine:vss-snapshots-nightly';
const HOLDER = 'arn:aws:states:us-east-1:123456789012:execution:vss-snapshots-nightly:holder';
const ME = { id: 'arn:aws:states:us-east-1:123456789012:execution:vss-snapshots-nightly:me', name: 'me', stateMachineId: MACHINE };
const deps = { s3: s3 as never, sfn: sfn as never, bucket: 'reports-bucket' };

const leaseHeld = (lease: Record<string, unknown>) =>
  s3.on(GetObjectCommand).resolves({ ETag: '"held"', Body: { transformToString: async () => JSON.stringify(lease) } } as never);
const heldSince = (msAgo: number, extra: Record<string, unknown> = {}) => ({
  holder: HOLDER,
  holderName: 'holder',
  acquiredAt: new Date(NOW - msAgo).toISOString(),
  expiresAt: new Date(NOW - msAgo + 86_400_000).toISOString(),
  ...extra,
});
const doesNotExist = Object.assign(new Error('Execution Does Not Exist'), { name: 'ExecutionDoesNotExist', $fault: 'client', $metadata: { httpStatusCode: 400 } });

describe('the run lease', () => {
  beforeEach(() => {
    clock.now = () => NOW;
    s3.reset();
    sfn.reset();
    s3.on(PutObjectCommand).resolves({ ETag: '"mine"' });
  });

  it('refuses while Step Functions does not know the holder yet (DescribeExecution is eventually consistent), and takes the lease once that lasted 5 minutes', async () => {
    sfn.on(DescribeExecutionCommand).rejects(doesNotExist);

    leaseHeld(heldSince(60_000));
    await expect(acquireLease(deps, ME)).rejects.toMatchObject({ name: 'RunInProgressError' });
    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);

    leaseHeld(heldSince(10 * 60_000));
    await expect(acquireLease(deps, ME)).resolves.toBe(leaseKey(MACHINE));
    expect(s3).toHaveReceivedCommandWith(PutObjectCommand, { IfMatch: '"held"' });
  });

  it('takes a released lease even while DescribeExecution still reports its holder RUNNING (a stale read)', async () => {
    sfn.on(DescribeExecutionCommand).resolves({ status: 'RUNNING' } as never);
    leaseHeld(heldSince(3_600_000, { released: true }));

    await expect(acquireLease(deps, ME)).resolves.toBe(leaseKey(MACHINE));
  });

  it('is released only by its holder: a lease another execution took over is left alone', async () => {
    leaseHeld(heldSince(60_000));

    await releaseLease(s3 as never, 'reports-bucket', leaseKey(MACHINE), ME.id);

    expect(s3).not.toHaveReceivedCommand(PutObjectCommand);
  });
});
