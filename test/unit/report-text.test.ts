/** The wording of reports and alerts (src/lib/report-text.ts): counts that cannot be misread, retry inputs, workflow failures. */
import { describe, expect, it } from 'vitest';
import { buildReport } from '../../src/lib/report.ts';
import type { RunReport } from '../../src/lib/report.ts';
import { ALERT_MAX_RETRY_CHUNKS, composeRunAlert, composeWorkflowFailureAlert, plural, retryInputs, snapshotLine } from '../../src/lib/report-text.ts';
import type { InstanceRecord, RunState } from '../../src/lib/run-state.ts';

/** A run state as the tests write it: without fields only some versions of the workflow keep (the wave). */
const runState = (state: Omit<RunState, 'wave'>): RunState => state as RunState;
const failed = (n: number): InstanceRecord => ({
  instanceId: `i-${n.toString(16).padStart(17, '0')}`,
  volumes: [],
  phase: 'failed',
  attempts: 3,
  code: 'vss-timeout',
  detail: 'The VSS freeze timed out.',
  reason: 'VSS freeze timed out.',
  snapshots: [],
});
const run = (instances: InstanceRecord[]): RunState =>
  runState({
    runId: '20261128T000000Z-00000000',
    executionArn: 'arn:aws:states:us-east-1:123456789012:execution:m:e',
    startedAt: '2026-11-28T00:00:00.000Z',
    dryRun: false,
    selector: { tagKey: 'Backup', tagValue: 'nightly' },
    options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
    notFound: [],
    commands: [],
    instances,
  });

/** A report whose instances carry exactly these snapshots (whatever buildReport of this version keeps). */
function reportWith(instances: { outcome: 'succeeded' | 'failed'; snapshots: string[]; fallback?: string[] }[]): RunReport {
  const report = buildReport(run(instances.map((i, n) => ({ ...failed(n + 1), phase: i.outcome }))), 'x', 's3://b/k');
  report.instances.forEach((instance, n) => {
    const spec = instances[n] as (typeof instances)[number];
    instance.snapshots = spec.snapshots.map((snapshotId) => ({ snapshotId, volumeId: `vol-${snapshotId}`, state: 'completed' }));
    if (spec.fallback) instance.fallbackSnapshots = spec.fallback.map((snapshotId) => ({ snapshotId, volumeId: `vol-${snapshotId}`, state: 'completed' }));
  });
  report.alert = composeRunAlert(report, 'arn:aws:states:us-east-1:123456789012:execution:m:e');
  return report;
}

describe('snapshot counts', () => {
  it('keep usable snapshots, crash-consistent fallbacks and unusable leftovers apart', () => {
    const report = reportWith([
      { outcome: 'succeeded', snapshots: ['snap-a'] },
      { outcome: 'failed', snapshots: ['snap-b', 'snap-c'], fallback: ['snap-b'] },
    ]);

    expect(snapshotLine(report)).toBe(
      '1 usable snapshot (verified, application-consistent); 1 failed instance keeps a crash-consistent fallback set (1 snapshot, NOT application-consistent); 1 unusable snapshot of failed attempts (not a backup)',
    );
  });

  it('say so plainly when a failed run left snapshots that are not a backup', () => {
    const leftovers = reportWith([{ outcome: 'failed', snapshots: ['snap-b', 'snap-c'] }]);
    const fallback = reportWith([{ outcome: 'failed', snapshots: [], fallback: ['snap-b', 'snap-c'] }]);

    expect(leftovers.alert?.message).toMatch(/^Snapshots: 0 usable snapshots \(verified, application-consistent\); 2 unusable snapshots of failed attempts \(not a backup\)\.$/m);
    expect(fallback.alert?.message).toMatch(/^Snapshots: 0 usable snapshots \(verified, application-consistent\); 1 failed instance keeps a crash-consistent fallback set \(2 snapshots, NOT application-consistent\)\.$/m);
    expect(fallback.alert?.message).toMatch(/Crash-consistent fallback kept \(not application-consistent\): snap-b, snap-c\.$/m);
    expect(plural(1, 'command')).toBe('1 command');
    expect(plural(1000, 'id')).toBe('1,000 ids');
  });
});

describe('retry input', () => {
  it('is chunked at 1,000 ids, carries the run\'s selector tag, and the alert shows the first chunks only', () => {
    const report = buildReport(run(Array.from({ length: 2_500 }, (_, i) => failed(i + 1))), 'x', 's3://b/k');
    const chunks = retryInputs(report);
    const message = report.alert?.message ?? '';

    expect(chunks.map((c) => c.instanceIds.length)).toEqual([1000, 1000, 500]);
    expect(chunks[0]).toMatchObject({ tagKey: 'Backup', tagValue: 'nightly' });
    expect(message.match(/^[0-9]\/3: \{"tagKey":"Backup","tagValue":"nightly","instanceIds":\[/gm)).toHaveLength(ALERT_MAX_RETRY_CHUNKS);
    expect(message).toContain('... 1 more (500 ids): in the full report, or let retry-failed start them.');
    expect(message).toContain('vss-snapshots retry-failed 20261128T000000Z-00000000 --follow');
    expect(Buffer.byteLength(message)).toBeLessThan(100_000);
  });
});

describe('workflow failure alert', () => {
  it('names the run, the step, the error and what to do next', () => {
    const { subject, message } = composeWorkflowFailureAlert({
      failedStep: 'Check Commands',
      runId: '20261128T000000Z-00000000',
      executionId: 'arn:aws:states:us-east-1:123456789012:execution:m:e',
      error: 'States.Timeout',
      cause: 'The task timed out.',
      known: { summary: { targeted: 4, succeeded: 1, failed: 1, skipped: 1, planned: 0 }, location: 's3://b/reports/r.json' },
    });

    expect(subject).toBe('vss-snapshots: workflow failed at Check Commands');
    expect(message).toMatch(/^The snapshot workflow failed at step "Check Commands" \(run 20261128T000000Z-00000000\)\.$/m);
    expect(message).toMatch(/^Known so far: 1 succeeded, 2 failed or unfinished, 1 skipped of 4\. Partial report: s3:\/\/b\/reports\/r\.json$/m);
    expect(message).toMatch(/^What to do: .*start a new run/m);
    expect(message).toMatch(/^Then retry the instances without a snapshot: vss-snapshots retry-failed 20261128T000000Z-00000000 --follow$/m);
  });

  it('names the execution when the run never got an id', () => {
    const { message } = composeWorkflowFailureAlert({ failedStep: 'Prepare Run', executionId: 'arn:aws:states:us-east-1:1:execution:m:manual-1', error: 'RunInProgressError', cause: 'busy' });

    expect(message).toMatch(/failed at step "Prepare Run" \(execution manual-1\)/);
    expect(message).toMatch(/Wait for it \(vss-snapshots status\)/);
  });
});
