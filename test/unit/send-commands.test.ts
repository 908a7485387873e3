import { ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import 'aws-sdk-client-mock-vitest/extend';
import { beforeEach, describe, expect, it } from 'vitest';
import { clock } from '../../src/lib/clock.ts';
import { loadConfig } from '../../src/lib/config.ts';
import type { InstanceRecord, RunState } from '../../src/lib/run-state.ts';
import { commandComment, sendDue } from '../../src/lib/send-commands.ts';
import type { SendIntent } from '../../src/lib/send-commands.ts';

const ssm = mockClient(SSMClient);
const config = loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket' });
const RUN = '20261128T000000Z-00000000';
const NOW = Date.parse('2026-11-28T00:01:00Z');

const record = (n: number, extra: Partial<InstanceRecord> = {}): InstanceRecord => ({
  instanceId: `i-${n.toString(16).padStart(8, '0')}`,
  volumes: [{ volumeId: `vol-${n}`, device: '/dev/sda1', boot: true }],
  phase: 'send',
  dueAt: NOW,
  attempts: 0,
  snapshots: [],
  ...extra,
});

const state = (count: number, extra: (n: number) => Partial<InstanceRecord> = () => ({})): RunState => ({
  runId: RUN,
  executionArn: 'arn:exec',
  startedAt: '2026-11-28T00:00:00.000Z',
  dryRun: false,
  selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' },
  options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
  notFound: [],
  commands: [],
  instances: Array.from({ length: count }, (_, i) => record(i + 1, extra(i + 1))),
});

const intents: SendIntent[] = [];
const deps = (c = config) => ({ ssm: ssm as never, config: c, writeIntent: async (intent: SendIntent) => void intents.push(intent) });
const denied = (id: string) =>
  Object.assign(new Error(`User: arn:aws:sts::123456789012:assumed-role/x/y is not authorized to perform: ssm:SendCommand on resource: arn:aws:ec2:us-east-1:123456789012:instance/${id} because no identity-based policy allows the ssm:SendCommand action`), {
    name: 'AccessDeniedException',
    $fault: 'client',
    $metadata: { httpStatusCode: 400 },
  });

describe('sendDue', () => {
  let now = NOW;
  beforeEach(() => {
    now = NOW;
    clock.now = () => now;
    intents.length = 0;
    ssm.reset();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    let n = 0;
    ssm.on(SendCommandCommand).callsFake(() => ({ Command: { CommandId: `cmd-${++n}` } }));
  });

  it('sends a paced slice in batches of at most 50 with MaxErrors 100% and a pinned version, the rest one slice later', async () => {
    const s = state(120);

    await sendDue(deps(), s);
    await sendDue(deps(), s); // too soon: the next slice is due SEND_SLICE_SECONDS later
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(2);
    now += config.sendSliceSeconds * 1000;
    await sendDue(deps(), s);

    const calls = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.InstanceIds?.length)).toEqual([50, 50, 20]);
    for (const c of calls) {
      expect(c).toMatchObject({ DocumentName: 'AWSEC2-CreateVssSnapshot', DocumentVersion: '1', MaxErrors: '100%', TimeoutSeconds: 600 });
      expect(c.Comment?.length).toBeLessThanOrEqual(100);
      expect(c.Parameters?.tags?.[0]).toContain(`Value=${RUN}`);
    }
    expect(s.instances.every((i) => i.phase === 'command' && i.attempts === 1 && i.commandId)).toBe(true);
    expect(new Set(calls.map((c) => c.Comment)).size).toBe(3);
  });

  it('writes what it is about to send before sending any of it', async () => {
    const s = state(3);
    ssm.on(SendCommandCommand).callsFake(() => {
      expect(intents).toHaveLength(1);
      return { Command: { CommandId: 'cmd-1' } };
    });

    await sendDue(deps(), s);

    expect(intents[0]?.sends).toEqual([{ comment: commandComment(RUN, 1, 1), attempt: 1, instanceIds: ['i-00000001', 'i-00000002', 'i-00000003'], at: NOW }]);
  });

  it('sends an instance due for a retry only once its own retry delay has passed', async () => {
    const s = state(2, (n) => (n === 2 ? { phase: 'retry', attempts: 1, dueAt: NOW + 600_000 } : {}));

    await sendDue(deps(), s);
    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, { InstanceIds: ['i-00000001'] });
    now = NOW + 600_000;
    await sendDue(deps(), s);

    expect(ssm.commandCalls(SendCommandCommand).map((c) => [c.args[0].input.InstanceIds, c.args[0].input.Parameters?.tags?.[0]?.includes('attempt,Value=2')])).toEqual([
      [['i-00000001'], false],
      [['i-00000002'], true],
    ]);
  });

  it('isolates an instance SSM rejects so the rest of its batch still gets the command', async () => {
    ssm.on(SendCommandCommand).callsFake((input: { InstanceIds: string[] }) => {
      if (input.InstanceIds.includes('i-00000002')) throw Object.assign(new Error('Instances not in a valid state'), { name: 'InvalidInstanceId', $fault: 'client' });
      return { Command: { CommandId: `cmd-${input.InstanceIds.join(',')}` } };
    });
    const s = state(4);

    await sendDue(deps(), s);

    expect(s.instances.map((i) => [i.instanceId, i.phase])).toEqual([
      ['i-00000001', 'command'],
      ['i-00000002', 'retry'],
      ['i-00000003', 'command'],
      ['i-00000004', 'command'],
    ]);
    expect(s.instances[1]?.code).toBe('send-rejected');
  });

  it('takes out the instance IAM names when the whole call is denied, fails it as access-denied without retry, and sends the rest', async () => {
    ssm.on(SendCommandCommand).callsFake((input: { InstanceIds: string[] }) => {
      if (input.InstanceIds.includes('i-00000033')) throw denied('i-00000033');
      return { Command: { CommandId: `cmd-${input.InstanceIds.length}` } };
    });
    const s = state(100);

    await sendDue(deps(), s);

    const sent = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input.InstanceIds?.length);
    expect(sent).toEqual([50, 50, 49]);
    const deniedRecord = s.instances.find((i) => i.instanceId === 'i-00000033');
    expect(deniedRecord).toMatchObject({ phase: 'failed', code: 'access-denied', attempts: 0 });
    expect(deniedRecord?.reason).toContain('ConsistentSnapshot=WindowsVSS');
    expect(deniedRecord?.reason).toMatch(/not retried/);
    expect(s.instances.filter((i) => i.phase === 'command')).toHaveLength(99);
  });

  it('splits a denied batch when the denial names no instance of it, until the denied one is alone', async () => {
    ssm.on(SendCommandCommand).callsFake((input: { InstanceIds: string[] }) => {
      if (input.InstanceIds.includes('i-00000003')) throw denied('i-unknown');
      return { Command: { CommandId: 'ok' } };
    });
    const s = state(8);

    await sendDue(deps(), s);

    expect(s.instances.filter((i) => i.phase === 'failed').map((i) => i.instanceId)).toEqual(['i-00000003']);
    expect(s.instances.filter((i) => i.phase === 'command')).toHaveLength(7);
  });

  it('fails the whole batch as access-denied with one call when IAM refuses the document itself', async () => {
    ssm.on(SendCommandCommand).rejects(
      Object.assign(new Error('User: arn:aws:sts::123456789012:assumed-role/x/y is not authorized to perform: ssm:SendCommand on resource: arn:aws:ssm:us-east-1::document/AWSEC2-CreateVssSnapshot'), {
        name: 'AccessDeniedException',
        $fault: 'client',
        $metadata: { httpStatusCode: 400 },
      }),
    );
    const s = state(8);

    await sendDue(deps(), s);

    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
    expect(s.instances.every((i) => i.phase === 'failed' && i.code === 'access-denied')).toBe(true);
    expect(s.instances[0]?.reason).toContain('document/AWSEC2-CreateVssSnapshot');
  });

  it('fails without sending the instances that lack the deployed tag (the input chose another tag)', async () => {
    const s = state(3, (n) => (n === 2 ? { inSendScope: false } : { inSendScope: true }));

    await sendDue(deps(), s);

    expect(ssm).toHaveReceivedCommandWith(SendCommandCommand, { InstanceIds: ['i-00000001', 'i-00000003'] });
    expect(s.instances[1]).toMatchObject({ phase: 'failed', code: 'access-denied' });
    expect(s.instances[1]?.reason).toContain('lacks the tag ConsistentSnapshot=WindowsVSS');
  });

  it('streams the full command output to CloudWatch Logs when a log group is configured, and not otherwise', async () => {
    const withLogs = loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket', COMMAND_LOG_GROUP: '/vss-snapshots/prod/command-output' });

    await sendDue(deps(withLogs), state(1));
    await sendDue(deps(), state(1));

    const [logged, plain] = ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input);
    expect(logged?.CloudWatchOutputConfig).toEqual({ CloudWatchOutputEnabled: true, CloudWatchLogGroupName: '/vss-snapshots/prod/command-output' });
    expect(plain?.CloudWatchOutputConfig).toBeUndefined();
  });

  it('refuses a malformed COMMAND_LOG_GROUP naming the variable', () => {
    expect(() => loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket', COMMAND_LOG_GROUP: 'bad name;rm' })).toThrow(/COMMAND_LOG_GROUP/);
  });
});
