/**
 * Scale (issue 6): 10,000 instances that all fail every attempt, on the real workflow and the simulated
 * account. The run must still finish with a complete report and one readable alert, within Step
 * Functions' payload and history limits. Not timed: the benchmark measures speed.
 *
 * The account's rate limits are off here (as in every functional test), so pacing the sends changes no
 * outcome; slices of 1,000 instead of 100 keep the run to ~40 Lambda invocations instead of ~270 (each
 * reads and writes the 9 MB run state). `vss-snapshots bench --instances 10000 --fail-rate 1` runs the
 * same fleet with the default slices and the limits on.
 */
import { describe, expect, it } from 'vitest';
import { FAILURE_MIX, benchFleet } from '../src/bench/fleet.ts';
import { ALERT_MAX_NAMED } from '../src/lib/report.ts';
import { runWorkflow } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import { readReport } from './helpers.ts';

const N = 10_000;

describe('a 10,000-instance run where every instance fails', () => {
  it('finishes with every instance reported once as failed with a reason, and one alert naming 100 and counting the rest', { timeout: 240_000 }, async () => {
    const world = worldFromFleet(benchFleet({ instances: N, volumes: 2, failRate: 1, hangRate: 0, commandSeconds: 60, snapshotMinutes: 10 }));

    const result = await runWorkflow(world, { env: { SEND_SLICE_INSTANCES: '1000' } });

    expect(result.status).toBe('SUCCEEDED');
    const report = readReport(world, result);
    expect(report?.summary).toMatchObject({ targeted: N, succeeded: 0, failed: N, skipped: 0 });
    const ids = report?.instances.map((i) => i.instanceId) ?? [];
    expect(ids).toHaveLength(N);
    expect(new Set(ids)).toEqual(new Set(world.instances.keys()));
    const unexplained = report?.instances.filter((i) => i.outcome !== 'failed' || !i.reason || !i.code) ?? [];
    expect(unexplained).toEqual([]);
    // Every failure behaviour of the mix ends under its own reason.
    expect(new Set(report?.instances.map((i) => i.code)).size).toBeGreaterThanOrEqual(FAILURE_MIX.length - 1);

    expect(world.published).toHaveLength(1);
    const message = world.published[0]?.message ?? '';
    expect(report?.alert?.message).toBe(message);
    expect(message.split('\n').filter((line) => /^- i-[0-9a-f]{17}\b/.test(line))).toHaveLength(ALERT_MAX_NAMED);
    expect(message).toContain(`and ${N - ALERT_MAX_NAMED} more`);
    expect(Buffer.byteLength(message)).toBeLessThan(262_144);

    expect(result.stats.maxPayloadBytes).toBeLessThan(128 * 1024);
    expect(result.stats.historyEvents).toBeLessThan(25_000);
  });
});
