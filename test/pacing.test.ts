/**
 * Paced sending (issue 6): a wave's commands go out in slices, because every instance's VSS agent calls
 * EC2 CreateSnapshots inside a 10-second freeze and the account's bucket for that call holds 100 tokens
 * refilled at 5 per second. Checked at the unit level and on the simulated account with its limits on.
 */
import { ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/lib/config.ts';
import type { InstanceRecord, RunState } from '../src/lib/run-state.ts';
import { sendSnapshotCommands } from '../src/lib/send-commands.ts';
import { accountLimits, TokenBucket } from '../src/local/limits.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { runWorkflow } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import { readReport } from './helpers.ts';

const ssm = mockClient(SSMClient);
const config = loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'reports-bucket' });

const stateOf = (count: number): RunState => ({
  runId: '20261128T000000Z-00000000',
  executionArn: 'arn:exec',
  startedAt: '2026-11-28T00:00:00.000Z',
  dryRun: false,
  selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' },
  options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
  notFound: [],
  wave: 0,
  commands: [],
  instances: Array.from({ length: count }, (_, i): InstanceRecord => ({
    instanceId: `i-${(i + 1).toString(16).padStart(8, '0')}`,
    volumes: [{ volumeId: `vol-${i}`, device: '/dev/sda1', boot: true }],
    phase: 'send',
    attempts: 0,
    snapshots: [],
  })),
});

describe('sendSnapshotCommands in slices', () => {
  beforeEach(() => {
    ssm.reset();
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
    let n = 0;
    ssm.on(SendCommandCommand).callsFake(() => ({ Command: { CommandId: `cmd-${++n}` } }));
  });
  // The mock replaces every SSMClient's send, the workflow's own clients included.
  afterAll(() => ssm.restore());

  it('sends at most SEND_SLICE_INSTANCES per invocation and keeps the rest of the wave for the next one', async () => {
    const state = stateOf(250);

    const sliceSizes: number[] = [];
    for (let i = 0; i < 3; i += 1) {
      const before = ssm.commandCalls(SendCommandCommand).length;
      await sendSnapshotCommands({ ssm: ssm as never, config }, state);
      sliceSizes.push(ssm.commandCalls(SendCommandCommand).slice(before).reduce((n, c) => n + (c.args[0].input.InstanceIds?.length ?? 0), 0));
    }

    expect(sliceSizes).toEqual([100, 100, 50]);
    expect(state.wave).toBe(1);
    expect(state.instances.every((i) => i.phase === 'command' && i.attempts === 1)).toBe(true);
    expect(ssm.commandCalls(SendCommandCommand).map((c) => c.args[0].input.Comment?.replace(/^.* batch /, ''))).toEqual(['1', '2', '3', '4', '5']);
  });

  it('starts a new wave with the instances to retry once the current wave is all sent', async () => {
    const state = stateOf(3);
    await sendSnapshotCommands({ ssm: ssm as never, config }, state);
    for (const record of state.instances.slice(0, 2)) record.phase = 'retry';
    (state.instances[2] as InstanceRecord).phase = 'succeeded';

    await sendSnapshotCommands({ ssm: ssm as never, config }, state);

    expect(state.wave).toBe(2);
    expect(ssm.commandCalls(SendCommandCommand).at(-1)?.args[0].input).toMatchObject({ InstanceIds: ['i-00000001', 'i-00000002'] });
    expect(state.instances.map((i) => [i.phase, i.attempts])).toEqual([
      ['command', 2],
      ['command', 2],
      ['succeeded', 1],
    ]);
  });
});

describe('the simulated account under its EC2 limits', () => {
  const fleet = parseFleet({ instances: Array.from({ length: 300 }, () => ({ commandSeconds: 60, snapshotMinutes: 10 })) });

  it('queues an instance CreateSnapshots call behind earlier ones, and refuses it past the allowed wait', () => {
    const bucket = new TokenBucket({ burst: 2, perSecond: 1 }, 0);

    expect([bucket.reserve(0, 10_000), bucket.reserve(0, 10_000), bucket.reserve(0, 10_000), bucket.reserve(0, 1_500)]).toEqual([0, 0, 1000, undefined]);
  });

  it('snapshots 300 instances on the first attempt when the commands go out in paced slices', async () => {
    const world = worldFromFleet(fleet);
    const limits = accountLimits(world);

    const result = await runWorkflow(world, { interceptors: [limits.interceptor] });
    limits.uninstall();

    const report = readReport(world, result);
    expect(report?.summary).toMatchObject({ targeted: 300, succeeded: 300, failed: 0 });
    expect(report?.instances.every((i) => i.attempts === 1)).toBe(true);
    expect(limits.stats.instance.failed).toBe(0);
    const sentAt = [...world.commands.values()].map((c) => c.requestedAt);
    expect(sentAt[2] ?? 0).toBeGreaterThanOrEqual((sentAt[0] ?? 0) + 20_000);
  });

  it('loses half of them to VSS freeze timeouts when all 300 commands go out at once', async () => {
    const world = worldFromFleet(fleet);
    const limits = accountLimits(world);

    const result = await runWorkflow(world, { interceptors: [limits.interceptor], env: { SEND_SLICE_INSTANCES: '300' } });
    limits.uninstall();

    const report = readReport(world, result);
    // 100 tokens at once, then 5 per second for the 10-second freeze (a little more: the six sends take time).
    const timedOut = limits.stats.instance.failed;
    expect(timedOut).toBeGreaterThan(120);
    expect(report?.instances.filter((i) => i.attempts === 2)).toHaveLength(timedOut);
    expect(report?.summary.succeeded).toBe(300);
  });
});
