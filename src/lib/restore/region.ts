/**
 * Where a restore acts. Without `region` in its input, in the stack's own Region (AWS_REGION) with the home
 * clients, as always. With the stack's DR Region, every step uses that Region's EC2 and SSM clients
 * (`ec2In`/`ssmIn`) and never calls the home Region: a restore from the DR copies must work while the home
 * Region is unavailable. Any other Region is refused by Validate Input (the restore roles may act only in
 * these two Regions: serverless.yml).
 */
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { clients, ec2In, ssmIn } from '../clients.ts';
import { InvalidInputError } from '../errors.ts';
import type { RestoreState } from './state.ts';

/** The stack's own Region (Lambda sets AWS_REGION). */
export function homeRegion(env: NodeJS.ProcessEnv = process.env): string {
  return env.AWS_REGION || 'us-east-1';
}

/**
 * The Region a restore input asks for, checked against the stack: undefined for the home Region (given or not),
 * the DR Region as given, anything else an InvalidInputError that says which Regions the stack can restore in.
 */
export function restoreRegion(requested: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const home = homeRegion(env);
  if (requested === undefined || requested === home) return undefined;
  const dr = env.DR_REGION || undefined;
  if (requested === dr) return requested;
  const allowed = dr ? `this stack's Region ${home} or its DR Region ${dr}` : `this stack's Region ${home} (DR copies are off: no DR Region is configured)`;
  throw new InvalidInputError(`Invalid restore input: field "region" is ${requested}; this stack restores only in ${allowed}. Nothing was created.`);
}

/** The Region a restore acts in, spelled out (for reports and messages). */
export function regionOf(state: RestoreState, env: NodeJS.ProcessEnv = process.env): string {
  return state.restore.region ?? homeRegion(env);
}

/** Whether the restore uses the DR copies in the DR Region. */
export function fromDrCopies(state: RestoreState): boolean {
  return state.restore.region !== undefined;
}

/** The EC2 client of the restore's Region. */
export function ec2For(state: RestoreState): EC2Client {
  return state.restore.region ? ec2In(state.restore.region) : clients.ec2;
}

/** The SSM client of the restore's Region (the target's agent registers with its own Region's SSM). */
export function ssmFor(state: RestoreState): SSMClient {
  return state.restore.region ? ssmIn(state.restore.region) : clients.ssm;
}
