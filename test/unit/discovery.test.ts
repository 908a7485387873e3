import { DescribeInstancesCommand, EC2Client } from '@aws-sdk/client-ec2';
import type { Instance } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { discoverInstances, escapeFilterValue } from '../../src/lib/discovery.ts';
import type { RunState } from '../../src/lib/run-state.ts';

const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);

function state(overrides: Partial<RunState> = {}): RunState {
  return {
    runId: '20261128T000000Z-00000000',
    executionArn: 'arn:exec',
    startedAt: '2026-11-28T00:00:00.000Z',
    dryRun: false,
    selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' },
    options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
    notFound: [],

    commands: [],
    instances: [],
    ...overrides,
  };
}

const instance = (id: string, extra: Partial<Instance> = {}): Instance => ({
  InstanceId: id,
  State: { Name: 'running' },
  Platform: 'windows' as Instance['Platform'], // what the API really returns (the SDK's enum says 'Windows')
  RootDeviceName: '/dev/sda1',
  Tags: [{ Key: 'ConsistentSnapshot', Value: 'WindowsVSS' }],
  BlockDeviceMappings: [{ DeviceName: '/dev/sda1', Ebs: { VolumeId: `vol-${id.slice(2)}`, Status: 'attached' as const } }],
  ...extra,
});

describe('discoverInstances', () => {
  beforeEach(() => {
    ec2.reset();
    ssm.reset();
  });

  it('filters by the tag and live states, follows pages, and checks agents in chunks of 50', async () => {
    ec2
      .on(DescribeInstancesCommand)
      .resolvesOnce({ Reservations: [{ Instances: [instance('i-00000001')] }], NextToken: 'p2' })
      .resolvesOnce({ Reservations: [{ Instances: [instance('i-00000002', { Platform: 'Windows' })] }] });
    ssm.on(DescribeInstanceInformationCommand).resolves({
      InstanceInformationList: [
        { InstanceId: 'i-00000001', PingStatus: 'Online' },
        { InstanceId: 'i-00000002', PingStatus: 'Online' },
      ],
    });
    const s = state();

    await discoverInstances({ ec2: ec2 as never, ssm: ssm as never }, s);

    expect(ec2).toHaveReceivedCommandWith(DescribeInstancesCommand, {
      Filters: [
        { Name: 'tag:ConsistentSnapshot', Values: ['WindowsVSS'] },
        { Name: 'instance-state-name', Values: ['pending', 'running', 'stopping', 'stopped'] },
      ],
      MaxResults: 1000,
    });
    expect(ec2).toHaveReceivedCommandTimes(DescribeInstancesCommand, 2);
    expect(ssm).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, { Filters: [{ Key: 'InstanceIds', Values: ['i-00000001', 'i-00000002'] }], MaxResults: 50 });
    expect(s.instances.map((i) => [i.instanceId, i.phase])).toEqual([
      ['i-00000001', 'send'],
      ['i-00000002', 'send'],
    ]);
  });

  it('treats Platform case-insensitively and never widens the selection beyond an exact tag match', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [{ Instances: [instance('i-00000001', { Platform: 'WINDOWS' as Instance['Platform'] }), instance('i-00000002', { Tags: [{ Key: 'ConsistentSnapshot', Value: 'windowsvss' }] })] }],
    });
    ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: 'i-00000001', PingStatus: 'Online' }] });
    const s = state();

    await discoverInstances({ ec2: ec2 as never, ssm: ssm as never }, s);

    expect(s.instances.map((i) => i.instanceId)).toEqual(['i-00000001']);
  });

  it('marks stopped, Linux and volume-less instances skipped and unregistered or offline agents failed, with reasons', async () => {
    ec2.on(DescribeInstancesCommand).resolves({
      Reservations: [
        {
          Instances: [
            instance('i-00000001', { State: { Name: 'stopped' } }),
            instance('i-00000002', { Platform: undefined, PlatformDetails: 'Linux/UNIX' }),
            instance('i-00000003', { BlockDeviceMappings: [] }),
            instance('i-00000004'),
            instance('i-00000005'),
          ],
        },
      ],
    });
    ssm.on(DescribeInstanceInformationCommand).resolves({ InstanceInformationList: [{ InstanceId: 'i-00000005', PingStatus: 'ConnectionLost' }] });
    const s = state();

    await discoverInstances({ ec2: ec2 as never, ssm: ssm as never }, s);

    expect(s.instances.map((i) => [i.instanceId, i.phase, i.code])).toEqual([
      ['i-00000001', 'skipped', 'stopped'],
      ['i-00000002', 'skipped', 'not-windows'],
      ['i-00000003', 'skipped', 'no-ebs'],
      ['i-00000004', 'failed', 'not-managed'],
      ['i-00000005', 'failed', 'agent-offline'],
    ]);
    expect(s.instances.every((i) => (i.reason ?? '').length > 20)).toBe(true);
    expect(ssm).toHaveReceivedCommandWith(DescribeInstanceInformationCommand, { Filters: [{ Key: 'InstanceIds', Values: ['i-00000004', 'i-00000005'] }] });
  });

  it('escapes EC2 filter wildcards in tag values', () => {
    expect(escapeFilterValue('db*?\\x')).toBe('db\\*\\?\\\\x');
  });
});
