/**
 * `vss-snapshots selftest` arguments: the instance to test and where the deployed stack's pieces are
 * (from its outputs file, or one by one). Checked before anything is sent.
 */
import { readFileSync } from 'node:fs';
import { SNAPSHOT_METHODS } from '../lib/config.ts';
import type { SnapshotMethod } from '../lib/config.ts';
import { InvalidInputError } from '../lib/errors.ts';

export const SELFTEST_USAGE = `Usage: vss-snapshots selftest --instance ID [--target ID] [--outputs FILE]
                            [--restore-state-machine ARN] [--diskshadow-document NAME] [--selftest-document NAME]
                            [--vss-document NAME] [--data-drive D] [--methods aws-vss,diskshadow] [--keep]
                            [--region REGION] [--profile PROFILE]

Proves the Windows side on one throwaway instance of a deployed stack, with your AWS credentials: writes
known files and a database-like workload on its data volume, snapshots it with each method, restores the
snapshots through the stack's restore workflow (to --target, default the same instance), reverts the
DiskShadow one, compares, cleans up, and prints one PASS/FAIL line per check (docs/windows-acceptance.md).

  --instance ID               the instance to test (Windows, managed by SSM, with a data volume)
  --target ID                 where the snapshots are restored (default: the same instance)
  --outputs FILE              the stack outputs, as written by
                              aws cloudformation describe-stacks --stack-name <stack> --query "Stacks[0].Outputs"
  --restore-state-machine ARN, --diskshadow-document NAME, --selftest-document NAME
                              the stack's pieces, instead of (or over) --outputs
  --vss-document NAME         AWS's document for aws-vss (default AWSEC2-CreateVssSnapshot)
  --data-drive D              the data volume's drive letter (default D)
  --methods LIST              which methods to test (default aws-vss,diskshadow)
  --keep                      keep the restored volumes and test snapshots (no cleanup)

Exit codes: 0 every check passed, 1 a check failed, 2 bad arguments.`;

export interface SelfTestOptions {
  instanceId: string;
  targetInstanceId: string;
  restoreStateMachineArn: string;
  diskShadowDocument: string | undefined;
  selfTestDocument: string;
  vssDocument: string;
  dataDrive: string;
  methods: SnapshotMethod[];
  keep: boolean;
  region: string | undefined;
  profile: string | undefined;
}

const INSTANCE_ID = /^i-[0-9a-f]{8}([0-9a-f]{9})?$/;
const STATE_MACHINE_ARN = /^arn:aws[a-z-]*:states:[a-z0-9-]+:[0-9]{12}:stateMachine:[A-Za-z0-9_-]{1,80}$/;
const DOCUMENT_NAME = /^[A-Za-z0-9_.-]{3,128}$/;
const VSS_DOCUMENTS = ['AWSEC2-CreateVssSnapshot', 'AWSEC2-VssInstallAndSnapshot'];

const FLAGS = ['--instance', '--target', '--outputs', '--restore-state-machine', '--diskshadow-document', '--selftest-document', '--vss-document', '--data-drive', '--methods', '--region', '--profile'];

/** Stack output keys (serverless.yml Outputs) the self-test reads. */
export const OUTPUT_KEYS = {
  restoreStateMachineArn: 'RestoreStateMachineArn',
  diskShadowDocument: 'DiskShadowSnapshotDocumentName',
  selfTestDocument: 'SelfTestDocumentName',
} as const;

function readOutputs(file: string): Record<string, string> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new InvalidInputError(`--outputs ${file} is not readable JSON: ${(error as Error).message}`);
  }
  const list = Array.isArray(parsed) ? parsed : ((parsed as { Stacks?: { Outputs?: unknown[] }[] })?.Stacks?.[0]?.Outputs ?? []);
  const out: Record<string, string> = {};
  for (const entry of list as { OutputKey?: unknown; OutputValue?: unknown }[]) {
    if (typeof entry?.OutputKey === 'string' && typeof entry.OutputValue === 'string') out[entry.OutputKey] = entry.OutputValue;
  }
  if (Object.keys(out).length === 0) throw new InvalidInputError(`--outputs ${file} holds no stack outputs ([{"OutputKey": ..., "OutputValue": ...}]).`);
  return out;
}

