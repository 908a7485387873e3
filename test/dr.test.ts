/**
 * DR copies through the real workflow on the simulated account with Regions: every verified set ends with
 * exactly one completed, tagged copy in the DR Region; the copy quota is never exceeded; lost answers, KMS
 * problems and deleted sources are handled and alerted separately; copies that outlast the pass's deadline are
 * finished by the next night's pass; the DR Region's retention keeps what it must. Checked against the world.
 */
import { describe, expect, it } from 'vitest';
import { DR_LATEST_KEY, drRecordKey } from '../src/lib/dr/record.ts';
import type { DrRecord } from '../src/lib/dr/record.ts';
import type { RunReport } from '../src/lib/report.ts';
import { INSTANCE_TAG, RUN_TAG, SOURCE_REGION_TAG, SOURCE_SNAPSHOT_TAG, STACK_TAG } from '../src/lib/run-id.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { REPORT_BUCKET, runWorkflow } from '../src/local/runner.ts';
import type { LocalRunResult, RunOptions } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import type { World, WorldDump } from '../src/local/world.ts';
import type { CallInterceptor } from '../src/local/transport.ts';
import { awsError } from '../src/local/aws-error.ts';
import { lambdaDiesAt } from '../src/local/faults.ts';
import { readReport, twoVolumes } from './helpers.ts';

const DR = 'us-west-2';
const DAY = 86_400_000;

const smallVolumes = [{ device: '/dev/sda1', sizeGiB: 30 }, { device: 'xvdf', sizeGiB: 8 }];

/**
 * An interceptor that answers ResourceLimitExceeded (the destination's copy slots full of other tools' copies)
 * to every CopySnapshot of the first xvdf snapshot it sees, while `refuse` is true.
 */
function quotaFullForXvdf(world: World): { interceptor: CallInterceptor; blocked: string | undefined; refuse: boolean } {
  const quota = {
    blocked: undefined as string | undefined,
    refuse: true,
    interceptor: ((call) => {
      if (call.operation !== 'CopySnapshot') return;
      const source = call.input.SourceSnapshotId as string;
      if (!quota.blocked && world.volumes.get(world.snapshots.get(source)?.volumeId ?? '')?.device === 'xvdf') quota.blocked = source;
      if (quota.refuse && source === quota.blocked) throw awsError('ResourceLimitExceeded', 'too many copies in flight');
    }) as CallInterceptor,
  };
  return quota;
}

function drWorld(count: number, extra: Record<string, unknown> = {}, faults = false, volumes: unknown = twoVolumes): World {
  const instances = Array.from({ length: count }, (_, n) => ({ instanceId: `i-0${String(n + 1).padStart(16, 'a')}`, volumes }));
  return worldFromFleet(parseFleet({ ...(faults ? {} : { faults: { rate: 0 } }), instances, ...extra }, 'dr fleet'));
}

async function night(world: World, env: Record<string, string> = {}, options: RunOptions = {}): Promise<{ result: LocalRunResult; report: RunReport; record: DrRecord }> {
  const result = await runWorkflow(world, { ...options, env: { DR_REGION: DR, ...env } });
  const report = readReport(world, result) as RunReport;
  const text = world.buckets.get(REPORT_BUCKET)?.get(drRecordKey(report.runId));
  return { result, report, record: JSON.parse(text ?? 'null') as DrRecord };
}

type DumpSnapshot = WorldDump['snapshots'][number] & { region?: string; sourceSnapshotId?: string; sourceRegion?: string };
const live = (world: World): DumpSnapshot[] => world.dump().snapshots as DumpSnapshot[];
const copiesIn = (world: World): DumpSnapshot[] => live(world).filter((s) => s.region === DR);

