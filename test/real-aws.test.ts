/**
 * Real AWS, not a kind one (issue 10): one test per behaviour the audit found the simulated account too kind
 * about, each on the real workflow against the simulated account with that behaviour forced, checked against
 * the account's ground truth. Each of these failed before the workflow learnt to survive it.
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ATTEMPT_TAG, RUN_TAG } from '../src/lib/run-id.ts';
import { SimulatedAwsError } from '../src/local/aws-error.ts';
import { ConsistencyModel } from '../src/local/consistency.ts';
import type { LagKind } from '../src/local/consistency.ts';
import { faultLogOf, socketTimeoutError } from '../src/local/faults.ts';
import { loadFleetFile, parseFleet } from '../src/local/fleet.ts';
import { DEFAULT_LIMITS, accountLimits } from '../src/local/limits.ts';
import { applyCall } from '../src/local/operations.ts';
import { runWorkflow } from '../src/local/runner.ts';
import type { CallInterceptor } from '../src/local/transport.ts';
import { worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';
import { readReport, runSnapshotsByVolume, twoVolumes } from './helpers.ts';
import { checkRunInvariants, doubleCommands, doubleSnapshotSets } from './reliability-helpers.ts';

/** No background API faults: each test forces exactly the behaviour it is about. */
const CLEAN = { faults: { rate: 0 } };
const world = (fleet: unknown, lags?: Partial<Record<LagKind, number>>): World => {
  const w = worldFromFleet(parseFleet(fleet, 'test fleet'));
  if (lags) w.consistency = new ConsistencyModel({ maxLagSeconds: 0, seed: 1 }, lags);
  return w;
};
const run = async (w: World, options: Parameters<typeof runWorkflow>[1] = {}) => {
  const result = await runWorkflow(w, options);
  return { result, report: readReport(w, result), dump: w.dump() };
};
const ids = (n: number, prefix = '0') => Array.from({ length: n }, (_, i) => `i-${prefix}${(i + 1).toString(16).padStart(16, '0')}`);

describe('1. IAM evaluates ssm:SendCommand against every instance of the call', () => {
  it('fails the one instance the role may not touch (selected by another tag) as access-denied and snapshots the other 119', async () => {
    const instances = ids(120).map((instanceId, i) => ({ instanceId, tags: i === 77 ? { Backup: 'pre-change' } : { Backup: 'pre-change', ConsistentSnapshot: 'WindowsVSS' } }));
    const w = world({ ...CLEAN, instances });

    const { result, report, dump } = await run(w, { input: { tagKey: 'Backup', tagValue: 'pre-change' } });

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.summary).toMatchObject({ targeted: 120, succeeded: 119, failed: 1 });
    const denied = report?.instances.find((i) => i.instanceId === instances[77]?.instanceId);
    expect(denied).toMatchObject({ outcome: 'failed', code: 'access-denied', attempts: 0 });
    expect(denied?.reason).toContain('ConsistentSnapshot=WindowsVSS');
    expect(dump.commands.flatMap((c) => c.instanceIds)).not.toContain(instances[77]?.instanceId);
    expect(report?.alert?.message).toContain(instances[77]?.instanceId);
  });

  it('isolates an instance whose tag was removed after discovery: the whole call is denied, the others are sent again', async () => {
    const instances = ids(120).map((instanceId) => ({ instanceId }));
    const w = world({ ...CLEAN, instances });
    const victim = instances[33]?.instanceId as string;

    const { result, report, dump } = await run(w, {
      onEvent: (event, account) => {
        if (event.type === 'StateExited' && event.state.name === 'Discover Instances') delete account.instances.get(victim)?.tags.ConsistentSnapshot;
      },
    });

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.summary).toMatchObject({ targeted: 120, succeeded: 119, failed: 1 });
    expect(report?.instances.find((i) => i.instanceId === victim)).toMatchObject({ outcome: 'failed', code: 'access-denied', attempts: 0 });
    expect(dump.mutations.filter((m) => m.call === 'ssm:SendCommand' && !m.ok).map((m) => m.error)).toEqual(['AccessDeniedException']);
    expect(dump.commands.flatMap((c) => c.instanceIds)).toHaveLength(119);
  });
});

