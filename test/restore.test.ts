/**
 * The restore workflow (statemachine/restore.asl.json) with its real handlers against the simulated
 * account: a nightly run of the demo fleet first, then restores of its snapshots to other demo instances,
 * checked against the world itself (volumes, attachments, commands), not against the workflow's report.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { SHADOW_SET_TAG } from '../src/lib/methods/diskshadow.ts';
import type { RestoreReport } from '../src/lib/restore/finish.ts';
import { RESTORE_TAGS } from '../src/lib/restore/state.ts';
import { awsError } from '../src/local/aws-error.ts';
import { DEMO_FLEET } from '../src/local/demo-fleet.ts';
import { lambdaDiesAt, lostResponse } from '../src/local/faults.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { REPORT_BUCKET, RESTORE_DOCUMENT, runWorkflow } from '../src/local/runner.ts';
import type { RunOptions } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';

const SQL = 'i-0a1b2c3d4e5f60001'; // sql-prod-01, us-east-1a: /dev/sda1, xvdf, xvdg
const DC = 'i-0a1b2c3d4e5f60004'; // dc-01, us-east-1a: /dev/sda1
const APP = 'i-0a1b2c3d4e5f60005'; // app-01, us-east-1b: /dev/sda1, xvdf
const STOPPED = 'i-0a1b2c3d4e5f60007'; // legacy-app-02, stopped

type Method = 'aws-vss' | 'diskshadow';

/** A world after one nightly run of the demo fleet (with `changes` to the fleet), and that run's id. */
async function nightlyWorld(method: Method, changes: (fleet: typeof DEMO_FLEET) => void = () => undefined): Promise<{ world: World; runId: string }> {
  const fleet = structuredClone(DEMO_FLEET);
  changes(fleet);
  const world = worldFromFleet(parseFleet(fleet));
  const result = await runWorkflow(world, { env: { SNAPSHOT_METHOD: method } });
  expect(result.status).toBe('SUCCEEDED');
  return { world, runId: (result.output as { runId: string }).runId };
}

function restore(world: World, method: Method, input: Record<string, unknown>, options: RunOptions = {}) {
  return runWorkflow(world, { workflow: 'restore', input, env: { SNAPSHOT_METHOD: method }, ...options });
}

const restoredVolumes = (world: World) => [...world.volumes.values()].filter((v) => v.tags[RESTORE_TAGS.restoreId] !== undefined);
const liveRestored = (world: World) => restoredVolumes(world).filter((v) => !v.deleted);
const restoreCommands = (world: World) => [...world.commands.values()].filter((c) => c.documentName === RESTORE_DOCUMENT);
const runSnapshotsOf = (world: World, runId: string, instanceId: string) =>
  [...world.snapshots.values()].filter((s) => !s.deleted && s.tags['vss-snapshots:run-id'] === runId && s.instanceId === instanceId);

