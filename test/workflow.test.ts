/**
 * Workflow tests: the real ASL with the real handlers on the simulated account, one per behaviour of
 * contract §5, checked against the report and against the world dump (ground truth).
 */
import { describe, expect, it } from 'vitest';
import { REPORT_BUCKET, runWorkflow } from '../src/local/runner.ts';
import { runFleet, runSnapshotsByVolume, twoVolumes } from './helpers.ts';

const ID = 'i-0123456789abcdef0';
const single = (behaviours: string[], extra: Record<string, unknown> = {}) => ({
  instances: [{ instanceId: ID, name: 'srv-01', volumes: twoVolumes, attempts: behaviours, ...extra }],
});

describe('each behaviour of the fleet table gets the reaction the contract expects', () => {
  it('snapshots every volume of a healthy instance, app-consistent and tagged, with no alert', async () => {
    const { result, report, dump } = await runFleet(single(['ok']));

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.instances).toEqual([expect.objectContaining({ instanceId: ID, outcome: 'succeeded', attempts: 1 })]);
    expect(report?.alert).toBeNull();
    const byVolume = runSnapshotsByVolume(dump, report?.runId ?? '');
    expect(byVolume.size).toBe(2);
    for (const snaps of byVolume.values()) {
      expect(snaps).toHaveLength(1);
      expect(snaps[0]).toMatchObject({ state: 'completed', instanceId: ID, tags: expect.objectContaining({ AppConsistent: 'true' }) });
    }
    expect(report?.instances[0]?.snapshots.map((s) => s.snapshotId).sort()).toEqual([...byVolume.values()].flat().map((s) => s.snapshotId).sort());
    expect(dump.published).toEqual([]);
  });

  it.each([
    ['vss-timeout', 'vss-timeout'],
    ['undeliverable', 'undeliverable'],
    ['hang', 'execution-timeout'],
    ['no-snapshots', 'no-snapshots'],
    ['untagged', 'no-snapshots'],
    ['crash-consistent', 'crash-consistent'],
    ['snapshot-error', 'snapshot-error'],
  ])('retries %s up to maxAttempts, then fails it with a reason and an alert', async (behaviour, code) => {
    const { result, report, dump } = await runFleet(single([behaviour]));

    expect(result.status).toBe('SUCCEEDED');
    const instance = report?.instances[0];
    expect(instance).toMatchObject({ outcome: 'failed', attempts: 3, code });
    expect(instance?.reason).toMatch(/gave up after 3 attempts/);
    const commandsToInstance = dump.commands.filter((c) => c.instanceIds.includes(ID));
    expect(commandsToInstance).toHaveLength(3);
    expect(dump.published).toHaveLength(1);
    expect(dump.published[0]?.message).toContain(ID);
    expect(report?.alert?.message).toContain(ID);
  });

  it.each([
    ['writer-failure', 'vss-writer-nonretryable'],
    ['access-denied', 'access-denied'],
  ])('fails %s after one attempt without retrying', async (behaviour, code) => {
    const { report, dump } = await runFleet(single([behaviour]));

    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', attempts: 1, code });
    expect(report?.instances[0]?.reason).toMatch(/not retried/);
    expect(dump.commands).toHaveLength(1);
    expect(dump.published).toHaveLength(1);
    expect(dump.published[0]?.message).toContain(ID);
  });

  it('succeeds on the second attempt after a VSS timeout and keeps exactly one snapshot per volume', async () => {
    const { report, dump } = await runFleet(single(['crash-consistent', 'ok']));

    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded', attempts: 2 });
    const byVolume = runSnapshotsByVolume(dump, report?.runId ?? '');
    for (const snaps of byVolume.values()) expect(snaps).toHaveLength(1);
    expect(dump.deletedSnapshots).toHaveLength(2);
    expect(report?.alert).toBeNull();
  });

  it('waits for the retry delay of 10 minutes between attempts', async () => {
    const { dump } = await runFleet(single(['vss-timeout', 'ok']));

    const [first, second] = dump.commands.map((c) => Date.parse(c.requestedAt));
    expect((second ?? 0) - (first ?? 0)).toBeGreaterThanOrEqual(10 * 60_000);
  });

  it('waits for snapshots that stay pending for hours instead of failing them early', async () => {
    const { report, result } = await runFleet(single(['ok'], { snapshotMinutes: 240 }));

    expect(report?.instances[0]?.outcome).toBe('succeeded');
    expect(result.stats.simulatedSeconds).toBeGreaterThanOrEqual(240 * 60);
  });

  it('gives up on snapshots still pending at the deadline with a reason', async () => {
    const { report, dump } = await runFleet(single(['ok'], { snapshotMinutes: 600 }), { env: { SNAPSHOT_DEADLINE_SECONDS: '3600' } });

    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'snapshot-timeout', attempts: 1 });
    // Its set is app-consistent, only not complete yet: kept as the fallback, and not labelled crash-consistent.
    expect(report?.instances[0]?.fallbackSnapshots).toHaveLength(2);
    expect(dump.snapshots).toHaveLength(2);
    for (const s of dump.snapshots) {
      expect(s.tags).toMatchObject({ AppConsistent: 'true', 'vss-snapshots:fallback': 'snapshot-timeout' });
      expect(s.tags).not.toHaveProperty('vss-snapshots:consistency');
    }
  });

  it('reports a script still running at the document executionTimeout as an execution timeout, as SSM ends it', async () => {
    const { report, dump } = await runFleet(single(['ok'], { commandSeconds: 400 }), { env: { COMMAND_TIMEOUT_SECONDS: '300' }, input: { maxAttempts: 1 } });

    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'execution-timeout', attempts: 1 });
    expect(dump.commands[0]?.invocations[0]).toMatchObject({ status: 'TimedOut', statusDetails: 'ExecutionTimedOut' });
    expect(dump.snapshots).toHaveLength(0);
  });
});

