/**
 * The AWS SDK clients of every Lambda, created once per container with adaptive retries (the SSM and EC2
 * APIs throttle tight loops). Tests and the local runner plug their own transport beneath these same
 * objects (client middleware), so the handlers' code paths are identical everywhere.
 *
 * `clients.*` talk to the home Region (AWS_REGION, the stack's own). `ec2In(region)` and `ssmIn(region)` give
 * one cached client per other Region (disaster-recovery copies are made by calling CopySnapshot on the
 * *destination* Region's endpoint: EC2 API reference, CopySnapshot), with the same retry settings.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SNSClient } from '@aws-sdk/client-sns';
import { SSMClient } from '@aws-sdk/client-ssm';
import { REGION_NAME } from './aws-region.ts';

const common = { retryMode: 'adaptive', maxAttempts: 5 } as const;

export const clients = {
  ec2: new EC2Client(common),
  ssm: new SSMClient(common),
  sns: new SNSClient(common),
  s3: new S3Client(common),
  sfn: new SFNClient(common),
};

export type Clients = typeof clients;

/** A client made for one Region, by service (`ec2`, `ssm`). */
export type RegionalClient = { service: 'ec2'; region: string; client: EC2Client } | { service: 'ssm'; region: string; client: SSMClient };

const regional = new Map<string, RegionalClient>();
const listeners = new Set<(made: RegionalClient) => void>();


function regionalClient<S extends RegionalClient['service']>(service: S, region: string, make: () => Extract<RegionalClient, { service: S }>['client']) {
  if (!REGION_NAME.test(region)) throw new Error(`Not an AWS Region name: "${region}" (expected something like us-west-2).`);
  const key = `${service}:${region}`;
  let made = regional.get(key);
  if (!made) {
    made = { service, region, client: make() } as RegionalClient;
    regional.set(key, made);
    for (const listener of listeners) listener(made);
  }
  return made.client as Extract<RegionalClient, { service: S }>['client'];
}

/** The EC2 client of `region` (one per Region and container, same retries as `clients.ec2`). */
export function ec2In(region: string): EC2Client {
  return regionalClient('ec2', region, () => new EC2Client({ ...common, region }));
}

/** The SSM client of `region` (instances in another Region are managed by that Region's SSM). */
export function ssmIn(region: string): SSMClient {
  return regionalClient('ssm', region, () => new SSMClient({ ...common, region }));
}

/** Every regional client made so far. */
export function regionalClients(): RegionalClient[] {
  return [...regional.values()];
}

/** Calls `listener` for each regional client made from now on (the local transport plugs itself beneath them). */
export function onRegionalClient(listener: (made: RegionalClient) => void): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
