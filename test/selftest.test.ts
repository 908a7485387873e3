/**
 * `vss-snapshots selftest` (src/selftest): its arguments, its verdicts, and a whole run against a fake
 * AWS that answers as a deployed stack and a Windows instance would (the instance's side is the
 * self-test document, checked in test/windows-scripts.test.ts).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteSnapshotCommand, DeleteVolumeCommand, DescribeInstancesCommand, DescribeSnapshotsCommand, DescribeVolumesCommand, DetachVolumeCommand, EC2Client } from '@aws-sdk/client-ec2';
import { DescribeExecutionCommand, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { DescribeInstanceInformationCommand, GetCommandInvocationCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { validateDocumentParameters } from '../src/documents/document-parameters.ts';
import { diskShadow } from '../src/lib/methods/diskshadow.ts';
import { formatResultLine, RESULT_LINE_PREFIX } from '../src/lib/result-line.ts';
import { parseSelfTestArgs } from '../src/selftest/args.ts';
import { agentVersionAtLeast, diskShadowTimeline, revertChecks, snapshotChecks } from '../src/selftest/checks.ts';
import { selftestCommand } from '../src/selftest/index.ts';

const INSTANCE = 'i-0123456789abcdef0';
const ROOT_VOL = 'vol-0aaaaaaaaaaaaaaa1';
const DATA_VOL = 'vol-0aaaaaaaaaaaaaaa2';
const SET_ID = '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f';
const RESTORE_ARN = 'arn:aws:states:us-east-1:123456789012:stateMachine:vss-snapshots-prod-restore';
const DS_DOC = 'vss-snapshots-prod-DiskShadowSnapshotDocument-AbC123';
const ST_DOC = 'vss-snapshots-prod-SelfTestDocument-XyZ789';
const BASE_ARGS = ['--instance', INSTANCE, '--restore-state-machine', RESTORE_ARN, '--diskshadow-document', DS_DOC, '--selftest-document', ST_DOC];

const CREATED_AT = '2026-11-28T01:00:05.120Z';
const REQUESTED_AT = '2026-11-28T01:00:07.480Z';

const journal = (entries: number, lastUtc: string, inWindow = 0) => ({ found: true, entries, lastSeq: entries, firstUtc: '2026-11-28T00:59:00.000Z', lastUtc, chainValid: true, firstInvalidEntry: null, tornTail: false, inWindow });
const pages = { found: true, pages: 64, written: 64, valid: 64 };
const known = { expected: 8, matching: 8, differing: 0, missing: 0 };

function selfTestOutput(action: string, runId: string, facts: Record<string, unknown>): string {
  const line = { version: 1, operation: 'selftest', action, runId, instanceId: INSTANCE, outcome: 'success', errorCode: null, retryable: false, exitCode: 0, message: `Self-test ${action} done.`, warnings: [], facts };
  return `${RESULT_LINE_PREFIX} ${JSON.stringify(line)}\r\n2026-11-28T01:00:00.000Z log\r\n`;
}

interface Fake {
  ec2: ReturnType<typeof mockClient>;
  ssm: ReturnType<typeof mockClient>;
  sfn: ReturnType<typeof mockClient>;
  /** The restored diskshadow journal's last entry (the revert check). */
  revertedLastUtc: string;
  agentVersion: string;
}