describe.each<Method>(['aws-vss', 'diskshadow'])('restore of a demo run (%s)', (method) => {
  it('creates one volume per snapshot of the source in the target AZ and attaches them at free devices', async () => {
    const { world, runId } = await nightlyWorld(method);
    const snapshots = runSnapshotsOf(world, runId, SQL);
    expect(snapshots).toHaveLength(3);

    const result = await restore(world, method, { runId, sourceInstanceId: SQL, targetInstanceId: APP });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const dump = world.dump();
    const target = dump.instances.find((i) => i.instanceId === APP);
    const onTarget = dump.volumes.filter((v) => v.instanceId === APP);
    const created = onTarget.filter((v) => v.snapshotId !== undefined);
    expect(created.map((v) => v.snapshotId).sort()).toEqual(snapshots.map((s) => s.snapshotId).sort());
    for (const v of created) {
      expect(v.availabilityZone).toBe(target?.availabilityZone);
      expect(v.state).toBe('attached');
      expect(v.tags?.[RESTORE_TAGS.runId]).toBe(runId);
      expect(v.tags?.[RESTORE_TAGS.sourceInstance]).toBe(SQL);
    }
    // Free device names only: app-01 already uses /dev/sda1 and xvdf.
    expect(created.map((v) => v.device).sort()).toEqual(['xvdg', 'xvdh', 'xvdi']);
    expect(new Set(onTarget.map((v) => v.device)).size).toBe(onTarget.length);
    // The source's volumes are untouched.
    expect(dump.volumes.filter((v) => v.instanceId === SQL)).toHaveLength(3);

    const report = result.output as RestoreReport;
    expect(report.availabilityZone).toBe('us-east-1b');
    expect(report.volumes.map((v) => v.volumeId).sort()).toEqual(created.map((v) => v.volumeId).sort());
    const commands = restoreCommands(world);
    if (method === 'aws-vss') {
      expect(commands).toHaveLength(0);
      expect(report.revert).toBeNull();
    } else {
      expect(commands).toHaveLength(1);
      const command = commands[0];
      expect(command?.instanceIds).toEqual([APP]);
      expect((command?.parameters.VolumeIds?.[0] ?? '').split(',').sort()).toEqual(created.map((v) => v.volumeId).sort());
      expect(command?.parameters.ShadowSetId).toEqual([snapshots[0]?.tags[SHADOW_SET_TAG]]);
      expect(command?.parameters.RunId).toEqual([runId]);
      expect(command?.invocations.map((i) => world.refresh(i).status)).toEqual(['Success']);
      expect(report.revert?.disks.map((d) => d.volumeId).sort()).toEqual(created.map((v) => v.volumeId).sort());
    }
  });

  it('restores only the requested devices', async () => {
    const { world, runId } = await nightlyWorld(method);
    const xvdg = runSnapshotsOf(world, runId, SQL).find((s) => s.tags.Device === 'xvdg');

    const result = await restore(world, method, { runId, sourceInstanceId: SQL, targetInstanceId: DC, devices: ['/dev/xvdg'] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const created = liveRestored(world);
    expect(created.map((v) => v.snapshotId)).toEqual([xvdg?.snapshotId]);
    expect(created[0]).toMatchObject({ instanceId: DC, device: 'xvdf', availabilityZone: 'us-east-1a' });
    if (method === 'diskshadow') expect(restoreCommands(world)[0]?.parameters.VolumeIds).toEqual([created[0]?.volumeId]);
  });
});

describe('restore of many DiskShadow disks', () => {
  it('reads the result line of a 13-disk revert, longer than the 2,500 characters ListCommandInvocations returns', async () => {
    const { world, runId } = await nightlyWorld('diskshadow', (fleet) => {
      (fleet.instances[0] as { volumes: { device: string; sizeGiB: number }[] }).volumes = [
        { device: '/dev/sda1', sizeGiB: 80 },
        ...'fghijklmnopq'.split('').map((letter) => ({ device: `xvd${letter}`, sizeGiB: 50 })),
      ];
    });

    const result = await restore(world, 'diskshadow', { runId, sourceInstanceId: SQL, targetInstanceId: DC });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const invocation = restoreCommands(world)[0]?.invocations[0];
    expect(invocation && world.refresh(invocation).output.split('\n')[0]?.length).toBeGreaterThan(2_500);
    expect((result.output as RestoreReport).revert?.disks).toHaveLength(13);
    expect(liveRestored(world).filter((v) => v.instanceId === DC)).toHaveLength(13);
  });
});

describe('restore of a source that no longer exists', () => {
  it('finds its AWS VSS snapshots through the run report and restores them', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const snapshots = runSnapshotsOf(world, runId, SQL);
    // Terminated and gone from DescribeInstances, its volumes deleted with it.
    for (const v of world.volumesOf(SQL)) v.deleted = true;
    world.instances.delete(SQL);

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: DC, devices: ['xvdf'] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const created = liveRestored(world);
    expect(created.map((v) => v.snapshotId)).toEqual([snapshots.find((s) => s.tags.Device === 'xvdf')?.snapshotId]);
    expect(created[0]).toMatchObject({ instanceId: DC, availabilityZone: 'us-east-1a' });
  });

  it('says where it looked when neither a tag nor the report names the snapshots', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    for (const v of world.volumesOf(SQL)) v.deleted = true;
    world.instances.delete(SQL);
    for (const key of [...(world.buckets.get(REPORT_BUCKET)?.keys() ?? [])]) if (key.startsWith('reports/')) world.buckets.get(REPORT_BUCKET)?.delete(key);

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: DC });

    expect(result.status).toBe('FAILED');
    expect(result.cause).toMatch(/does not exist \(any more\).*run's report/);
    expect(liveRestored(world)).toHaveLength(0);
  });
});

