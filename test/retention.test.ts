/**
 * Retention through the real workflow on the simulated account, night after night on one world: the real
 * state machine, the real handlers, snapshots seeded straight into the account where a test needs history.
 * Every invariant of the retention issue is checked against the world (ground truth), not only the report.
 */
import { describe, expect, it } from 'vitest';
import type { RunReport } from '../src/lib/report.ts';
import { INSTANCE_TAG, RETAIN_TAG, RUN_TAG, STACK_TAG } from '../src/lib/run-id.ts';
import { LEDGER_KEY } from '../src/lib/retention/record.ts';
import type { Ledger } from '../src/lib/retention/record.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { lambdaDiesAt } from '../src/local/faults.ts';
import { accountLimits } from '../src/local/limits.ts';
import { REPORT_BUCKET, runWorkflow } from '../src/local/runner.ts';
import type { LocalRunResult, RunOptions } from '../src/local/runner.ts';
import { DEFAULT_START, worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';
import { readReport, seedSet, twoVolumes } from './helpers.ts';

const DAY = 86_400_000;
const STACK = 'vss-snapshots-local';
const A = 'i-0aaaaaaaaaaaaaaa1';
const B = 'i-0bbbbbbbbbbbbbbb2';

function fleetWorld(instances: Record<string, unknown>[], faults = false): World {
  return worldFromFleet(parseFleet({ ...(faults ? {} : { faults: { rate: 0 } }), instances: instances.map((i) => ({ volumes: twoVolumes, ...i })) }, 'test fleet'));
}


/** Runs night `n` (0-based) at the nightly time, 24 h after the night before. */
async function night(world: World, n: number, options: RunOptions = {}): Promise<{ result: LocalRunResult; report: RunReport }> {
  world.advanceTo(DEFAULT_START + n * DAY);
  const result = await runWorkflow(world, options);
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  const report = readReport(world, result) as RunReport;
  return { result, report };
}

const live = (world: World) => [...world.snapshots.values()].filter((s) => !s.deleted);
const liveIds = (world: World) => new Set(live(world).map((s) => s.snapshotId));
const deletedIds = (world: World) => new Set([...world.snapshots.values()].filter((s) => s.deleted).map((s) => s.snapshotId));
/** Every DeleteSnapshot the account received (mutation log), by snapshot id. */
const deleteCalls = (world: World) => world.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot').flatMap((m) => m.ids);
/** The live run sets of an instance: run id → snapshot count. */
function setsOf(world: World, instanceId: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of live(world)) if (s.instanceId === instanceId && s.tags[RUN_TAG]) out.set(s.tags[RUN_TAG], (out.get(s.tags[RUN_TAG]) ?? 0) + 1);
  return out;
}

/** The live sets of this stack of an instance: run id → snapshot count. */
function ourSetsOf(world: World, instanceId: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of live(world)) if (s.instanceId === instanceId && s.tags[STACK_TAG] === STACK && s.tags[RUN_TAG]) out.set(s.tags[RUN_TAG], (out.get(s.tags[RUN_TAG]) ?? 0) + 1);
  return out;
}