describe('2. SSM lists a just-sent command, and its invocations, only after a while', () => {
  const lostFirstSend = (w: World, hideForMs: number): CallInterceptor => {
    let done = false;
    return async ({ service, operation, input }) => {
      if (done || service !== 'ssm' || operation !== 'SendCommand') return;
      done = true;
      const out = await applyCall(w, service, operation, input);
      const command = w.commands.get((out.Command as { CommandId: string }).CommandId);
      if (command) command.listedAt = w.now + hideForMs;
      throw socketTimeoutError();
    };
  };

  it('sends one command per instance and attempt when the answer of SendCommand is lost and ListCommands lags 30 s', async () => {
    const w = world({ ...CLEAN, consistency: { maxLagSeconds: 30 }, instances: ids(3).map((instanceId) => ({ instanceId, volumes: twoVolumes })) });

    const { result, report, dump } = await run(w, { interceptors: [lostFirstSend(w, 30_000)] });

    expect(result.status).toBe('SUCCEEDED');
    expect(dump.commands).toHaveLength(1);
    expect(doubleCommands(dump)).toEqual([]);
    expect(dump.snapshots.filter((s) => s.tags[RUN_TAG] === report?.runId)).toHaveLength(6);
    expect(report?.summary).toMatchObject({ succeeded: 3, snapshots: 6 });
  });

  it('sends one command per instance and attempt when the answer of the second part of a send split by an IAM denial is lost', async () => {
    const w = world({ ...CLEAN, consistency: { maxLagSeconds: 30 }, instances: ids(3).map((instanceId) => ({ instanceId })) });
    const victim = ids(3)[1] as string;
    let lost = false;
    const loseSplitPart: CallInterceptor = async ({ service, operation, input }) => {
      if (lost || service !== 'ssm' || operation !== 'SendCommand' || !/\.1$/.test(String(input.Comment))) return;
      lost = true;
      const out = await applyCall(w, service, operation, input);
      const command = w.commands.get((out.Command as { CommandId: string }).CommandId);
      if (command) command.listedAt = w.now + 30_000;
      throw socketTimeoutError();
    };

    const { report, dump } = await run(w, {
      interceptors: [loseSplitPart],
      onEvent: (event, account) => {
        if (event.type === 'StateExited' && event.state.name === 'Discover Instances') delete account.instances.get(victim)?.tags.ConsistentSnapshot;
      },
    });

    expect(lost).toBe(true);
    expect(doubleCommands(dump)).toEqual([]);
    expect(dump.commands.flatMap((c) => c.instanceIds).sort()).toEqual([ids(3)[0], ids(3)[2]]);
    expect(report?.summary).toMatchObject({ succeeded: 2, failed: 1 });
  });

  it('keeps exactly one verified set per instance, deletes the extra one, and does not fail the instance, when the listing lags beyond any bound', async () => {
    const w = world({ ...CLEAN, instances: ids(2).map((instanceId) => ({ instanceId, volumes: twoVolumes })) });

    // Unlisted for 10 minutes, past the 5-minute confirm window: the workflow takes it as never sent and sends again.
    const { result, report, dump } = await run(w, { interceptors: [lostFirstSend(w, 600_000)] });

    expect(result.status).toBe('SUCCEEDED');
    expect(dump.commands).toHaveLength(2);
    expect(report?.instances.map((i) => [i.outcome, i.attempts])).toEqual([
      ['succeeded', 1],
      ['succeeded', 1],
    ]);
    for (const snaps of runSnapshotsByVolume(dump, report?.runId ?? '').values()) expect(snaps).toHaveLength(1);
    expect(dump.deletedSnapshots.filter((s) => s.tags[RUN_TAG] === report?.runId)).toHaveLength(4);
    const kept = new Set(report?.instances.flatMap((i) => i.snapshots.map((s) => s.snapshotId)));
    expect(dump.snapshots.filter((s) => s.tags[RUN_TAG] === report?.runId).every((s) => kept.has(s.snapshotId))).toBe(true);
  });
});

