import { describe, expect, it } from 'vitest';
import { ALERT_MAX_NAMED, buildReport } from '../../src/lib/report.ts';
import type { InstanceRecord, RunState } from '../../src/lib/run-state.ts';

const base = (instances: InstanceRecord[], dryRun = false): RunState => ({
  runId: '20261128T000000Z-00000000',
  executionArn: 'arn:exec',
  startedAt: '2026-11-28T00:00:00.000Z',
  dryRun,
  selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' },
  options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
  notFound: [],

  commands: [],
  instances,
});
const failed = (n: number, code = 'vss-timeout'): InstanceRecord => ({
  instanceId: `i-${n.toString(16).padStart(8, '0')}`,
  volumes: [],
  phase: 'failed',
  attempts: 3,
  code,
  detail: 'The VSS freeze timed out.',
  reason: 'VSS freeze timed out: The VSS freeze timed out. Do something.',
  snapshots: [],
});

describe('buildReport', () => {
  it('publishes no alert when everything succeeded', () => {
    const report = buildReport(base([{ ...failed(1), phase: 'succeeded', code: undefined as never, reason: undefined as never }]), '2026-11-28T01:00:00Z', 's3://b/k');
    expect(report.alert).toBeNull();
    expect(report.instances[0]).not.toHaveProperty('reason');
  });

  it('groups failures by reason with what to do, and names at most 100 instances then says how many more', () => {
    const instances = [...Array.from({ length: 130 }, (_, i) => failed(i + 1)), failed(500, 'access-denied')];
    const report = buildReport(base(instances), '2026-11-28T01:00:00Z', 's3://bucket/reports/x.json');

    expect(report.summary).toMatchObject({ targeted: 131, failed: 131 });
    expect(report.alert?.subject.length).toBeLessThanOrEqual(100);
    const message = report.alert?.message ?? '';
    expect(message).toMatch(/== VSS freeze timed out \(130\) ==/);
    expect(message).toMatch(/What to do: Windows allows 10 s/);
    expect(message.match(/^- i-/gm)).toHaveLength(ALERT_MAX_NAMED);
    expect(message).toContain('and 31 more failed instances');
    expect(message).toContain('s3://bucket/reports/x.json');
  });

  it('alerts when nothing matched, but never in a dry run', () => {
    expect(buildReport(base([]), 'x', 's3://b/k').alert?.subject).toMatch(/no instance matched/);
    expect(buildReport(base([], true), 'x', 's3://b/k').alert).toBeNull();
  });

  it('reports an instance the workflow never finished as failed with a reason', () => {
    const report = buildReport(base([{ ...failed(1), phase: 'command', code: undefined as never, reason: undefined as never }]), 'x', 's3://b/k');
    expect(report.instances[0]).toMatchObject({ outcome: 'failed', code: 'unfinished' });
    expect(report.instances[0]?.reason).toMatch(/stopped before/);
  });
});
