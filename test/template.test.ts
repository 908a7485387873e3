/**
 * Template tests: package the stack once (offline, without AWS credentials) and prove what can be proved
 * without an AWS account — cfn-lint, the state machine definitions, the bundles, least-privilege IAM,
 * encryption, the schedule and the alerting wiring. The packaged CloudFormation template is the artifact.
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { builtinModules, createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inflateRawSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, SNAPSHOT_METHODS } from '../src/lib/config.ts';
import { loadRestoreConfig } from '../src/lib/restore/config.ts';
import { DR_LATEST_KEY } from '../src/lib/dr/record.ts';
import { LEDGER_KEY } from '../src/lib/retention/record.ts';
import { RUN_TAG, STACK_TAG } from '../src/lib/run-id.ts';
import { reportKey, stateKey } from '../src/lib/run-state.ts';
import { leaseKey } from '../src/lib/run-lease.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { runWorkflow } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const OSLS = path.join(ROOT, 'node_modules', 'osls', 'bin', 'serverless.js');
const aslValidator = createRequire(import.meta.url)('asl-validator') as (
  definition: unknown,
  options: { checkArn: boolean; checkPaths: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };

/**
 * Every IAM action the stack grants on `Resource: "*"`, with the reason; docs/deploy.md lists the same.
 * Anything else on "*" fails the tests.
 */
const RESOURCE_STAR_ALLOWED: Record<string, string> = {
  'ec2:DescribeInstances': 'no resource-level permissions; read only',
  'ec2:DescribeSnapshots': 'no resource-level permissions; read only',
  'ec2:DescribeVolumes': 'no resource-level permissions; read only (restore)',
  'ec2:DescribeImages': 'no resource-level permissions; read only (instance policy, as in AWSEC2VssSnapshotPolicy; retention: is a snapshot used by an AMI)',
  'ec2:DescribeSnapshotTierStatus': 'no resource-level permissions; read only (retention: archives in progress, when a snapshot was archived)',
  'ssm:DescribeInstanceInformation': 'no resource-level permissions; read only',
  'ssm:ListCommands': 'no resource-level permissions; read only',
  'ssm:ListCommandInvocations': 'no resource-level permissions; read only',
  'ssm:GetCommandInvocation': 'no resource-level permissions; read only (restore: the revert result line)',
  'ssm:CancelCommand': 'mutating, but SSM offers no resource-level permissions or condition keys for it',
  'xray:PutTraceSegments': 'X-Ray has no resource-level permissions',
  'xray:PutTelemetryRecords': 'X-Ray has no resource-level permissions',
  'xray:GetSamplingRules': 'X-Ray has no resource-level permissions',
  'xray:GetSamplingTargets': 'X-Ray has no resource-level permissions',
  'logs:CreateLogDelivery': 'Step Functions log delivery: AWS documents "*" (no resource-level permissions)',
  'logs:GetLogDelivery': 'Step Functions log delivery',
  'logs:UpdateLogDelivery': 'Step Functions log delivery',
  'logs:DeleteLogDelivery': 'Step Functions log delivery',
  'logs:ListLogDeliveries': 'Step Functions log delivery',
  'logs:PutResourcePolicy': 'Step Functions log delivery',
  'logs:DescribeResourcePolicies': 'Step Functions log delivery',
  'logs:DescribeLogGroups': 'Step Functions log delivery',
};

const DR_KEY = 'arn:aws:kms:us-west-2:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab';
const DR_ON = { DrRegion: 'us-west-2', DrKmsKeyArn: DR_KEY };

