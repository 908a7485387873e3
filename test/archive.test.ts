/**
 * The archive tier through the real workflow on the simulated account: which sets retention archives, when,
 * within which quota, how deletions wait for the archive's 90 days, and how a restore of an archived set is
 * refused before anything is created. Ground truth is the world (tiers, mutation log), not only the report.
 */
import { describe, expect, it } from 'vitest';
import type { RunReport } from '../src/lib/report.ts';
import { RUN_TAG, STACK_TAG } from '../src/lib/run-id.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { applyCall } from '../src/local/operations.ts';
import { simulateNights } from '../src/local/simulation.ts';
import { ARCHIVE_MS, RESTORE_MS, tierOf } from '../src/local/snapshot-tier.ts';
import { runWorkflow } from '../src/local/runner.ts';
import type { LocalRunResult, RunOptions } from '../src/local/runner.ts';
import { DEFAULT_START, worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';
import { readReport, seedSet as seedVerifiedSet, twoVolumes } from './helpers.ts';
import { awsError } from '../src/local/aws-error.ts';
import { drRecordKey } from '../src/lib/dr/record.ts';
import type { DrRecord } from '../src/lib/dr/record.ts';
import { REPORT_BUCKET } from '../src/local/runner.ts';
import { nightLine } from '../src/cli/simulate-command.ts';
import { archiveEnvironment, parseArchiveAfterOption } from '../src/cli/retain-option.ts';

const DAY = 86_400_000;
const A = 'i-0aaaaaaaaaaaaaaa1';
const B = 'i-0bbbbbbbbbbbbbbb2';

function fleetWorld(ids: string[]): World {
  return worldFromFleet(parseFleet({ faults: { rate: 0 }, instances: ids.map((instanceId) => ({ instanceId, volumes: twoVolumes })) }, 'test fleet'));
}

/** One completed, verified set of `instanceId` (all its volumes), `ageDays` old (helpers.ts seedSet). */
const seedSet = (world: World, instanceId: string, ageDays: number, o: { hold?: boolean; image?: boolean } = {}) => seedVerifiedSet(world, instanceId, { ageDays, ...o });

async function night(world: World, n: number, options: RunOptions = {}): Promise<{ result: LocalRunResult; report: RunReport }> {
  world.advanceTo(DEFAULT_START + n * DAY);
  const result = await runWorkflow(world, options);
  expect(result.status, `${result.error}: ${result.cause}`).toBe('SUCCEEDED');
  return { result, report: readReport(world, result) as RunReport };
}

const archiveCalls = (world: World) => world.mutations.filter((m) => m.call === 'ec2:ModifySnapshotTier');
const archivedOk = (world: World) => new Set(archiveCalls(world).filter((m) => m.ok).flatMap((m) => m.ids));
const tierNow = (world: World, id: string) => tierOf(world, world.snapshots.get(id) as NonNullable<ReturnType<World['snapshots']['get']>>);

/** Keep 7 sets or 200 days; archive sets 30+ days old. */
const ARCHIVE_ENV = { RETAIN_COUNT: '7', RETAIN_DAYS: '200', ARCHIVE_AFTER_DAYS: '30' };

describe('archive tier', () => {
  it('archives whole sets older than N days that the days rule keeps 90 more days; never the newest, never held, never AMI-used; never on preview', async () => {
    const world = fleetWorld([A]);
    const old = seedSet(world, A, 100);
    const middle = seedSet(world, A, 50);
    const young = seedSet(world, A, 20);
    const tooOld = seedSet(world, A, 150); // the days rule keeps it 50 more days: not worth the archive's 90
    const held = seedSet(world, A, 60, { hold: true });
    const ami = seedSet(world, A, 70, { image: true });

    const preview = (await night(world, 0, { env: ARCHIVE_ENV, input: { retention: 'preview' } })).report;
    expect(archiveCalls(world)).toEqual([]);
    expect(preview.retention?.archive?.planned?.map((p) => p.snapshotId).sort()).toEqual([...old.ids, ...middle.ids].sort());
    expect(preview.retention?.archive?.archived).toEqual([]);
    expect(preview.retention?.archive?.notArchived.map((p) => p.snapshotId).sort()).toEqual([...ami.ids].sort());
    const dry = (await night(world, 1, { env: ARCHIVE_ENV, input: { dryRun: true } })).report;
    expect(dry.retention?.archive?.planned?.length).toBe(4);
    expect(archiveCalls(world)).toEqual([]);

    const { report } = await night(world, 2, { env: ARCHIVE_ENV });
    expect(report.retention?.archive).toMatchObject({ afterDays: 30, deferred: 0, failed: [], inArchive: 0 });
    expect(report.retention?.archive?.archived.map((a) => a.snapshotId).sort()).toEqual([...old.ids, ...middle.ids].sort());
    expect([...archivedOk(world)].sort()).toEqual([...old.ids, ...middle.ids].sort());
    for (const id of [...young.ids, ...tooOld.ids, ...held.ids, ...ami.ids]) expect(archivedOk(world).has(id), id).toBe(false);
    // The newest sets (tonight's and the nights' before) stay in the standard tier.
    for (const s of world.snapshots.values()) if (s.startTime >= DEFAULT_START) expect(s.tier, s.snapshotId).toBeUndefined();
    // Archival takes hours: in progress at first, archived after.
    expect(tierNow(world, old.ids[0] as string).status).toBe('archival-in-progress');
    world.advanceBy(ARCHIVE_MS);
    for (const id of [...old.ids, ...middle.ids]) expect(tierNow(world, id).storageTier).toBe('archive');

    // The next night sees them archived and does nothing twice.
    const next = (await night(world, 3, { env: ARCHIVE_ENV })).report;
    expect(next.retention?.archive).toMatchObject({ archived: [], inArchive: 4 });
    expect(archiveCalls(world)).toHaveLength(4);
  });

  it('never archives a set kept by the count rule alone, and says why the setting archives nothing', async () => {
    const world = fleetWorld([A]);
    for (const age of [40, 60, 80, 100]) seedSet(world, A, age);
    const env = { RETAIN_COUNT: '10', RETAIN_DAYS: '0', ARCHIVE_AFTER_DAYS: '30' };
    const { report } = await night(world, 0, { env });
    expect(archiveCalls(world)).toEqual([]);
    expect(report.retention?.archive?.note).toMatch(/never archived \(raise retainDays to at least 120/);
  });

  it('archives nothing when ArchiveAfterDays is 0 (the default): no archive section, no tier calls', async () => {
    const world = fleetWorld([A]);
    seedSet(world, A, 100);
    const { report } = await night(world, 0, { env: { RETAIN_COUNT: '7', RETAIN_DAYS: '200' } });
    expect(report.retention?.archive).toBeUndefined();
    expect(world.apiCalls['ec2:DescribeSnapshotTierStatus'] ?? 0).toBe(0);
    expect(archiveCalls(world)).toEqual([]);
  });

  it('stays within the account’s 25 in-progress archives, whole sets, and carries the rest to the next night', async () => {
    const world = fleetWorld([A, B]);
    for (let age = 40; age < 55; age += 1) {
      seedSet(world, A, age);
      seedSet(world, B, age);
    }
    // Another tool's archive already in progress in the account: one slot fewer.
    const foreign = seedSet(world, B, 300);
    for (const id of foreign.ids) world.snapshots.get(id)?.tags && delete (world.snapshots.get(id) as { tags: Record<string, string> }).tags[STACK_TAG];
    world.snapshots.get(foreign.ids[0] as string)!.tier = { kind: 'archival', startedAt: world.now, doneAt: world.now + ARCHIVE_MS * 10 };

    const first = (await night(world, 0, { env: ARCHIVE_ENV })).report.retention?.archive;
    // 24 free slots: 12 two-volume sets; 60 - 24 eligible snapshots wait.
    expect(first?.inProgress).toBe(1);
    expect(first?.archived).toHaveLength(24);
    expect(first?.deferred).toBe(60 - 24);
    const inProgress = () => [...world.snapshots.values()].filter((s) => !s.deleted && s.tier && tierOf(world, s).status === 'archival-in-progress').length;
    expect(inProgress()).toBe(25);
    // Whole sets: every run id archived with both its snapshots.
    const byRun = new Map<string, number>();
    for (const id of archivedOk(world)) {
      const run = world.snapshots.get(id)?.tags[RUN_TAG] as string;
      byRun.set(run, (byRun.get(run) ?? 0) + 1);
    }
    for (const n of byRun.values()) expect(n).toBe(2);

    // Another tool takes slots between the plan and the archives: EC2 answers ResourceLimitExceeded, the rest waits.
    world.quotas.tier = { concurrentArchives: 3 };
    const second = (await night(world, 1, { env: ARCHIVE_ENV })).report.retention?.archive;
    expect(second?.archived.length).toBeLessThanOrEqual(3);
    expect(second?.deferred).toBeGreaterThan(0);
    expect(archiveCalls(world).some((m) => !m.ok && m.error === 'ResourceLimitExceeded')).toBe(true);
    world.quotas.tier = {};
    for (let n = 2; n < 6; n += 1) await night(world, n, { env: ARCHIVE_ENV });
    expect(archivedOk(world).size).toBe(60);
    // Never more than 25 in progress (the simulated account refuses the 26th; none was refused but on purpose).
    expect(archiveCalls(world).filter((m) => !m.ok && m.error !== 'ResourceLimitExceeded')).toEqual([]);
  });

  it('keeps an archived set due for deletion until its 90 days in the archive are over, then deletes it', async () => {
    const world = fleetWorld([A]);
    const set = seedSet(world, A, 60);
    await night(world, 0, { env: ARCHIVE_ENV });
    expect([...archivedOk(world)].sort()).toEqual([...set.ids].sort());
    // The policy shrinks: the set is due for deletion now, but went to the archive 10 days ago.
    const shrunk = { RETAIN_COUNT: '1', RETAIN_DAYS: '0', ARCHIVE_AFTER_DAYS: '30' };
    const { report } = await night(world, 10, { env: shrunk });
    const deferred = report.retention?.archive?.deletionDeferred ?? [];
    expect(deferred.map((d) => d.snapshotId).sort()).toEqual([...set.ids].sort());
    expect(deferred[0]?.deletableFrom.slice(0, 10)).toBe(new Date(DEFAULT_START + 90 * DAY).toISOString().slice(0, 10));
    expect(deferred[0]?.reason).toMatch(/archived less than 90 days ago/);
    expect(report.retention?.keptBy['archive-minimum']).toBe(2);
    const deletes = () => world.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot' && m.ids.some((id) => set.ids.includes(id)));
    expect(deletes()).toEqual([]);
    await night(world, 89, { env: shrunk });
    expect(deletes()).toEqual([]);
    await night(world, 91, { env: shrunk });
    expect(deletes().map((m) => m.ids[0]).sort()).toEqual([...set.ids].sort());
    const archivedAt = archiveCalls(world).find((m) => m.ids.includes(set.ids[0] as string))?.at as number;
    for (const m of deletes()) expect(m.at - archivedAt).toBeGreaterThanOrEqual(90 * DAY);
  });

  it('over 120 nights: archives after N days, never the newest, within the quota, deletes archived sets only after 90 days, and shows it per night', async () => {
    const fleet = parseFleet({ faults: { rate: 0 }, instances: [A, B].map((instanceId) => ({ instanceId, volumes: twoVolumes })) }, 'test fleet');
    const world = worldFromFleet(fleet);
    const env = { RETAIN_COUNT: '3', RETAIN_DAYS: '100', ARCHIVE_AFTER_DAYS: '7' };
    const lines: string[] = [];
    let maxInProgress = 0;
    const results = await simulateNights(world, fleet, {
      nights: 120,
      env,
      onNight: (r, w) => {
        lines.push(nightLine(r, w.instances));
        // Never the newest set of an instance: tonight's sets are in the standard tier.
        for (const s of w.snapshots.values()) if (!s.deleted && s.startTime >= Date.parse(r.scheduledAt)) expect(s.tier).toBeUndefined();
        const inProgress = [...w.snapshots.values()].filter((s) => !s.deleted && s.tier && tierOf(w, s).status === 'archival-in-progress').length;
        maxInProgress = Math.max(maxInProgress, inProgress);
      },
    });
    expect(results.every((r) => r.status === 'SUCCEEDED')).toBe(true);
    // Sets kept by the days rule 90+ more days: 7 to 10 days old. Two instances x 2 volumes a night.
    expect(archivedOk(world).size).toBeGreaterThan(100);
    expect(maxInProgress).toBeLessThanOrEqual(25);
    // Every archived snapshot that was deleted stayed 90 days in the archive first.
    const archivedAt = new Map(archiveCalls(world).filter((m) => m.ok).map((m) => [m.ids[0] as string, m.at]));
    const deleted = world.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot' && m.ok && archivedAt.has(m.ids[0] as string));
    expect(deleted.length).toBeGreaterThan(0);
    for (const m of deleted) expect(m.at - (archivedAt.get(m.ids[0] as string) as number), m.ids[0]).toBeGreaterThanOrEqual(90 * DAY);
    // The night lines show the archive: archived tonight and in the archive after the night.
    expect(results[10]?.archivedTonight).toBe(4);
    expect(results[119]?.snapshotsInArchive).toBeGreaterThan(0);
    expect(lines[10]).toMatch(/\s4\s+\d+\s*$/);
  });
});

describe('restore of an archived set', () => {
  it('refuses before creating anything, says it takes up to 72 hours and what to run; works once restored', async () => {
    const world = fleetWorld([A, B]);
    const first = await night(world, 0);
    const runId = first.report.runId;
    const ids = [...world.snapshots.values()].filter((s) => s.tags[RUN_TAG] === runId && s.instanceId === A).map((s) => s.snapshotId);
    for (const id of ids) world.snapshots.get(id)!.tier = { kind: 'archival', startedAt: world.now, doneAt: world.now + ARCHIVE_MS };
    world.advanceBy(ARCHIVE_MS);
    const volumesBefore = world.volumes.size;
    const refused = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: A, targetInstanceId: B } });
    expect(refused.error).toBe('RestoreRefusedError');
    expect(refused.cause).toMatch(/in the EBS Snapshots Archive tier/);
    expect(refused.cause).toMatch(/up to 72 hours/);
    expect(refused.cause).toContain(`aws ec2 restore-snapshot-tier --snapshot-id ${ids[0]} --temporary-restore-days 7`);
    expect(refused.cause).toMatch(/Nothing was created/);
    expect(world.volumes.size).toBe(volumesBefore);
    // The simulated account itself refuses a volume from an archived snapshot.
    const az = world.instances.get(B)?.availabilityZone;
    await expect(applyCall(world, 'ec2', 'CreateVolume', { AvailabilityZone: az, SnapshotId: ids[0] })).rejects.toMatchObject({ name: 'IncorrectState' });
    // Restored to the standard tier (72 hours later), the same restore works; not before.
    for (const id of ids) await applyCall(world, 'ec2', 'RestoreSnapshotTier', { SnapshotId: id, TemporaryRestoreDays: 3 });
    expect(tierNow(world, ids[0] as string).status).toBe('temporary-restore-in-progress');
    // Asked again while that restore runs: wait for it (starting another would be refused by EC2).
    const early = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: A, targetInstanceId: B } });
    expect(early.error).toBe('RestoreRefusedError');
    expect(early.cause).toMatch(/A restore to the standard tier is already under way for snap-[0-9a-f]+ \(since /);
    expect(early.cause).toMatch(/wait for it/);
    expect(early.cause).not.toMatch(/aws ec2 restore-snapshot-tier/);
    world.advanceBy(RESTORE_MS - 60_000);
    expect(tierNow(world, ids[0] as string).storageTier).toBe('archive');
    world.advanceBy(60_000);
    expect(tierNow(world, ids[0] as string)).toMatchObject({ storageTier: 'standard', status: 'temporary-restore-completed' });
    const restored = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: A, targetInstanceId: B } });
    expect(restored.status, restored.cause).toBe('SUCCEEDED');
  });
});