describe('3. AWSEC2-CreateVssSnapshot tags AppConsistent after the thaw, and DescribeSnapshots shows it late', () => {
  it('waits for a tag that shows up 15 s late instead of judging the snapshots crash-consistent', async () => {
    const w = world({ ...CLEAN, instances: ids(8).map((instanceId) => ({ instanceId, volumes: twoVolumes, snapshotMinutes: 0 })) }, { 'snapshot-tag': 15_000 });

    const { result, report, dump } = await run(w);

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.instances.every((i) => i.outcome === 'succeeded' && i.attempts === 1)).toBe(true);
    expect(dump.deletedSnapshots).toEqual([]);
    expect(dump.commands).toHaveLength(1);
  });

  it('counts the grace from the end of the command, so a command that ran longer than the grace still gets it', async () => {
    const w = world({ ...CLEAN, instances: ids(2).map((instanceId) => ({ instanceId, commandSeconds: 600, snapshotMinutes: 0 })) }, { 'snapshot-tag': 120_000 });
    let sawUntagged = false;
    const seeWhatVerifySees: CallInterceptor = async ({ service, operation, input }) => {
      if (service !== 'ec2' || operation !== 'DescribeSnapshots') return;
      const seen = (await applyCall(w, service, operation, input)).Snapshots as { Tags?: { Key?: string }[] }[];
      if (seen.some((s) => !s.Tags?.some((t) => t.Key === 'AppConsistent'))) sawUntagged = true;
    };

    const { report, dump } = await run(w, { interceptors: [seeWhatVerifySees] });

    expect(sawUntagged).toBe(true); // the workflow really met snapshots whose tag was not visible yet
    expect(report?.instances.map((i) => [i.outcome, i.attempts])).toEqual([
      ['succeeded', 1],
      ['succeeded', 1],
    ]);
    expect(dump.deletedSnapshots).toEqual([]);
  });

  it('still judges snapshots that never get the tag crash-consistent, once the grace has passed', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], attempts: ['crash-consistent'], snapshotMinutes: 0 }] });

    const { report } = await run(w, { input: { maxAttempts: 1 }, env: { CONSISTENCY_GRACE_SECONDS: '300' } });

    const instance = report?.instances[0];
    expect(instance).toMatchObject({ outcome: 'failed', code: 'crash-consistent' });
    const sent = Date.parse(w.dump().commands[0]?.requestedAt ?? '');
    expect(Date.parse(instance?.finishedAt ?? '') - sent).toBeGreaterThanOrEqual(300_000);
  });
});

describe('4. A failed VSS attempt of AWS’s document still leaves snapshots, without AppConsistent', () => {
  it('leaks none: earlier attempts are deleted, the last complete set is kept as a labelled crash-consistent fallback and named in the alert', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], volumes: twoVolumes, attempts: ['vss-timeout'] }] });

    const { report, dump } = await run(w);

    const instance = report?.instances[0];
    expect(instance).toMatchObject({ outcome: 'failed', code: 'vss-timeout', attempts: 3, snapshots: [] });
    expect(instance?.fallbackSnapshots).toHaveLength(2);
    const live = dump.snapshots.filter((s) => s.tags[RUN_TAG] === report?.runId);
    expect(live.map((s) => s.snapshotId).sort()).toEqual(instance?.fallbackSnapshots?.map((f) => f.snapshotId).sort());
    for (const s of live) expect(s.tags).toMatchObject({ [ATTEMPT_TAG]: '3', 'vss-snapshots:fallback': 'vss-timeout', 'vss-snapshots:consistency': 'crash-consistent' });
    expect(dump.deletedSnapshots.map((s) => s.tags[ATTEMPT_TAG]).sort()).toEqual(['1', '1', '2', '2']);
    expect(report?.alert?.message).toMatch(/crash-consistent fallback kept/i);
    expect(report?.summary).toMatchObject({ snapshots: 0, fallbackSnapshots: 2 });
  });

  it('keeps as the fallback a set that DescribeSnapshots shows only after the instance failed', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], volumes: twoVolumes, attempts: ['vss-timeout'] }] }, { 'snapshot-visible': 120_000 });

    const { report, dump } = await run(w, { input: { maxAttempts: 1 } });

    const instance = report?.instances[0];
    expect(instance).toMatchObject({ outcome: 'failed', code: 'vss-timeout', attempts: 1 });
    expect(instance?.fallbackSnapshots).toHaveLength(2);
    const live = dump.snapshots.filter((s) => s.tags[RUN_TAG] === report?.runId).map((s) => s.snapshotId);
    expect(live.sort()).toEqual(instance?.fallbackSnapshots?.map((f) => f.snapshotId).sort());
  });

  it('deletes an incomplete set (one volume of two) rather than keep it', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], volumes: twoVolumes, attempts: ['partial-snapshots'] }] });

    const { report, dump } = await run(w, { input: { maxAttempts: 2 } });

    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'no-snapshots', attempts: 2, fallbackSnapshots: [] });
    expect(dump.snapshots.filter((s) => s.tags[RUN_TAG] === report?.runId)).toEqual([]);
    expect(dump.deletedSnapshots).toHaveLength(2);
  });
});