/** Least privilege, pinned: the exact actions of each function's role. A new permission is a deliberate change here. */
const FUNCTION_ACTIONS: Record<string, string[]> = {
  'restore-validate-input': ['logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'restore-plan': ['ec2:DescribeInstances', 'ec2:DescribeSnapshotTierStatus', 'ec2:DescribeSnapshots', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 'ssm:DescribeDocument', 'ssm:DescribeInstanceInformation', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  // The DR key (DR on with a key, as the resolver here): a volume from an encrypted DR copy uses it through EBS.
  'restore-create-volumes': ['ec2:CreateTags', 'ec2:CreateVolume', 'kms:CreateGrant', 'kms:Decrypt', 'kms:DescribeKey', 'kms:GenerateDataKeyWithoutPlaintext', 'kms:ReEncryptFrom', 'kms:ReEncryptTo', 'logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'restore-check-volumes': ['ec2:DescribeVolumes', 'logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'restore-attach-volumes': ['ec2:AttachVolume', 'ec2:DescribeInstances', 'ec2:DescribeVolumes', 'logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'restore-send-revert': ['logs:CreateLogStream', 'logs:PutLogEvents', 'ssm:ListCommands', 'ssm:SendCommand', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'restore-check-revert': ['logs:CreateLogStream', 'logs:PutLogEvents', 'ssm:GetCommandInvocation', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'restore-finish': ['ec2:DescribeVolumes', 'logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'restore-clean-up': ['ec2:DeleteVolume', 'ec2:DescribeVolumes', 'ec2:DetachVolume', 'logs:CreateLogStream', 'logs:PutLogEvents', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'prepare-run': ['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'states:DescribeExecution', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'discover-instances': [
    'ec2:DescribeInstances',
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    's3:GetObject',
    's3:ListBucket',
    's3:PutObject',
    'ssm:DescribeInstanceInformation',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ],
  'advance-instances': [
    'ec2:CreateTags',
    'ec2:DeleteSnapshot',
    'ec2:DescribeSnapshots',
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    's3:GetObject',
    's3:ListBucket',
    's3:PutObject',
    'ssm:CancelCommand',
    'ssm:GetCommandInvocation',
    'ssm:ListCommandInvocations',
    'ssm:ListCommands',
    'ssm:SendCommand',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ],
  'record-shard-failure': ['logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'plan-retention': [
    'ec2:DescribeImages',
    'ec2:DescribeInstances',
    'ec2:DescribeSnapshotTierStatus',
    'ec2:DescribeSnapshots',
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    's3:GetObject',
    's3:ListBucket',
    's3:PutObject',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ],
  'plan-dr-copies': [
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    's3:GetObject',
    's3:ListBucket',
    's3:PutObject',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ],
  'advance-dr-copies': [
    'ec2:CopySnapshot',
    'ec2:CreateTags',
    'ec2:DeleteSnapshot',
    'ec2:DescribeImages',
    'ec2:DescribeInstances',
    'ec2:DescribeSnapshots',
    'kms:CreateGrant',
    'kms:Decrypt',
    'kms:DescribeKey',
    'kms:GenerateDataKey',
    'kms:GenerateDataKeyWithoutPlaintext',
    'kms:ReEncryptFrom',
    'kms:ReEncryptTo',
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    's3:GetObject',
    's3:ListBucket',
    's3:PutObject',
    'sns:Publish',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ],
  'apply-retention': ['ec2:DeleteSnapshot', 'ec2:DescribeSnapshotTierStatus', 'ec2:ModifySnapshotTier', 'logs:CreateLogStream', 'logs:PutLogEvents', 's3:GetObject', 's3:ListBucket', 's3:PutObject', 'xray:PutTelemetryRecords', 'xray:PutTraceSegments'],
  'finish-run': [
    'kms:Decrypt',
    'kms:GenerateDataKey',
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    's3:GetObject',
    's3:ListBucket',
    's3:PutObject',
    'sns:Publish',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ],
  'alert-workflow-failure': [
    'kms:Decrypt',
    'kms:GenerateDataKey',
    'logs:CreateLogStream',
    'logs:PutLogEvents',
    's3:GetObject',
    's3:ListBucket',
    's3:PutObject',
    'sns:Publish',
    'xray:PutTelemetryRecords',
    'xray:PutTraceSegments',
  ],
};

// ------------------------------------------------------------------------------------------- template model

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
interface Resource {
  Type: string;
  Properties?: JsonObject;
  Condition?: string;
  DependsOn?: string | string[];
}
interface Template {
  Parameters?: Record<string, { Type: string; Default?: Json; AllowedValues?: string[]; AllowedPattern?: string; MinValue?: number; MaxValue?: number }>;
  Conditions?: Record<string, Json>;
  Resources: Record<string, Resource>;
  Outputs?: Record<string, { Value: Json }>;
}
interface Statement {
  Sid?: string;
  Effect: string;
  Action?: string | string[];
  NotAction?: unknown;
  Resource?: string | string[];
  NotResource?: unknown;
  Principal?: Json;
  Condition?: Record<string, Record<string, string | string[] | boolean>>;
}
interface Policy {
  owner: string;
  kind: 'identity' | 'trust' | 'resource' | 'key';
  statements: Statement[];
}

const PSEUDO: Record<string, string> = {
  'AWS::Partition': 'aws',
  'AWS::Region': 'us-east-1',
  'AWS::AccountId': '123456789012',
  'AWS::StackName': 'vss-snapshots-dev',
  'AWS::URLSuffix': 'amazonaws.com',
};

const asArray = <T>(value: T | T[] | undefined): T[] => (value === undefined ? [] : Array.isArray(value) ? value : [value]);
const isObject = (value: unknown): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Evaluates the template's intrinsic functions the way CloudFormation would, with the parameters' defaults
 * (or overrides) and fixed pseudo parameters. A Ref to a resource becomes `ref:<LogicalId>`, a GetAtt
 * `getatt:<LogicalId>.<Attribute>`, so assertions can name the resource they expect.
 */
class Resolver {
  constructor(
    private readonly template: Template,
    private readonly overrides: Record<string, string> = {},
  ) {}

  param(name: string): string {
    if (name in this.overrides) return this.overrides[name] as string;
    const parameter = this.template.Parameters?.[name];
    if (!parameter) throw new Error(`No parameter ${name}`);
    return String(parameter.Default);
  }

  ref(name: string): string {
    if (name in PSEUDO) return PSEUDO[name] as string;
    if (this.template.Parameters?.[name]) return this.param(name);
    if (this.template.Resources[name]) return `ref:${name}`;
    throw new Error(`Ref to unknown name ${name}`);
  }

  getAtt(logicalId: string, attribute: string): string {
    if (!this.template.Resources[logicalId]) throw new Error(`GetAtt of unknown resource ${logicalId}`);
    return `getatt:${logicalId}.${attribute}`;
  }

  condition(name: string): boolean {
    const definition = this.template.Conditions?.[name];
    if (definition === undefined) throw new Error(`No condition ${name}`);
    return this.truth(definition);
  }

  private truth(expression: Json): boolean {
    if (!isObject(expression)) throw new Error(`Bad condition ${JSON.stringify(expression)}`);
    const [fn, arg] = Object.entries(expression)[0] ?? [];
    const args = asArray(arg as Json);
    switch (fn) {
      case 'Fn::Equals':
        return this.value(args[0] as Json) === this.value(args[1] as Json);
      case 'Fn::Not':
        return !this.truth(args[0] as Json);
      case 'Fn::And':
        return args.every((a) => this.truth(a));
      case 'Fn::Or':
        return args.some((a) => this.truth(a));
      case 'Condition':
        return this.condition(arg as string);
      default:
        throw new Error(`Unsupported condition function ${fn}`);
    }
  }

  value(node: Json): Json {
    if (Array.isArray(node)) return node.map((n) => this.value(n)).filter((n) => n !== NO_VALUE);
    if (!isObject(node)) return node;
    const entries = Object.entries(node);
    if (entries.length === 1) {
      const [fn, arg] = entries[0] as [string, Json];
      switch (fn) {
        case 'Ref':
          return arg === 'AWS::NoValue' ? NO_VALUE : this.ref(arg as string);
        case 'Fn::GetAtt': {
          const [logicalId, attribute] = Array.isArray(arg) ? (arg as string[]) : String(arg).split('.');
          return this.getAtt(logicalId as string, attribute as string);
        }
        case 'Fn::Sub':
          return this.sub(arg);
        case 'Fn::Join': {
          const [separator, parts] = arg as [string, Json[]];
          return (this.value(parts) as Json[]).map(String).join(separator);
        }
        case 'Fn::If': {
          const [name, whenTrue, whenFalse] = arg as [string, Json, Json];
          return this.value(this.condition(name) ? whenTrue : whenFalse);
        }
        case 'Fn::Select': {
          const [index, list] = arg as [number, Json];
          return (this.value(list) as Json[])[Number(index)] ?? null;
        }
        default:
          if (fn.startsWith('Fn::')) throw new Error(`Unsupported intrinsic ${fn}`);
      }
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, this.value(v)]).filter(([, v]) => v !== NO_VALUE));
  }

  sub(arg: Json): string {
    const [text, variables] = typeof arg === 'string' ? [arg, {} as JsonObject] : (arg as [string, JsonObject]);
    return text.replace(/\$\{(!?)([^}]+)\}/g, (_, bang: string, name: string) => {
      if (bang) return `\${${name}}`;
      if (name in variables) return String(this.value(variables[name] as Json));
      if (!name.startsWith('AWS::') && name.includes('.')) {
        const [logicalId, ...attribute] = name.split('.');
        return this.getAtt(logicalId as string, attribute.join('.'));
      }
      return this.ref(name);
    });
  }
}
const NO_VALUE = '__AWS::NoValue__';

function policiesOf(template: Template, resolver: Resolver): Policy[] {
  const policies: Policy[] = [];
  for (const [id, resource] of Object.entries(template.Resources)) {
    const p = resource.Properties ?? {};
    const doc = (raw: Json | undefined): Statement[] => {
      const resolved = resolver.value(raw ?? null);
      const parsed = (typeof resolved === 'string' ? JSON.parse(resolved) : resolved) as { Version?: string; Statement?: Statement | Statement[] };
      // osls writes its deployment bucket policy without a Version; every policy of ours has the current one.
      if (id !== 'ServerlessDeploymentBucketPolicy') expect(parsed.Version, `${id}: policy Version`).toBe('2012-10-17');
      return asArray(parsed.Statement);
    };
    switch (resource.Type) {
      case 'AWS::IAM::Role':
        policies.push({ owner: id, kind: 'trust', statements: doc(p.AssumeRolePolicyDocument) });
        for (const inline of asArray(p.Policies as JsonObject[] | undefined)) {
          policies.push({ owner: id, kind: 'identity', statements: doc(inline.PolicyDocument) });
        }
        expect(p.ManagedPolicyArns, `${id} attaches no managed policies`).toBeUndefined();
        break;
      case 'AWS::IAM::ManagedPolicy':
      case 'AWS::IAM::Policy':
      case 'AWS::IAM::RolePolicy':
        policies.push({ owner: id, kind: 'identity', statements: doc(p.PolicyDocument) });
        break;
      case 'AWS::S3::BucketPolicy':
      case 'AWS::SNS::TopicPolicy':
      case 'AWS::SQS::QueuePolicy':
        policies.push({ owner: id, kind: 'resource', statements: doc(p.PolicyDocument) });
        break;
      case 'AWS::KMS::Key':
        policies.push({ owner: id, kind: 'key', statements: doc(p.KeyPolicy) });
        break;
      default:
    }
  }
  return policies;
}

const actionsOf = (s: Statement): string[] => asArray(s.Action);
const resourcesOf = (s: Statement): string[] => asArray(s.Resource);
const allows = (s: Statement, action: string): boolean => s.Effect === 'Allow' && actionsOf(s).includes(action);

// ------------------------------------------------------------------------------------------ zip reading

/** Reads one file out of a zip archive (stored or deflated), enough for the packaged Lambda artifacts. */
function readZipEntries(zipPath: string): Map<string, Buffer> {
  const zip = readFileSync(zipPath);
  const eocd = zip.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  if (eocd < 0) throw new Error(`${zipPath} is not a zip archive`);
  const count = zip.readUInt16LE(eocd + 10);
  let offset = zip.readUInt32LE(eocd + 16);
  const entries = new Map<string, Buffer>();
  for (let i = 0; i < count; i += 1) {
    const method = zip.readUInt16LE(offset + 10);
    const compressedSize = zip.readUInt32LE(offset + 20);
    const nameLength = zip.readUInt16LE(offset + 28);
    const extraLength = zip.readUInt16LE(offset + 30);
    const commentLength = zip.readUInt16LE(offset + 32);
    const localHeader = zip.readUInt32LE(offset + 42);
    const name = zip.subarray(offset + 46, offset + 46 + nameLength).toString('utf8');
    const dataStart = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
    const data = zip.subarray(dataStart, dataStart + compressedSize);
    if (!name.endsWith('/')) entries.set(name, method === 0 ? Buffer.from(data) : inflateRawSync(data));
    offset += 46 + nameLength + extraLength + commentLength;
  }
  return entries;
}

// ------------------------------------------------------------------------------------------------ setup

const cfnLintInstalled = (() => {
  try {
    execFileSync('cfn-lint', ['--version'], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
})();
if (!cfnLintInstalled) console.warn('NOTICE: cfn-lint is not installed; the cfn-lint check of the packaged template is skipped.');

/** Environment without any AWS credentials or profile: packaging must not need them. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) if (!key.startsWith('AWS_')) env[key] = value;
  return { ...env, AWS_CONFIG_FILE: '/nonexistent', AWS_SHARED_CREDENTIALS_FILE: '/nonexistent', AWS_EC2_METADATA_DISABLED: 'true' };
}

const workDir = mkdtempSync(path.join(tmpdir(), 'vss-template-'));
const packageDir = path.join(workDir, 'package');
let template: Template;
let state: { service: { provider: { stackParameters?: { ParameterKey: string; ParameterValue: string }[] }; functions: Record<string, { handler: string; package: { artifact: string } }> } };
let resolver: Resolver;
let policies: Policy[];

beforeAll(async () => {
  const started = Date.now();
  // The operator's command (builds the SSM documents, then osls package), into a directory of our own.
  await run('npm', ['run', 'package', '--', '--stage', 'dev', '--region', 'us-east-1', '--package', packageDir], {
    cwd: ROOT,
    env: offlineEnv(),
    maxBuffer: 16 * 1024 * 1024,
  });
  console.info(`npm run package: ${((Date.now() - started) / 1000).toFixed(1)} s`);
  template = JSON.parse(readFileSync(path.join(packageDir, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  state = JSON.parse(readFileSync(path.join(packageDir, 'serverless-state.json'), 'utf8'));
  // DR on, with a key: the fullest set of grants (the DR statements are conditional; DR off is tested below).
  resolver = new Resolver(template, DR_ON);
  policies = policiesOf(template, resolver);
}, 180_000);

afterAll(() => rmSync(workDir, { recursive: true, force: true }));

const resourcesOfType = (type: string): [string, Resource][] => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
const props = (id: string): JsonObject => {
  const resource = template.Resources[id];
  if (!resource) throw new Error(`No resource ${id} in the template`);
  return resource.Properties ?? {};
};
const handlerFiles = () => readdirSync(path.join(ROOT, 'src', 'handlers')).filter((f) => f.endsWith('.ts')).map((f) => f.replace(/\.ts$/, ''));
/** Lambda logical id -> handler file name (src/handlers/<name>.ts). */
const lambdaHandlers = (): Map<string, string> =>
  new Map(resourcesOfType('AWS::Lambda::Function').map(([id, r]) => [id, String(r.Properties?.Handler).replace(/^src\/handlers\/(.+)\.handler$/, '$1')]));

// -------------------------------------------------------------------------------------------------- tests

describe('packaging', () => {
  it('packages offline into one bundle per handler: nodejs22.x on arm64, ESM .mjs, individually', () => {
    const handlers = lambdaHandlers();
    expect([...handlers.values()].sort()).toEqual(handlerFiles().sort());
    for (const [id, file] of handlers) {
      const p = props(id);
      expect(p.Runtime, id).toBe('nodejs22.x');
      expect(p.Architectures, id).toEqual(['arm64']);
      expect(p.TracingConfig, id).toEqual({ Mode: 'Active' });
      expect(p.Handler, id).toBe(`src/handlers/${file}.handler`);
    }
    for (const [name, fn] of Object.entries(state.service.functions)) {
      const zip = path.join(packageDir, path.basename(fn.package.artifact));
      expect(existsSync(zip), `${name}: ${zip}`).toBe(true);
      const entries = [...readZipEntries(zip).keys()];
      const file = fn.handler.replace(/\.handler$/, '');
      expect(entries, name).toEqual([`${file}.mjs`]);
    }
  });

  it('sets log retention on every log group: functions, state machines and the command output', () => {
    const groups = resourcesOfType('AWS::Logs::LogGroup');
    expect(groups.length).toBe(handlerFiles().length + resourcesOfType('AWS::StepFunctions::StateMachine').length + 1);
    expect(groups.map(([id]) => id)).toContain('CommandOutputLogGroup');
    for (const [id, group] of groups) expect(group.Properties?.RetentionInDays, id).toEqual(expect.any(Number));
  });

  it('bundles everything but the AWS SDK v3, which the nodejs22.x runtime provides, within 300 KB each', () => {
    const builtins = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
    for (const [name, fn] of Object.entries(state.service.functions)) {
      const code = readZipEntries(path.join(packageDir, path.basename(fn.package.artifact))).get(`${fn.handler.replace(/\.handler$/, '')}.mjs`);
      const text = String(code);
      const imported = new Set([...text.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*)["']([@a-z][\w@/.:-]*)["']/g)].map((m) => m[1] ?? ''));
      const outside = [...imported].filter((m) => !builtins.has(m) && !m.startsWith('@aws-sdk/'));
      expect(outside, `${name} imports packages it does not bundle`).toEqual([]);
      expect(code?.length ?? Infinity, name).toBeLessThanOrEqual(300 * 1024);
    }
  });

  it('every packaged bundle loads in Node and exports its handler', async () => {
    const bundles = path.join(workDir, 'bundles');
    // Stand-in for the runtime's /var/runtime/node_modules: the SDK v3 this repository installs.
    mkdirSync(path.join(bundles, 'node_modules'), { recursive: true });
    symlinkSync(path.join(ROOT, 'node_modules', '@aws-sdk'), path.join(bundles, 'node_modules', '@aws-sdk'), 'dir');
    const checks = Object.entries(state.service.functions).map(async ([name, fn]) => {
      const file = `${fn.handler.replace(/\.handler$/, '')}.mjs`;
      const code = readZipEntries(path.join(packageDir, path.basename(fn.package.artifact))).get(file);
      expect(code, `${name}: ${file}`).toBeDefined();
      const target = path.join(bundles, name, file);
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, code as Buffer);
      const probe = `const m = await import(${JSON.stringify(target)}); if (typeof m.handler !== 'function') { console.error('no handler export'); process.exit(2); }`;
      await run(process.execPath, ['--input-type=module', '-e', probe], {
        env: {
          ...offlineEnv(),
          AWS_REGION: 'us-east-1',
          AWS_SDK_JS_SUPPRESS_NODE_VERSION_WARNING: '1',
          ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:vss-snapshots-dev-alerts',
          REPORT_BUCKET: 'vss-snapshots-dev-reportbucket-abc123',
        },
      });
    });
    await Promise.all(checks);
  });
});

describe('cfn-lint', () => {
  it.skipIf(!cfnLintInstalled)('finds nothing in the packaged template', async () => {
    const templatePath = path.join(packageDir, 'cloudformation-template-update-stack.json');
    const result = await run('cfn-lint', [templatePath]).then(
      (r) => ({ code: 0, output: r.stdout + r.stderr }),
      (e: { code?: number; stdout?: string; stderr?: string }) => ({ code: e.code ?? -1, output: `${e.stdout ?? ''}${e.stderr ?? ''}` }),
    );
    expect(result.output.trim()).toBe('');
    expect(result.code).toBe(0);
  });
});

describe('state machines', () => {
  const definitions = () =>
    readdirSync(path.join(ROOT, 'statemachine'))
      .filter((f) => f.endsWith('.asl.json'))
      .map((f) => ({ file: f, text: readFileSync(path.join(ROOT, 'statemachine', f), 'utf8') }));

  it('every definition passes asl-validator (with the placeholders substituted)', () => {
    for (const { file, text } of definitions()) {
      const substituted = JSON.parse(text.replace(/\$\{([A-Za-z0-9_]+)\}/g, 'arn:aws:lambda:us-east-1:123456789012:function:$1'));
      const result = aslValidator(substituted, { checkArn: true, checkPaths: true });
      expect(result.errorsText('\n'), file).toBe('');
      expect(result.isValid, file).toBe(true);
    }
  });

  it('every statemachine/*.asl.json is deployed by a state machine with logging and X-Ray tracing', () => {
    const machines = resourcesOfType('AWS::StepFunctions::StateMachine');
    for (const { file, text } of definitions()) {
      const deployed = machines.filter(([, r]) => JSON.stringify(r.Properties?.Definition) === JSON.stringify(JSON.parse(text)));
      expect(deployed.map(([id]) => id), `${file} must be deployed exactly once (add it to serverless.yml)`).toHaveLength(1);
    }
    expect(machines.length).toBe(definitions().length);
    for (const [id, machine] of machines) {
      const p = machine.Properties ?? {};
      expect(p.StateMachineType ?? 'STANDARD', id).toBe('STANDARD');
      expect(p.TracingConfiguration, id).toEqual({ Enabled: true });
      const logging = p.LoggingConfiguration as JsonObject;
      expect(logging.Level, id).not.toBe('OFF');
      const destination = resolver.value((logging.Destinations as JsonObject[])[0]?.CloudWatchLogsLogGroup as Json) as JsonObject;
      const logGroupId = String(destination.LogGroupArn).replace(/^getatt:(.+)\.Arn$/, '$1');
      expect(template.Resources[logGroupId]?.Type, id).toBe('AWS::Logs::LogGroup');
    }
  });

  it('every ${placeholder} has a substitution and every substitution is a function of this stack', () => {
    const handlers = lambdaHandlers();
    for (const [id, machine] of resourcesOfType('AWS::StepFunctions::StateMachine')) {
      const text = JSON.stringify(machine.Properties?.Definition);
      const placeholders = new Set([...text.matchAll(/\$\{([^}]+)\}/g)].map((m) => m[1] as string));
      const substitutions = (machine.Properties?.DefinitionSubstitutions ?? {}) as JsonObject;
      expect(Object.keys(substitutions).sort(), id).toEqual([...placeholders].sort());
      for (const [key, value] of Object.entries(substitutions)) {
        const target = String(resolver.value(value)).match(/^getatt:(.+)\.Arn$/)?.[1];
        expect(target && template.Resources[target]?.Type, `${id}: ${key}`).toBe('AWS::Lambda::Function');
        // The placeholder names its function: ${PrepareRunFunctionArn} -> PrepareRunLambdaFunction.
        expect(target, `${id}: ${key}`).toBe(key.replace(/FunctionArn$/, 'LambdaFunction'));
        expect(handlerFiles(), `${id}: ${key}`).toContain(handlers.get(target as string));
      }
    }
  });

  it('each state machine role may invoke exactly the functions of its definition', () => {
    for (const [id, machine] of resourcesOfType('AWS::StepFunctions::StateMachine')) {
      const roleId = String(resolver.value(machine.Properties?.RoleArn as Json)).replace(/^getatt:(.+)\.Arn$/, '$1');
      const invokable = policies
        .filter((p) => p.owner === roleId && p.kind === 'identity')
        .flatMap((p) => p.statements)
        .filter((s) => allows(s, 'lambda:InvokeFunction'))
        .flatMap(resourcesOf);
      const substituted = Object.values((machine.Properties?.DefinitionSubstitutions ?? {}) as JsonObject).map((v) => String(resolver.value(v)));
      expect(invokable.sort(), id).toEqual(substituted.sort());
    }
  });
});

describe('SSM documents', () => {
  it('deploys every document built from src/scripts unchanged, as a Command document for instances', () => {
    const built = readdirSync(path.join(ROOT, 'build', 'documents')).filter((f) => f.endsWith('.json'));
    expect(built.length).toBeGreaterThan(0);
    const deployed = resourcesOfType('AWS::SSM::Document');
    for (const file of built) {
      const content = readFileSync(path.join(ROOT, 'build', 'documents', file), 'utf8');
      const matches = deployed.filter(([, d]) => JSON.stringify(d.Properties?.Content) === JSON.stringify(JSON.parse(content)));
      expect(matches.map(([id]) => id), `build/documents/${file} is deployed exactly once`).toHaveLength(1);
      const p = (matches[0] as [string, Resource])[1].Properties ?? {};
      expect(p).toMatchObject({ DocumentType: 'Command', DocumentFormat: 'JSON', TargetType: '/AWS::EC2::Instance' });
      // A generated name and replacement on change keep DISKSHADOW_DOCUMENT_VERSION=1 true.
      expect(p.Name, file).toBeUndefined();
      expect(p.UpdateMethod ?? 'Replace', file).toBe('Replace');
    }
    expect(deployed.length).toBe(built.length);
  });
});

describe('IAM', () => {
  it('has no wildcard action and no NotAction/NotResource in any Allow statement', () => {
    for (const policy of policies) {
      for (const s of policy.statements) {
        expect(['Allow', 'Deny'], policy.owner).toContain(s.Effect);
        if (s.Effect !== 'Allow') continue;
        expect(s.NotAction, `${policy.owner} ${s.Sid}`).toBeUndefined();
        expect(s.NotResource, `${policy.owner} ${s.Sid}`).toBeUndefined();
        for (const action of actionsOf(s)) expect(action, `${policy.owner} ${s.Sid}`).toMatch(/^[a-z0-9-]+:[A-Za-z0-9]+$/);
        if (policy.kind === 'resource' || policy.kind === 'key' || policy.kind === 'trust') {
          expect(JSON.stringify(s.Principal), `${policy.owner} ${s.Sid}: no anonymous principal`).not.toMatch(/"\*"/);
        }
      }
    }
  });

  it('grants Resource "*" only for the listed actions that have no narrower scope', () => {
    const used = new Set<string>();
    for (const policy of policies.filter((p) => p.kind === 'identity')) {
      for (const s of policy.statements.filter((x) => x.Effect === 'Allow')) {
        const resources = resourcesOf(s);
        expect(resources.length, `${policy.owner} ${s.Sid} names its resources`).toBeGreaterThan(0);
        if (!resources.includes('*')) continue;
        expect(resources, `${policy.owner} ${s.Sid}: "*" is not mixed with ARNs`).toEqual(['*']);
        for (const action of actionsOf(s)) {
          expect(Object.keys(RESOURCE_STAR_ALLOWED), `${policy.owner} ${s.Sid}: ${action} on "*"`).toContain(action);
          used.add(action);
        }
      }
    }
    expect([...used].sort(), 'the allowlist has no stale entries').toEqual(Object.keys(RESOURCE_STAR_ALLOWED).sort());
  });

  it('documents every Resource "*" grant in docs/deploy.md', () => {
    const docs = readFileSync(path.join(ROOT, 'docs', 'deploy.md'), 'utf8');
    for (const action of Object.keys(RESOURCE_STAR_ALLOWED)) expect(docs, action).toContain(action);
  });

  it('gives every function its own role that trusts only Lambda and may write only its own log group', () => {
    const roles = new Set<string>();
    for (const [id, fn] of resourcesOfType('AWS::Lambda::Function')) {
      const roleId = String(resolver.value(fn.Properties?.Role as Json)).match(/^getatt:(.+)\.Arn$/)?.[1] ?? '';
      expect(template.Resources[roleId]?.Type, id).toBe('AWS::IAM::Role');
      expect(roles.has(roleId), `${id} shares ${roleId}`).toBe(false);
      roles.add(roleId);
      const trust = policies.find((p) => p.owner === roleId && p.kind === 'trust');
      expect(trust?.statements, roleId).toEqual([{ Effect: 'Allow', Principal: { Service: 'lambda.amazonaws.com' }, Action: 'sts:AssumeRole' }]);
      const logStatements = policies
        .filter((p) => p.owner === roleId && p.kind === 'identity')
        .flatMap((p) => p.statements)
        .filter((s) => actionsOf(s).some((a) => a.startsWith('logs:')));
      const logGroupName = `/aws/lambda/${String(fn.Properties?.FunctionName)}`;
      const ownGroup = resourcesOfType('AWS::Logs::LogGroup').find(([, g]) => g.Properties?.LogGroupName === logGroupName)?.[0];
      for (const s of logStatements) expect(resourcesOf(s), `${roleId} ${s.Sid}`).toEqual([`getatt:${ownGroup}.Arn`]);
    }
    expect(template.Resources.IamRoleLambdaExecution, 'no shared default role').toBeUndefined();
  });

  it('pins the exact actions of each function role', () => {
    for (const [id, file] of lambdaHandlers()) {
      const roleId = String(resolver.value(props(id).Role as Json)).replace(/^getatt:(.+)\.Arn$/, '$1');
      const actions = new Set(
        policies
          .filter((p) => p.owner === roleId && p.kind === 'identity')
          .flatMap((p) => p.statements)
          .filter((s) => s.Effect === 'Allow')
          .flatMap(actionsOf),
      );
      expect([...actions].sort(), `${id} (${file})`).toEqual(FUNCTION_ACTIONS[file]);
    }
  });

  it('grants every AWS API call the Lambda code makes to some function', () => {
    const service: Record<string, string> = { ec2: 'ec2', ssm: 'ssm', s3: 's3', sns: 'sns', sfn: 'states', scheduler: 'scheduler' };
    const granted = new Set(Object.values(FUNCTION_ACTIONS).flat());
    const files = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? files(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
    const calls = new Set<string>();
    for (const file of [...files(path.join(ROOT, 'src', 'lib')), ...files(path.join(ROOT, 'src', 'handlers'))]) {
      const source = readFileSync(file, 'utf8');
      for (const m of source.matchAll(/import\s*\{([^}]*)\}\s*from\s*'@aws-sdk\/client-([a-z0-9-]+)'/g)) {
        for (const name of (m[1] as string).split(',').map((n) => n.trim())) {
          const command = name.match(/^([A-Za-z]+)Command$/)?.[1];
          if (command && source.includes(`new ${name}(`)) calls.add(`${service[m[2] as string] ?? m[2]}:${command}`);
        }
      }
    }
    expect(calls.size).toBeGreaterThan(5);
    for (const call of calls) expect(granted, call).toContain(call);
  });

  it.each([
    [{}, 'ConsistentSnapshot', 'WindowsVSS', 'arn:aws:ssm:us-east-1::document/AWSEC2-CreateVssSnapshot'],
    [{ TagKey: 'backup:vss', TagValue: 'nightly' }, 'backup:vss', 'nightly', 'arn:aws:ssm:us-east-1::document/AWSEC2-CreateVssSnapshot'],
    [{ SnapshotMethod: 'diskshadow' }, 'ConsistentSnapshot', 'WindowsVSS', 'arn:aws:ssm:us-east-1:123456789012:document/ref:DiskShadowSnapshotDocument'],
    // AWS's recommended document: installs or updates AwsVssComponents, then snapshots.
    [{ VssDocumentName: 'AWSEC2-VssInstallAndSnapshot' }, 'ConsistentSnapshot', 'WindowsVSS', 'arn:aws:ssm:us-east-1::document/AWSEC2-VssInstallAndSnapshot'],
  ])('scopes ssm:SendCommand to the chosen document and to instances tagged as the parameters say (%o)', (overrides, tagKey, tagValue, documentArn) => {
    const r = new Resolver(template, overrides);
    const all = policiesOf(template, r)
      .filter((p) => p.kind === 'identity')
      .flatMap((p) => p.statements.filter((s) => allows(s, 'ssm:SendCommand')).map((s) => ({ owner: p.owner, s })));
    // The restore's revert step is the only other sender (its own test below).
    expect(new Set(all.map((g) => g.owner))).toEqual(new Set(['AdvanceInstancesRole', 'SendRevertCommandRole']));
    const grants = all.filter((g) => g.owner === 'AdvanceInstancesRole');
    const documentGrants = grants.filter(({ s }) => resourcesOf(s).every((a) => a.includes(':document/')));
    const instanceGrants = grants.filter(({ s }) => resourcesOf(s).every((a) => a.includes(':instance/')));
    expect(documentGrants.length + instanceGrants.length, 'documents and instances in separate statements').toBe(grants.length);
    expect(documentGrants.flatMap(({ s }) => resourcesOf(s))).toEqual([documentArn]);
    expect(instanceGrants.length).toBeGreaterThan(0);
    for (const { s } of [...documentGrants, ...instanceGrants]) expect(actionsOf(s)).toEqual(['ssm:SendCommand']);
    for (const { s } of instanceGrants) {
      expect(resourcesOf(s)).toEqual(['arn:aws:ec2:us-east-1:123456789012:instance/*']);
      expect(s.Condition).toEqual({ StringEquals: { [`ssm:resourceTag/${tagKey}`]: tagValue } });
    }
    // The Lambda's own view of the selector and document agrees with IAM.
    const env = functionEnv('AdvanceInstancesLambdaFunction', r);
    expect([env.TAG_KEY, env.TAG_VALUE]).toEqual([tagKey, tagValue]);
    const config = loadConfig(env);
    expect(documentArn.endsWith(`:document/${config.documents[config.method].name}`), `${config.method} sends ${config.documents[config.method].name}`).toBe(true);
  });

  it('copies only this stack\'s snapshots, only into the DR Region, and deletes only this stack\'s copies there', () => {
    const grants = policies.filter((p) => p.kind === 'identity').flatMap((p) => p.statements.map((s) => ({ owner: p.owner, s })));
    const copy = grants.filter(({ s }) => allows(s, 'ec2:CopySnapshot'));
    expect(new Set(copy.map((g) => g.owner))).toEqual(new Set(['AdvanceDrCopiesRole']));
    for (const { s } of copy) expect(actionsOf(s)).toEqual(['ec2:CopySnapshot']);
    const into = copy.find(({ s }) => resourcesOf(s).every((r) => r.includes(':us-west-2:')));
    expect(resourcesOf(into?.s as Statement)).toEqual(['arn:aws:ec2:us-west-2::snapshot/*']);
    expect(into?.s.Condition).toEqual({ StringEquals: { 'aws:RequestTag/vss-snapshots:stack': 'vss-snapshots-dev' } });
    const from = copy.find(({ s }) => resourcesOf(s).every((r) => r.includes(':us-east-1:')));
    expect(resourcesOf(from?.s as Statement)).toEqual(['arn:aws:ec2:us-east-1::snapshot/*']);
    expect(from?.s.Condition).toEqual({ StringEquals: { 'aws:ResourceTag/vss-snapshots:stack': 'vss-snapshots-dev' } });
    expect(copy).toHaveLength(2);
    const drGrants = grants.filter((g) => g.owner === 'AdvanceDrCopiesRole');
    const tag = drGrants.filter(({ s }) => allows(s, 'ec2:CreateTags'));
    expect(tag.map(({ s }) => [resourcesOf(s), s.Condition])).toEqual([[['arn:aws:ec2:us-west-2::snapshot/*'], { StringEquals: { 'ec2:CreateAction': 'CopySnapshot' } }]]);
    const del = drGrants.filter(({ s }) => allows(s, 'ec2:DeleteSnapshot'));
    expect(del.map(({ s }) => [resourcesOf(s), s.Condition])).toEqual([[['arn:aws:ec2:us-west-2::snapshot/*'], { StringEquals: { 'aws:ResourceTag/vss-snapshots:stack': 'vss-snapshots-dev' } }]]);
    const grant = drGrants.find(({ s }) => allows(s, 'kms:CreateGrant'));
    expect(grant?.s.Condition).toEqual({ Bool: { 'kms:GrantIsForAWSResource': true }, StringEquals: { 'kms:ViaService': 'ec2.us-west-2.amazonaws.com' } });
    // The Lambdas read the same settings.
    const env = functionEnv('AdvanceDrCopiesLambdaFunction', resolver);
    expect(loadConfig(env).dr).toMatchObject({ region: 'us-west-2', sourceRegion: 'us-east-1', kmsKeyId: DR_KEY, concurrency: 20 });
  });

  it('lets each DR step make every call it makes on the simulated account (copies, DR retention, the DR alert)', async () => {
    // Two nights, keeping one set in the DR Region: the second night's pass plans and applies DR retention.
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, instances: [{ volumes: [{ device: '/dev/sda1', sizeGiB: 8 }] }] }, 'dr iam'));
    const env = { DR_REGION: 'us-west-2', DR_RETAIN_COUNT: '1', DR_RETAIN_DAYS: '0' };
    const roles: Record<string, string> = { 'Plan DR Copies': 'PlanDrCopiesRole', 'Advance DR Copies': 'AdvanceDrCopiesRole' };
    let current = '';
    const made = new Map<string, Set<string>>();
    const s3Action: Record<string, string> = { GetObject: 's3:GetObject', HeadObject: 's3:GetObject', PutObject: 's3:PutObject', ListObjectsV2: 's3:ListBucket' };
    const options = {
      env,
      lambdaFault: (state: string) => {
        current = state;
        return undefined;
      },
      interceptors: [
        ({ service, operation, input }: { service: string; operation: string; input: Record<string, unknown> }) => {
          if (!(current in roles)) return;
          const action = service === 's3' ? s3Action[operation] ?? `s3:${operation}` : `${service}:${operation}`;
          const key = service === 's3' && typeof input.Key === 'string' ? `${input.Key.split('/')[0]}/*` : '';
          made.set(current, (made.get(current) ?? new Set()).add(`${action} ${key}`.trim()));
        },
      ],
    };
    await runWorkflow(world, options);
    world.advanceBy(86_400_000);
    await runWorkflow(world, options);
    expect([...(made.get('Advance DR Copies') ?? [])]).toContain('ec2:DeleteSnapshot');
    for (const [state, calls] of made) {
      const statements = policies.filter((p) => p.owner === roles[state] && p.kind === 'identity').flatMap((p) => p.statements).filter((s) => s.Effect === 'Allow');
      for (const call of calls) {
        const [action, prefix] = call.split(' ') as [string, string | undefined];
        const granted = statements.filter((s) => allows(s, action));
        expect(granted.length, `${state}: ${call}`).toBeGreaterThan(0);
        if (prefix) expect(granted.flatMap(resourcesOf), `${state}: ${call}`).toContain(`getatt:ReportBucket.Arn/${prefix}`);
      }
    }
  });

  it('grants nothing for DR copies when DrRegion is empty (the default), and no KMS key without DrKmsKeyArn', () => {
    const off = policiesOf(template, new Resolver(template)).filter((p) => p.owner === 'AdvanceDrCopiesRole' && p.kind === 'identity').flatMap((p) => p.statements);
    const offActions = off.flatMap(actionsOf);
    for (const a of ['ec2:CopySnapshot', 'ec2:CreateTags', 'ec2:DeleteSnapshot', 'kms:CreateGrant', 'kms:ReEncryptTo']) expect(offActions, a).not.toContain(a);
    expect(loadConfig(functionEnv('AdvanceDrCopiesLambdaFunction', new Resolver(template))).dr).toBeUndefined();
    const noKey = policiesOf(template, new Resolver(template, { DrRegion: 'us-west-2' })).filter((p) => p.owner === 'AdvanceDrCopiesRole' && p.kind === 'identity').flatMap((p) => p.statements).flatMap(actionsOf);
    expect(noKey).toContain('ec2:CopySnapshot');
    expect(noKey.filter((a) => a.startsWith('kms:')).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
  });

  it('lets the restore send only the restore document, and only to instances', () => {
    const grants = policies.filter((p) => p.owner === 'SendRevertCommandRole' && p.kind === 'identity').flatMap((p) => p.statements).filter((s) => allows(s, 'ssm:SendCommand'));
    // The DR Region too (DR on): a restore from the DR copies reverts there, with the document of the same name.
    expect(grants.flatMap(resourcesOf).sort()).toEqual([
      'arn:aws:ec2:us-east-1:123456789012:instance/*',
      'arn:aws:ec2:us-west-2:123456789012:instance/*',
      'arn:aws:ssm:us-east-1:123456789012:document/ref:DiskShadowRestoreDocument',
      'arn:aws:ssm:us-west-2:123456789012:document/ref:DiskShadowRestoreDocument',
    ]);
    for (const s of grants) expect(actionsOf(s)).toEqual(['ssm:SendCommand']);
    const env = functionEnv('SendRevertCommandLambdaFunction');
    expect(env.RESTORE_DOCUMENT_NAME).toBe('ref:DiskShadowRestoreDocument');
  });

  it('lets the restore create volumes only tagged with a restore id and from run snapshots, and touch only such volumes', () => {
    const identity = policies.filter((p) => p.kind === 'identity').flatMap((p) => p.statements.map((s) => ({ owner: p.owner, s })));
    const restoreTag = 'aws:ResourceTag/vss-snapshots:restore-id';
    for (const action of ['ec2:CreateVolume', 'ec2:AttachVolume', 'ec2:DetachVolume', 'ec2:DeleteVolume']) {
      const grants = identity.filter(({ s }) => allows(s, action));
      expect(grants.length, action).toBeGreaterThan(0);
      for (const { owner, s } of grants) {
        expect(owner, action).toMatch(/Restore|Revert/);
        for (const arn of resourcesOf(s)) {
          expect(['us-east-1', 'us-west-2'].flatMap((r) => [`arn:aws:ec2:${r}:123456789012:volume/*`, `arn:aws:ec2:${r}:123456789012:instance/*`, `arn:aws:ec2:${r}::snapshot/*`]), `${owner} ${s.Sid}`).toContain(arn);
        }
        if (!resourcesOf(s).some((arn) => arn.endsWith(':volume/*'))) continue;
        if (action === 'ec2:CreateVolume') expect(s.Condition?.StringLike?.['aws:RequestTag/vss-snapshots:restore-id'], `${owner} ${s.Sid}`).toBe('?*');
        else expect(s.Condition?.StringLike?.[restoreTag], `${owner} ${s.Sid}`).toBe('?*');
      }
      if (action === 'ec2:CreateVolume') {
        const fromSnapshots = grants.filter(({ s }) => resourcesOf(s).includes('arn:aws:ec2:us-east-1::snapshot/*'));
        expect(fromSnapshots.length).toBeGreaterThan(0);
        for (const { s } of fromSnapshots) expect(s.Condition?.StringLike?.[`aws:ResourceTag/${RUN_TAG}`]).toBe('?*');
      }
    }
    const tagging = identity.filter(({ owner, s }) => owner === 'CreateRestoreVolumesRole' && allows(s, 'ec2:CreateTags'));
    for (const { s } of tagging) expect(s.Condition?.StringEquals?.['ec2:CreateAction']).toBe('CreateVolume');
  });

  it('lets the restore act in the DR Region only when DR copies are on, with the home Region\'s conditions', () => {
    const restoreRoles = ['CreateRestoreVolumesRole', 'AttachRestoreVolumesRole', 'SendRevertCommandRole', 'CleanUpRestoreRole'];
    const mutating = ['ec2:CreateVolume', 'ec2:CreateTags', 'ec2:AttachVolume', 'ec2:DetachVolume', 'ec2:DeleteVolume', 'ssm:SendCommand'];
    const grantsWith = (r: Resolver) =>
      policiesOf(template, r)
        .filter((p) => p.kind === 'identity' && restoreRoles.includes(p.owner))
        .flatMap((p) => p.statements.map((s) => ({ owner: p.owner, s })))
        .filter(({ s }) => actionsOf(s).some((a) => mutating.includes(a)));
    const on = grantsWith(resolver);
    expect(on.length).toBeGreaterThanOrEqual(9);
    for (const { owner, s } of on) {
      // Every mutating grant names the same resource in both Regions, nothing else.
      const arns = resourcesOf(s);
      expect(arns, `${owner} ${s.Sid}`).toHaveLength(2);
      expect(arns[1], `${owner} ${s.Sid}`).toBe((arns[0] as string).replace(':us-east-1:', ':us-west-2:'));
    }
    const off = grantsWith(new Resolver(template));
    expect(off.map(({ s }) => s.Sid)).toEqual(on.map(({ s }) => s.Sid));
    for (const { owner, s } of off) expect(resourcesOf(s).every((arn) => !arn.includes('us-west-2')), `${owner} ${s.Sid}`).toBe(true);
    for (const { owner, s } of off) expect(JSON.stringify(s.Condition ?? null), `${owner} ${s.Sid}`).toBe(JSON.stringify(on.find((g) => g.s.Sid === s.Sid && g.owner === owner)?.s.Condition ?? null));
    const offKms = policiesOf(template, new Resolver(template)).filter((p) => p.owner === 'CreateRestoreVolumesRole').flatMap((p) => p.statements).flatMap(actionsOf);
    expect(offKms.filter((a) => a.startsWith('kms:'))).toEqual([]);
    // Plan Restore may look up only the restore document, only in the DR Region, and only with DR on.
    const describe = (r: Resolver) => policiesOf(template, r).filter((p) => p.owner === 'PlanRestoreRole').flatMap((p) => p.statements).filter((x) => allows(x, 'ssm:DescribeDocument'));
    expect(describe(resolver).flatMap(resourcesOf)).toEqual(['arn:aws:ssm:us-west-2:123456789012:document/ref:DiskShadowRestoreDocument']);
    expect(describe(new Resolver(template))).toEqual([]);
    expect(functionEnv('PlanRestoreLambdaFunction', resolver).RESTORE_DOCUMENT_NAME).toBe('ref:DiskShadowRestoreDocument');
    // The Lambdas refuse any Region but these two before acting (the DR_REGION they are given is the parameter).
    expect(functionEnv('ValidateRestoreInputLambdaFunction', resolver).DR_REGION).toBe('us-west-2');
  });

  it('lets the workflow delete only snapshots tagged with a run id', () => {
    const grants = policies.filter((p) => p.owner !== 'ApplyRetentionRole' && p.owner !== 'AdvanceDrCopiesRole').flatMap((p) => p.statements).filter((s) => allows(s, 'ec2:DeleteSnapshot'));
    expect(grants.length).toBeGreaterThan(0);
    for (const s of grants) {
      expect(actionsOf(s)).toEqual(['ec2:DeleteSnapshot']);
      expect(resourcesOf(s)).toEqual(['arn:aws:ec2:us-east-1::snapshot/*']);
      const key = `aws:ResourceTag/${RUN_TAG}`;
      const requiresTag = s.Condition?.StringLike?.[key] === '?*' || String(s.Condition?.Null?.[key]) === 'false';
      expect(requiresTag, JSON.stringify(s.Condition)).toBe(true);
    }
  });

  it('lets retention delete only snapshots tagged with exactly this stack’s id, the id its Lambdas tag with', () => {
    const grants = policies.filter((p) => p.owner === 'ApplyRetentionRole').flatMap((p) => p.statements).filter((s) => allows(s, 'ec2:DeleteSnapshot'));
    expect(grants).toHaveLength(1);
    const [grant] = grants;
    expect(actionsOf(grant as Statement)).toEqual(['ec2:DeleteSnapshot']);
    expect(resourcesOf(grant as Statement)).toEqual(['arn:aws:ec2:us-east-1::snapshot/*']);
    // StringEquals on the exact value: not StringLike (a wildcard would match another stage), no other key.
    expect(grant?.Condition).toEqual({ StringEquals: { [`aws:ResourceTag/${STACK_TAG}`]: 'vss-snapshots-dev' } });
    // The same value the functions tag their snapshots with (STACK_ID), for every function.
    for (const [id] of resourcesOfType('AWS::Lambda::Function')) expect(loadConfig(functionEnv(id, resolver)).stackId, id).toBe('vss-snapshots-dev');
  });

  it('lets only retention archive snapshots, and only those tagged with exactly this stack’s id; nobody restores from the archive', () => {
    const grants = policies.flatMap((p) => p.statements.map((s) => ({ owner: p.owner, s }))).filter(({ s }) => allows(s, 'ec2:ModifySnapshotTier'));
    expect(grants.map((g) => g.owner)).toEqual(['ApplyRetentionRole']);
    const grant = grants[0]?.s as Statement;
    expect(actionsOf(grant)).toEqual(['ec2:ModifySnapshotTier']);
    expect(resourcesOf(grant)).toEqual(['arn:aws:ec2:us-east-1::snapshot/*']);
    expect(grant.Condition).toEqual({ StringEquals: { [`aws:ResourceTag/${STACK_TAG}`]: 'vss-snapshots-dev' } });
    // Restoring from the archive takes up to 72 hours and is billed: the operator does it (README "Archive tier").
    expect(policies.flatMap((p) => p.statements).filter((s) => allows(s, 'ec2:RestoreSnapshotTier'))).toEqual([]);
  });

  it('passes ArchiveAfterDays to every function as ARCHIVE_AFTER_DAYS, off by default', () => {
    for (const [id] of resourcesOfType('AWS::Lambda::Function')) expect(loadConfig(functionEnv(id, resolver)).retention.archiveAfterDays, id).toBe(0);
  });

  it('lets the workflow tag only run snapshots, and only with the fallback and consistency keys', () => {
    const grants = policies
      .filter((p) => p.kind === 'identity' && p.owner === 'AdvanceInstancesRole')
      .flatMap((p) => p.statements)
      .filter((s) => allows(s, 'ec2:CreateTags'));
    expect(grants).toHaveLength(1);
    for (const s of grants) {
      expect(actionsOf(s)).toEqual(['ec2:CreateTags']);
      expect(resourcesOf(s)).toEqual(['arn:aws:ec2:us-east-1::snapshot/*']);
      expect(s.Condition?.StringLike?.[`aws:ResourceTag/${RUN_TAG}`]).toBe('?*');
      expect((s.Condition as Record<string, Record<string, unknown>> | undefined)?.['ForAllValues:StringEquals']?.['aws:TagKeys']).toEqual(['vss-snapshots:fallback', 'vss-snapshots:consistency']);
    }
  });

  it('scopes S3, SNS, KMS and Step Functions grants to this stack’s resources', () => {
    const runsPrefix = `${stateKey('x').split('/')[0]}/*`;
    const reportsPrefix = `${reportKey('x').split('/')[0]}/*`;
    const leasesPrefix = `${leaseKey('arn:aws:states:us-east-1:123456789012:stateMachine:x').split('/')[0]}/*`;
    const retentionPrefix = `${LEDGER_KEY.split('/')[0]}/*`;
    const drPrefix = `${DR_LATEST_KEY.split('/')[0]}/*`;
    const machineNames = resourcesOfType('AWS::StepFunctions::StateMachine').map(([, m]) => m.Properties?.StateMachineName);
    for (const policy of policies.filter((p) => p.kind === 'identity')) {
      for (const s of policy.statements.filter((x) => x.Effect === 'Allow')) {
        for (const action of actionsOf(s)) {
          const where = `${policy.owner} ${s.Sid} ${action}`;
          if (action === 's3:GetObject' || action === 's3:PutObject') {
            for (const arn of resourcesOf(s)) {
              expect([`getatt:ReportBucket.Arn/${runsPrefix}`, `getatt:ReportBucket.Arn/${reportsPrefix}`, `getatt:ReportBucket.Arn/${leasesPrefix}`, `getatt:ReportBucket.Arn/${retentionPrefix}`, `getatt:ReportBucket.Arn/${drPrefix}`], where).toContain(arn);
              // The retention ledger belongs to the retention steps (the DR pass only reads it, for DR retention).
              if (arn.endsWith(`/${retentionPrefix}`)) expect(['PlanRetentionRole', 'ApplyRetentionRole', ...(action === 's3:GetObject' ? ['AdvanceDrCopiesRole'] : [])], where).toContain(policy.owner);
              if (arn.endsWith(`/${drPrefix}`)) expect(['PlanDrCopiesRole', ...(action === 's3:GetObject' ? ['PlanRetentionRole'] : [])], where).toContain(policy.owner);
            }
          } else if (action === 's3:ListBucket') {
            expect(resourcesOf(s), where).toEqual(['getatt:ReportBucket.Arn']);
          } else if (action.startsWith('s3:')) {
            throw new Error(`Unexpected S3 action ${where}`);
          } else if (action === 'sns:Publish') {
            expect(resourcesOf(s), where).toEqual(['ref:AlertTopic']);
          } else if (action.startsWith('kms:') && resourcesOf(s).includes(DR_KEY)) {
            // The DR key: only the named key, only through EBS in the DR Region, only by the DR step and the
            // restore's Create Volumes (a volume from an encrypted DR copy).
            expect(resourcesOf(s), where).toEqual([DR_KEY]);
            expect(s.Condition?.StringEquals?.['kms:ViaService'], where).toBe('ec2.us-west-2.amazonaws.com');
            expect(['AdvanceDrCopiesRole', 'CreateRestoreVolumesRole'], where).toContain(policy.owner);
          } else if (action.startsWith('kms:')) {
            expect(resourcesOf(s), where).toEqual(['getatt:AlertKey.Arn']);
            expect(s.Condition?.StringEquals?.['kms:ViaService'], where).toBe('sns.us-east-1.amazonaws.com');
          } else if (action === 'states:DescribeExecution' || action === 'states:StopExecution') {
            expect(resourcesOf(s).length, where).toBeGreaterThan(0);
            // The executions of this stack's machines; a Distributed Map's children are "<machine>/<label>:<id>".
            const executions = machineNames.flatMap((n) => [`arn:aws:states:us-east-1:123456789012:execution:${n}:*`, `arn:aws:states:us-east-1:123456789012:execution:${n}/*`]);
            for (const arn of resourcesOf(s)) expect(executions, where).toContain(arn);
            if (action === 'states:StopExecution') expect(policy.owner, where).toBe('NightlySnapshotsStateMachineRole');
          } else if (action === 'states:StartExecution') {
            // The scheduler starts the nightly machine; the nightly machine starts its own shards (Distributed Map).
            const own = policy.owner === 'NightlySnapshotsStateMachineRole' ? ['arn:aws:states:us-east-1:123456789012:stateMachine:vss-snapshots-dev-nightly-snapshots'] : ['ref:NightlySnapshotsStateMachine'];
            expect(resourcesOf(s), where).toEqual(own);
          } else if (action.startsWith('states:')) {
            throw new Error(`Unexpected Step Functions action ${where}`);
          }
        }
      }
    }
  });

  it('lets every publisher of the encrypted topic use its key', () => {
    const identity = policies.filter((p) => p.kind === 'identity');
    const publishers = new Set(identity.filter((p) => p.statements.some((s) => allows(s, 'sns:Publish'))).map((p) => p.owner));
    expect(publishers.size).toBeGreaterThan(0);
    for (const owner of publishers) {
      const statements = identity.filter((p) => p.owner === owner).flatMap((p) => p.statements);
      expect(statements.some((s) => allows(s, 'kms:GenerateDataKey')), owner).toBe(true);
    }
  });

  it('exports a managed policy for the Windows instances: self-only CreateSnapshots, tagging only on create or by the VSS tools', () => {
    const output = Object.values(template.Outputs ?? {}).find((o) => JSON.stringify(o.Value) === JSON.stringify({ Ref: 'WindowsInstancePolicy' }));
    expect(output, 'the policy ARN is a stack output').toBeDefined();
    const statements = policies.find((p) => p.owner === 'WindowsInstancePolicy')?.statements ?? [];
    const actions = new Set(statements.flatMap(actionsOf));
    expect([...actions].sort()).toEqual([
      'ec2:CreateSnapshots',
      'ec2:CreateTags',
      'ec2:DeleteTags',
      'ec2:DescribeImages',
      'ec2:DescribeInstanceAttribute',
      'ec2:DescribeSnapshots',
      'logs:CreateLogStream',
      'logs:DescribeLogGroups',
      'logs:DescribeLogStreams',
      'logs:PutLogEvents',
    ]);
    // The command output goes to this stack's log group and nowhere else.
    for (const s of statements.filter((st) => actionsOf(st).some((a) => a === 'logs:CreateLogStream' || a === 'logs:PutLogEvents'))) {
      expect(resourcesOf(s), s.Sid).toEqual(['getatt:CommandOutputLogGroup.Arn']);
    }
    for (const s of statements) {
      const resources = resourcesOf(s);
      if (resources.some((a) => a.includes(':instance/'))) {
        expect(s.Condition?.ArnLike?.['ec2:SourceInstanceARN'], s.Sid).toBe('arn:aws:ec2:us-east-1:123456789012:instance/${ec2:InstanceId}');
      }
      if (actionsOf(s).includes('ec2:CreateSnapshots') && resources.some((a) => a.includes(':snapshot/'))) {
        expect(s.Condition?.StringLike?.[`aws:RequestTag/${RUN_TAG}`], s.Sid).toBe('?*');
      }
      if (actionsOf(s).includes('ec2:CreateTags') || actionsOf(s).includes('ec2:DeleteTags')) {
        expect(resources, s.Sid).toEqual(['arn:aws:ec2:us-east-1::snapshot/*']);
        const onCreate = s.Condition?.StringEquals?.['ec2:CreateAction'] === 'CreateSnapshots';
        const limitedKeys = Array.isArray(s.Condition?.['ForAllValues:StringEquals']?.['aws:TagKeys']);
        expect(onCreate || limitedKeys, s.Sid).toBe(true);
      }
    }
    expect(statements.some((s) => allows(s, 'ec2:CreateTags') && s.Condition?.StringEquals?.['ec2:CreateAction'] === 'CreateSnapshots')).toBe(true);
  });
});

/** The resolved environment of a function, with placeholder ARNs/names where CloudFormation would put real ones. */
function functionEnv(logicalId: string, r: Resolver = resolver): Record<string, string> {
  const variables = r.value(((props(logicalId).Environment as JsonObject).Variables ?? {}) as Json) as Record<string, string>;
  const real: Record<string, string> = {
    'ref:AlertTopic': 'arn:aws:sns:us-east-1:123456789012:vss-snapshots-dev-alerts',
    'ref:ReportBucket': 'vss-snapshots-dev-reportbucket-1a2b3c4d5e6f',
  };
  return Object.fromEntries(Object.entries(variables).map(([k, v]) => [k, real[v] ?? v]));
}

describe('configuration', () => {
  it('gives every function an environment src/lib/config.ts accepts, for every allowed snapshot method', () => {
    const methods = template.Parameters?.SnapshotMethod?.AllowedValues ?? [];
    expect(methods.length).toBeGreaterThan(0);
    for (const method of methods) expect(SNAPSHOT_METHODS as readonly string[]).toContain(method);
    // The nightly functions' settings (src/lib/config.ts) and the restore's (src/lib/restore/config.ts).
    const configSource = ['config.ts', path.join('restore', 'config.ts')].map((f) => readFileSync(path.join(ROOT, 'src', 'lib', f), 'utf8')).join('\n');
    const known = new Set([...configSource.matchAll(/^\s{2}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1] as string));
    for (const [id] of resourcesOfType('AWS::Lambda::Function')) {
      for (const method of methods) {
        const env = functionEnv(id, new Resolver(template, { SnapshotMethod: method }));
        for (const key of Object.keys(env)) if (!key.startsWith('POWERTOOLS_')) expect(known, `${id}: ${key} is read by config.ts`).toContain(key);
        const config = loadConfig(env);
        expect(config.method, id).toBe(method);
        expect(config.documents[config.method].name, `${id}: a document is configured for ${method}`).toBeTruthy();
        if (lambdaHandlers().get(id)?.startsWith('restore-')) expect(() => loadRestoreConfig(env), id).not.toThrow();
      }
    }
  });

  it('declares every stack parameter with a default that meets its own constraints (the value deploys apply)', () => {
    const parameters = template.Parameters ?? {};
    for (const [name, p] of Object.entries(parameters)) {
      const value = String(p.Default);
      if (p.AllowedValues) expect(p.AllowedValues, name).toContain(value);
      if (p.AllowedPattern) expect(value, name).toMatch(new RegExp(p.AllowedPattern));
      if (p.MinValue !== undefined) expect(Number(value), name).toBeGreaterThanOrEqual(p.MinValue);
      if (p.MaxValue !== undefined) expect(Number(value), name).toBeLessThanOrEqual(p.MaxValue);
    }
    // osls would pass provider.stackParameters to the parameter-less stack it creates on a first deploy too,
    // which CloudFormation rejects; the params reach the stack as these defaults instead.
    expect(state.service.provider.stackParameters).toBeUndefined();
  });

  it('offers exactly the two AWS VSS documents, AWSEC2-CreateVssSnapshot by default', () => {
    const p = template.Parameters?.VssDocumentName;
    expect(p?.AllowedValues).toEqual(['AWSEC2-CreateVssSnapshot', 'AWSEC2-VssInstallAndSnapshot']);
    expect(p?.Default).toBe('AWSEC2-CreateVssSnapshot');
    for (const name of p?.AllowedValues ?? []) {
      for (const [id] of resourcesOfType('AWS::Lambda::Function').filter(([fid]) => 'VSS_DOCUMENT_NAME' in functionEnv(fid))) {
        expect(loadConfig(functionEnv(id, new Resolver(template, { VssDocumentName: name }))).documents['aws-vss'].name, id).toBe(name);
      }
    }
  });

  it('rejects unsafe selector tags and malformed schedules before anything is deployed', () => {
    const pattern = (name: string) => new RegExp(template.Parameters?.[name]?.AllowedPattern ?? '(?!)');
    expect('backup:vss').toMatch(pattern('TagKey'));
    for (const bad of ['aws:cloudformation:stack-name', 'AWS:x', 'a"b', 'a\\b', '']) expect(bad).not.toMatch(pattern('TagKey'));
    for (const bad of ['x"}', 'a\\b', '']) expect(bad).not.toMatch(pattern('TagValue'));
    for (const good of ['cron(0 0 * * ? *)', 'cron(30 2 ? * MON-FRI *)', 'rate(12 hours)']) expect(good).toMatch(pattern('ScheduleExpression'));
    for (const bad of ['every night', 'cron()', 'rate(0 days)']) expect(bad).not.toMatch(pattern('ScheduleExpression'));
    expect('').toMatch(pattern('AlertEmail'));
    expect('ops@example.com').toMatch(pattern('AlertEmail'));
    expect('not-an-email').not.toMatch(pattern('AlertEmail'));
  });
});

describe('schedule', () => {
  it('runs the state machine on the schedule expression and time zone parameters, with retries and a dead-letter queue', () => {
    const [[id, schedule]] = resourcesOfType('AWS::Scheduler::Schedule') as [[string, Resource]];
    const p = schedule.Properties ?? {};
    expect(p.ScheduleExpression, id).toEqual({ Ref: 'ScheduleExpression' });
    expect(p.ScheduleExpressionTimezone, id).toEqual({ Ref: 'ScheduleTimezone' });
    expect(template.Parameters?.ScheduleExpression?.Default).toBe('cron(0 0 * * ? *)');
    expect(template.Parameters?.ScheduleTimezone?.Default).toBe('UTC');
    const target = resolver.value(p.Target as Json) as JsonObject;
    expect(template.Resources[String(target.Arn).replace(/^ref:/, '')]?.Type).toBe('AWS::StepFunctions::StateMachine');
    expect((target.RetryPolicy as JsonObject).MaximumRetryAttempts).toEqual(expect.any(Number));
    expect(target.DeadLetterConfig).toEqual({ Arn: 'getatt:DeadLetterQueue.Arn' });
    const input = JSON.parse(String(target.Input)) as Record<string, unknown>;
    expect(Object.keys(input).every((k) => ['Comment', 'comment', 'dryRun', 'force'].includes(k))).toBe(true);
    const queue = props('DeadLetterQueue');
    expect(queue.SqsManagedSseEnabled === true || queue.KmsMasterKeyId !== undefined, 'the DLQ is encrypted').toBe(true);
    const roleId = String(target.RoleArn).replace(/^getatt:(.+)\.Arn$/, '$1');
    const statements = policies.filter((x) => x.owner === roleId && x.kind === 'identity').flatMap((x) => x.statements);
    expect(statements.filter((s) => allows(s, 'states:StartExecution')).flatMap(resourcesOf)).toEqual([target.Arn]);
    expect(statements.filter((s) => allows(s, 'sqs:SendMessage')).flatMap(resourcesOf)).toEqual(['getatt:DeadLetterQueue.Arn']);
  });

  it('follows --param values for the schedule, time zone and selector tag', async () => {
    const { stdout } = await run(
      process.execPath,
      [OSLS, 'print', '--format', 'json', '--param=scheduleExpression=cron(30 1 ? * MON-FRI *)', '--param=scheduleTimezone=Europe/Berlin', '--param=tagKey=backup:vss'],
      { cwd: ROOT, env: offlineEnv(), maxBuffer: 16 * 1024 * 1024 },
    );
    const config = JSON.parse(stdout) as { resources: { Parameters: Record<string, { Default: string }> } };
    expect(config.resources.Parameters.ScheduleExpression?.Default).toBe('cron(30 1 ? * MON-FRI *)');
    expect(config.resources.Parameters.ScheduleTimezone?.Default).toBe('Europe/Berlin');
    expect(config.resources.Parameters.TagKey?.Default).toBe('backup:vss');
    expect(config.resources.Parameters.AlertEmail?.Default, 'untouched params keep their defaults').toBe('');
  });
});

describe('alerts', () => {
  it('encrypts the topic with a rotating customer-managed key that EventBridge and CloudWatch may use', () => {
    expect(resolver.value(props('AlertTopic').KmsMasterKeyId as Json)).toBe('getatt:AlertKey.Arn');
    expect(props('AlertKey').EnableKeyRotation).toBe(true);
    const keyPolicy = policies.find((p) => p.owner === 'AlertKey')?.statements ?? [];
    for (const service of ['events.amazonaws.com', 'cloudwatch.amazonaws.com']) {
      const granted = keyPolicy
        .filter((s) => s.Effect === 'Allow' && asArray((s.Principal as { Service?: string | string[] })?.Service).includes(service))
        .flatMap(actionsOf);
      expect(granted, service).toEqual(expect.arrayContaining(['kms:GenerateDataKey', 'kms:Decrypt']));
    }
    // The account keeps control of the key (no lockout) through IAM.
    const root = keyPolicy.filter((s) => JSON.stringify(s.Principal) === JSON.stringify({ AWS: 'arn:aws:iam::123456789012:root' }));
    expect(root.flatMap(actionsOf)).toEqual(expect.arrayContaining(['kms:PutKeyPolicy', 'kms:ScheduleKeyDeletion', 'kms:DescribeKey']));
  });

  it('lets only the failure rule and this account’s alarms publish to the topic', () => {
    const statements = policies.find((p) => p.owner === 'AlertTopicPolicy')?.statements ?? [];
    const events = statements.find((s) => JSON.stringify(s.Principal).includes('events.amazonaws.com'));
    expect(events?.Condition?.ArnEquals?.['aws:SourceArn']).toBe('getatt:WorkflowFailedRule.Arn');
    const alarms = statements.find((s) => JSON.stringify(s.Principal).includes('cloudwatch.amazonaws.com'));
    expect(alarms?.Condition?.ArnLike?.['aws:SourceArn']).toBe('arn:aws:cloudwatch:us-east-1:123456789012:alarm:*');
  });

  it('subscribes the alert email only when one is given', () => {
    const subscription = template.Resources.AlertEmailSubscription;
    expect(subscription?.Properties).toMatchObject({ Protocol: 'email', Endpoint: { Ref: 'AlertEmail' } });
    expect(template.Parameters?.AlertEmail?.Default).toBe('');
    expect(resolver.condition(subscription?.Condition ?? '')).toBe(false);
    expect(new Resolver(template, { AlertEmail: 'ops@example.com' }).condition(subscription?.Condition ?? '')).toBe(true);
  });

  it('alerts on every failed, timed-out or aborted execution with a readable message', () => {
    const [[id, rule]] = resourcesOfType('AWS::Events::Rule') as [[string, Resource]];
    const pattern = resolver.value(rule.Properties?.EventPattern as Json) as { source: string[]; detail: { status: string[]; stateMachineArn: string[] } };
    expect(pattern.source).toEqual(['aws.states']);
    expect([...pattern.detail.status].sort()).toEqual(['ABORTED', 'FAILED', 'TIMED_OUT']);
    expect(pattern.detail.stateMachineArn.sort()).toEqual(resourcesOfType('AWS::StepFunctions::StateMachine').map(([m]) => `ref:${m}`).sort());
    const [target] = resolver.value(rule.Properties?.Targets as Json) as JsonObject[];
    expect(target?.Arn, id).toBe('ref:AlertTopic');
    const transformer = target?.InputTransformer as { InputPathsMap: Record<string, string>; InputTemplate: string };
    const used = [...transformer.InputTemplate.matchAll(/<([A-Za-z0-9_.-]+)>/g)].map((m) => m[1] as string);
    for (const name of used) expect(Object.keys(transformer.InputPathsMap), name).toContain(name);
    for (const line of transformer.InputTemplate.trim().split('\n')) expect(line, 'each line is a quoted string').toMatch(/^".*"$/);
    expect(transformer.InputTemplate).toContain('<status>');
    expect(transformer.InputTemplate).toContain('console.aws.amazon.com/states');
    expect(target?.DeadLetterConfig).toEqual({ Arn: 'getatt:DeadLetterQueue.Arn' });
  });

  it('alarms on workflow failures, dead letters and failed alert deliveries, into the topic', () => {
    const alarms = resourcesOfType('AWS::CloudWatch::Alarm').map(([id, a]) => ({ id, p: resolver.value(a.Properties as Json) as JsonObject }));
    for (const { id, p } of alarms) expect(p.AlarmActions, id).toEqual(['ref:AlertTopic']);
    const watches = (namespace: string, metric: string, dimension: string) =>
      alarms.some(({ p }) => {
        const metrics = [p, ...asArray(p.Metrics as JsonObject[]).map((m) => (m.MetricStat as JsonObject | undefined)?.Metric as JsonObject | undefined)];
        return metrics.some((m) => m?.Namespace === namespace && m?.MetricName === metric && JSON.stringify(m?.Dimensions).includes(dimension));
      });
    expect(watches('AWS/States', 'ExecutionsFailed', 'ref:NightlySnapshotsStateMachine')).toBe(true);
    expect(watches('AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'getatt:DeadLetterQueue.QueueName')).toBe(true);
    expect(watches('AWS/SNS', 'NumberOfNotificationsFailed', 'getatt:AlertTopic.TopicName')).toBe(true);
  });

  it("lists every stack parameter in the README's table with the template's default", () => {
    const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
    for (const [name, parameter] of Object.entries(template.Parameters ?? {})) {
      const row = readme.split('\n').find((line) => line.includes(`| \`${name}\` |`));
      expect(row, `README row for ${name}`).toBeDefined();
      const shown = row?.split('|')[3]?.trim().replace(/^`|`$/g, '');
      const expected = String(parameter.Default ?? '');
      expect(shown === expected || (expected === '' && shown === 'empty'), `${name}: README says ${shown}, template ${expected}`).toBe(true);
    }
  });

  it('alarms when no run has started for MissedRunHours hours, only while the schedule is enabled', () => {
    const [[, alarm]] = resourcesOfType('AWS::CloudWatch::Alarm').filter(([id]) => id === 'MissedRunAlarm') as [[string, Resource]];
    expect(alarm.Condition).toBe('ScheduleEnabled');
    expect(template.Conditions?.ScheduleEnabled).toEqual({ 'Fn::Equals': [{ Ref: 'ScheduleState' }, 'ENABLED'] });
    const p = resolver.value(alarm.Properties as Json) as JsonObject;
    expect(p).toMatchObject({ Namespace: 'AWS/States', MetricName: 'ExecutionsStarted', Period: 3600, Threshold: 1, ComparisonOperator: 'LessThanThreshold', TreatMissingData: 'breaching' });
    expect(p.Dimensions).toEqual([{ Name: 'StateMachineArn', Value: 'ref:NightlySnapshotsStateMachine' }]);
    // Missing hours are breaching: MissedRunHours of them in a row, and only then, alarm.
    expect(p.EvaluationPeriods).toBe(p.DatapointsToAlarm);
    expect(String(p.EvaluationPeriods)).toBe(String(template.Parameters?.MissedRunHours?.Default));
    expect(Number(template.Parameters?.MissedRunHours?.Default)).toBe(25);
  });

  it('has a dashboard of exactly the metrics the handlers emit, with the Powertools service dimension', () => {
    const emitted = new Set<string>();
    for (const file of handlerFiles()) {
      const source = readFileSync(path.join(ROOT, 'src', 'handlers', `${file}.ts`), 'utf8');
      for (const m of source.matchAll(/addMetric\(\s*'([A-Za-z0-9]+)'/g)) emitted.add(m[1] as string);
    }
    const observability = readFileSync(path.join(ROOT, 'src', 'lib', 'observability.ts'), 'utf8');
    expect(observability).toMatch(/new Metrics\(\{[^}]*namespace: 'VssSnapshots'[^}]*serviceName: 'vss-snapshots'/);
    const [[, dashboard]] = resourcesOfType('AWS::CloudWatch::Dashboard') as [[string, Resource]];
    const body = JSON.parse(String(resolver.value(dashboard.Properties?.DashboardBody as Json))) as { widgets: { properties: { metrics?: Json[][] } }[] };
    const shown = new Set<string>();
    for (const metric of body.widgets.flatMap((w) => w.properties.metrics ?? [])) {
      if (metric[0] !== 'VssSnapshots') continue;
      expect(metric.slice(2, 4), String(metric[1])).toEqual(['service', 'vss-snapshots']);
      shown.add(String(metric[1]));
    }
    expect([...shown].sort()).toEqual([...emitted].sort());
  });
});

describe('report bucket', () => {
  it('is encrypted, blocks public access, and denies requests without TLS', () => {
    const p = props('ReportBucket');
    expect(p.PublicAccessBlockConfiguration).toEqual({ BlockPublicAcls: true, BlockPublicPolicy: true, IgnorePublicAcls: true, RestrictPublicBuckets: true });
    expect(JSON.stringify(p.BucketEncryption)).toMatch(/"SSEAlgorithm":"(AES256|aws:kms)"/);
    const policy = policies.find((x) => x.kind === 'resource' && x.statements.some((s) => resourcesOf(s).includes('getatt:ReportBucket.Arn')));
    const denial = policy?.statements.find((s) => s.Effect === 'Deny' && String(s.Condition?.Bool?.['aws:SecureTransport']) === 'false');
    expect(denial?.Principal).toBe('*');
    expect(actionsOf(denial as Statement)).toEqual(['s3:*']);
    expect(resourcesOf(denial as Statement).sort()).toEqual(['getatt:ReportBucket.Arn', 'getatt:ReportBucket.Arn/*']);
  });

  it('expires reports and run state after the retention parameter', () => {
    const rules = ((props('ReportBucket').LifecycleConfiguration as JsonObject).Rules ?? []) as JsonObject[];
    for (const key of [stateKey('x'), reportKey('x')]) {
      const prefix = `${key.split('/')[0]}/`;
      const rule = rules.find((r) => r.Prefix === prefix && r.Status === 'Enabled');
      expect(rule?.ExpirationInDays, prefix).toEqual({ Ref: 'ReportRetentionDays' });
    }
  });
});