function fakeAws(fake: Fake): void {
  const commands = new Map<string, { documentName: string; parameters: Record<string, string[]> }>();
  const runs = new Map<string, 'aws-vss' | 'diskshadow'>();
  const restored: Record<string, string> = { 'aws-vss': 'vol-0bbbbbbbbbbbbbbb1', diskshadow: 'vol-0bbbbbbbbbbbbbbb2' };
  const volumeState = new Map<string, string>(Object.values(restored).map((v) => [v, 'in-use']));

  fake.ec2.on(DescribeInstancesCommand).resolves({
    Reservations: [
      {
        Instances: [
          {
            InstanceId: INSTANCE,
            State: { Name: 'running' },
            PlatformDetails: 'Windows',
            Hypervisor: 'xen',
            InstanceType: 'm6i.large',
            BlockDeviceMappings: [
              { DeviceName: '/dev/sda1', Ebs: { VolumeId: ROOT_VOL } },
              { DeviceName: 'xvdf', Ebs: { VolumeId: DATA_VOL } },
            ],
          },
        ],
      },
    ],
  });
  fake.ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: INSTANCE, PingStatus: 'Online', AgentVersion: fake.agentVersion, PlatformName: 'Microsoft Windows Server 2022 Datacenter' }] });
  let n = 0;
  fake.ssm.on(SendCommandCommand).callsFake((input: { DocumentName: string; Parameters: Record<string, string[]> }) => {
    const id = `cmd-${++n}`;
    commands.set(id, { documentName: input.DocumentName, parameters: input.Parameters });
    if (input.DocumentName === 'AWSEC2-CreateVssSnapshot') runs.set(/Key=vss-snapshots:run-id,Value=([^;]+)/.exec(input.Parameters.tags?.[0] ?? '')?.[1] ?? '', 'aws-vss');
    if (input.DocumentName === DS_DOC) runs.set(input.Parameters.RunId?.[0] ?? '', 'diskshadow');
    return { Command: { CommandId: id } };
  });
  fake.ssm.on(GetCommandInvocationCommand).callsFake((input: { CommandId: string }) => {
    const command = commands.get(input.CommandId);
    if (!command) throw Object.assign(new Error('no such invocation'), { name: 'InvocationDoesNotExist' });
    const p = command.parameters;
    const runId = p.RunId?.[0] ?? '';
    let output = '';
    if (command.documentName === ST_DOC) {
      const action = p.Action?.[0] ?? '';
      const facts: Record<string, Record<string, unknown>> = {
        prepare: {
          os: 'Microsoft Windows Server 2022 Datacenter',
          osVersion: '10.0.20348',
          build: '20348',
          powershell: '5.1.20348.2849',
          languageMode: 'FullLanguage',
          hypervisor: 'nitro',
          diskshadow: true,
          awsTools: true,
          awsVssComponents: '2.5.0.0',
          dataVolume: { drive: 'D', fileSystem: 'NTFS', sizeBytes: 10737418240, diskNumber: 1, volumeId: DATA_VOL },
          shadowStorageHere: true,
          stateFolder: { path: 'C:\\ProgramData\\vss-snapshots', owner: 'S-1-5-32-544', protected: true, identities: ['S-1-5-18', 'S-1-5-32-544'] },
          knownFiles: { count: 8, bytes: 65536, digest: 'a'.repeat(64) },
          workload: { task: 'vss-snapshots-selftest-workload', folder: `D:\\vss-selftest\\${runId}`, intervalMs: 100, journal: journal(12, '2026-11-28T00:59:01.200Z') },
        },
        stop: { workloadStopped: true, journal: journal(900, '2026-11-28T01:02:00.000Z', p.Window?.[0] ? 23 : 0), pages, knownFiles: known },
        verify: {
          volumes: (p.VolumeIds?.[0] ?? '').split(',').map((volumeId, i) => ({
            volumeId,
            diskNumber: 2 + i,
            folder: `E:\\vss-selftest\\${runId}`,
            knownFiles: known,
            journal: journal(300, volumeId === restored.diskshadow ? fake.revertedLastUtc : '2026-11-28T00:59:59.000Z'),
            pages,
          })),
        },
        cleanup: { workloadStopped: true, folderRemoved: true, shadowCopiesLeft: [] },
      };
      output = selfTestOutput(action, runId, facts[action] ?? {});
    } else if (command.documentName === DS_DOC) {
      output = `${formatResultLine({
        version: 1,
        operation: 'snapshot',
        method: 'diskshadow',
        runId,
        attempt: 1,
        instanceId: INSTANCE,
        outcome: 'success',
        errorCode: null,
        retryable: false,
        exitCode: 0,
        message: 'ok',
        vss: 'created',
        shadowSetId: SET_ID,
        appConsistent: true,
        cleanup: 'done',
        warnings: [],
        snapshots: [],
        volumes: [],
      })}\r\n${CREATED_AT} Shadow copy set ${SET_ID} created for 2 volume(s); writers have resumed.\r\n${REQUESTED_AT} Requesting the EBS snapshots (CreateSnapshots).\r\n`;
    } else {
      output = 'Creating VSS snapshot set\r\nVSS snapshot set completed.\r\n';
    }
    return { Status: 'Success', StandardOutputContent: output };
  });
  fake.ec2.on(DescribeSnapshotsCommand).callsFake((input: { Filters: { Values: string[] }[] }) => {
    const runId = input.Filters[0]?.Values[0] ?? '';
    const method = runs.get(runId);
    if (!method) return { Snapshots: [] };
    const tags = method === 'aws-vss' ? { AppConsistent: 'true', 'vss-snapshots:method': 'aws-vss' } : { 'vss-snapshots:consistency': 'after-revert', 'vss-snapshots:shadow-set-id': SET_ID, 'vss-snapshots:method': 'diskshadow' };
    return {
      Snapshots: [ROOT_VOL, DATA_VOL].map((volumeId, i) => ({
        SnapshotId: `snap-${method === 'aws-vss' ? 'a' : 'd'}${i}`,
        VolumeId: volumeId,
        State: 'completed',
        Tags: Object.entries({ ...tags, 'vss-snapshots:run-id': runId }).map(([Key, Value]) => ({ Key, Value })),
      })),
    };
  });
  const executions = new Map<string, { method: 'aws-vss' | 'diskshadow'; input: unknown }>();
  fake.sfn.on(StartExecutionCommand).callsFake((input: { name: string; input: string }) => {
    const parsed = JSON.parse(input.input) as { runId: string };
    const arn = `arn:aws:states:us-east-1:123456789012:execution:vss-snapshots-prod-restore:${input.name}`;
    executions.set(arn, { method: runs.get(parsed.runId) ?? 'aws-vss', input: parsed });
    return { executionArn: arn };
  });
  fake.sfn.on(DescribeExecutionCommand).callsFake((input: { executionArn: string }) => {
    const e = executions.get(input.executionArn);
    const method = e?.method ?? 'aws-vss';
    const volumeId = restored[method] as string;
    const output = { volumes: [{ volumeId, sourceDevice: 'xvdf', device: method === 'aws-vss' ? 'xvdg' : 'xvdh' }], revert: method === 'diskshadow' ? { disks: [{ volumeId, reverted: 1 }] } : null };
    return { status: 'SUCCEEDED', output: JSON.stringify(output) };
  });
  fake.ec2.on(DescribeVolumesCommand).callsFake((input: { VolumeIds: string[] }) => ({ Volumes: input.VolumeIds.map((v) => ({ VolumeId: v, State: volumeState.get(v) ?? 'available' })) }));
  fake.ec2.on(DetachVolumeCommand).callsFake((input: { VolumeId: string }) => {
    volumeState.set(input.VolumeId, 'available');
    return {};
  });
  fake.ec2.on(DeleteVolumeCommand).resolves({});
  fake.ec2.on(DeleteSnapshotCommand).resolves({});
}