describe('retention over many nights', () => {
  it('keeps the newest `count` sets and deletes older ones whole, oldest first, night after night', async () => {
    const world = fleetWorld([{ instanceId: A }]);
    const env = { RETAIN_COUNT: '3', RETAIN_DAYS: '0' };
    const runIds: string[] = [];
    for (let n = 0; n < 8; n += 1) {
      const { report } = await night(world, n, { env });
      runIds.push(report.runId);
      expect(report.instances[0]?.outcome).toBe('succeeded');
      // Never more than `count` sets, never fewer than min(count, nights so far).
      expect([...setsOf(world, A).keys()].sort()).toEqual(runIds.slice(-3).sort());
      for (const count of setsOf(world, A).values()) expect(count).toBe(2);
      expect(report.retention).toMatchObject({ mode: 'apply', kept: Math.min(3, n + 1) * 2, deferred: 0, held: [], inUse: [], partial: [] });
      if (n >= 3) {
        // Exactly the set that fell out of the window, whole, with a reason.
        const gone = runIds[n - 3] as string;
        expect(report.retention?.deleted.map((d) => d.runId)).toEqual([gone, gone]);
        expect(report.retention?.deleted[0]).toMatchObject({ instanceId: A, reason: expect.stringMatching(/verified set of run .* not among the newest 3 verified sets/) });
      } else {
        expect(report.retention?.deleted).toEqual([]);
      }
    }
    // Sets went whole: no run has some of its snapshots deleted and others not.
    for (const runId of runIds) {
      const states = [...world.snapshots.values()].filter((s) => s.tags[RUN_TAG] === runId).map((s) => s.deleted);
      expect(new Set(states).size, runId).toBe(1);
    }
  });

  it('works the same with the DiskShadow method: its sets carry the stack and instance tags and count as verified', async () => {
    const world = fleetWorld([{ instanceId: A }]);
    const env = { SNAPSHOT_METHOD: 'diskshadow', RETAIN_COUNT: '2', RETAIN_DAYS: '0' };
    const runIds: string[] = [];
    for (let n = 0; n < 4; n += 1) {
      const { report } = await night(world, n, { env });
      expect(report.instances[0]?.outcome).toBe('succeeded');
      runIds.push(report.runId);
      const tonight = live(world).filter((x) => x.tags[RUN_TAG] === report.runId);
      expect(tonight.map((x) => [x.tags[STACK_TAG], x.tags[INSTANCE_TAG]])).toEqual([[STACK, A], [STACK, A]]);
      expect(report.retention?.keptBy).toMatchObject({ 'this-run': 2, ...(n > 0 ? { count: 2 } : {}) });
    }
    expect([...ourSetsOf(world, A).keys()].sort()).toEqual(runIds.slice(-2).sort());
    expect(world.dump().commands.every((c) => c.parameters.StackId?.[0] === STACK)).toBe(true);
  });

  it('keeps sets younger than `days` and the newest `count` verified sets, whichever keeps more', async () => {
    const world = fleetWorld([{ instanceId: A }]);
    const old = Array.from({ length: 10 }, (_, k) => seedSet(world, A, { ageDays: 10 - k })); // 10 .. 1 days old
    const { report } = await night(world, 0, { env: { RETAIN_COUNT: '2', RETAIN_DAYS: '5' } });
    // Younger than 5 days: the sets 4, 3, 2 and 1 day(s) old (5 days old is not younger), plus tonight's.
    const kept = new Set(old.slice(6).flatMap((s) => s.ids));
    expect(kept.size).toBe(8);
    for (const s of old) for (const id of s.ids) expect(liveIds(world).has(id), id).toBe(kept.has(id));
    expect(report.retention?.deleted).toHaveLength(12);
    expect(report.retention?.deleted[0]?.reason).toMatch(/10 day\(s\) old: not among the newest 2 verified sets, older than 5 days/);
    // Tonight's set is the newest verified one and the first by count; the day-old one is the second by count.
    expect(report.retention?.keptBy).toEqual({ 'this-run': 2, count: 2, days: 6 });
  });

  it('never deletes the newest verified set of an instance that exists, however old, while its nights fail; fallbacks never count as good', async () => {
    const world = fleetWorld([{ instanceId: A, attempts: ['crash-consistent'] }]);
    const good = seedSet(world, A, { ageDays: 40 });
    const olderGood = seedSet(world, A, { ageDays: 41 });
    // count=0: nothing but the invariant keeps the 40-day-old set; days=3 keeps tonight's and the two nights before.
    const env = { RETAIN_COUNT: '0', RETAIN_DAYS: '3' };
    const fallbackRuns: string[] = [];
    for (let n = 0; n < 7; n += 1) {
      const { report } = await night(world, n, { env, input: { maxAttempts: 1 } });
      expect(report.instances[0]).toMatchObject({ outcome: 'failed', code: 'crash-consistent' });
      expect(report.instances[0]?.fallbackSnapshots).toHaveLength(2);
      fallbackRuns.push(report.runId);
      // The 40-day-old verified set survives every night; the one before it is not the newest and goes at once.
      for (const id of good.ids) expect(liveIds(world).has(id)).toBe(true);
      for (const id of olderGood.ids) expect(liveIds(world).has(id)).toBe(false);
      // Fallbacks expire by the same rule (younger than 3 days), and never stand in for the verified set.
      const keptFallbacks = fallbackRuns.filter((runId, k) => fallbackRuns.length - 1 - k < 3);
      expect([...setsOf(world, A).keys()].sort()).toEqual([good.runId, ...keptFallbacks].sort());
    }
    const last = readReport(world, (await night(world, 7, { env, input: { maxAttempts: 1 } })).result);
    expect(last?.retention?.keptBy).toMatchObject({ 'newest-verified': 2 });
    expect(last?.retention?.deleted.every((d) => /crash-consistent fallback set/.test(d.reason))).toBe(true);
  });

  it('keeps an instance with no verified set at all its newest set, even a fallback', async () => {
    const world = fleetWorld([{ instanceId: A, state: 'stopped' }]);
    const fallbacks = [30, 20, 10].map((ageDays) => seedSet(world, A, { ageDays, fallback: true }));
    const { report } = await night(world, 0, { env: { RETAIN_COUNT: '0', RETAIN_DAYS: '0' } });
    expect(report.instances[0]?.outcome).toBe('skipped');
    expect([...setsOf(world, A).keys()]).toEqual([fallbacks[2]?.runId]);
    expect(report.retention?.keptBy).toMatchObject({ 'newest-set': 2 });
  });

  it('deletes only this stack’s snapshots: never another stage’s, an untagged, manual, DLM or AWS Backup one', async () => {
    const world = fleetWorld([{ instanceId: A }]);
    const foreign = [
      seedSet(world, A, { ageDays: 90, stack: 'vss-snapshots-prod' }),
      seedSet(world, A, { ageDays: 90, stack: null }),
      seedSet(world, A, { ageDays: 90, bare: true, tags: { Name: 'manual before patching' } }),
      seedSet(world, A, { ageDays: 90, bare: true, tags: { 'aws:dlm:lifecycle-policy-id': 'policy-0123', 'aws:dlm:lifecycle-schedule-name': 'nightly' } }),
      seedSet(world, A, { ageDays: 90, bare: true, tags: { 'aws:backup:source-resource': 'arn:aws:ec2:us-east-1:123456789012:volume/vol-1' } }),
      // Tagged like a run of another stage that copied our tag key with a lookalike value.
      seedSet(world, A, { ageDays: 90, stack: `${STACK}-old` }),
      // Ours by every tag, but DLM or AWS Backup manage it too (a copy that took our tags along): theirs.
      seedSet(world, A, { ageDays: 90, tags: { 'aws:dlm:lifecycle-policy-id': 'policy-0456' } }),
      seedSet(world, A, { ageDays: 90, tags: { 'aws:backup:source-resource': 'arn:aws:ec2:us-east-1:123456789012:volume/vol-2' } }),
    ];
    const ours = seedSet(world, A, { ageDays: 90 });
    for (let n = 0; n < 3; n += 1) await night(world, n, { env: { RETAIN_COUNT: '1', RETAIN_DAYS: '0' } });
    const foreignIds = foreign.flatMap((f) => f.ids);
    for (const id of foreignIds) expect(liveIds(world).has(id), id).toBe(true);
    // Not even attempted: the account never received a DeleteSnapshot for them.
    const attempted = new Set(deleteCalls(world));
    for (const id of foreignIds) expect(attempted.has(id), id).toBe(false);
    for (const id of ours.ids) expect(deletedIds(world).has(id)).toBe(true);
    // Everything retention ever deleted carried this stack's tag.
    for (const s of [...world.snapshots.values()].filter((x) => x.deleted)) expect(s.tags[STACK_TAG]).toBe(STACK);
  });

  it('keeps held and AMI-used sets whole and reports them; names an AMI that blocks deletion for 3+ nights in the alert', async () => {
    const world = fleetWorld([{ instanceId: A }, { instanceId: B, attempts: ['writer-failure'] }]);
    const held = seedSet(world, A, { ageDays: 60, hold: true });
    const usedByAmi = seedSet(world, A, { ageDays: 59, image: true });
    const plain = seedSet(world, A, { ageDays: 58 });
    const env = { RETAIN_COUNT: '1', RETAIN_DAYS: '0' };
    let report: RunReport | undefined;
    for (let n = 0; n < 3; n += 1) report = (await night(world, n, { env, input: { maxAttempts: 1 } })).report;
    for (const id of [...held.ids, ...usedByAmi.ids]) expect(liveIds(world).has(id), id).toBe(true);
    for (const id of plain.ids) expect(deletedIds(world).has(id)).toBe(true);
    // The AMI's snapshots were never even tried (DescribeImages said so first); the hold is a tag, not an error.
    const attempted = new Set(deleteCalls(world));
    for (const id of [...held.ids, ...usedByAmi.ids]) expect(attempted.has(id)).toBe(false);
    expect(report?.retention?.held.map((h) => h.snapshotId).sort()).toEqual([...held.ids].sort());
    expect(report?.retention?.held[0]?.reason).toMatch(/vss-snapshots:hold/);
    expect(report?.retention?.inUse.map((h) => h.snapshotId).sort()).toEqual([...usedByAmi.ids].sort());
    expect(report?.retention?.inUse[0]).toMatchObject({ imageIds: [usedByAmi.imageId], reason: expect.stringContaining(usedByAmi.imageId as string) });
    // Night 3 (the third run that found it in use): an anomaly, and the alert (B failed) names it.
    expect(report?.retention?.anomalies.join('\n')).toMatch(new RegExp(`in use by AMIs for 3\\+ runs \\(${usedByAmi.imageId}\\)`));
    expect(report?.alert?.message).toContain('== Retention ==');
    expect(report?.alert?.message).toContain(usedByAmi.imageId);
  });

  it('reports a set it could only partly delete (an AMI registered after the check) and tries the rest again next night', async () => {
    const world = fleetWorld([{ instanceId: A }]);
    const target = seedSet(world, A, { ageDays: 30 });
    let imageId: string | undefined;
    // Between the plan's DescribeImages and the deletions, someone registers an AMI from the set's second snapshot.
    const registerLate = ({ service, operation, input }: { service: string; operation: string; input: Record<string, unknown> }) => {
      if (service === 'ec2' && operation === 'DeleteSnapshot' && input.SnapshotId === target.ids[0] && !imageId) {
        imageId = 'ami-0feedfacefeedface';
        world.images.set(imageId, { imageId, name: 'registered-late', snapshotIds: [target.ids[1] as string], createdAt: world.now });
      }
    };
    const env = { RETAIN_COUNT: '1', RETAIN_DAYS: '0' };
    const first = (await night(world, 0, { env, interceptors: [registerLate] })).report;
    expect(deletedIds(world).has(target.ids[0] as string)).toBe(true);
    expect(liveIds(world).has(target.ids[1] as string)).toBe(true);
    expect(first.retention?.partial).toEqual([
      expect.objectContaining({ instanceId: A, runId: target.runId, deleted: [target.ids[0]], remaining: [target.ids[1]], reason: expect.stringContaining('InvalidSnapshot.InUse') }),
    ]);
    expect(first.retention?.deleted.map((d) => d.snapshotId)).toEqual([target.ids[0]]);
    expect(first.retention?.anomalies.join('\n')).toMatch(/only partly deleted \(1 of 2\)/);
    const ledger = JSON.parse(world.buckets.get(REPORT_BUCKET)?.get(LEDGER_KEY) ?? '{}') as Ledger;
    expect(Object.values(ledger.stuck)).toEqual([expect.objectContaining({ reason: 'partial' })]);

    // Next night the rest is due again, found in use by the check, kept and reported; once the AMI is gone, deleted.
    const second = (await night(world, 1, { env })).report;
    expect(second.retention?.inUse.map((e) => e.snapshotId)).toEqual([target.ids[1]]);
    expect(second.retention?.anomalies.join('\n')).toMatch(/partly deleted by earlier runs/);
    world.images.delete(imageId as string);
    const third = (await night(world, 2, { env })).report;
    expect(third.retention?.deleted.map((d) => d.snapshotId)).toContain(target.ids[1]);
    expect(liveIds(world).has(target.ids[1] as string)).toBe(false);
  });

  it('keeps a terminated instance’s last set TERMINATED_RETAIN_DAYS after it vanished, then lets it go', async () => {
    const world = fleetWorld([{ instanceId: A }, { instanceId: B }]);
    const env = { RETAIN_COUNT: '3', RETAIN_DAYS: '0', TERMINATED_RETAIN_DAYS: '4' };
    for (let n = 0; n < 3; n += 1) await night(world, n, { env });
    expect(setsOf(world, B).size).toBe(3);
    const lastOfB = [...setsOf(world, B).keys()].sort().at(-1);
    const instance = world.instances.get(B);
    if (!instance) throw new Error('no B');
    instance.state = 'terminated';
    instance.terminatedAt = world.now;
    // Night 3: B is still listed (terminated, within the hour) or already gone: either way its count rule no longer
    // applies, only its last set stays.
    for (let n = 3; n < 3 + 4; n += 1) {
      const { report } = await night(world, n, { env });
      expect(report.instances.map((i) => i.instanceId)).toEqual([A]);
      expect([...setsOf(world, B).keys()]).toEqual([lastOfB]);
      expect(report.retention?.keptBy['terminated-grace']).toBe(2);
    }
    // Four days after it was first seen gone: the last set expires too. A keeps its three.
    const { report } = await night(world, 7, { env });
    expect(setsOf(world, B).size).toBe(0);
    expect(report.retention?.deleted.filter((d) => d.instanceId === B).map((d) => d.runId)).toEqual([lastOfB, lastOfB]);
    expect(setsOf(world, A).size).toBe(3);
  });

  it('lets an instance tag override the stack defaults, and falls back to the defaults (with a reason) on a bad tag', async () => {
    const world = fleetWorld([
      { instanceId: A, tags: { ConsistentSnapshot: 'WindowsVSS', [RETAIN_TAG]: 'count=1' } },
      { instanceId: B, tags: { ConsistentSnapshot: 'WindowsVSS', [RETAIN_TAG]: 'count=1,days=banana' } },
    ]);
    for (const id of [A, B]) for (const ageDays of [5, 4, 3, 2, 1]) seedSet(world, id, { ageDays });
    const { report } = await night(world, 0, { env: { RETAIN_COUNT: '3', RETAIN_DAYS: '0' } });
    expect(setsOf(world, A).size).toBe(1);
    expect(setsOf(world, B).size).toBe(3);
    expect(report.retention?.overrides).toEqual([{ instanceId: B, value: 'count=1,days=banana', error: expect.stringMatching(/expected count=N, days=N or count=N,days=M; the stack defaults apply/) }]);
    expect(report.retention?.anomalies.join('\n')).toContain(`Instance ${B}: vss-snapshots:retain`);
  });

  it('gives the same outcome when Plan or Apply Retention dies after its work and is retried: nothing doubled, nothing lost', async () => {
    const outcome = async (fault?: string) => {
      const world = fleetWorld([{ instanceId: A, volumes: [{ device: '/dev/sda1' }] }]);
      for (let k = 0; k < 200; k += 1) seedSet(world, A, { ageDays: 30 + k / 10 });
      let deleting = false;
      let deletions = 0;
      const interceptors = [
        // Dies just after its 37th deletion, and (another death) at the save of its progress after deleting:
        // the retried invocation repeats deletions EC2 already did (NotFound) and must count them once.
        lambdaDiesAt(world, (c) => fault === 'mid-apply' && c.operation === 'DeleteSnapshot' && (deletions += 1) === 37, { after: true }),
        lambdaDiesAt(world, (c) => fault === 'mid-apply' && (deleting ||= c.operation === 'DeleteSnapshot') && c.operation === 'PutObject' && String(c.input.Key).endsWith('/retention.json'), { after: false }),
        // Dies as the last slice puts the deletions into the run report (after saving its own progress).
        lambdaDiesAt(world, (c) => fault === 'report-update' && (deleting ||= c.operation === 'DeleteSnapshot') && c.operation === 'PutObject' && String(c.input.Key).startsWith('reports/'), { after: false }),
      ];
      const { report } = await night(world, 0, {
        env: { RETAIN_COUNT: '1', RETAIN_DAYS: '0' },
        interceptors,
        lambdaFault: (state, n) => (state === fault && n === 1 ? { crashAfter: true } : undefined),
      });
      if (fault === 'mid-apply') expect(deleteCalls(world).length, 'the retried invocation repeated deletions').toBeGreaterThan(200);
      return { deleted: report.retention?.deleted.map((d) => d.snapshotId).sort(), live: [...liveIds(world)].sort().length, kept: report.retention?.kept };
    };
    const clean = await outcome();
    expect(clean.deleted).toHaveLength(200);
    for (const fault of ['Plan Retention', 'Apply Retention', 'mid-apply', 'report-update']) expect(await outcome(fault), fault).toEqual(clean);
  });

  it('previews without deleting, skips on request, and never deletes on a dry run', async () => {
    const world = fleetWorld([{ instanceId: A }]);
    const old = seedSet(world, A, { ageDays: 30 });
    const env = { RETAIN_COUNT: '1', RETAIN_DAYS: '0' };
    const preview = (await night(world, 0, { env, input: { retention: 'preview' } })).report;
    expect(preview.retention).toMatchObject({ mode: 'preview', deleted: [], kept: 2 });
    expect(preview.retention?.planned?.map((p) => p.snapshotId).sort()).toEqual([...old.ids].sort());
    const dry = (await night(world, 1, { env, input: { dryRun: true } })).report;
    expect(dry.retention?.mode).toBe('preview');
    expect(dry.retention?.planned?.length).toBeGreaterThan(0);
    const skip = (await night(world, 2, { env, input: { retention: 'skip' } })).report;
    expect(skip.retention).toMatchObject({ mode: 'skip', deleted: [], skipped: expect.stringContaining('"retention": "skip"') });
    expect(deleteCalls(world).filter((id) => old.ids.includes(id))).toEqual([]);
    const dryPreview = (await night(world, 3, { env, input: { dryRun: true, retention: 'apply' } })).report;
    expect(dryPreview.retention?.mode).toBe('preview');
    expect(deleteCalls(world).filter((id) => old.ids.includes(id))).toEqual([]);
    // Apply, at last.
    await night(world, 4, { env });
    for (const id of old.ids) expect(deletedIds(world).has(id)).toBe(true);
  });

  it('does not run retention when a shard failed: this run’s sets are not all verified', async () => {
    const world = fleetWorld([{ instanceId: A }]);
    const old = seedSet(world, A, { ageDays: 30 });
    world.advanceTo(DEFAULT_START);
    const result = await runWorkflow(world, {
      env: { RETAIN_COUNT: '1', RETAIN_DAYS: '0' },
      lambdaFault: (state) => (state === 'Advance Instances' ? { serviceError: true } : undefined),
    });
    expect(result.status).toBe('FAILED');
    const report = readReport(world, result) ?? (JSON.parse(world.buckets.get(REPORT_BUCKET)?.get([...(world.buckets.get(REPORT_BUCKET)?.keys() ?? [])].find((k) => k.startsWith('reports/')) ?? '') ?? '{}') as RunReport);
    expect(report.retention?.skipped).toMatch(/not every instance of this run reached its outcome/);
    for (const id of old.ids) expect(liveIds(world).has(id)).toBe(true);
    expect(deleteCalls(world).filter((id) => old.ids.includes(id))).toEqual([]);
  });

  it('paces a backlog under EC2’s DeleteSnapshot bucket, caps it per night and carries the rest over', async () => {
    const world = fleetWorld([{ instanceId: A, volumes: [{ device: '/dev/sda1' }] }]);
    for (let k = 0; k < 500; k += 1) seedSet(world, A, { ageDays: 30 + k / 100 });
    const limits = accountLimits(world);
    const env = { RETAIN_COUNT: '1', RETAIN_DAYS: '0', RETENTION_MAX_DELETES: '300' };
    const first = await night(world, 0, { env, interceptors: [limits.interceptor] });
    expect(first.report.retention).toMatchObject({ deferred: 200 });
    expect(first.report.retention?.deleted).toHaveLength(300);
    // Oldest first.
    const deletedStarts = first.report.retention?.deleted.map((d) => d.runId) ?? [];
    expect([...deletedStarts].sort().reverse()).toEqual(deletedStarts.slice().sort().reverse());
    // Several invocations of at most 90 deletions each, with waits between: never throttled.
    expect(first.result.stats.byState['Apply Retention']?.invocations).toBe(4);
    expect(limits.stats.throttled['ec2:DeleteSnapshot'] ?? 0).toBe(0);
    const second = await night(world, 1, { env, interceptors: [limits.interceptor] });
    expect(second.report.retention).toMatchObject({ deferred: 0 });
    expect(second.report.retention?.deleted).toHaveLength(201);
    expect(second.report.retention?.anomalies).toEqual([]);
    limits.uninstall();
    expect(setsOf(world, A).size).toBe(1);
  });

  it('sends the run alert before it deletes, and puts what it deleted into the report afterwards', async () => {
    const world = fleetWorld([{ instanceId: A, volumes: [{ device: '/dev/sda1' }] }, { instanceId: B, volumes: [{ device: '/dev/sda1' }], attempts: ['writer-failure'] }]);
    const old = Array.from({ length: 300 }, (_, k) => seedSet(world, A, { ageDays: 30 + k / 10 }));
    let reportBeforeDeleting: RunReport | undefined;
    const { report } = await night(world, 0, {
      env: { RETAIN_COUNT: '1', RETAIN_DAYS: '0' },
      input: { maxAttempts: 1 },
      onEvent: (event, w) => {
        if (event.type === 'StateEntered' && 'state' in event && event.state.name === 'Apply Retention' && !reportBeforeDeleting) {
          const key = [...(w.buckets.get(REPORT_BUCKET)?.keys() ?? [])].find((k) => k.startsWith('reports/'));
          reportBeforeDeleting = JSON.parse(w.buckets.get(REPORT_BUCKET)?.get(key ?? '') ?? '{}') as RunReport;
        }
      },
    });
    const publish = world.mutations.findIndex((m) => m.call === 'sns:Publish');
    const firstDelete = world.mutations.findIndex((m) => m.call === 'ec2:DeleteSnapshot' && old.some((o) => o.ids.includes(m.ids[0] as string)));
    expect(publish).toBeGreaterThanOrEqual(0);
    expect(publish).toBeLessThan(firstDelete);
    // Written before the deletions: the plan, not finished; rewritten after them: what was done.
    expect(reportBeforeDeleting?.retention).toMatchObject({ mode: 'apply', finished: false, deleted: [] });
    expect(reportBeforeDeleting?.retention?.planned).toHaveLength(300);
    expect(report.retention).toMatchObject({ mode: 'apply', finished: true });
    expect(report.retention?.deleted).toHaveLength(300);
    expect(report.retention?.planned).toBeUndefined();
    expect(report.alert).toEqual(reportBeforeDeleting?.alert);
  });

  it('names a backlog that does not shrink', async () => {
    const world = fleetWorld([{ instanceId: A, volumes: [{ device: '/dev/sda1' }] }, { instanceId: B, volumes: [{ device: '/dev/sda1' }], attempts: ['writer-failure'] }]);
    for (let k = 0; k < 20; k += 1) seedSet(world, A, { ageDays: 30 + k });
    const env = { RETAIN_COUNT: '1', RETAIN_DAYS: '0', RETENTION_MAX_DELETES: '1' };
    await night(world, 0, { env, input: { maxAttempts: 1 } });
    const { report } = await night(world, 1, { env, input: { maxAttempts: 1 } });
    expect(report.retention?.deferred).toBe(19);
    expect(report.retention?.anomalies.join('\n')).toMatch(/backlog is not shrinking: 19 snapshot\(s\) deferred \(19 the run before\)/);
    expect(report.alert?.message).toMatch(/backlog is not shrinking/);
  });

  it('holds every invariant over 60 nights: failing nights, a termination, held, AMI, foreign and other-stage snapshots; the count levels off', async () => {
    const C = 'i-0ccccccccccccccc3';
    const world = fleetWorld([{ instanceId: A }, { instanceId: B }, { instanceId: C, volumes: [{ device: '/dev/sda1' }] }], true);
    const untouchable = [
      seedSet(world, A, { ageDays: 200, stack: 'vss-snapshots-prod' }),
      seedSet(world, A, { ageDays: 200, stack: null }),
      seedSet(world, A, { ageDays: 200, bare: true, tags: { 'aws:dlm:lifecycle-policy-id': 'policy-0123' } }),
      seedSet(world, B, { ageDays: 150, hold: true }),
      seedSet(world, B, { ageDays: 140, image: true }),
    ].flatMap((x) => x.ids);
    const env = { RETAIN_COUNT: '5', RETAIN_DAYS: '3', TERMINATED_RETAIN_DAYS: '7' };
    const failing = (n: number) => n >= 20 && n < 35; // B: two weeks of failed nights (crash-consistent fallbacks)
    const live60: number[] = [];
    let newestGoodOfB: string[] = [];
    for (let n = 0; n < 60; n += 1) {
      const b = world.instances.get(B);
      if (b) {
        b.behaviours = failing(n) ? ['crash-consistent'] : ['ok'];
        b.snapshotCommandsRun = 0;
      }
      if (n === 25) {
        const c = world.instances.get(C);
        if (c) Object.assign(c, { state: 'terminated', terminatedAt: world.now });
      }
      const { report } = await night(world, n, { env, input: { maxAttempts: 1 } });
      const ofB = report.instances.find((i) => i.instanceId === B);
      if (ofB?.outcome === 'succeeded') newestGoodOfB = ofB.snapshots.map((x) => x.snapshotId);
      // The newest verified set of an existing instance is live, through all of B's failed nights.
      for (const id of newestGoodOfB) expect(liveIds(world).has(id), `night ${n}: ${id}`).toBe(true);
      for (const id of untouchable) expect(liveIds(world).has(id), `night ${n}: ${id}`).toBe(true);
      // A's window: the newest 5 sets (days=3 keeps only 3), never more.
      expect(ourSetsOf(world, A).size, `night ${n}`).toBe(Math.min(n + 1, 5));
      // C, gone from night 25: no count rule, days=3 lets its older sets go; its last set stays 7 days after it
      // was first seen gone, then goes too (night 32 is the boundary, left out).
      if (n >= 26 && n < 32) expect(ourSetsOf(world, C).size, `night ${n}`).toBe(1);
      if (n >= 33) expect(ourSetsOf(world, C).size, `night ${n}`).toBe(0);
      live60.push(live(world).filter((x) => x.tags[STACK_TAG] === STACK).length);
    }
    // Never an attempt on a snapshot that is not this stack's; everything deleted was this stack's, in whole sets.
    const attempted = new Set(deleteCalls(world));
    for (const id of untouchable.slice(0, 3)) expect(attempted.has(id)).toBe(false);
    const deleted = [...world.snapshots.values()].filter((x) => x.deleted);
    for (const x of deleted) expect(x.tags[STACK_TAG]).toBe(STACK);
    const byRun = new Map<string, boolean[]>();
    for (const x of world.snapshots.values()) if (x.tags[STACK_TAG] === STACK) byRun.set(`${x.instanceId}/${x.tags[RUN_TAG]}`, [...(byRun.get(`${x.instanceId}/${x.tags[RUN_TAG]}`) ?? []), x.deleted]);
    for (const [key, states] of byRun) expect(new Set(states).size, key).toBe(1);
    // The count levels off: the last 15 nights hold the same number of this stack's snapshots.
    expect(new Set(live60.slice(-15)).size).toBe(1);
    expect(Math.max(...live60)).toBeLessThan(60);
  }, 120_000);

  it('survives API faults over many nights without ever deleting the newest verified set', async () => {
    const world = fleetWorld([{ instanceId: A }, { instanceId: B, attempts: ['ok', 'vss-timeout'] }], true);
    world.faults = { rate: 0.05, seed: 7, kinds: ['throttle', 'server', 'timeout'] };
    const env = { RETAIN_COUNT: '2', RETAIN_DAYS: '0' };
    for (let n = 0; n < 6; n += 1) {
      const { report } = await night(world, n, { env });
      for (const instance of report.instances) {
        const newest = instance.snapshots.map((s) => s.snapshotId);
        for (const id of newest) expect(liveIds(world).has(id)).toBe(true);
      }
      for (const id of [A, B]) expect(setsOf(world, id).size).toBeLessThanOrEqual(2 + 1);
    }
    // Everything deleted was this stack's and listed in some night's report.
    for (const s of [...world.snapshots.values()].filter((x) => x.deleted && x.tags[INSTANCE_TAG] === undefined && x.tags[RUN_TAG])) expect(s.tags[STACK_TAG]).toBe(STACK);
  });
});
