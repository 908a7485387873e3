/**
 * Verify Snapshots at scale (issue 6): it polls pending snapshots by their progress instead of every
 * 2 minutes, and it spreads the deletion of unusable snapshots over invocations, since EC2 allows 5
 * DeleteSnapshot per second and a Lambda stops after its timeout.
 */
import type { Snapshot } from '@aws-sdk/client-ec2';
import { describe, expect, it } from 'vitest';
import { estimatedRemainingMs } from '../src/lib/verify-snapshots.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { accountLimits } from '../src/local/limits.ts';
import { runWorkflow } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import { readReport, runFleet, twoVolumes } from './helpers.ts';

describe('estimatedRemainingMs', () => {
  const at = (minutesAgo: number, progress: string): Snapshot => ({ StartTime: new Date(Date.UTC(2026, 10, 28) - minutesAgo * 60_000), Progress: progress });
  const now = Date.UTC(2026, 10, 28);

  it('extrapolates the progress so far', () => {
    expect(estimatedRemainingMs(at(10, '25%'), now)).toBe(30 * 60_000);
  });

  it('assumes as long again when there is no progress to go by', () => {
    expect(estimatedRemainingMs(at(4, '0%'), now)).toBe(4 * 60_000);
    expect(estimatedRemainingMs(at(4, ''), now)).toBe(4 * 60_000);
  });
});

describe('snapshot checks and deletions', () => {
  it('polls snapshots pending for 6 hours a handful of times, not every 2 minutes', async () => {
    const { report, dump, result } = await runFleet({ instances: [{ volumes: twoVolumes, snapshotMinutes: 360 }] });

    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded', attempts: 1 });
    expect(dump.apiCalls['ec2:DescribeSnapshots']).toBeLessThanOrEqual(20);
    // Done within the longest poll interval (30 minutes) of the snapshots completing.
    expect(result.stats.simulatedSeconds).toBeLessThan(360 * 60 + 35 * 60);
  });

  it('deletes thousands of unusable snapshots over several invocations, none longer than the Lambda timeout', async () => {
    const fleet = parseFleet({ instances: Array.from({ length: 800 }, () => ({ volumes: twoVolumes, attempts: ['crash-consistent', 'ok'] })) });
    const world = worldFromFleet(fleet);
    const limits = accountLimits(world);
    let longestStepMs = 0;
    let stepStart = 0;
    let measured = 0;

    const result = await runWorkflow(world, {
      interceptors: [limits.interceptor],
      onEvent: (event, w) => {
        if (!('state' in event) || event.state.name !== 'Advance Instances') return;
        if (event.type === 'StateEntered') stepStart = w.now;
        if (event.type === 'StateExited') {
          measured += 1;
          longestStepMs = Math.max(longestStepMs, w.now - stepStart);
        }
      },
    });
    limits.uninstall();

    const report = readReport(world, result);
    expect(report?.summary).toMatchObject({ targeted: 800, succeeded: 800, failed: 0 });
    expect(world.dump().deletedSnapshots).toHaveLength(1600);
    expect(limits.stats.throttled['ec2:DeleteSnapshot'] ?? 0).toBeGreaterThan(0);
    // Every invocation of the step that deletes was measured, and none ran past the Lambda's timeout (600 s).
    expect(measured).toBeGreaterThan(10);
    // (The others: Prepare Run, Discover Instances, Plan Retention, which finds nothing due, Finish Run, and Plan
    // DR Copies, which finds DR copies off.)
    expect(result.stats.byState['Apply Retention']).toBeUndefined();
    expect(result.stats.byState['Plan DR Copies']?.invocations).toBe(1);
    expect(measured).toBe(result.stats.lambdaInvocations - 5);
    expect(longestStepMs).toBeGreaterThan(0);
    expect(longestStepMs).toBeLessThan(600_000);
  });
});