describe('discovery', () => {
  it('reports stopped, Linux and volume-less instances as skipped, offline or unmanaged agents as failed, and ignores untagged ones', async () => {
    const fleet = {
      instances: [
        { instanceId: 'i-00000000000000001', state: 'stopped' },
        { instanceId: 'i-00000000000000002', platform: 'linux' },
        { instanceId: 'i-00000000000000003', volumes: [] },
        { instanceId: 'i-00000000000000004', agent: 'offline' },
        { instanceId: 'i-00000000000000005', agent: 'none' },
        { instanceId: 'i-00000000000000006', tags: { ConsistentSnapshot: 'windowsvss' } },
        { instanceId: 'i-00000000000000007', tags: { Other: 'WindowsVSS' } },
      ],
    };
    const { report, dump } = await runFleet(fleet);

    const outcome = Object.fromEntries((report?.instances ?? []).map((i) => [i.instanceId, [i.outcome, i.code]]));
    expect(outcome).toEqual({
      'i-00000000000000001': ['skipped', 'stopped'],
      'i-00000000000000002': ['skipped', 'not-windows'],
      'i-00000000000000003': ['skipped', 'no-ebs'],
      'i-00000000000000004': ['failed', 'agent-offline'],
      'i-00000000000000005': ['failed', 'not-managed'],
    });
    expect(dump.commands).toEqual([]);
    expect(dump.published).toHaveLength(1);
  });

  it('alerts when nothing matches the selector', async () => {
    const { report, dump } = await runFleet({ instances: [{ tags: { Backup: 'yes' } }] });

    expect(report?.summary.targeted).toBe(0);
    expect(report?.alert?.subject).toMatch(/no instance matched/);
    expect(dump.published).toHaveLength(1);
  });

  it('selects by the tag and the instance ids given in the input, and lists requested ids that matched nothing', async () => {
    const fleet = { instances: [{ instanceId: 'i-00000000000000001' }, { instanceId: 'i-00000000000000002' }, { instanceId: 'i-00000000000000003', tags: { Team: 'db' } }] };
    const { report, dump } = await runFleet(fleet, { input: { instanceIds: ['i-00000000000000002', 'i-00000000000000003'] } });

    expect(report?.instances.map((i) => i.instanceId)).toEqual(['i-00000000000000002']);
    expect(report?.notFound).toEqual(['i-00000000000000003']);
    expect(dump.commands.flatMap((c) => c.instanceIds)).toEqual(['i-00000000000000002']);
  });

  it('selects by an operator-given tag, treating wildcard characters in the value as data', async () => {
    const fleet = {
      instances: [
        { instanceId: 'i-00000000000000001', tags: { Team: 'db*' } },
        { instanceId: 'i-00000000000000002', tags: { Team: 'dba' } },
      ],
    };
    const { report } = await runFleet(fleet, { input: { tagKey: 'Team', tagValue: 'db*' } });

    expect(report?.instances.map((i) => i.instanceId)).toEqual(['i-00000000000000001']);
    expect(report?.selector).toEqual({ tagKey: 'Team', tagValue: 'db*' });
  });
});

