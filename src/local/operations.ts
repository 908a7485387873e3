/**
 * Every API operation of the simulated account, by service, and the one way to apply a call to the world:
 * the SDK transport (transport.ts) and the fault injector (faults.ts, which applies a call before "losing" its
 * answer) both go through `applyCall`, so every change the account sees is in its mutation log
 * (`world.mutations`, contract §6), whoever made it and however it ended.
 */
import { awsError } from './aws-error.ts';
import type { CallContext } from './regions.ts';
import { ec2Operations } from './ec2.ts';
import { s3Operations, sfnOperations, snsOperations } from './services.ts';
import { ssmOperations } from './ssm.ts';
import { REGION } from './world.ts';
import type { World } from './world.ts';

/** One API operation: `context.region` is the Region of the client that called it (regions.ts). */
export type Operation = (world: World, input: Record<string, unknown>, context?: CallContext) => unknown;

export const SERVICES: Record<string, Record<string, Operation>> = {
  ec2: ec2Operations,
  ssm: ssmOperations,
  sns: snsOperations,
  s3: s3Operations,
  sfn: sfnOperations,
};

/** Calls that change the account (the rest only read). Each may lose its answer after taking effect. */
export const MUTATING_CALLS = new Set([
  'ssm:SendCommand',
  'ssm:CancelCommand',
  'ec2:CreateTags',
  'ec2:DeleteTags',
  'ec2:DeleteSnapshot',
  'ec2:CreateSnapshots',
  'ec2:CreateVolume',
  'ec2:AttachVolume',
  'ec2:DetachVolume',
  'ec2:DeleteVolume',
  'ec2:CopySnapshot',
  'ec2:ModifySnapshotTier',
  'ec2:RestoreSnapshotTier',
  'sns:Publish',
  's3:PutObject',
  's3:DeleteObject',
  'sfn:StartExecution',
]);

const str = (v: unknown): string[] => (typeof v === 'string' && v !== '' ? [v] : []);
const list = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : []);

/** The resource ids a mutating call touched, for the mutation log. */
function idsOf(call: string, input: Record<string, unknown>, output: Record<string, unknown> | undefined): string[] {
  switch (call) {
    case 'ssm:SendCommand':
      return [...str((output?.Command as { CommandId?: string } | undefined)?.CommandId), ...list(input.InstanceIds)];
    case 'ssm:CancelCommand':
      return [...str(input.CommandId), ...list(input.InstanceIds)];
    case 'ec2:CreateTags':
    case 'ec2:DeleteTags':
      return list(input.Resources);
    case 'ec2:DeleteSnapshot':
    case 'ec2:ModifySnapshotTier':
    case 'ec2:RestoreSnapshotTier':
      return str(input.SnapshotId);
    case 'ec2:CopySnapshot':
      // The copy (when made), then its source.
      return [...str(output?.SnapshotId), ...str(input.SourceSnapshotId)];
    case 'ec2:CreateVolume':
      return [...str(output?.VolumeId), ...str(input.SnapshotId)];
    case 'ec2:AttachVolume':
      return [...str(input.VolumeId), ...str(input.InstanceId)];
    case 'ec2:DetachVolume':
    case 'ec2:DeleteVolume':
      return str(input.VolumeId);
    case 'sns:Publish':
      return str(input.TopicArn);
    case 's3:PutObject':
    case 's3:DeleteObject':
      return [`s3://${String(input.Bucket)}/${String(input.Key)}`];
    default:
      return [];
  }
}

/**
 * Applies one API call to the world, logging it when it changes something (also when it fails). `context`
 * says which Region's endpoint was called (absent: the home Region); a call outside the home Region is
 * logged with it.
 */
export async function applyCall(world: World, service: string, operation: string, input: Record<string, unknown>, context?: CallContext): Promise<Record<string, unknown>> {
  const handler = SERVICES[service]?.[operation];
  if (!handler) throw awsError('UnsupportedOperation', `The simulated account does not implement ${service}:${operation}.`);
  const call = `${service}:${operation}`;
  if (!MUTATING_CALLS.has(call)) return (await handler(world, input, context)) as Record<string, unknown>;
  const where = context && context.region !== REGION ? { region: context.region } : {};
  try {
    const output = (await handler(world, input, context)) as Record<string, unknown>;
    world.logMutation({ call, ids: idsOf(call, input, output), ok: true, ...where });
    return output;
  } catch (error) {
    world.logMutation({ call, ids: idsOf(call, input, undefined), ok: false, error: (error as Error).name, ...where });
    throw error;
  }
}
