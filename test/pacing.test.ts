/**
 * Paced sending (issue 6): commands go out in slices, because every instance's VSS agent calls EC2
 * CreateSnapshots inside a 10-second freeze and the account's bucket for that call holds 100 tokens refilled
 * at 5 per second. Checked on the simulated account with its limits on (the slices themselves: unit tests of
 * src/lib/send-commands.ts).
 */
import { describe, expect, it } from 'vitest';
import { accountLimits, TokenBucket } from '../src/local/limits.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { runWorkflow } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import { readReport } from './helpers.ts';

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
    // Slices on a 20 s grid (two commands of 50 each): the first goes out late by its step's own latency.
    expect(sentAt[4] ?? 0).toBeGreaterThanOrEqual((sentAt[2] ?? 0) + 20_000);
    expect(sentAt[2] ?? 0).toBeGreaterThanOrEqual((sentAt[0] ?? 0) + 18_000);
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

describe('send pacing across shards', () => {
  // Found by the review of issue 15: every shard's first slices are laid out one after another at the bucket's full
  // rate, and a shard's retries went out when their own delay ended, into whatever slice another shard was sending
  // then: healthy instances' freezes timed out. Every send now claims its share of one send clock (send-clock.ts).
  it('keeps all shards within the account\'s CreateSnapshots rate: one shard\'s retries never time out another\'s first sends', { timeout: 120_000 }, async () => {
    // 1,600 instances in shards of 300 (three slices of 100 each, first slices laid out one after another); shard
    // 0's instances fail their first attempt and are retried 60 s later, while the later shards still send theirs.
    const ids = Array.from({ length: 1600 }, (_, i) => `i-0${(i + 1).toString(16).padStart(16, '0')}`);
    const instances = ids.map((instanceId, i) => ({ instanceId, commandSeconds: 20, snapshotMinutes: 1, attempts: i < 300 ? (['vss-timeout', 'ok'] as const) : (['ok'] as const) }));
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, instances }));
    const limits = accountLimits(world);

    const result = await runWorkflow(world, { interceptors: [limits.interceptor], env: { SHARD_INSTANCES: '300', RETRY_DELAY_SECONDS: '60' } });
    limits.uninstall();

    const report = readReport(world, result);
    expect(report?.summary).toMatchObject({ targeted: 1600, succeeded: 1600 });
    // All shards together stay within the account's CreateSnapshots bucket: no VSS freeze times out waiting for
    // a token, and only shard 0's 300 instances needed a retry.
    expect(limits.stats.instance.failed).toBe(0);
    expect(report?.instances.filter((i) => i.attempts === 2)).toHaveLength(300);
  });
});