/** Parses and checks the arguments; throws InvalidInputError naming the argument. */
export function parseSelfTestArgs(args: string[]): SelfTestOptions {
  const values = new Map<string, string>();
  let keep = false;
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i] as string;
    if (arg === '--keep') {
      keep = true;
      continue;
    }
    if (!FLAGS.includes(arg)) throw new InvalidInputError(`Unknown argument ${arg}; allowed: ${[...FLAGS, '--keep'].join(', ')}.`);
    const value = args[i + 1];
    if (value === undefined || value.startsWith('--')) throw new InvalidInputError(`${arg} needs a value.`);
    if (values.has(arg)) throw new InvalidInputError(`${arg} is given twice.`);
    values.set(arg, value);
    i += 1;
  }
  const outputs = values.has('--outputs') ? readOutputs(values.get('--outputs') as string) : {};
  const pick = (flag: string, key: string): string | undefined => values.get(flag) ?? outputs[key];

  const instanceId = values.get('--instance');
  if (!instanceId) throw new InvalidInputError('--instance is required (the throwaway instance to test).');
  if (!INSTANCE_ID.test(instanceId)) throw new InvalidInputError(`--instance ${instanceId} is not an instance id (i- and 8 or 17 hex digits).`);
  const targetInstanceId = values.get('--target') ?? instanceId;
  if (!INSTANCE_ID.test(targetInstanceId)) throw new InvalidInputError(`--target ${targetInstanceId} is not an instance id.`);

  const methods = (values.get('--methods') ?? SNAPSHOT_METHODS.join(',')).split(',').map((m) => m.trim());
  for (const m of methods) if (!(SNAPSHOT_METHODS as readonly string[]).includes(m)) throw new InvalidInputError(`--methods: ${m} is not one of ${SNAPSHOT_METHODS.join(', ')}.`);
  if (new Set(methods).size !== methods.length || methods.length === 0) throw new InvalidInputError('--methods lists each method once.');

  const restoreStateMachineArn = pick('--restore-state-machine', OUTPUT_KEYS.restoreStateMachineArn);
  if (!restoreStateMachineArn) throw new InvalidInputError(`The restore state machine is needed: --restore-state-machine ARN, or --outputs with ${OUTPUT_KEYS.restoreStateMachineArn}.`);
  if (!STATE_MACHINE_ARN.test(restoreStateMachineArn)) throw new InvalidInputError(`--restore-state-machine ${restoreStateMachineArn} is not a state machine ARN.`);
  const selfTestDocument = pick('--selftest-document', OUTPUT_KEYS.selfTestDocument);
  if (!selfTestDocument) throw new InvalidInputError(`The self-test document is needed: --selftest-document NAME, or --outputs with ${OUTPUT_KEYS.selfTestDocument}.`);
  const diskShadowDocument = pick('--diskshadow-document', OUTPUT_KEYS.diskShadowDocument);
  if (methods.includes('diskshadow') && !diskShadowDocument) {
    throw new InvalidInputError(`The DiskShadow document is needed to test diskshadow: --diskshadow-document NAME, or --outputs with ${OUTPUT_KEYS.diskShadowDocument}.`);
  }
  for (const [flag, name] of [['--selftest-document', selfTestDocument], ['--diskshadow-document', diskShadowDocument]] as const) {
    if (name !== undefined && !DOCUMENT_NAME.test(name)) throw new InvalidInputError(`${flag} ${name} is not an SSM document name.`);
  }
  const vssDocument = values.get('--vss-document') ?? 'AWSEC2-CreateVssSnapshot';
  if (!VSS_DOCUMENTS.includes(vssDocument)) throw new InvalidInputError(`--vss-document must be one of ${VSS_DOCUMENTS.join(', ')}.`);
  const dataDrive = (values.get('--data-drive') ?? 'D').toUpperCase();
  if (!/^[D-Z]$/.test(dataDrive)) throw new InvalidInputError('--data-drive is a drive letter from D to Z.');
  const region = values.get('--region');
  if (region !== undefined && !/^[a-z]{2}(-[a-z]+)+-[0-9]$/.test(region)) throw new InvalidInputError(`--region ${region} is not a Region name.`);
  const profile = values.get('--profile');
  if (profile !== undefined && !/^[A-Za-z0-9_.+=@-]{1,64}$/.test(profile)) throw new InvalidInputError(`--profile ${profile} is not a profile name.`);

  return { instanceId, targetInstanceId, restoreStateMachineArn, diskShadowDocument, selfTestDocument, vssDocument, dataDrive, methods: methods as SnapshotMethod[], keep, region, profile };
}
