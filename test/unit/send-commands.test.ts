import { ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/lib/config.ts';
import type { InstanceRecord, RunState } from '../../src/lib/run-state.ts';
import { commandComment, sendSnapshotCommands } from '../../src/lib/send-commands.ts';

const ssm = mockClient(SSMClient);
const config = loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket' });
const RUN = '20261128T000000Z-00000000';

const record = (n: number): InstanceRecord => ({
  instanceId: `i-${n.toString(16).padStart(8, '0')}`,
  volumes: [{ volumeId: `vol-${n}`, device: '/dev/sda1', boot: true }],
  phase: 'send',
  attempts: 0,
  snapshots: [],
});

const state = (count: number): RunState => ({
  runId: RUN,
  executionArn: 'arn:exec',
  startedAt: '2026-11-28T00:00:00.000Z',
  dryRun: false,
  selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' },
  options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
  notFound: [],
  wave: 0,
  commands: [],
  instances: Array.from({ length: count }, (_, i) => record(i + 1)),
});

describe('sendSnapshotCommands', () => {
  beforeEach(() => {
    ssm.reset();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    let n = 0;
    ssm.on(SendCommandCommand).callsFake(() => ({ Command: { CommandId: `cmd-${++n}` } }));
  });

  it('sends 120 instances in batches of at most 50 with MaxErrors 100% and a pinned version', async () => {
    const s = state(120);

    // Two invocations: a slice is at most SEND_SLICE_INSTANCES (100) instances.
    await sendSnapshotCommands({ ssm: ssm as never, config }, s);
    await sendSnapshotCommands({ ssm: ssm as never, config }, s);

    const calls = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.InstanceIds?.length)).toEqual([50, 50, 20]);
    for (const c of calls) {
      expect(c).toMatchObject({ DocumentName: 'AWSEC2-CreateVssSnapshot', DocumentVersion: '1', MaxErrors: '100%', TimeoutSeconds: 600 });
      expect(c.Comment?.length).toBeLessThanOrEqual(100);
      expect(c.Parameters?.tags?.[0]).toContain(`Value=${RUN}`);
    }
    expect(s.instances.every((i) => i.phase === 'command' && i.attempts === 1)).toBe(true);
    expect(s.wave).toBe(1);
  });

  it('does not send again to instances a previous, interrupted try already sent to', async () => {
    ssm.on(ListCommandsCommand).resolves({
      Commands: [{ CommandId: 'earlier', Comment: commandComment(RUN, 1, 1, 1), InstanceIds: ['i-00000001', 'i-00000002'], RequestedDateTime: new Date('2026-11-28T00:00:05Z') }],
    });
    const s = state(3);

    await sendSnapshotCommands({ ssm: ssm as never, config }, s);

    expect(ssm).toHaveReceivedCommandTimes(SendCommandCommand, 1);
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, { InstanceIds: ['i-00000003'] });
    expect(s.instances.map((i) => i.commandId)).toEqual(['earlier', 'earlier', 'cmd-1']);
  });

  it('isolates an instance SSM rejects so the rest of its batch still gets the command', async () => {
    ssm.on(SendCommandCommand).callsFake((input: { InstanceIds: string[] }) => {
      if (input.InstanceIds.includes('i-00000002')) throw Object.assign(new Error('Instances not in a valid state'), { name: 'InvalidInstanceId' });
      return { Command: { CommandId: `cmd-${input.InstanceIds.join(',')}` } };
    });
    const s = state(4);

    await sendSnapshotCommands({ ssm: ssm as never, config }, s);

    expect(s.instances.map((i) => [i.instanceId, i.phase])).toEqual([
      ['i-00000001', 'command'],
      ['i-00000002', 'retry'],
      ['i-00000003', 'command'],
      ['i-00000004', 'command'],
    ]);
    expect(s.instances[1]?.code).toBe('send-rejected');
  });

  it('streams the full command output to CloudWatch Logs when a log group is configured, and not otherwise', async () => {
    const withLogs = loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket', COMMAND_LOG_GROUP: '/vss-snapshots/prod/command-output' });

    await sendSnapshotCommands({ ssm: ssm as never, config: withLogs }, state(1));
    await sendSnapshotCommands({ ssm: ssm as never, config }, state(1));

    const [logged, plain] = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(logged?.CloudWatchOutputConfig).toEqual({ CloudWatchOutputEnabled: true, CloudWatchLogGroupName: '/vss-snapshots/prod/command-output' });
    expect(plain?.CloudWatchOutputConfig).toBeUndefined();
  });

  it('refuses a malformed COMMAND_LOG_GROUP naming the variable', () => {
    expect(() => loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket', COMMAND_LOG_GROUP: 'bad name;rm' })).toThrow(/COMMAND_LOG_GROUP/);
  });
});