describe('5. ListExecutions is only eventually consistent', () => {
  it('runs exactly one of two executions started in the same second, even when neither is listed yet', async () => {
    const w = world({ ...CLEAN, instances: ids(2).map((instanceId) => ({ instanceId })) }, { 'execution-listed': 30_000 });

    const [a, b] = await Promise.all([runWorkflow(w), runWorkflow(w)]);

    expect([a.status, b.status].sort()).toEqual(['FAILED', 'SUCCEEDED']);
    expect([a.error, b.error]).toContain('RunInProgressError');
    expect(doubleCommands(w.dump())).toEqual([]);
    expect(w.dump().commands.flatMap((c) => c.instanceIds)).toHaveLength(2);
  });
});

describe('7. SSM cancels a command before it runs when the pending invocations exceed the account limit (Rate Exceeded)', () => {
  it('retries the instances of a cancelled command and snapshots them all', async () => {
    const w = world({ ...CLEAN, quotas: { pendingInvocations: 60 }, instances: ids(100).map((instanceId) => ({ instanceId, commandSeconds: 120 })) });

    const { result, report, dump } = await run(w);

    expect(result.status).toBe('SUCCEEDED');
    const cancelled = dump.commands.filter((c) => c.invocations.every((i) => i.statusDetails === 'Rate Exceeded'));
    expect(cancelled.length).toBeGreaterThan(0);
    expect(report?.summary).toMatchObject({ targeted: 100, succeeded: 100, failed: 0 });
    const retried = new Set(cancelled.flatMap((c) => c.instanceIds));
    for (const i of report?.instances ?? []) expect(i.attempts).toBe(retried.has(i.instanceId) ? 2 : 1);
  });
});

describe('8. The failure output of AWS’s document: HRESULTs instead of names, cut at 2,500 characters in listings', () => {
  it('reads the full output and classifies a non-retryable writer failure by its HRESULT as well as by its name: one attempt each', async () => {
    const w = world({ ...CLEAN, instances: ids(9).map((instanceId) => ({ instanceId, attempts: ['writer-failure'] })) });

    const { report, dump } = await run(w);

    expect(report?.instances.map((i) => [i.code, i.attempts])).toEqual(Array.from({ length: 9 }, () => ['vss-writer-nonretryable', 1]));
    const outputs = [...w.commands.values()].flatMap((c) => c.invocations.map((i) => i.output));
    expect(outputs.every((o) => o.length > 2_500)).toBe(true);
    expect(outputs.some((o) => !o.includes('VSS_E_WRITERERROR_NONRETRYABLE'))).toBe(true);
    const commandId = [...w.commands.keys()][0] as string;
    const listed = (await applyCall(w, 'ssm', 'ListCommandInvocations', { CommandId: commandId, Details: true })).CommandInvocations as { CommandPlugins: { Output: string }[] }[];
    expect(listed.every((i) => i.CommandPlugins.every((p) => p.Output.length <= 2_500 && !/0x800423F4|NONRETRYABLE/.test(p.Output)))).toBe(true);
    expect(dump.apiCalls['ssm:GetCommandInvocation']).toBe(9);
  });
});