/** Every verified snapshot of the report has exactly one completed copy in the DR Region, tagged and sourced. */
function expectProtected(world: World, report: RunReport): void {
  const copies = copiesIn(world);
  for (const i of report.instances.filter((x) => x.outcome === 'succeeded')) {
    for (const s of i.snapshots) {
      const mine = copies.filter((c) => c.sourceSnapshotId === s.snapshotId);
      expect(mine.map((c) => c.state), `${i.instanceId} ${s.snapshotId}`).toEqual(['completed']);
      const c = mine[0] as DumpSnapshot;
      expect(c.sourceRegion).toBe('us-east-1');
      expect(c.tags[SOURCE_SNAPSHOT_TAG]).toBe(s.snapshotId);
      expect(c.tags[SOURCE_REGION_TAG]).toBe('us-east-1');
      expect(c.tags[INSTANCE_TAG]).toBe(i.instanceId);
      expect(c.tags[RUN_TAG]).toBe(report.runId);
      expect(c.tags[STACK_TAG]).toBe('vss-snapshots-local');
      expect(c.tags.AppConsistent).toBe('true');
    }
  }
}

describe('DR copies', () => {
  it('copies every verified set into the DR Region, exactly once, and reports it protected', async () => {
    const world = drWorld(3);
    const { result, report, record } = await night(world);
    expect(result.status).toBe('SUCCEEDED');
    expect(report.summary.succeeded).toBe(3);
    expectProtected(world, report);
    expect(copiesIn(world)).toHaveLength(6);
    expect(report.copies).toMatchObject({ region: DR, sourceRegion: 'us-east-1', protected: 3, inProgress: 0, failed: [], complete: true, alert: null });
    expect(record.jobs.every((j) => j.state === 'completed' && j.attempts === 1)).toBe(true);
    expect(world.published.filter((p) => p.subject?.includes('DR'))).toHaveLength(0);
    expect(world.buckets.get(REPORT_BUCKET)?.get(DR_LATEST_KEY)).toContain(report.runId);
  });

  it('is off without DR_REGION: no copy, no copies section', async () => {
    const world = drWorld(1);
    const result = await runWorkflow(world, {});
    const report = readReport(world, result) as RunReport;
    expect(result.status).toBe('SUCCEEDED');
    expect(report.copies).toBeUndefined();
    expect(copiesIn(world)).toHaveLength(0);
  });

  it('keeps at most the concurrent copy quota in flight, and protects 30 instances with quota 4', async () => {
    const world = drWorld(30, {}, false, smallVolumes);
    let peak = 0;
    const { report } = await night(world, { DR_COPY_CONCURRENCY: '4' }, {
      onEvent: () => {
        const inFlight = copiesIn(world).filter((c) => c.state === 'pending').length;
        peak = Math.max(peak, inFlight);
      },
    });
    expect(peak).toBeGreaterThan(0);
    expect(peak).toBeLessThanOrEqual(4);
    expect(report.copies?.protected).toBe(30);
    expectProtected(world, report);
  });

  it('reports a disabled DR key as a failed copy with the reason, in a separate alert, after the bounded retries', async () => {
    const world = drWorld(2, { dr: { kmsKeys: [{ region: DR, alias: 'alias/vss-dr', state: 'disabled' }] } });
    const { result, report, record } = await night(world, { DR_KMS_KEY_ID: 'alias/vss-dr' });
    expect(result.status).toBe('SUCCEEDED');
    expect(report.alert).toBeNull();
    expect(report.copies?.protected).toBe(0);
    expect(report.copies?.failed).toHaveLength(4);
    for (const f of report.copies?.failed ?? []) expect(f.code).toBe('kms');
    expect(record.jobs.every((j) => j.attempts === 3)).toBe(true);
    const alert = world.published.find((p) => p.subject?.includes('DR copy missing'));
    expect(alert?.message).toContain('KMS');
    expect(alert?.message).toContain('What to do');
    // No errored copy is left behind in the DR Region.
    expect(copiesIn(world).filter((c) => c.state === 'error')).toHaveLength(0);
  });

  it('survives lost CopySnapshot answers and API faults: still exactly one copy per snapshot', async () => {
    for (const seed of [1, 2, 3]) {
      const world = worldFromFleet(
        parseFleet({ faults: { rate: 0.15, seed, kinds: ['throttle', 'server', 'timeout'] }, instances: Array.from({ length: 6 }, () => ({ volumes: twoVolumes })) }, 'faulty'),
      );
      const { result, report } = await night(world);
      expect(result.status, `seed ${seed}`).toBe('SUCCEEDED');
      expectProtected(world, report);
      expect(report.copies?.protected, `seed ${seed}`).toBe(report.summary.succeeded);
    }
  });

  it('leaves copies that outlast the deadline to the next night, which completes them', async () => {
    // 1 TiB volumes at 100 GiB/h: a full copy takes over 10 hours; a 2-hour pass cannot wait for it.
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, instances: [{ volumes: [{ device: '/dev/sda1', sizeGiB: 1024 }] }] }, 'big'));
    const first = await night(world, { DR_COPY_DEADLINE_HOURS: '2' });
    expect(first.report.copies).toMatchObject({ protected: 0, inProgress: 1, complete: true });
    expect(first.report.copies?.copying).toBe(1);
    const alert = world.published.find((p) => p.subject?.includes('DR copy missing'));
    expect(alert?.message).toContain('next nightly pass');
    world.advanceBy(DAY - (world.now - Date.parse(first.report.startedAt)));
    const second = await night(world, { DR_COPY_DEADLINE_HOURS: '2' });
    const carried = second.record.jobs.find((j) => j.fromRun === first.report.runId);
    expect(carried?.state).toBe('completed');
    // The first night's copy was adopted, not made again.
    expect(copiesIn(world).filter((c) => c.sourceSnapshotId === carried?.sourceSnapshotId)).toHaveLength(1);
    // And the first night's report is completed by the second night's pass.
    const firstAgain = JSON.parse(world.buckets.get(REPORT_BUCKET)?.get(`reports/${first.report.runId}.json`) ?? '{}') as RunReport;
    expect(firstAgain.copies).toMatchObject({ protected: 1, inProgress: 0 });
  });

  it('fails a copy whose source was deleted before it was made, says why, and copies the rest', async () => {
    const world = drWorld(2, {}, false, smallVolumes);
    let victim: string | undefined;
    const { report } = await night(world, {}, {
      interceptors: [
        (call) => {
          if (call.operation !== 'CopySnapshot' || victim) return;
          victim = call.input.SourceSnapshotId as string;
          const s = world.snapshots.get(victim);
          if (s) {
            s.deleted = true;
            s.deletedAt = world.now;
          }
        },
      ],
    });
    expect(victim).toBeDefined();
    expect(report.copies?.failed.map((f) => [f.snapshotId, f.code])).toEqual([[victim, 'source-deleted']]);
    expect(report.copies?.protected).toBe(1);
    expect(world.published.find((p) => p.subject?.includes('DR copy missing'))?.message).toContain(victim as string);
  });

  it('waits for copy slots when other tools fill the destination quota (ResourceLimitExceeded), and loses nothing', async () => {
    // The account's quota is 3 in flight; the stack would use 20.
    const world = drWorld(6, { dr: { copyQuota: 3 } }, false, smallVolumes);
    const { report, record } = await night(world);
    expect(record.quotaRefusals).toBeGreaterThan(0);
    expect(report.copies?.protected).toBe(6);
    expect(record.jobs.every((j) => j.state === 'completed')).toBe(true);
    expectProtected(world, report);
  });

  it('copies nothing on a dry run', async () => {
    const world = drWorld(1);
    const { report } = await night(world, {}, { input: { dryRun: true } });
    expect(copiesIn(world)).toHaveLength(0);
    expect(report.copies?.skipped).toMatch(/dry run/);
  });

  it('keeps the DR Region by its own rule over many nights: the newest copies, held and AMI-used ones, never another stack\'s', async () => {
    const world = drWorld(2, {}, false, smallVolumes);
    const [a, b] = [...world.instances.keys()] as [string, string];
    const seed = (instanceId: string, ageDays: number, tags: Record<string, string>, stack: string | null = 'vss-snapshots-local'): string => {
      const start = world.now - ageDays * DAY;
      const id = `snap-0${world.nextHex(16)}`;
      const runId = `${new Date(start).toISOString().replace(/[-:]/g, '').replace(/\.[0-9]+Z$/, 'Z')}-${world.nextHex(8)}`;
      world.addSnapshot({
        snapshotId: id,
        volumeId: 'vol-ffffffff',
        instanceId: '',
        volumeSize: 8,
        startTime: start + 3_600_000,
        completeAt: start + 7_200_000,
        finalState: 'completed',
        visibleAt: start,
        description: 'seeded DR copy',
        region: DR,
        tags:
          stack === undefined
            ? tags
            : {
                [RUN_TAG]: runId,
                'vss-snapshots:attempt': '1',
                'vss-snapshots:method': 'aws-vss',
                AppConsistent: 'true',
                [INSTANCE_TAG]: instanceId,
                'vss-snapshots:source-time': new Date(start).toISOString(),
                ...(stack ? { [STACK_TAG]: stack } : {}),
                ...tags,
              },
        deleted: false,
      });
      return id;
    };
    const foreign = seed(a, 60, { Name: 'someone else' }, null);
    const otherStage = seed(a, 60, {}, 'vss-snapshots-prod');
    const held = seed(a, 50, { 'vss-snapshots:hold': 'audit' });
    const amiUsed = seed(a, 45, {});
    world.images.set('ami-0123456789abcdef0', { imageId: 'ami-0123456789abcdef0', name: 'dr-golden', snapshotIds: [amiUsed], createdAt: world.now, region: DR });
    const expired = seed(b, 40, {});
    const env = { DR_RETAIN_COUNT: '2', DR_RETAIN_DAYS: '0', DR_COPY_DEADLINE_HOURS: '20' };
    const start = world.now;
    let last: RunReport | undefined;
    for (let n = 0; n < 5; n += 1) {
      world.advanceTo(start + n * DAY);
      last = (await night(world, env)).report;
    }
    const liveIds = new Set(copiesIn(world).map((c) => c.snapshotId));
    for (const id of [foreign, otherStage, held, amiUsed]) expect(liveIds.has(id), id).toBe(true);
    expect(liveIds.has(expired)).toBe(false);
    // Each instance keeps exactly its 2 newest nightly sets of copies (2 volumes each), plus what is held or used.
    for (const instanceId of [a, b]) {
      const runs = new Set(copiesIn(world).filter((c) => c.tags[INSTANCE_TAG] === instanceId && c.sourceSnapshotId).map((c) => c.tags[RUN_TAG]));
      expect(runs.size, instanceId).toBe(2);
    }
    expect(last?.copies?.retention).toMatchObject({ held: 1, inUse: 1 });
  });

  it('drops a never-started copy as superseded when the next night copies a newer set of the instance (a fleet beyond the copy slots)', async () => {
    // One copy slot and a 1-hour pass: of two instances' full copies, the first night starts one and leaves the rest.
    const world = drWorld(2, {}, false, [{ device: '/dev/sda1', sizeGiB: 200 }]);
    const env = { DR_COPY_CONCURRENCY: '1', DR_COPY_DEADLINE_HOURS: '1' };
    const first = await night(world, env);
    expect(first.record.jobs.map((j) => j.state).sort()).toEqual(['copying', 'waiting']);
    world.advanceBy(DAY - (world.now - Date.parse(first.report.startedAt)));
    const second = await night(world, env);
    const carried = second.record.jobs.filter((j) => j.fromRun === first.report.runId);
    expect(carried.map((j) => j.state).sort()).toEqual(['completed', 'failed']);
    expect(carried.find((j) => j.state === 'failed')?.code).toBe('superseded');
    // Tonight's jobs plus the two carried: the record does not pile up night after night.
    expect(second.record.jobs).toHaveLength(4);
    const alert = world.published.filter((p) => p.subject?.includes('DR copy missing')).at(-1);
    expect(alert?.message).toContain('superseded');
  });
});