describe('restore input and refusals: nothing is created', () => {
  const cases: [string, (runId: string) => Record<string, unknown>, RegExp][] = [
    ['an unknown run id', () => ({ runId: '20200101T000000Z-0badc0de', sourceInstanceId: SQL, targetInstanceId: APP }), /has no snapshots.*"runId"/],
    ['an unknown target', (runId) => ({ runId, sourceInstanceId: SQL, targetInstanceId: 'i-0fffffffffffffff0' }), /Target instance i-0fffffffffffffff0 does not exist/],
    ['an unknown source', (runId) => ({ runId, sourceInstanceId: 'i-0eeeeeeeeeeeeeee0', targetInstanceId: APP }), /no snapshots of source instance i-0eeeeeeeeeeeeeee0/],
    ['a source without snapshots in the run', (runId) => ({ runId, sourceInstanceId: STOPPED, targetInstanceId: APP }), /no snapshots of source instance/],
    ['a malformed source id', (runId) => ({ runId, sourceInstanceId: 'sql-prod-01', targetInstanceId: APP }), /field "sourceInstanceId" is not an EC2 instance id/],
    ['a malformed run id', () => ({ runId: 'latest', sourceInstanceId: SQL, targetInstanceId: APP }), /field "runId" is not a vss-snapshots run id/],
    ['an unknown device', (runId) => ({ runId, sourceInstanceId: SQL, targetInstanceId: APP, devices: ['xvdq'] }), /no snapshot of device xvdq.*it has: sda1, xvdf, xvdg/],
    ['a malformed device', (runId) => ({ runId, sourceInstanceId: SQL, targetInstanceId: APP, devices: ['D:'] }), /field "devices\[0\]" is not a device name/],
    ['a device twice', (runId) => ({ runId, sourceInstanceId: SQL, targetInstanceId: APP, devices: ['xvdf', '/dev/xvdf'] }), /lists \/dev\/xvdf more than once/],
    ['a missing target', (runId) => ({ runId, sourceInstanceId: SQL }), /field "targetInstanceId" is required/],
    ['an unknown field', (runId) => ({ runId, sourceInstanceId: SQL, targetInstanceId: APP, keepOnFailur: true }), /unknown field "keepOnFailur"; allowed fields: runId, sourceInstanceId/],
    ['keepOnFailure as a string', (runId) => ({ runId, sourceInstanceId: SQL, targetInstanceId: APP, keepOnFailure: 'true' }), /field "keepOnFailure" must be true or false/],
  ];

  it.each(cases)('rejects %s with InvalidInputError', async (_name, input, cause) => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const volumesBefore = world.volumes.size;

    const result = await restore(world, 'aws-vss', input(runId));

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('InvalidInputError');
    expect(result.cause).toMatch(cause);
    expect(world.volumes.size).toBe(volumesBefore);
    expect(world.apiCalls['ec2:CreateVolume']).toBeUndefined();
  });

  it('refuses snapshots that are not app-consistent, naming them', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const xvdf = runSnapshotsOf(world, runId, SQL).find((s) => s.tags.Device === 'xvdf');
    if (xvdf) delete xvdf.tags.AppConsistent;

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: APP });

    expect(result.error).toBe('RestoreRefusedError');
    expect(result.cause).toContain(`xvdf (${xvdf?.snapshotId}) is not tagged AppConsistent=true`);
    expect(world.apiCalls['ec2:CreateVolume']).toBeUndefined();
  });

  it('refuses AWS VSS snapshots of different attempts (different points in time) instead of mixing them', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const xvdf = runSnapshotsOf(world, runId, SQL).find((s) => s.tags.Device === 'xvdf');
    if (xvdf) xvdf.tags['vss-snapshots:attempt'] = '2';

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: APP });

    expect(result.error).toBe('RestoreRefusedError');
    expect(result.cause).toMatch(/different attempts.*xvdf attempt 2/);
    expect(world.apiCalls['ec2:CreateVolume']).toBeUndefined();
  });

  it('refuses a snapshot in state error', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const boot = runSnapshotsOf(world, runId, SQL).find((s) => s.tags.Device === '/dev/sda1');
    if (boot) boot.finalState = 'error';

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: APP, devices: ['sda1'] });

    expect(result.error).toBe('RestoreRefusedError');
    expect(result.cause).toContain('is in state error');
    expect(restoredVolumes(world)).toHaveLength(0);
  });

  it('refuses to restore DiskShadow snapshots to a stopped target (the revert needs it running), but attaches AWS VSS ones', async () => {
    const shadow = await nightlyWorld('diskshadow');
    const refused = await restore(shadow.world, 'diskshadow', { runId: shadow.runId, sourceInstanceId: SQL, targetInstanceId: STOPPED });
    expect(refused.error).toBe('RestoreRefusedError');
    expect(refused.cause).toMatch(/must be running \(it is stopped\)/);
    expect(restoredVolumes(shadow.world)).toHaveLength(0);

    const vss = await nightlyWorld('aws-vss');
    const done = await restore(vss.world, 'aws-vss', { runId: vss.runId, sourceInstanceId: SQL, targetInstanceId: STOPPED, devices: ['xvdf'] });
    expect(done.status, done.cause).toBe('SUCCEEDED');
    expect(liveRestored(vss.world)[0]).toMatchObject({ instanceId: STOPPED, attachState: 'attached', availabilityZone: 'us-east-1a' });
  });
});