describe('EBS counts a deleted snapshot as pending until it completes (at most 5 pending per volume)', () => {
  it('meets ConcurrentSnapshotLimitExceeded on a rerun when the deleted snapshots of earlier attempts are still pending', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], attempts: ['crash-consistent'], snapshotMinutes: 6_000 }] });

    const first = await run(w, { input: { maxAttempts: 5 } });
    expect(first.report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'crash-consistent', attempts: 5 });
    expect(first.dump.deletedSnapshots.filter((s) => s.state === 'pending')).toHaveLength(4);

    const rerun = await run(w, { input: { maxAttempts: 1 } });
    expect(rerun.report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'concurrent-snapshot-limit', attempts: 1 });
  });
});

describe('a command that never ends: its agent stopped answering after taking it', () => {
  it('is cancelled at its deadline, counted as no-result and retried; nothing waits for it forever', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], attempts: ['agent-lost', 'ok'] }, { instanceId: ids(2)[1], attempts: ['ok'] }] });

    const { result, report, dump } = await run(w, { env: { COMMAND_TIMEOUT_SECONDS: '600', DELIVERY_TIMEOUT_SECONDS: '60' } });

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.instances.map((i) => [i.outcome, i.attempts])).toEqual([
      ['succeeded', 2],
      ['succeeded', 1],
    ]);
    const cancels = dump.mutations.filter((m) => m.call === 'ssm:CancelCommand');
    expect(cancels.length).toBeGreaterThan(0);
    expect(cancels.every((m) => m.ok && m.ids.includes(ids(1)[0] as string))).toBe(true);
    expect(dump.commands[0]?.invocations.find((i) => i.instanceId === ids(1)[0])).toMatchObject({ status: 'Cancelled' });
    // The healthy instance did not wait for the lost one: verified long before the deadline.
    const healthy = report?.instances[1];
    expect(Date.parse(healthy?.finishedAt ?? '') - Date.parse(report?.startedAt ?? '')).toBeLessThan(10 * 60_000);
  });

  it('fails as no-result after the last attempt, with the cancelled commands in the world', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], attempts: ['agent-lost'] }] });

    const { report, dump } = await run(w, { input: { maxAttempts: 2 }, env: { COMMAND_TIMEOUT_SECONDS: '600', DELIVERY_TIMEOUT_SECONDS: '60' } });

    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'no-result', attempts: 2 });
    expect(dump.commands.map((c) => c.invocations[0]?.status)).toEqual(['Cancelled', 'Cancelled']);
  });
});

describe('snapshots of more than one attempt for one device', () => {
  it('judges an instance by the snapshots of its current attempt only, even when an earlier attempt’s set could not be deleted yet', async () => {
    const w = world({ ...CLEAN, instances: [{ instanceId: ids(1)[0], attempts: ['crash-consistent', 'snapshot-error'], snapshotMinutes: 0 }] });
    let refusals = 1;
    const refuseFirstDelete: CallInterceptor = ({ operation }) => {
      if (operation === 'DeleteSnapshot' && refusals-- > 0) throw new SimulatedAwsError('InvalidSnapshot.InUse', 'The snapshot is currently in use by ami-0123456789abcdef0');
    };

    const { report, dump } = await run(w, { input: { maxAttempts: 2 }, interceptors: [refuseFirstDelete] });

    // Attempt 2's snapshot is in error: that is the verdict, not attempt 1's crash-consistent set lying beside it.
    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'snapshot-error', attempts: 2 });
    // The sweep deleted what the refused deletion left: no snapshot of the run is unaccounted for.
    expect(dump.snapshots.filter((s) => s.tags[RUN_TAG] === report?.runId)).toEqual([]);
  });

  it('keeps the instances’ outcomes and the no-leak rule under 30 s lags and 20 % faults', async () => {
    const fleet = parseFleet({
      faults: { rate: 0.2, seed: 11 },
      consistency: { maxLagSeconds: 30, seed: 5 },
      instances: [
        { volumes: twoVolumes, attempts: ['vss-timeout', 'ok'] },
        { volumes: twoVolumes, attempts: ['partial-snapshots', 'crash-consistent', 'ok'] },
        { attempts: ['snapshot-error', 'vss-timeout', 'vss-timeout'] },
        { attempts: ['writer-failure'] },
        { attempts: ['hang', 'ok'] },
        { attempts: ['ok'] },
      ],
    });
    const w = worldFromFleet(fleet);

    const result = await runWorkflow(w, { env: { COMMAND_TIMEOUT_SECONDS: '600' } });

    expect(result.status).toBe('SUCCEEDED');
    checkRunInvariants({ fleet, world: w, report: readReport(w, result), options: {}, extraAlerts: 1 });
    expect(doubleSnapshotSets(w)).toEqual([]);
  });
});