describe('--archive-after', () => {
  it('takes whole days 0-3650 and reaches the Lambdas as ARCHIVE_AFTER_DAYS; anything else is a usage error', () => {
    expect(parseArchiveAfterOption('30')).toBe(30);
    expect(archiveEnvironment(30)).toEqual({ ARCHIVE_AFTER_DAYS: '30' });
    expect(archiveEnvironment(undefined)).toEqual({});
    for (const bad of ['-1', '3651', '1.5', 'thirty', '']) expect(() => parseArchiveAfterOption(bad), bad).toThrow(/whole number of days 0-3650/);
  });
});

describe('archive tier: review', () => {
  it('never re-archives a set an operator restored temporarily (a restore under way must not be undone)', async () => {
    const world = fleetWorld([A]);
    const set = seedSet(world, A, 60);
    await night(world, 0, { env: ARCHIVE_ENV });
    expect([...archivedOk(world)].sort()).toEqual([...set.ids].sort());
    world.advanceBy(ARCHIVE_MS);
    for (const id of set.ids) await applyCall(world, 'ec2', 'RestoreSnapshotTier', { SnapshotId: id, TemporaryRestoreDays: 7 });
    world.advanceBy(RESTORE_MS);
    for (const id of set.ids) expect(tierNow(world, id).status).toBe('temporary-restore-completed');
    const before = archiveCalls(world).length;
    await night(world, 4, { env: ARCHIVE_ENV });
    expect(archiveCalls(world).slice(before)).toEqual([]);
    for (const id of set.ids) expect(tierNow(world, id)).toMatchObject({ storageTier: 'standard', status: 'temporary-restore-completed' });
  });

  it('keeps a temporarily restored archived set its 90 days after ArchiveAfterDays is turned back off', async () => {
    const world = fleetWorld([A]);
    const set = seedSet(world, A, 60);
    await night(world, 0, { env: ARCHIVE_ENV });
    world.advanceBy(ARCHIVE_MS);
    for (const id of set.ids) await applyCall(world, 'ec2', 'RestoreSnapshotTier', { SnapshotId: id, TemporaryRestoreDays: 30 });
    // Archive off, and a policy that no longer keeps the set: 10 nights after it went to the archive.
    const off = { RETAIN_COUNT: '1', RETAIN_DAYS: '0' };
    const { report } = await night(world, 10, { env: off });
    const deletes = world.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot' && m.ids.some((id) => set.ids.includes(id)));
    expect(deletes).toEqual([]);
    expect(report.retention?.archive?.deletionDeferred.map((d) => d.snapshotId).sort()).toEqual([...set.ids].sort());
  });

  it('keeps a set whose archival is still in progress its 90 days when a rerun turns ArchiveAfterDays off', async () => {
    const world = fleetWorld([A]);
    const set = seedSet(world, A, 60);
    await night(world, 0, { env: ARCHIVE_ENV });
    for (const id of set.ids) expect(tierNow(world, id).status).toBe('archival-in-progress');
    const rerun = await runWorkflow(world, { env: { RETAIN_COUNT: '1', RETAIN_DAYS: '0' } });
    expect(rerun.status, rerun.cause).toBe('SUCCEEDED');
    const deletes = world.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot' && m.ids.some((id) => set.ids.includes(id)));
    expect(deletes).toEqual([]);
  });
  it('counts the 90 days from when the snapshot reached the archive (ArchivalCompleteTime), not from the call', async () => {
    const world = fleetWorld([A]);
    const set = seedSet(world, A, 60);
    await night(world, 0, { env: ARCHIVE_ENV });
    const shrunk = { RETAIN_COUNT: '1', RETAIN_DAYS: '0', ARCHIVE_AFTER_DAYS: '30' };
    const deletes = () => world.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot' && m.ids.some((id) => set.ids.includes(id)));
    // Night 90: 90 days after ModifySnapshotTier, but the archival took ARCHIVE_MS: not yet 90 days in the archive.
    await night(world, 90, { env: shrunk });
    expect(deletes()).toEqual([]);
    await night(world, 91, { env: shrunk });
    const archivedAt = (archiveCalls(world).find((m) => m.ids.includes(set.ids[0] as string))?.at as number) + ARCHIVE_MS;
    expect(deletes()).toHaveLength(2);
    for (const m of deletes()) expect(m.at - archivedAt).toBeGreaterThanOrEqual(90 * DAY);
  });
  it('counts a ModifySnapshotTier whose answer was lost (and was retried) once, as archived', async () => {
    for (const seed of [1, 2, 3, 4]) {
      const world = worldFromFleet(parseFleet({ faults: { rate: 0.25, seed, kinds: ['timeout'] }, instances: [{ instanceId: A, volumes: twoVolumes }] }, 'lost answers'));
      const ids: string[] = [];
      for (let age = 40; age < 50; age += 1) ids.push(...seedSet(world, A, age).ids);
      const archive = (await night(world, 0, { env: ARCHIVE_ENV })).report.retention?.archive;
      const archiving = ids.filter((id) => tierNow(world, id).status === 'archival-in-progress').sort();
      expect(archive?.archived.map((a) => a.snapshotId).sort(), `seed ${seed}`).toEqual(archiving);
      expect(archive?.failed, `seed ${seed}`).toEqual([]);
      expect((archive?.archived.length ?? 0) + (archive?.deferred ?? 0), `seed ${seed}`).toBe(ids.length);
    }
  });
  it('never archives a set whose DR copy is still to be made (an archived snapshot cannot be copied)', async () => {
    const world = worldFromFleet(parseFleet({ faults: { rate: 0 }, instances: [{ instanceId: A, volumes: [{ device: '/dev/sda1', sizeGiB: 30 }, { device: 'xvdf', sizeGiB: 8 }] }] }, 'dr'));
    const env = { DR_REGION: 'us-west-2', DR_COPY_DEADLINE_HOURS: '1', RETAIN_COUNT: '7', RETAIN_DAYS: '200', ARCHIVE_AFTER_DAYS: '1' };
    // The first night's second volume finds the DR Region's copy slots full (other tools) for two nights.
    let blocked: string | undefined;
    let refuse = true;
    const quotaFull = (call: { operation: string; input: Record<string, unknown> }) => {
      if (call.operation !== 'CopySnapshot') return;
      const source = call.input.SourceSnapshotId as string;
      if (!blocked && world.volumes.get(world.snapshots.get(source)?.volumeId ?? '')?.device === 'xvdf') blocked = source;
      if (refuse && source === blocked) throw awsError('ResourceLimitExceeded', 'too many copies in flight');
    };
    await night(world, 0, { env, interceptors: [quotaFull] });
    const second = await night(world, 1, { env, interceptors: [quotaFull] });
    expect(blocked).toBeDefined();
    // One day old, not the newest, kept 199 more days: eligible, but its DR copy is carried over: kept standard.
    expect(archivedOk(world).has(blocked as string)).toBe(false);
    expect(second.report.retention?.archive?.notArchived.map((n) => n.reason).join(' ')).toMatch(/DR copy/);
    refuse = false;
    const third = await night(world, 2, { env });
    const record = JSON.parse(world.buckets.get(REPORT_BUCKET)?.get(drRecordKey(third.report.runId)) ?? 'null') as DrRecord;
    expect(record.jobs.find((j) => j.sourceSnapshotId === blocked)?.state).toBe('completed');
    // Once copied, the set may go to the archive (the next night).
    await night(world, 3, { env });
    expect(archivedOk(world).has(blocked as string)).toBe(true);
  });
});