describe('restore failures clean up what they created', () => {
  it('detaches and deletes the volumes when the restore document fails on the target', async () => {
    const { world, runId } = await nightlyWorld('diskshadow', (fleet) => {
      (fleet.instances[4] as { restore?: string }).restore = 'revert-failed';
    });

    const result = await restore(world, 'diskshadow', { runId, sourceInstanceId: SQL, targetInstanceId: APP });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RevertFailedError');
    expect(result.cause).toMatch(/revert-failed: DiskShadow could not revert/);
    const created = restoredVolumes(world);
    expect(created).toHaveLength(3);
    expect(created.every((v) => v.deleted && v.instanceId === undefined)).toBe(true);
    expect(world.dump().deletedVolumes.sort()).toEqual(created.map((v) => v.volumeId).sort());
    expect(world.apiCalls['ec2:DetachVolume']).toBe(3);
    for (const v of created) expect(result.cause).toContain(v.volumeId);
    expect(result.cause).toMatch(/Cleaned up: deleted .* \(detached from i-0a1b2c3d4e5f60005 first/);
    // The target keeps exactly its own volumes.
    expect(world.dump().volumes.filter((v) => v.instanceId === APP).map((v) => v.device)).toEqual(['/dev/sda1', 'xvdf']);
  });

  it('cleans up all the same when EC2 refuses a DetachVolume for a state DescribeVolumes no longer shows (IncorrectState)', async () => {
    const { world, runId } = await nightlyWorld('diskshadow', (fleet) => {
      (fleet.instances[4] as { restore?: string }).restore = 'revert-failed';
    });
    let detaches = 0;
    const staleDescribe = ({ operation, input }: { operation: string; input: Record<string, unknown> }) => {
      if (operation === 'DetachVolume' && ++detaches === 1) throw awsError('IncorrectState', `Volume '${String(input.VolumeId)}' is in the 'available' state.`);
    };

    const result = await restore(world, 'diskshadow', { runId, sourceInstanceId: SQL, targetInstanceId: APP }, { interceptors: [staleDescribe] });

    expect(result.error).toBe('RevertFailedError');
    expect(result.cause).toMatch(/Cleaned up: deleted /);
    expect(result.cause).not.toMatch(/cleanup failed/i);
    const created = restoredVolumes(world);
    expect(created).toHaveLength(3);
    expect(created.every((v) => v.deleted && v.instanceId === undefined)).toBe(true);
  });

  it('keeps the volumes attached with keepOnFailure, and says so', async () => {
    const { world, runId } = await nightlyWorld('diskshadow', (fleet) => {
      (fleet.instances[4] as { restore?: string }).restore = 'disk-online-failed';
    });

    const result = await restore(world, 'diskshadow', { runId, sourceInstanceId: SQL, targetInstanceId: APP, keepOnFailure: true });

    expect(result.error).toBe('RevertFailedError');
    expect(result.cause).toMatch(/disk-online-failed/);
    expect(result.cause).toMatch(/Kept as asked \(keepOnFailure\)/);
    expect(liveRestored(world)).toHaveLength(3);
    expect(liveRestored(world).every((v) => v.instanceId === APP)).toBe(true);
    expect(world.apiCalls['ec2:DetachVolume']).toBeUndefined();
    expect(world.apiCalls['ec2:DeleteVolume']).toBeUndefined();
  });

  it('cleans up volumes created and partly attached when an attach fails', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    let attaches = 0;
    const failSecondAttach = ({ operation }: { operation: string }) => {
      if (operation === 'AttachVolume' && ++attaches === 2) throw awsError('IncorrectInstanceState', `The instance '${APP}' is not in a valid state for this operation.`);
    };

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: APP }, { interceptors: [failSecondAttach] });

    expect(result.error).toBe('IncorrectInstanceState');
    const created = restoredVolumes(world);
    expect(created).toHaveLength(3);
    expect(created.every((v) => v.deleted)).toBe(true);
    expect(world.apiCalls['ec2:DetachVolume']).toBe(1);
    expect(world.dump().volumes.filter((v) => v.instanceId === APP)).toHaveLength(2);
  });

  it('waits when DescribeVolumes does not know a volume CreateVolume just returned (EC2 eventual consistency)', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    let describes = 0;
    const notYetVisible = ({ operation, input }: { operation: string; input: Record<string, unknown> }) => {
      const ids = input.VolumeIds as string[] | undefined;
      if (operation === 'DescribeVolumes' && ids && ids.length > 0 && ++describes === 1) throw awsError('InvalidVolume.NotFound', `The volume '${ids[0]}' does not exist.`);
    };

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: DC }, { interceptors: [notYetVisible] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(describes).toBeGreaterThan(1);
    expect(liveRestored(world).filter((v) => v.instanceId === DC)).toHaveLength(3);
  });

  it('does not create a second volume when the Lambda dies after CreateVolume and the step is retried', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const dies = lambdaDiesAt(world, (call) => call.operation === 'CreateVolume', { after: true, times: 2 });

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: DC }, { interceptors: [dies] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(world.apiCalls['ec2:CreateVolume']).toBeGreaterThan(3);
    const created = restoredVolumes(world);
    expect(created).toHaveLength(3);
    expect(new Set(created.map((v) => v.snapshotId)).size).toBe(3);
    expect(created.every((v) => v.instanceId === DC && !v.deleted)).toBe(true);
  });

  it('attaches once when the AttachVolume response is lost and the SDK retries it', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const lost = lostResponse(world, ({ operation }) => operation === 'AttachVolume');

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: DC, devices: ['xvdf'] }, { interceptors: [lost] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(liveRestored(world)).toHaveLength(1);
    expect(liveRestored(world)[0]).toMatchObject({ instanceId: DC, device: 'xvdf' });
  });

  it('finds and deletes a volume whose id was lost with a Lambda that died after CreateVolume, when the step then fails', async () => {
    const { world, runId } = await nightlyWorld('aws-vss');
    // Every try of Create Volumes dies after its first CreateVolume: the retries run out, the ids never
    // reach the payload, and only the restore-id tag leads cleanup to the volume.
    const dies = lambdaDiesAt(world, (call) => call.operation === 'CreateVolume', { after: true, times: 100 });

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: DC }, { interceptors: [dies] });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('Lambda.Unknown');
    const created = restoredVolumes(world);
    expect(created).toHaveLength(1);
    expect(created[0]?.deleted).toBe(true);
    expect(result.cause).toContain(`deleted ${created[0]?.volumeId}`);
  });
});