describe('every example fleet under stretched lags and heavy faults', () => {
  const files = readdirSync(new URL('../examples/fleets/', import.meta.url)).filter((f) => f.endsWith('.json'));

  // Shards of 1,000 (one shard for these fleets), and of 2: many child executions whose snapshots share the run's tag.
  it.each(files.flatMap((file) => [0.15, 0.3].flatMap((rate) => ['1000', '2'].map((shard) => [file, rate, shard] as const))))('%s at 30 s lags and %s faults, shards of %s, keeps contract §4: one command per instance and attempt, one verified set, no leaked snapshot', async (file, rate, shard) => {
    const base = loadFleetFile(new URL(`../examples/fleets/${file}`, import.meta.url).pathname);
    const fleet = { ...base, consistency: { maxLagSeconds: 30, seed: 17 }, faults: { rate, seed: 23, kinds: ['throttle', 'server', 'timeout'] as ('throttle' | 'server' | 'timeout')[] } };
    const w = worldFromFleet(fleet);

    const result = await runWorkflow(w, { env: { COMMAND_TIMEOUT_SECONDS: '600', SHARD_INSTANCES: shard } });

    expect(doubleCommands(w.dump())).toEqual([]);
    expect(doubleSnapshotSets(w)).toEqual([]);
    if (rate < 0.3) expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    if (result.status === 'SUCCEEDED') {
      const lost = faultLogOf(w).events.filter((e) => e.startsWith('sns:Publish') && e.endsWith('(after effect)')).length;
      checkRunInvariants({ fleet, world: w, report: readReport(w, result), options: {}, extraAlerts: lost });
    } else {
      expect(w.published.some((p) => /workflow failed at/.test(p.subject ?? ''))).toBe(true);
    }
  });
});

describe('an account-wide rate shared by many shards at once', () => {
  it('stays overrun for minutes (deletions and SSM reads throttled past every retry): the shards wait and go on, none fails, nothing leaks', async () => {
    // 40 instances whose every attempt leaves crash-consistent snapshots (two sets of each to delete), in 8 shards;
    // an account that allows 1 DeleteSnapshot every 5 s and 1 SSM read per second.
    const fleet = parseFleet({ ...CLEAN, instances: ids(40).map((instanceId) => ({ instanceId, volumes: twoVolumes, attempts: ['crash-consistent'] })) }, 'test fleet');
    const w = worldFromFleet(fleet);
    const limits = accountLimits(w, { ...DEFAULT_LIMITS, ec2: { ...DEFAULT_LIMITS.ec2, deleteSnapshot: { burst: 2, perSecond: 0.2 } }, ssm: { read: { burst: 2, perSecond: 1 }, write: DEFAULT_LIMITS.ssm.write } });

    let result: Awaited<ReturnType<typeof runWorkflow>>;
    try {
      result = await runWorkflow(w, { env: { SHARD_INSTANCES: '5' }, interceptors: [limits.interceptor] });
    } finally {
      limits.uninstall();
    }

    expect(limits.stats.throttled['ec2:DeleteSnapshot'] ?? 0).toBeGreaterThan(0);
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    const report = readReport(w, result);
    expect(report?.summary).toMatchObject({ targeted: 40, succeeded: 0, failed: 40 });
    expect(report?.instances.every((i) => i.code === 'crash-consistent' && i.attempts === 3)).toBe(true);
    checkRunInvariants({ fleet, world: w, report, options: {} });
  });

  it('the leftover sweep waits out its back-off like the snapshot checks instead of failing its shard (and leaking its leftovers)', async () => {
    // Two shards of 3; every attempt leaves crash-consistent snapshots, so the sweep has sets to keep and to delete.
    // The shard-wide DescribeSnapshots listing (the sweep's; the checks list by volume here) is throttled past every
    // retry for 40 minutes once it is first made, as a hundred shards listing at once would be.
    const fleet = parseFleet({ ...CLEAN, instances: ids(6).map((instanceId) => ({ instanceId, volumes: twoVolumes, attempts: ['crash-consistent'] })) }, 'test fleet');
    const w = worldFromFleet(fleet);
    let overrunFrom: number | undefined;
    let throttled = 0;
    const overrun: CallInterceptor = ({ service, operation, input }) => {
      if (service !== 'ec2' || operation !== 'DescribeSnapshots') return;
      if (((input.Filters ?? []) as { Name?: string }[]).some((f) => f.Name === 'volume-id')) return;
      overrunFrom ??= w.now;
      if (w.now >= overrunFrom + 40 * 60_000) return;
      throttled += 1;
      throw new SimulatedAwsError('RequestLimitExceeded', 'Request limit exceeded.', 503);
    };

    const result = await runWorkflow(w, { env: { SHARD_INSTANCES: '3' }, interceptors: [overrun] });

    expect(throttled).toBeGreaterThan(0);
    expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
    const report = readReport(w, result);
    expect(report?.summary).toMatchObject({ targeted: 6, succeeded: 0, failed: 6 });
    checkRunInvariants({ fleet, world: w, report, options: {} });
  });
});