describe('sending', () => {
  it('sends at most 50 instance ids per command, one wave, no instance twice', async () => {
    const fleet = { instances: Array.from({ length: 120 }, () => ({})) };
    const { report, dump } = await runFleet(fleet);

    expect(dump.commands.map((c) => c.instanceIds.length)).toEqual([50, 50, 20]);
    const ids = dump.commands.flatMap((c) => c.instanceIds);
    expect(new Set(ids).size).toBe(120);
    expect(report?.summary).toMatchObject({ targeted: 120, succeeded: 120, failed: 0, snapshots: 120 });
  });

  it('passes the run id, attempt, shard and stack into the document so they end up in the snapshot tags, with a pinned version', async () => {
    const { report, dump } = await runFleet(single(['ok']));

    const command = dump.commands[0];
    expect(command?.documentName).toBe('AWSEC2-CreateVssSnapshot');
    expect(command?.documentVersion).toBe('1');
    expect(command?.parameters.tags?.[0]).toBe(`Key=vss-snapshots:run-id,Value=${report?.runId};Key=vss-snapshots:attempt,Value=1;Key=vss-snapshots:method,Value=aws-vss;Key=vss-snapshots:shard,Value=0;Key=vss-snapshots:stack,Value=vss-snapshots-local`);
    expect(dump.snapshots.every((s) => s.tags['vss-snapshots:run-id'] === report?.runId && s.tags['vss-snapshots:shard'] === '0' && s.tags['vss-snapshots:stack'] === 'vss-snapshots-local')).toBe(true);
  });

  it('excludes the boot volume when asked', async () => {
    const { report, dump } = await runFleet(single(['ok']), { input: { excludeBootVolume: true } });

    expect(dump.commands[0]?.parameters.ExcludeBootVolume).toEqual(['True']);
    expect(report?.instances[0]?.snapshots.map((s) => s.device)).toEqual(['xvdf']);
    expect(report?.instances[0]?.outcome).toBe('succeeded');
  });
});