describe('DR copies: review', () => {
  it('never deletes the newest complete DR set of an instance when a newer set lacks a volume\'s copy', async () => {
    const world = drWorld(1, {}, false, smallVolumes);
    const env = { DR_RETAIN_COUNT: '1', DR_RETAIN_DAYS: '0' };
    const first = await night(world, env);
    expect(first.report.copies?.protected).toBe(1);
    const firstCopies = copiesIn(world).map((c) => c.snapshotId);
    expect(firstCopies).toHaveLength(2);
    world.advanceBy(DAY - (world.now - Date.parse(first.report.startedAt)));
    // Night 2: one volume's source vanishes before its copy is made: that night's DR set has one copy of two.
    let victim: string | undefined;
    const second = await night(world, env, {
      interceptors: [
        (call) => {
          if (call.operation !== 'CopySnapshot' || victim) return;
          victim = call.input.SourceSnapshotId as string;
          const s = world.snapshots.get(victim);
          if (s) {
            s.deleted = true;
            s.deletedAt = world.now;
          }
        },
      ],
    });
    expect(second.report.copies?.protected).toBe(0);
    expect(second.report.copies?.failed).toHaveLength(1);
    // The first night's set is the only restorable one in the DR Region: it stays, whole.
    const liveIds = new Set(copiesIn(world).map((c) => c.snapshotId));
    for (const id of firstCopies) expect(liveIds.has(id), id).toBe(true);
  });

  it('keeps a DR set whose other volume is still to be copied by a later pass (carried over)', async () => {
    const world = drWorld(1, {}, false, smallVolumes);
    const env = { DR_RETAIN_COUNT: '1', DR_RETAIN_DAYS: '0', DR_COPY_DEADLINE_HOURS: '1' };
    // The first night's second volume finds the destination's copy slots full (other tools) until night 3.
    const quota = quotaFullForXvdf(world);
    const quotaFull = quota.interceptor;
    const first = await night(world, env, { interceptors: [quotaFull] });
    expect(quota.blocked).toBeDefined();
    expect(first.record.jobs.find((j) => j.sourceSnapshotId === quota.blocked)?.state).toBe('waiting');
    const firstCopy = copiesIn(world).find((c) => c.tags[RUN_TAG] === first.report.runId)?.snapshotId as string;
    expect(firstCopy).toBeDefined();
    world.advanceBy(DAY - (world.now - Date.parse(first.report.startedAt)));
    const second = await night(world, env, { interceptors: [quotaFull] });
    expect(second.record.jobs.find((j) => j.sourceSnapshotId === quota.blocked)?.fromRun).toBe(first.report.runId);
    // The first set's copy stays while its other volume is still to be copied.
    expect(copiesIn(world).map((c) => c.snapshotId)).toContain(firstCopy);
    quota.refuse = false;
    world.advanceBy(DAY - (world.now - Date.parse(second.report.startedAt)));
    const third = await night(world, env);
    expect(third.record.jobs.find((j) => j.sourceSnapshotId === quota.blocked)?.state).toBe('completed');
    const firstSet = copiesIn(world).filter((c) => c.tags[RUN_TAG] === first.report.runId);
    // Either the first set is whole in the DR Region, or none of it is left: never one copy of a two-volume set.
    expect([0, 2]).toContain(firstSet.length);
  });

  it('tags a carried-over copy with its whole set\'s size, not the number of its set\'s jobs carried', async () => {
    const world = drWorld(1, {}, false, smallVolumes);
    const env = { DR_COPY_DEADLINE_HOURS: '1' };
    const quota = quotaFullForXvdf(world);
    const quotaFull = quota.interceptor;
    const first = await night(world, env, { interceptors: [quotaFull] });
    expect(first.record.jobs.find((j) => j.sourceSnapshotId === quota.blocked)?.state).toBe('waiting');
    quota.refuse = false;
    world.advanceBy(DAY - (world.now - Date.parse(first.report.startedAt)));
    await night(world, env);
    const carried = copiesIn(world).find((c) => c.sourceSnapshotId === quota.blocked);
    expect(carried?.state).toBe('completed');
    expect(carried?.tags['vss-snapshots:set-size']).toBe('2');
  });

  it('carries a pass\'s unfinished copies over even when Plan DR Copies died before naming itself the latest pass', async () => {
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, instances: [{ volumes: [{ device: '/dev/sda1', sizeGiB: 1024 }] }] }, 'big'));
    const env = { DR_COPY_DEADLINE_HOURS: '2' };
    const dies = lambdaDiesAt(world, (call) => call.operation === 'PutObject' && call.input.Key === DR_LATEST_KEY, { after: false });
    const first = await night(world, env, { interceptors: [dies] });
    expect(first.result.status).toBe('SUCCEEDED');
    expect(first.report.copies?.copying).toBe(1);
    world.advanceBy(DAY - (world.now - Date.parse(first.report.startedAt)));
    const second = await night(world, env);
    const carried = second.record.jobs.find((j) => j.fromRun === first.report.runId);
    expect(carried?.state).toBe('completed');
  });

  it('a Lambda that dies around CopySnapshot calls leaves neither a duplicate nor a lost copy', async () => {
    for (const after of [true, false]) {
      const world = drWorld(4, {}, false, smallVolumes);
      let n = 0;
      const dies = lambdaDiesAt(world, (call) => call.operation === 'CopySnapshot' && (n += 1) % 3 === 0, { after, times: 4 });
      const { result, report, record } = await night(world, {}, { interceptors: [dies] });
      expect(result.status, `after ${after}`).toBe('SUCCEEDED');
      expectProtected(world, report);
      expect(copiesIn(world), `after ${after}`).toHaveLength(8);
      expect(record.jobs.every((j) => j.state === 'completed')).toBe(true);
    }
  });

  it('leaves a pass that is still running to finish its own copies: a manual run in between carries nothing of it, the next night does', async () => {
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, instances: [{ volumes: [{ device: '/dev/sda1', sizeGiB: 1024 }] }] }, 'big'));
    const env = { DR_COPY_DEADLINE_HOURS: '2' };
    const first = await night(world, env);
    const leftover = first.record.jobs[0];
    expect(leftover?.state).toBe('copying');
    // As if the first night's pass were still running when an operator starts a run by hand.
    const bucket = world.buckets.get(REPORT_BUCKET) as Map<string, string>;
    const key = drRecordKey(first.report.runId);
    const finished = bucket.get(key) as string;
    const running = JSON.parse(finished) as DrRecord;
    delete running.finishedAt;
    running.deadline = world.now + 10 * 3_600_000;
    bucket.set(key, JSON.stringify(running));
    world.advanceBy(3_600_000);
    const manual = await night(world, env, { input: { force: true } });
    expect(manual.record.jobs.filter((j) => j.fromRun === first.report.runId)).toEqual([]);
    expect(JSON.parse(bucket.get(DR_LATEST_KEY) as string)).toEqual({ runId: manual.report.runId, pending: [first.report.runId] });
    // The first pass ends; the next night carries its leftover (and the manual run's) and finishes it: one copy.
    bucket.set(key, finished);
    world.advanceBy(DAY - (world.now - Date.parse(first.report.startedAt)));
    const next = await night(world, env);
    const carried = next.record.jobs.find((j) => j.sourceSnapshotId === leftover?.sourceSnapshotId);
    expect(carried?.fromRun).toBe(first.report.runId);
    expect(carried?.state).toBe('completed');
    expect(copiesIn(world).filter((c) => c.sourceSnapshotId === leftover?.sourceSnapshotId)).toHaveLength(1);
  });
});