describe('Step Functions reads a Wait timestamp to the second', () => {
  it('never wakes a shard before the time Advance Instances asked for (the timestamp carries no fraction to lose)', async () => {
    const w = world({ ...CLEAN, instances: ids(6).map((instanceId) => ({ instanceId, volumes: twoVolumes, attempts: ['vss-timeout', 'ok'] })) });
    // Per shard: the times its state was read (each Advance Instances starts so), and the times its waits asked for.
    const reads = new Map<number, number[]>();
    const asked = new Map<number, number[]>();
    const shardRead: CallInterceptor = ({ service, operation, input }) => {
      const shard = /\/shards\/([0-9]+)\.json$/.exec(String(input.Key ?? ''))?.[1];
      if (service === 's3' && operation === 'GetObject' && shard !== undefined) reads.set(Number(shard), [...(reads.get(Number(shard)) ?? []), w.now]);
    };

    // The account's latencies: steps end at any millisecond, as in AWS.
    const limits = accountLimits(w);
    const { result } = await run(w, {
      env: { SHARD_INSTANCES: '3' },
      interceptors: [limits.interceptor, shardRead],
      onEvent: (event) => {
        if (event.type !== 'StateEntered' || event.state.name !== 'Wait For Work') return;
        const input = event.state.input as { shard: number; waits: { resumeAt: string } };
        asked.set(input.shard, [...(asked.get(input.shard) ?? []), Date.parse(input.waits.resumeAt)]);
      },
    });

    limits.uninstall();
    expect(result.status).toBe('SUCCEEDED');
    const early: { shard: number; wait: number; msEarly: number }[] = [];
    for (const [shard, times] of asked) {
      // Read n + 1 follows wait n (read 0 is the shard's first step; the last is Finish Run's).
      times.forEach((due, n) => {
        const woke = reads.get(shard)?.[n + 1] ?? Infinity;
        if (woke < due) early.push({ shard, wait: n, msEarly: due - woke });
      });
    }
    expect([...asked.values()].flat().length).toBeGreaterThan(10);
    expect(early).toEqual([]);
  });
});

describe('a shard object missing when the run is joined', () => {
  it('is a shard failure that alerts, not a shorter report that looks complete', async () => {
    const w = world({ ...CLEAN, instances: ids(6).map((instanceId) => ({ instanceId })) });

    const { result, dump } = await run(w, {
      env: { SHARD_INSTANCES: '2' },
      onEvent: (event, account) => {
        if (event.type !== 'StateEntered' || event.state.name !== 'Finish Run') return;
        for (const objects of account.buckets.values()) for (const key of [...objects.keys()]) if (/^runs\/[^/]+\/shards\/1\.json$/.test(key)) objects.delete(key);
      },
    });

    expect(result.status).toBe('FAILED');
    const alerts = dump.published.map((p) => `${p.subject}\n${p.message}`).join('\n');
    expect(alerts).toMatch(/ShardStateMissing/);
    expect(alerts).toMatch(/shard 1/);
  });
});
