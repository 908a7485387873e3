/**
 * The AWS SDK clients of every Lambda, created once per container with adaptive retries (the SSM and EC2
 * APIs throttle tight loops). Tests and the local runner plug their own transport beneath these same
 * objects (client middleware), so the handlers' code paths are identical everywhere.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';

const common = { retryMode: 'adaptive', maxAttempts: 5 } as const;

export const clients = {
  ec2: new EC2Client(common),
  ssm: new SSMClient(common),
  sns: new SNSClient(common),
  s3: new S3Client(common),
  sfn: new SFNClient(common),
};

export type Clients = typeof clients;

const regional = new Map<string, EC2Client>();

/**
 * The EC2 client of another Region (the DR Region: CopySnapshot is called in the destination Region, and the
 * copies live there), one per Region, configured as `clients.ec2`. The local transport plugs beneath these too.
 */
export function ec2In(region: string): EC2Client {
  let client = regional.get(region);
  if (!client) {
    client = new EC2Client({ ...common, region });
    regional.set(region, client);
  }
  return client;
}
