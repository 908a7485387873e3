/**
 * The per-instance pipeline at bench scale (issue 15), through the bench itself: the real workflow with the
 * account's rate limits, default lags and 1 % faults, shards of 100 so that several child executions run.
 * Figures here are virtual time and counts, never wall-clock time.
 */
import { describe, expect, it } from 'vitest';
import { runBench } from '../src/bench/run.ts';

const base = { instances: 400, volumes: 2, failRate: 0, commandSeconds: 60, snapshotMinutes: 10, pressure: true, env: { SHARD_INSTANCES: '100' } };

describe('one instance never waits on another', () => {
  it('hung batch-mates delay no healthy instance by more than 5 minutes, and each retry goes out within retryDelay + 2 polls of its own failure', { timeout: 120_000 }, async () => {
    const healthy = await runBench({ ...base, hangRate: 0 });
    const hung = await runBench({ ...base, hangRate: 0.05 });

    expect(healthy.status).toBe('SUCCEEDED');
    expect(hung.status).toBe('SUCCEEDED');
    expect(hung.summary).toMatchObject({ targeted: 400, succeeded: 380, failed: 20 });
    expect(hung.latency.healthyInstances).toBe(380);
    expect((hung.latency.healthyP99Seconds ?? Infinity) - (healthy.latency.healthyP99Seconds ?? 0)).toBeLessThanOrEqual(300);

    // Each hung instance is cancelled at its deadline and retried up to 3 attempts: 2 retries each.
    expect(hung.retry.retried).toBe(40);
    expect(hung.retry.maxSecondsAfterFailure).not.toBeNull();
    expect(hung.retry.maxSecondsAfterFailure ?? Infinity).toBeLessThanOrEqual(hung.retry.limitSeconds);
    expect(hung.retry.limitSeconds).toBe(600 + 2 * 60);
  });

  it('runs one child execution per shard, each with its own small history, and reports per-instance figures', { timeout: 120_000 }, async () => {
    const r = await runBench({ ...base, hangRate: 0 });

    expect(r.executions).toBe(1 + 4);
    expect(r.maxHistoryEvents).toBeLessThan(1_000);
    expect(r.perInstance.stateTransitions).toBeCloseTo(r.stateTransitions / 400, 3);
    expect(r.perInstance.apiCalls).toBeCloseTo(r.apiCalls.total / 400, 3);
    expect(r.perInstance.s3Bytes).toBeGreaterThan(0);
    expect(r.costPer10kUsd).toBeCloseTo((r.costUsd / 400) * 10_000, 3);
  });
});
