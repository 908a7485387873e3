/**
 * One send pace for the whole run when it has several shards. Every instance sent makes its VSS agent call EC2
 * `CreateSnapshots` inside a 10-second freeze, and the account's bucket for that call refills at 5 per second
 * (SEND_SLICE_INSTANCES per SEND_SLICE_SECONDS): two shards sending in the same seconds — one's retries into
 * another's first slice — overrun it and time out healthy instances' freezes (found by the review of issue 15:
 * at 100,000 instances with 30 % failing, 83 healthy instances lost every attempt).
 *
 * So before a shard sends, it claims its share of the account's time on a clock object in the report bucket
 * (`runs/<runId>/send-clock.json`: when the account can take the next instances), with an S3 conditional write
 * (If-Match on the ETag read, If-None-Match for the first), which S3 serialises: k instances take
 * k / SEND_SLICE_INSTANCES of a slice. A claim that falls later than now is kept in the shard's state and sent
 * at its time, without claiming again. Claims are first come, first served: a retry waits behind the slices
 * already claimed, never more than the account's own rate makes it wait.
 *
 * A claim whose answer was lost and is retried takes a second share (the first stays unused): idle account
 * time, never an overrun.
 */
import { GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import { clock } from './clock.ts';
import type { Config } from './config.ts';

export const sendClockKey = (runId: string): string => `runs/${runId}/send-clock.json`;

/** Tries of one claim when other shards keep writing the clock between our read and our write. */
const CLAIM_ROUNDS = 8;

export interface SendClaim {
  /** When the claimed instances may be sent. */
  at: number;
  /** False when the clock kept changing: nothing was claimed, try again at `at`. */
  claimed: boolean;
}

export interface SendClock {
  claim(instances: number): Promise<SendClaim>;
}

interface ClockObject {
  nextAt: number;
}

const lostRace = (error: unknown): boolean => {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e.name === 'PreconditionFailed' || e.name === 'ConditionalRequestConflict' || e.$metadata?.httpStatusCode === 412 || e.$metadata?.httpStatusCode === 409;
};

export function s3SendClock(s3: S3Client, config: Config, runId: string): SendClock {
  const key = sendClockKey(runId);
  const sliceMs = config.sendSliceSeconds * 1000;
  return {
    async claim(instances: number): Promise<SendClaim> {
      for (let round = 0; round < CLAIM_ROUNDS; round += 1) {
        const now = clock.now();
        let current: { clock: ClockObject; etag: string } | undefined;
        try {
          const out = await s3.send(new GetObjectCommand({ Bucket: config.reportBucket, Key: key }));
          current = { clock: JSON.parse((await out.Body?.transformToString()) ?? '{}') as ClockObject, etag: out.ETag ?? '' };
        } catch (error) {
          if ((error as Error).name !== 'NoSuchKey' && (error as Error).name !== 'NotFound') throw error;
        }
        const at = Math.max(now, current?.clock.nextAt ?? 0);
        const next: ClockObject = { nextAt: at + Math.ceil((instances / config.sendSliceInstances) * sliceMs) };
        try {
          await s3.send(
            new PutObjectCommand({
              Bucket: config.reportBucket,
              Key: key,
              Body: JSON.stringify(next),
              ContentType: 'application/json',
              ...(current ? { IfMatch: current.etag } : { IfNoneMatch: '*' }),
            }),
          );
          return { at, claimed: true };
        } catch (error) {
          if (!lostRace(error)) throw error;
        }
      }
      return { at: clock.now() + sliceMs, claimed: false };
    },
  };
}