describe('dry run and input', () => {
  it('plans without sending or creating anything and publishes no alert', async () => {
    const fleet = { instances: [{ instanceId: 'i-00000000000000001' }, { instanceId: 'i-00000000000000002', agent: 'offline' }] };
    const { report, dump } = await runFleet(fleet, { input: { dryRun: true } });

    expect(report?.dryRun).toBe(true);
    expect(report?.instances.map((i) => i.outcome)).toEqual(['planned', 'failed']);
    expect(report?.alert).toBeNull();
    expect(dump.commands).toEqual([]);
    expect(dump.snapshots).toEqual([]);
    expect(dump.published).toEqual([]);
  });

  it('ignores the Comment the console pre-fills', async () => {
    const { result, report } = await runFleet(single(['ok']), { input: { Comment: 'Insert your JSON here' } });

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.instances[0]?.outcome).toBe('succeeded');
  });

  it.each([
    [{ instanceID: ['i-0123456789abcdef0'] }, /unknown field "instanceID".*allowed fields: tagKey, tagValue, instanceIds/],
    [{ instanceIds: ['i-123'] }, /instanceIds\[0\].*not an EC2 instance id/],
    [{ maxAttempts: '3' }, /maxAttempts.*whole number from 1 to 5/],
    [{ dryRun: 'true' }, /dryRun.*true or false/],
    [{ instanceIds: Array.from({ length: 1001 }, (_, i) => `i-${i.toString(16).padStart(8, '0')}`) }, /instanceIds.*1-1000/],
    [{ instanceIds: ['i-0123456789abcdef0', 'i-0123456789abcdef0'] }, /more than once/],
    [['i-0123456789abcdef0'], /must be a JSON object/],
  ])('rejects %j with InvalidInputError naming the field, before anything is sent', async (input, message) => {
    const { result, dump } = await runFleet(single(['ok']), { input });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('InvalidInputError');
    expect(result.cause).toMatch(message);
    expect(dump.commands).toEqual([]);
    expect(dump.published).toEqual([]);
    expect(dump.objects).toEqual([]);
  });
});

describe('overlap guard and workflow failures', () => {
  it('refuses to start while another execution holds the run lease, alerts, runs with force, and takes over a lease whose holder stopped', async () => {
    const { world } = await runFleet({ instances: [] });
    const earlier = 'arn:aws:states:us-east-1:123456789012:execution:vss-snapshots-nightly:earlier';
    world.executions.push({ executionArn: earlier, stateMachineArn: 'arn:aws:states:us-east-1:123456789012:stateMachine:vss-snapshots-nightly', name: 'earlier', status: 'RUNNING', startDate: world.now - 60_000, input: '{}' });
    const lease = { holder: earlier, holderName: 'earlier', acquiredAt: new Date(world.now - 60_000).toISOString(), expiresAt: new Date(world.now + 86_400_000).toISOString() };
    world.buckets.get(REPORT_BUCKET)?.set('leases/vss-snapshots-nightly.json', JSON.stringify(lease));
    world.etags.set(`${REPORT_BUCKET}/leases/vss-snapshots-nightly.json`, '"earlier"');
    const published = world.published.length;

    const refused = await runWorkflow(world, {});
    expect(refused).toMatchObject({ status: 'FAILED', error: 'RunInProgressError' });
    expect(refused.cause).toMatch(/earlier/);
    expect(world.published.slice(published).map((p) => p.subject)).toEqual(['vss-snapshots: workflow failed at Prepare Run']);

    const forced = await runWorkflow(world, { input: { force: true } });
    expect(forced.status).toBe('SUCCEEDED');

    // The earlier execution was aborted without releasing its lease: the next run takes it over.
    (world.executions.find((e) => e.executionArn === earlier) as { status: string }).status = 'ABORTED';
    const next = await runWorkflow(world, {});
    expect(next.status).toBe('SUCCEEDED');
    expect(JSON.parse(world.buckets.get(REPORT_BUCKET)?.get('leases/vss-snapshots-nightly.json') ?? '{}')).toMatchObject({ holder: next.executionArn, released: true });
  });

  it('alerts naming the failed step when a step fails for good, and still writes what it knows', async () => {
    const { result, dump } = await runFleet(single(['ok']), {
      interceptors: [({ operation }) => {
        if (operation === 'SendCommand') throw Object.assign(new Error('Document is not accessible'), { name: 'InvalidDocument', $metadata: { httpStatusCode: 400 } });
      }],
    });

    expect(result).toMatchObject({ status: 'FAILED', error: 'InvalidDocument' });
    expect(dump.published).toHaveLength(1);
    expect(dump.published[0]?.subject).toBe('vss-snapshots: workflow failed at Advance Instances');
    expect(dump.published[0]?.message).toMatch(/Document is not accessible/);
    expect(dump.objects.some((o) => o.includes('/reports/'))).toBe(true);
  });
});
