/**
 * The stack as `npm run package` builds it, deployed into moto's CloudFormation, for the deployed-stack
 * commands' end-to-end tests. Only what moto cannot do is changed, each said here:
 *
 * - The dashboard is dropped: moto cannot resolve `${WorkflowFailedAlarm.Arn}` inside its `Fn::Sub`.
 * - moto's CloudFormation creates a state machine only from `DefinitionString`; ours has `Definition` with
 *   `DefinitionSubstitutions`. The nightly state machine is created again under its own name (same ARN as the
 *   stack output) with the definition substituted exactly as CloudFormation substitutes it, in moto's Step
 *   Functions interpreter (`execute_state_machine`), which runs the real definition: Task, Choice and Wait
 *   states, and an execution history in AWS's format.
 * - Lambda functions do not run (no Docker): moto's "lambda simple" backend answers each invocation with the
 *   next result the test queued, standing in for the handlers' outputs.
 * - moto's interpreter deep-copies the state machine with its executions on every start and fails on the
 *   second one (`cannot pickle '_thread.RLock'`): `freshStateMachine()` creates it again (same name and ARN)
 *   before a test that starts another execution.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { CloudFormationClient, CreateStackCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CreateBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { CreateStateMachineCommand, DeleteStateMachineCommand, SFNClient } from '@aws-sdk/client-sfn';
import type { MotoServer } from './moto-server.ts';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
export const STAGE = 'e2e';
export const STACK = `vss-snapshots-${STAGE}`;

type Json = Record<string, unknown>;
interface Template {
  Resources: Record<string, { Type: string; Properties: Json }>;
  Outputs: Record<string, unknown>;
}

/** The environment without the caller's AWS settings: no real credentials or config are ever read. */
export function offlineEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('AWS_')) env[key] = value;
  return { ...env, AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_EC2_METADATA_DISABLED: 'true', ...extra };
}

/** `npm run package` for the test stage, into a folder of its own; returns the CloudFormation template. */
export async function packageStack(): Promise<Template> {
  const dir = mkdtempSync(path.join(tmpdir(), 'vss-stack-'));
  try {
    await promisify(execFile)('npm', ['run', 'package', '--', '--stage', STAGE, '--region', 'us-east-1', '--package', dir], { cwd: ROOT, env: offlineEnv(), maxBuffer: 16 * 1024 * 1024 });
    return JSON.parse(readFileSync(path.join(dir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export interface DeployedStack {
  outputs: Record<string, string>;
  /** The names of the nightly definition's states, as packaged. */
  states: string[];
  stateMachineArn: string;
  reportBucket: string;
  /** Queues the outputs the next Lambda invocations return, in order. */
  queueLambdaResults(results: unknown[]): Promise<void>;
  /** Deletes and creates the state machine again (no executions), for moto's one-start limit. */
  freshStateMachine(): Promise<void>;
}

export async function deployStack(moto: MotoServer, packaged: Template): Promise<DeployedStack> {
  const template = structuredClone(packaged);
  delete template.Resources.Dashboard;
  delete template.Outputs.DashboardUrl;
  const s3 = new S3Client(moto.clientConfig);
  const cloudformation = new CloudFormationClient(moto.clientConfig);
  // The template is larger than CreateStack's 51,200-byte TemplateBody: like osls, it goes through S3.
  await s3.send(new CreateBucketCommand({ Bucket: 'e2e-templates' }));
  await s3.send(new PutObjectCommand({ Bucket: 'e2e-templates', Key: 'template.json', Body: JSON.stringify(template) }));
  await cloudformation.send(new CreateStackCommand({ StackName: STACK, TemplateURL: 'https://e2e-templates.s3.amazonaws.com/template.json', Capabilities: ['CAPABILITY_IAM', 'CAPABILITY_NAMED_IAM'] }));
  const stack = (await cloudformation.send(new DescribeStacksCommand({ StackName: STACK }))).Stacks?.[0];
  if (stack?.StackStatus !== 'CREATE_COMPLETE') throw new Error(`moto did not create the stack: ${stack?.StackStatus} ${stack?.StackStatusReason}`);
  const outputs = Object.fromEntries((stack.Outputs ?? []).map((o) => [o.OutputKey ?? '', o.OutputValue ?? '']));

  const config = await fetch(`${moto.endpoint}/moto-api/config`, { method: 'POST', body: JSON.stringify({ lambda: { use_docker: false }, stepfunctions: { execute_state_machine: true } }) });
  if (!config.ok) throw new Error(`moto config: HTTP ${config.status}`);
  const machine = template.Resources.NightlySnapshotsStateMachine?.Properties as { StateMachineName: string; Definition: unknown; DefinitionSubstitutions: Record<string, { 'Fn::GetAtt': [string, string] }> };
  let definition = JSON.stringify(machine.Definition);
  for (const [key, value] of Object.entries(machine.DefinitionSubstitutions)) {
    const fn = template.Resources[value['Fn::GetAtt'][0]]?.Properties.FunctionName as string;
    definition = definition.split(`\${${key}}`).join(`arn:aws:lambda:us-east-1:123456789012:function:${fn}`);
  }
  const sfn = new SFNClient(moto.clientConfig);
  const create = async () => {
    const created = await sfn.send(new CreateStateMachineCommand({ name: machine.StateMachineName, definition, roleArn: 'arn:aws:iam::123456789012:role/e2e' }));
    if (created.stateMachineArn !== outputs.StateMachineArn) throw new Error(`state machine ${created.stateMachineArn} is not the stack's ${outputs.StateMachineArn}`);
  };
  await create();

  return {
    outputs,
    states: Object.keys((machine.Definition as { States: Record<string, unknown> }).States),
    stateMachineArn: outputs.StateMachineArn ?? '',
    reportBucket: outputs.ReportBucketName ?? '',
    queueLambdaResults: async (results) => {
      const response = await fetch(`${moto.endpoint}/moto-api/static/lambda-simple/response`, { method: 'POST', body: JSON.stringify({ results: results.map((r) => JSON.stringify(r)) }) });
      if (!response.ok) throw new Error(`moto lambda-simple: HTTP ${response.status}`);
    },
    freshStateMachine: async () => {
      await sfn.send(new DeleteStateMachineCommand({ stateMachineArn: outputs.StateMachineArn }));
      await create();
    },
  };
}
