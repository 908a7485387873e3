import { GetCommandInvocationCommand, ListCommandInvocationsCommand, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import type { CommandInvocationStatus } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { classifyInvocation, pollCommands } from '../../src/lib/check-commands.ts';
import { clock } from '../../src/lib/clock.ts';
import { loadConfig } from '../../src/lib/config.ts';
import { FAILURES } from '../../src/lib/failure-catalogue.ts';
import type { FailureCode } from '../../src/lib/failure-catalogue.ts';
import { fail } from '../../src/lib/record-failure.ts';
import type { InstanceRecord, RunState } from '../../src/lib/run-state.ts';
import { awsVss, formatVssTags } from '../../src/lib/methods/aws-vss.ts';
import type { InvocationResult } from '../../src/lib/methods/types.ts';

const classify = (r: Partial<InvocationResult>) => classifyInvocation({ status: 'Failed', statusDetails: 'Failed', output: '', ...r }, awsVss.diagnose);

describe('classifyInvocation', () => {
  it.each([
    [{ status: 'Success', statusDetails: 'Success' }, 'ok'],
    [{ statusDetails: 'AccessDenied' }, 'access-denied'],
    [{ statusDetails: 'InvalidPlatform' }, 'invalid-platform'],
    [{ statusDetails: 'Undeliverable' }, 'undeliverable'],
    [{ status: 'TimedOut', statusDetails: 'DeliveryTimedOut' }, 'undeliverable'],
    [{ status: 'TimedOut', statusDetails: 'ExecutionTimedOut' }, 'execution-timeout'],
    [{ statusDetails: 'Terminated' }, 'command-terminated'],
    [{ status: 'Cancelled', statusDetails: 'Cancelled' }, 'command-cancelled'],
    [{ status: 'Cancelled', statusDetails: 'Rate Exceeded' }, 'ssm-rate-exceeded'],
    [{ status: 'TimedOut', statusDetails: 'Failed' }, 'execution-timeout'],
    [{ output: 'Exception calling "DoSnapshotSet" with "0" argument(s): "Error 0x800423F4"' }, 'vss-writer-nonretryable'],
    [{ output: 'ec2-vss-agent failed with HRESULT 0x800423f4' }, 'vss-writer-nonretryable'],
    [{ output: 'hr = 0x800423F3' }, 'vss-writer-retryable'],
    [{ output: 'hr = 0x800423F2' }, 'vss-writer-retryable'],
    [{ output: 'hr = 0x80042316' }, 'vss-in-progress'],
    [{ output: 'hr = 0x8004231F' }, 'vss-insufficient-storage'],
    [{ output: 'hr = 0x80042313' }, 'vss-timeout'],
    [{ output: 'hr = 0x80042314' }, 'vss-timeout'],
    [{ output: `${'progress line\n'.repeat(400)}ERROR: VSS_E_WRITERERROR_NONRETRYABLE` }, 'vss-writer-nonretryable'],
    [{ output: 'ERROR: timeout waiting for VSS Freeze' }, 'vss-timeout'],
    [{ output: 'Thaw pipe connection timed out' }, 'vss-timeout'],
    [{ output: 'writer SqlServerWriter VSS_E_WRITERERROR_NONRETRYABLE' }, 'vss-writer-nonretryable'],
    [{ output: 'VSS_E_WRITERERROR_TIMEOUT' }, 'vss-writer-retryable'],
    [{ output: 'VSS_E_SNAPSHOT_SET_IN_PROGRESS' }, 'vss-in-progress'],
    [{ output: 'hr = 0x800423F1' }, 'vss-writer-retryable'],
    [{ output: 'Cannot invoke method. Method invocation is supported only on core types in this language mode.' }, 'language-mode'],
    [{ output: 'AwsVssComponents package is not installed' }, 'package-missing'],
    [{ output: 'something odd', responseCode: 5 }, 'script-failed'],
  ])('classifies %j as %s', (result, expected) => {
    const verdict = classify(result);
    expect(verdict === 'ok' ? 'ok' : verdict.code).toBe(expected);
  });
});

describe('formatVssTags', () => {
  it('builds the document tags parameter', () => {
    expect(formatVssTags({ a: '1', 'b:c': 'x y' })).toBe('Key=a,Value=1;Key=b:c,Value=x y');
  });

  it.each(['Device', 'AppConsistent', 'AwsVssConfig'])('refuses the reserved tag %s', (key) => {
    expect(() => formatVssTags({ [key]: 'x' })).toThrowError(/reserved/);
  });

  it('refuses values that would change the meaning of the tags string', () => {
    expect(() => formatVssTags({ k: 'a;Key=Device,Value=x' })).toThrowError(/may only use/);
  });
});

/**
 * The retry decision of every failure code, written out: a code whose retryability changes must change here too
 * (the catalogue is the single source the workflow reads, so a slip there would silently stop or start retries).
 */
const RETRY_DECISION: Record<FailureCode, boolean> = {
  stopped: false,
  'not-windows': false,
  'no-ebs': false,
  'not-managed': false,
  'agent-offline': false,
  'send-rejected': true,
  'access-denied': false,
  'invalid-platform': false,
  undeliverable: true,
  'execution-timeout': true,
  'no-result': true,
  'ssm-rate-exceeded': true,
  'command-cancelled': false,
  'command-terminated': true,
  'vss-timeout': true,
  'vss-writer-retryable': true,
  'vss-writer-nonretryable': false,
  'vss-in-progress': true,
  'vss-insufficient-storage': false,
  'language-mode': false,
  'package-missing': false,
  'script-failed': true,
  'no-snapshots': true,
  'crash-consistent': true,
  'snapshot-error': true,
  'snapshot-timeout': false,
  'concurrent-snapshot-limit': false,
  'vss-component-excluded': false,
  'unshadowed-disk': false,
};

describe('the retry decision of every failure code', () => {
  const state = { options: { maxAttempts: 3 } } as RunState;
  const record = (): InstanceRecord => ({ instanceId: 'i-00000001', volumes: [], phase: 'command', attempts: 1, snapshots: [] });

  it('covers every code of the catalogue', () => {
    expect(Object.keys(RETRY_DECISION).sort()).toEqual(Object.keys(FAILURES).sort());
  });

  it.each(Object.entries(RETRY_DECISION))('%s: retried = %s (on attempt 1 of 3), never past maxAttempts', (code, retried) => {
    const first = record();
    fail(first, state, code as FailureCode, 'detail', 600);
    expect(first.phase).toBe(retried ? 'retry' : 'failed');
    expect(first.reason).toMatch(retried ? /will retry/ : /not retried/);
    const last = { ...record(), attempts: 3 };
    fail(last, state, code as FailureCode, 'detail', 600);
    expect(last.phase).toBe('failed');
  });
});

describe('pollCommands: a failed invocation is judged from its full output (GetCommandInvocation)', () => {
  const ssm = mockClient(SSMClient);
  const config = loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket' });
  const SENT = Date.parse('2026-11-28T00:01:00Z');
  const ID = 'i-00000001';
  let now = SENT;
  const stateWith = (deadline = SENT + 3_600_000): RunState => ({
    runId: '20261128T000000Z-00000000',
    executionArn: 'arn:exec',
    startedAt: '2026-11-28T00:00:00.000Z',
    dryRun: false,
    selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' },
    options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
    notFound: [],
    commands: [{ comment: 'c', commandId: 'cmd-1', attempt: 1, instanceIds: [ID], sentAt: SENT, status: 'open', deadline, nextPollAt: SENT, completedSeen: 0 }],
    instances: [{ instanceId: ID, volumes: [], phase: 'command', attempts: 1, commandId: 'cmd-1', sendComment: 'c', snapshots: [] }],
  });
  const invocation = (Status: CommandInvocationStatus, StatusDetails: string) => ssm.on(ListCommandInvocationsCommand).resolves({ CommandInvocations: [{ CommandId: 'cmd-1', InstanceId: ID, Status, StatusDetails }] });
  const progressLog = 'ec2-vss-agent: enumerating writers and volumes\n'.repeat(80);

  beforeEach(() => {
    now = SENT + 120_000;
    clock.now = () => now;
    ssm.reset();
    ssm.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'cmd-1', Comment: 'c', Status: 'Failed', CompletedCount: 1 }] });
  });

  it('reads the error in standard error as well as standard output', async () => {
    invocation('Failed', 'Failed');
    ssm.on(GetCommandInvocationCommand).resolves({ Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 1, StandardOutputContent: progressLog, StandardErrorContent: 'Exception calling "DoSnapshotSet" with "0" argument(s): "Error 0x800423F4"' });
    const state = stateWith();

    await pollCommands({ ssm: ssm as never, config }, state);

    expect(state.instances[0]).toMatchObject({ phase: 'failed', code: 'vss-writer-nonretryable' });
  });

  it('judges nothing while GetCommandInvocation does not know a listed invocation yet, and judges it at the next poll', async () => {
    invocation('Failed', 'Failed');
    const notYet = Object.assign(new Error('InvocationDoesNotExist'), { name: 'InvocationDoesNotExist', $fault: 'client', $metadata: { httpStatusCode: 400 } });
    ssm.on(GetCommandInvocationCommand).rejectsOnce(notYet).resolves({ Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 1, StandardOutputContent: `${progressLog}VSS_E_WRITERERROR_NONRETRYABLE` });
    const state = stateWith();

    await pollCommands({ ssm: ssm as never, config }, state);
    expect(state.instances[0]).toMatchObject({ phase: 'command', commandId: 'cmd-1' });
    now += config.commandPollSeconds * 1000;
    await pollCommands({ ssm: ssm as never, config }, state);

    expect(state.instances[0]).toMatchObject({ phase: 'failed', code: 'vss-writer-nonretryable' });
  });

  it('reads an unjudged failed invocation again at the next poll while a batch-mate still runs (CompletedCount does not move)', async () => {
    const MATE = 'i-00000002';
    ssm.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'cmd-1', Comment: 'c', Status: 'InProgress', CompletedCount: 1 }] });
    ssm.on(ListCommandInvocationsCommand).resolves({
      CommandInvocations: [
        { CommandId: 'cmd-1', InstanceId: ID, Status: 'Failed', StatusDetails: 'Failed' },
        { CommandId: 'cmd-1', InstanceId: MATE, Status: 'InProgress', StatusDetails: 'InProgress' },
      ],
    });
    const notYet = Object.assign(new Error('InvocationDoesNotExist'), { name: 'InvocationDoesNotExist', $fault: 'client', $metadata: { httpStatusCode: 400 } });
    ssm.on(GetCommandInvocationCommand).rejectsOnce(notYet).resolves({ Status: 'Failed', StatusDetails: 'Failed', ResponseCode: 1, StandardOutputContent: `${progressLog}VSS_E_WRITERERROR_NONRETRYABLE` });
    const state = stateWith();
    state.commands[0]!.instanceIds.push(MATE);
    state.instances.push({ instanceId: MATE, volumes: [], phase: 'command', attempts: 1, commandId: 'cmd-1', sendComment: 'c', snapshots: [] });

    await pollCommands({ ssm: ssm as never, config }, state);
    expect(state.instances[0]).toMatchObject({ phase: 'command' });
    now += config.commandPollSeconds * 1000;
    await pollCommands({ ssm: ssm as never, config }, state);

    expect(state.instances[0]).toMatchObject({ phase: 'failed', code: 'vss-writer-nonretryable' });
    expect(state.instances[1]).toMatchObject({ phase: 'command' });
  });

  it('retries a command SSM cancelled for Rate Exceeded as ssm-rate-exceeded, even when it is read past its deadline', async () => {
    invocation('Cancelled', 'Rate Exceeded');
    const state = stateWith(SENT + 60_000);

    await pollCommands({ ssm: ssm as never, config }, state);

    expect(state.instances[0]).toMatchObject({ phase: 'retry', code: 'ssm-rate-exceeded' });
  });
});
