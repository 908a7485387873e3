/**
 * The deployed stack, seen with the user's AWS credentials: SDK clients built from `--profile`/`--region`
 * (else the SDK's default chain), and the names the commands need read from the stack's outputs, so no ARN or
 * bucket name is ever typed by hand. The stack is `vss-snapshots-<stage>`, as `osls deploy --stage` names it.
 */
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { S3Client } from '@aws-sdk/client-s3';
import { SFNClient } from '@aws-sdk/client-sfn';
import { CommandFailedError, UsageError } from './exit-codes.ts';

export interface AwsOptions {
  profile?: string;
  region?: string;
  stage?: string;
}

/** osls's defaults (serverless.yml: `stage: ${opt:stage, 'dev'}`, `region: ${opt:region, 'us-east-1'}`). */
export const DEFAULT_STAGE = 'dev';
const OSLS_DEFAULT_REGION = 'us-east-1';
const SERVICE = 'vss-snapshots';
const STAGE_PATTERN = /^[a-zA-Z0-9-]{1,64}$/;

export interface AwsSession {
  region: string;
  profile?: string;
  s3: S3Client;
  sfn: SFNClient;
  cloudformation: CloudFormationClient;
}

/**
 * The region the user meant: `--region`, else the environment (AWS_REGION, AWS_DEFAULT_REGION), else the
 * profile's, else osls's default. Reading the profile's region needs the SDK's config loader, so the
 * clients resolve it themselves when no flag or variable gives one.
 */
export async function openSession(opts: AwsOptions): Promise<AwsSession> {
  if (opts.profile !== undefined && !/^[\w.+@-]{1,128}$/.test(opts.profile)) throw new UsageError(`--profile: "${opts.profile}" is not a profile name.`);
  if (opts.region !== undefined && !/^[a-z]{2}(-[a-z]+)+-[0-9]+$/.test(opts.region)) throw new UsageError(`--region: "${opts.region}" is not an AWS Region such as eu-central-1.`);
  const common = {
    ...(opts.profile ? { profile: opts.profile } : {}),
    ...(opts.region ? { region: opts.region } : {}),
    maxAttempts: 3,
  };
  let region = opts.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  if (!region) {
    const probe = new SFNClient(common);
    try {
      region = await probe.config.region();
    } catch {
      region = OSLS_DEFAULT_REGION;
    }
    probe.destroy();
  }
  const config = { ...common, region };
  return {
    region,
    ...(opts.profile ? { profile: opts.profile } : {}),
    s3: new S3Client(config),
    sfn: new SFNClient(config),
    cloudformation: new CloudFormationClient(config),
  };
}

export interface StackOutputs {
  stackName: string;
  region: string;
  stateMachineArn: string;
  reportBucket: string;
  /** Every output of the stack by key. */
  all: Record<string, string>;
}

export function stackName(stage = DEFAULT_STAGE): string {
  if (!STAGE_PATTERN.test(stage)) throw new UsageError(`--stage: "${stage}" is not a stage name (letters, digits and -).`);
  return `${SERVICE}-${stage}`;
}

/** The stack's outputs; a missing stack is a usage error that says which stack and Region were looked in. */
export async function resolveStack(session: AwsSession, opts: AwsOptions): Promise<StackOutputs> {
  const name = stackName(opts.stage);
  let outputs: Record<string, string>;
  try {
    const out = await session.cloudformation.send(new DescribeStacksCommand({ StackName: name }));
    const stack = out.Stacks?.[0];
    if (!stack) throw notFound(name, session.region);
    outputs = Object.fromEntries((stack.Outputs ?? []).filter((o) => o.OutputKey && o.OutputValue).map((o) => [o.OutputKey as string, o.OutputValue as string]));
  } catch (error) {
    if (error instanceof UsageError) throw error;
    if (error instanceof Error && error.name === 'ValidationError' && /does not exist/.test(error.message)) throw notFound(name, session.region);
    throw awsFailure(error, `reading the outputs of stack ${name} in ${session.region}`);
  }
  const stateMachineArn = outputs.StateMachineArn;
  const reportBucket = outputs.ReportBucketName;
  if (!stateMachineArn || !reportBucket) {
    throw new CommandFailedError(`Stack ${name} in ${session.region} has no ${!stateMachineArn ? 'StateMachineArn' : 'ReportBucketName'} output: is it a vss-snapshots stack, fully deployed?`);
  }
  return { stackName: name, region: session.region, stateMachineArn, reportBucket, all: outputs };
}

function notFound(name: string, region: string): UsageError {
  return new UsageError(
    `No stack ${name} in ${region} for these credentials. Pass the --stage and --region the stack was deployed with (osls deploy --stage S --region R), and --profile for another account.`,
  );
}

/** An AWS error as a message that says what was being done and what to check; exit 1. */
export function awsFailure(error: unknown, doing: string): CommandFailedError {
  const e = error as { name?: string; message?: string };
  const name = e.name ?? 'Error';
  if (name === 'CredentialsProviderError' || /credential/i.test(e.message ?? '')) {
    return new CommandFailedError(`no AWS credentials for ${doing}: ${e.message}. Set them up (aws configure, aws sso login, or AWS_PROFILE), or pass --profile.`);
  }
  if (/AccessDenied|UnauthorizedOperation|AuthorizationError/.test(name)) {
    return new CommandFailedError(`access denied ${doing}: ${e.message}. The credentials need the permissions listed in docs/deploy.md ("Operator permissions").`);
  }
  if (/ExpiredToken|InvalidClientTokenId|UnrecognizedClient|SignatureDoesNotMatch/.test(name)) {
    return new CommandFailedError(`the AWS credentials were refused ${doing} (${name}): ${e.message}. Renew them (aws sso login) or check --profile.`);
  }
  return new CommandFailedError(`${doing} failed: ${name}: ${e.message ?? String(error)}`);
}