describe('vss-snapshots restore (CLI)', () => {
  const BIN = new URL('../bin/vss-snapshots.mjs', import.meta.url).pathname;
  const dir = mkdtempSync(join(tmpdir(), 'vss-restore-cli-'));
  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, 'restore', ...args], { encoding: 'utf8', timeout: 60_000 });

  it('restores the latest run to another instance, exits 0, and the world dump shows the volumes on the target', () => {
    const worldFile = join(dir, 'w.json');
    const out = cli('--source', SQL, '--target', DC, '--method', 'diskshadow', '--json', '--dump-world', worldFile);

    expect(out.status, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as RestoreReport;
    const dump = JSON.parse(readFileSync(worldFile, 'utf8')) as ReturnType<World['dump']>;
    expect(report.method).toBe('diskshadow');
    for (const v of report.volumes) {
      expect(dump.volumes.find((x) => x.volumeId === v.volumeId)).toMatchObject({ instanceId: DC, availabilityZone: 'us-east-1a', device: v.device, state: 'attached' });
    }
    expect(dump.commands.filter((c) => c.documentName === RESTORE_DOCUMENT).map((c) => c.instanceIds)).toEqual([[DC]]);
    expect(out.stderr).toMatch(/Send Revert Command/);
  });

  it('prints a table without --json', () => {
    const out = cli('--source', SQL, '--target', APP, '--devices', 'xvdf', '--quiet');
    expect(out.status, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/SOURCE DEVICE\s+SNAPSHOT\s+NEW VOLUME/);
    expect(out.stdout).toMatch(/xvdf\s+snap-\S+\s+vol-\S+\s+500\s+xvdg\s+attached/);
  });

  it.each([
    [['--source', SQL, '--target', APP, '--run', '20200101T000000Z-0badc0de'], /Run 20200101T000000Z-0badc0de has no snapshots/],
    [['--source', SQL, '--target', 'i-0fffffffffffffff0'], /--target: instance i-0fffffffffffffff0 is not in the built-in demo fleet/],
    [['--source', SQL, '--target', APP, '--devices', 'xvdz'], /no snapshot of device xvdz/],
    [['--source', SQL], /required option '--target <id>' not specified/],
    [['--source', SQL, '--target', APP, '--method', 'vss'], /--method <method>' argument 'vss' is invalid\. Allowed choices are aws-vss, diskshadow/],
    [['--source', SQL, '--target', APP, '--bogus'], /unknown option '--bogus'/],
  ])('exits 2 on bad input %#', (args, message) => {
    const out = cli(...args, '--quiet');
    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(message);
  });

  it('exits 1 when the restore fails, after cleaning up', () => {
    const fleet = join(dir, 'fleet.json');
    const demo = structuredClone(DEMO_FLEET) as { instances: { restore?: string }[] };
    (demo.instances[3] as { restore?: string }).restore = 'revert-failed';
    writeFileSync(fleet, JSON.stringify(demo));
    const out = cli('--fleet', fleet, '--source', SQL, '--target', DC, '--method', 'diskshadow', '--quiet');
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/the restore failed: RevertFailedError: .*Cleaned up: deleted vol-/);
  });
});