describe('vss-snapshots selftest against a deployed stack', () => {
  const ec2 = mockClient(EC2Client);
  const ssm = mockClient(SSMClient);
  const sfn = mockClient(SFNClient);
  let printed: string[];
  const run = (args: string[] = BASE_ARGS) =>
    selftestCommand(args, {
      ec2: new EC2Client({}),
      ssm: new SSMClient({}),
      sfn: new SFNClient({}),
      sleep: async () => undefined,
      print: (line) => printed.push(line),
      printError: (line) => printed.push(line),
      now: () => new Date('2026-11-28T00:59:00.000Z'),
    });

  beforeEach(() => {
    ec2.reset();
    ssm.reset();
    sfn.reset();
    printed = [];
  });

  it('passes every check on a healthy instance, restoring both methods to it and cleaning up', async () => {
    fakeAws({ ec2, ssm, sfn, revertedLastUtc: '2026-11-28T01:00:05.050Z', agentVersion: '3.3.2746.0' });

    const code = await run();

    expect(printed.filter((l) => l.startsWith('FAIL')), printed.join('\n')).toEqual([]);
    expect(code).toBe(0);
    expect(printed.at(-1)).toMatch(/^PASS {2}self-test: (\d+) of \1 checks passed\.$/);
    for (const name of ['document parameters reach the script as environment variables', 'diskshadow: every restored disk reverted', 'diskshadow: revert rolled back the writes after the shadow copies', 'no persistent shadow copy']) {
      expect(printed.some((l) => l.startsWith('PASS') && l.includes(name)), name).toBe(true);
    }
    // Sent what the nightly run sends, in this order.
    const sent = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(sent.map((s) => (s.DocumentName === ST_DOC ? `selftest:${s.Parameters?.Action?.[0]}` : s.DocumentName))).toEqual([
      'selftest:prepare',
      'AWSEC2-CreateVssSnapshot',
      DS_DOC,
      'selftest:stop',
      'selftest:verify',
      'selftest:cleanup',
    ]);
    const ds = sent[2];
    const runId = ds?.Parameters?.RunId?.[0] ?? '';
    expect(ds?.Parameters).toEqual(diskShadow.parameters({ runId, attempt: 1, excludeBootVolume: false, copyOnly: false, commandTimeoutSeconds: 1800 }));
    for (const s of sent.filter((x) => x.DocumentName === ST_DOC)) expect(() => validateDocumentParameters('selftest', s.Parameters ?? {})).not.toThrow();
    expect(sent[3]?.Parameters?.Window).toEqual([`${CREATED_AT}/${REQUESTED_AT}`]);
    expect(sent[4]?.Parameters?.VolumeIds).toEqual(['vol-0bbbbbbbbbbbbbbb1,vol-0bbbbbbbbbbbbbbb2']);
    expect(sent[5]?.Parameters?.ShadowSetId).toEqual([SET_ID]);
    // Restored through the stack's workflow, the data device only, to the same instance.
    const restores = sfn.commandCalls(StartExecutionCommand).map((c) => JSON.parse(c.args[0].input.input ?? '{}'));
    expect(restores).toEqual([
      expect.objectContaining({ sourceInstanceId: INSTANCE, targetInstanceId: INSTANCE, devices: ['xvdf'], keepOnFailure: false }),
      expect.objectContaining({ runId, devices: ['xvdf'] }),
    ]);
    // Deleted exactly what it created.
    expect(ec2.commandCalls(DeleteVolumeCommand).map((c) => c.args[0].input.VolumeId).sort()).toEqual(['vol-0bbbbbbbbbbbbbbb1', 'vol-0bbbbbbbbbbbbbbb2']);
    expect(ec2.commandCalls(DeleteSnapshotCommand).map((c) => c.args[0].input.SnapshotId).sort()).toEqual(['snap-a0', 'snap-a1', 'snap-d0', 'snap-d1']);
  });

  it('fails when the restored DiskShadow volume was not rolled back to its shadow copies', async () => {
    fakeAws({ ec2, ssm, sfn, revertedLastUtc: '2026-11-28T01:00:07.400Z', agentVersion: '3.3.2746.0' });

    const code = await run();

    expect(code).toBe(1);
    expect(printed.find((l) => l.includes('revert rolled back'))).toMatch(/^FAIL .*restored journal ends 2026-11-28T01:00:07\.400Z; shadow copies created by 2026-11-28T01:00:05\.120Z/);
    // Cleans up all the same.
    expect(ec2.commandCalls(DeleteVolumeCommand)).toHaveLength(2);
  });

  it('stops before sending anything to an instance whose SSM Agent cannot pass ENV_VAR parameters', async () => {
    fakeAws({ ec2, ssm, sfn, revertedLastUtc: '', agentVersion: '3.2.582.0' });

    const code = await run();

    expect(code).toBe(1);
    expect(printed.find((l) => l.includes('SSM Agent 3.3.2746.0 or later'))).toMatch(/^FAIL .*agent 3\.2\.582\.0/);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('keeps what it created with --keep', async () => {
    fakeAws({ ec2, ssm, sfn, revertedLastUtc: '2026-11-28T01:00:05.050Z', agentVersion: '3.3.2746.0' });
    expect(await run([...BASE_ARGS, '--keep'])).toBe(0);
    expect(ec2.commandCalls(DeleteVolumeCommand)).toHaveLength(0);
    expect(ec2.commandCalls(DeleteSnapshotCommand)).toHaveLength(0);
  });

  it('refuses bad arguments with exit code 2 and sends nothing', async () => {
    expect(await run(['--instance', 'not-an-id'])).toBe(2);
    expect(await run([...BASE_ARGS, '--methods', 'diskshadow,nope'])).toBe(2);
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });
});

describe('selftest arguments', () => {
  it('reads the stack pieces from the outputs file, flags winning', () => {
    const dir = mkdtempSync(join(tmpdir(), 'vss-selftest-'));
    const file = join(dir, 'outputs.json');
    writeFileSync(
      file,
      JSON.stringify([
        { OutputKey: 'RestoreStateMachineArn', OutputValue: RESTORE_ARN },
        { OutputKey: 'DiskShadowSnapshotDocumentName', OutputValue: DS_DOC },
        { OutputKey: 'SelfTestDocumentName', OutputValue: ST_DOC },
      ]),
    );
    expect(parseSelfTestArgs(['--instance', INSTANCE, '--outputs', file])).toMatchObject({ restoreStateMachineArn: RESTORE_ARN, diskShadowDocument: DS_DOC, selfTestDocument: ST_DOC, targetInstanceId: INSTANCE, methods: ['aws-vss', 'diskshadow'], dataDrive: 'D' });
    expect(parseSelfTestArgs(['--instance', INSTANCE, '--outputs', file, '--selftest-document', 'Other-Doc'])).toMatchObject({ selfTestDocument: 'Other-Doc' });
  });

  it.each([
    [[], /--instance is required/],
    [['--instance', INSTANCE], /restore state machine is needed/],
    [[...BASE_ARGS, '--data-drive', 'C'], /--data-drive/],
    [[...BASE_ARGS, '--vss-document', 'AWS-RunPowerShellScript'], /--vss-document/],
    [[...BASE_ARGS, '--target'], /--target needs a value/],
    [[...BASE_ARGS, '--bogus', 'x'], /Unknown argument --bogus/],
    [['--instance', INSTANCE, '--restore-state-machine', RESTORE_ARN, '--selftest-document', ST_DOC], /DiskShadow document is needed/],
  ])('refuses %j', (args, message) => {
    expect(() => parseSelfTestArgs(args)).toThrow(message);
  });
});

describe('selftest verdicts', () => {
  it('compares agent versions numerically', () => {
    expect(agentVersionAtLeast('3.3.2746.0')).toBe(true);
    expect(agentVersionAtLeast('3.3.10000.0')).toBe(true);
    expect(agentVersionAtLeast('3.10.1.0')).toBe(true);
    expect(agentVersionAtLeast('3.3.2745.9')).toBe(false);
    expect(agentVersionAtLeast('3.2.9999.0')).toBe(false);
    expect(agentVersionAtLeast(undefined)).toBe(false);
  });

  it('reads the times the DiskShadow script logged', () => {
    const output = `line\r\n${CREATED_AT} Shadow copy set ${SET_ID} created for 1 volume(s); writers have resumed.\r\n${REQUESTED_AT} Requesting the EBS snapshots (CreateSnapshots).\r\n`;
    expect(diskShadowTimeline(output)).toEqual({ createdAt: CREATED_AT, requestedAt: REQUESTED_AT });
    expect(diskShadowTimeline('no times')).toBeUndefined();
  });

  it('does not call the revert proven when the workload wrote nothing in the gap', () => {
    const live = { workloadStopped: true, journal: journal(10, REQUESTED_AT, 0), pages, knownFiles: known };
    const volume = { volumeId: 'vol-1', diskNumber: 2, folder: 'E:\\x', knownFiles: known, journal: journal(5, CREATED_AT), pages };
    const checks = revertChecks(volume, { createdAt: CREATED_AT, requestedAt: REQUESTED_AT }, live);
    expect(checks.map((c) => c.ok)).toEqual([false, true]);
  });

  it('fails a DiskShadow snapshot that claims AppConsistent', () => {
    const tags = { 'vss-snapshots:consistency': 'after-revert', 'vss-snapshots:shadow-set-id': SET_ID, AppConsistent: 'true' };
    const checks = snapshotChecks('diskshadow', { status: 'Success', output: '' }, [{ snapshotId: 'snap-1', volumeId: 'vol-1', state: 'completed', tags }], ['vol-1']);
    expect(checks.find((c) => c.name.includes('AppConsistent'))?.ok).toBe(false);
  });
});
