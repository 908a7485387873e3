/**
 * The restore workflow (statemachine/restore.asl.json) with its real handlers against the simulated
 * account: a nightly run of the demo fleet first, then restores of its snapshots to other demo instances,
 * checked against the world itself (volumes, attachments, commands), not against the workflow's report.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StateMachine } from 'aws-local-stepfunctions';
import { describe, expect, it } from 'vitest';
import { SHADOW_SET_TAG } from '../src/lib/methods/diskshadow.ts';
import { ATTEMPT_TAG } from '../src/lib/run-id.ts';
import type { RestoreReport } from '../src/lib/restore/finish.ts';
import { SEND_CONFIRM_WINDOW_MS } from '../src/lib/send-command-once.ts';
import { RESTORE_TAGS } from '../src/lib/restore/state.ts';
import { awsError } from '../src/local/aws-error.ts';
import { ConsistencyModel, DEFAULT_MAX_LAG_SECONDS } from '../src/local/consistency.ts';
import { DEMO_FLEET } from '../src/local/demo-fleet.ts';
import { shownView } from '../src/local/ec2-volumes.ts';
import { lambdaDiesAt, lostResponse } from '../src/local/faults.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { loadDefinition, REPORT_BUCKET, RESTORE_DOCUMENT, runWorkflow } from '../src/local/runner.ts';
import type { RunOptions } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import type { SimSnapshot, World } from '../src/local/world.ts';

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

const restoredVolumes = (world: World) => [...world.volumes.values()].filter((v) => v.tags[RESTORE_TAGS.restoreId] !== undefined).map((v) => world.settleVolume(v));
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

/**
 * A run can hold more than one attempt's snapshots of a device: an attempt whose snapshots were judged
 * unusable (crash-consistent leftovers of a VSS failure, an error) and the retry that succeeded, or two usable
 * sets when a lag made the run retry. Plan Restore takes, per device, the usable snapshot of the latest attempt.
 */
describe('restore plan: which attempt of a device it restores', () => {
  /** Adds, for every run snapshot of SQL, a snapshot of the same volume from a later attempt, shaped by `later`. */
  function addLaterAttempt(world: World, runId: string, later: (copy: SimSnapshot) => void): Map<string, string> {
    const laterByDevice = new Map<string, string>();
    for (const s of runSnapshotsOf(world, runId, SQL)) {
      const attempt = Number(s.tags[ATTEMPT_TAG] ?? '1');
      const copy: SimSnapshot = { ...structuredClone(s), snapshotId: `snap-0${world.nextHex(16)}`, startTime: s.startTime + 600_000, completeAt: s.completeAt + 600_000, visibleAt: s.visibleAt + 600_000, tags: { ...s.tags, [ATTEMPT_TAG]: String(attempt + 1) } };
      later(copy);
      world.addSnapshot(copy);
      laterByDevice.set(s.tags.Device ?? '', copy.snapshotId);
    }
    world.advanceBy(3_600_000);
    return laterByDevice;
  }
  const restoredSnapshots = (world: World) => liveRestored(world).map((v) => v.snapshotId).sort();

  it.each<Method>(['aws-vss', 'diskshadow'])('restores the latest attempt when two attempts are usable (%s)', async (method) => {
    const { world, runId } = await nightlyWorld(method);
    const earlier = runSnapshotsOf(world, runId, SQL).map((s) => s.snapshotId);
    const later = addLaterAttempt(world, runId, (copy) => {
      if (copy.tags[SHADOW_SET_TAG]) copy.tags[SHADOW_SET_TAG] = '7e3c1a4d-0b2f-4c55-9a1e-2f3b4c5d6e7f';
    });

    const result = await restore(world, method, { runId, sourceInstanceId: SQL, targetInstanceId: APP });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(restoredSnapshots(world)).toEqual([...later.values()].sort());
    expect(restoredSnapshots(world).some((id) => earlier.includes(id ?? ''))).toBe(false);
    if (method === 'diskshadow') expect(restoreCommands(world)[0]?.parameters.ShadowSetId).toEqual(['7e3c1a4d-0b2f-4c55-9a1e-2f3b4c5d6e7f']);
  });

  it.each<[string, (copy: SimSnapshot) => void]>([
    ['crash-consistent (no AppConsistent tag)', (copy) => delete copy.tags.AppConsistent],
    ['in state error', (copy) => (copy.finalState = 'error')],
  ])('restores the earlier, usable attempt when the later one is %s', async (_name, spoil) => {
    const { world, runId } = await nightlyWorld('aws-vss');
    const earlier = runSnapshotsOf(world, runId, SQL).map((s) => s.snapshotId).sort();
    addLaterAttempt(world, runId, spoil);

    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SQL, targetInstanceId: APP });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(restoredSnapshots(world)).toEqual(earlier);
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
    expect(world.dump().deletedVolumes.map((v) => v.volumeId).sort()).toEqual(created.map((v) => v.volumeId).sort());
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

/**
 * The restore against an account that behaves like AWS: EC2 shows new volumes, their tags, attachments and
 * state changes late, SSM lists a new command late, and answers get lost after the call took effect. A
 * two-instance fleet, A restored to B; the nightly run that makes the snapshots runs on a clean account, the
 * faults and lags are then set for the restore alone.
 */
describe('restore against real AWS behaviour: eventual consistency and lost answers', () => {
  const A = 'i-0000000000000000a'; // us-east-1a: /dev/sda1, xvdf
  const B = 'i-0000000000000000b'; // us-east-1b: /dev/sda1

  async function pairWorld(method: Method, options: { maxLagSeconds?: number; seed?: number; restore?: 'revert-failed' } = {}): Promise<{ world: World; runId: string }> {
    const seed = options.seed ?? 1;
    const world = worldFromFleet(
      parseFleet({
        faults: { rate: 0, seed },
        consistency: { maxLagSeconds: 0, seed },
        instances: [
          { instanceId: A, name: 'A', volumes: [{ device: '/dev/sda1', sizeGiB: 30 }, { device: 'xvdf', sizeGiB: 50 }] },
          { instanceId: B, name: 'B', ...(options.restore ? { restore: options.restore } : {}) },
        ],
      }),
    );
    const nightly = await runWorkflow(world, { env: { SNAPSHOT_METHOD: method } });
    expect(nightly.status, nightly.cause).toBe('SUCCEEDED');
    world.consistency = new ConsistencyModel({ maxLagSeconds: options.maxLagSeconds ?? DEFAULT_MAX_LAG_SECONDS, seed });
    return { world, runId: (nightly.output as { runId: string }).runId };
  }
  const restoreAtoB = (world: World, method: Method, runId: string, options: RunOptions = {}, extra: Record<string, unknown> = {}) =>
    restore(world, method, { runId, sourceInstanceId: A, targetInstanceId: B, ...extra }, options);
  const okSends = (world: World, from: number) => world.mutations.slice(from).filter((m) => m.call === 'ssm:SendCommand' && m.ok);

  /** Restored (both volumes attached to B, one revert) or cleanly failed (nothing left, at most one revert). */
  function expectRestoredOrCleanlyFailed(world: World, result: Awaited<ReturnType<typeof restore>>, label: string): void {
    const live = liveRestored(world);
    if (result.status === 'SUCCEEDED') {
      expect(live.map((v) => v.instanceId), label).toEqual([B, B]);
      expect(live.every((v) => v.attachState === 'attached'), label).toBe(true);
    } else {
      expect(result.error, label).not.toBe('States.Runtime');
      expect(live, `${label}: ${result.cause}`).toEqual([]);
    }
  }

  it('sends the DiskShadow revert exactly once under 30 % API faults (lost answers included), for 40 seeds, and ends restored or cleanly failed', async () => {
    let restored = 0;
    for (let seed = 1; seed <= 40; seed += 1) {
      const { world, runId } = await pairWorld('diskshadow', { seed });
      world.faults = { rate: 0.3, seed, kinds: ['throttle', 'server', 'timeout'] };
      const before = world.mutations.length;

      const result = await restoreAtoB(world, 'diskshadow', runId);

      const label = `seed ${seed}`;
      const commands = world.dump().commands.filter((c) => c.documentName === RESTORE_DOCUMENT);
      expect(commands.length, label).toBe(result.status === 'SUCCEEDED' ? 1 : commands.length === 0 ? 0 : 1);
      expect(okSends(world, before).length, label).toBe(commands.length);
      expectRestoredOrCleanlyFailed(world, result, label);
      if (result.status === 'SUCCEEDED') restored += 1;
    }
    // Cleanly failing is allowed (three sends SSM never took, say), but it must stay the exception.
    expect(restored).toBeGreaterThanOrEqual(36);
  });

  it('sends the revert once when the SendCommand answer is lost and SSM lists the command late, by looking it up before sending again', async () => {
    const { world, runId } = await pairWorld('diskshadow', { maxLagSeconds: 30 });
    const lost = lostResponse(world, ({ operation }) => operation === 'SendCommand');

    const result = await restoreAtoB(world, 'diskshadow', runId, { interceptors: [lost] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(restoreCommands(world)).toHaveLength(1);
    expect((result.output as RestoreReport).revert?.commandId).toBe(restoreCommands(world)[0]?.commandId);
    expect(world.apiCalls['ssm:SendCommand']).toBe(2);
  });

  it('sends the revert once when its Lambda dies right after SendCommand, although ListCommands does not list it yet', async () => {
    const { world, runId } = await pairWorld('diskshadow', { maxLagSeconds: 30 });
    const states: string[] = [];

    const result = await restoreAtoB(world, 'diskshadow', runId, {
      lambdaFault: (state, n) => (state === 'Send Revert Command' && n === 1 ? { crashAfter: true } : undefined),
      onEvent: (event) => {
        if (event.type === 'StateEntered') states.push(event.state.name);
      },
    });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(restoreCommands(world)).toHaveLength(1);
    expect(states.filter((s) => s === 'Send Revert Command')).toHaveLength(1);
    expect(states).toContain('Confirm Revert Send');
  });

  it('sends the revert again only after SSM has not listed it for longer than its listing can lag', async () => {
    const { world, runId } = await pairWorld('diskshadow', { maxLagSeconds: 30 });
    // The first SendCommand fails with a 503 before SSM took it: its outcome is unknown to the restore.
    let refused = false;
    const unavailable = ({ operation }: { operation: string }) => {
      if (operation === 'SendCommand' && !refused) {
        refused = true;
        throw awsError('ServiceUnavailableException', 'The service is unavailable.', 503);
      }
    };
    const start = world.now;

    const result = await restoreAtoB(world, 'diskshadow', runId, { interceptors: [unavailable] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(restoreCommands(world)).toHaveLength(1);
    const sentAt = Date.parse(world.dump().commands.find((c) => c.documentName === RESTORE_DOCUMENT)?.requestedAt ?? '');
    expect(sentAt - start).toBeGreaterThan(SEND_CONFIRM_WINDOW_MS);
  });

  it('waits for new volumes EC2 does not list yet, and for attachments it shows late, instead of failing and deleting good volumes', async () => {
    const { world, runId } = await pairWorld('aws-vss', { maxLagSeconds: 30 });
    const seen = { unlisted: 0, attachmentHidden: 0 };
    const observe = ({ operation }: { operation: string }) => {
      if (operation !== 'DescribeVolumes') return;
      for (const v of restoredVolumes(world)) {
        const shown = shownView(world, v);
        if (!shown) seen.unlisted += 1;
        else if (v.instanceId === B && !shown.attachment) seen.attachmentHidden += 1;
      }
    };

    const result = await restoreAtoB(world, 'aws-vss', runId, { interceptors: [observe] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(seen.unlisted).toBeGreaterThan(0);
    expect(seen.attachmentHidden).toBeGreaterThan(0);
    expect(liveRestored(world).map((v) => v.instanceId)).toEqual([B, B]);
    expect(world.apiCalls['ec2:DeleteVolume']).toBeUndefined();
  });

  it('attaches once when the AttachVolume answer is lost and EC2 shows the attachment late (the retry meets VolumeInUse)', async () => {
    const { world, runId } = await pairWorld('aws-vss', { maxLagSeconds: 30 });
    const lost = lostResponse(world, ({ operation }) => operation === 'AttachVolume', 2);

    const result = await restoreAtoB(world, 'aws-vss', runId, { interceptors: [lost] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(world.mutations.filter((m) => m.call === 'ec2:AttachVolume' && !m.ok).map((m) => m.error)).toContain('VolumeInUse');
    expect(liveRestored(world).map((v) => [v.instanceId, v.attachState])).toEqual([[B, 'attached'], [B, 'attached']]);
    expect((result.output as RestoreReport).volumes.map((v) => v.device).sort()).toEqual(liveRestored(world).map((v) => v.device).sort());
  });

  it('creates one volume per snapshot when CreateVolume answers are lost (ClientToken)', async () => {
    const { world, runId } = await pairWorld('aws-vss', { maxLagSeconds: 30 });
    const lost = lostResponse(world, ({ operation }) => operation === 'CreateVolume', 2);

    const result = await restoreAtoB(world, 'aws-vss', runId, { interceptors: [lost] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(world.apiCalls['ec2:CreateVolume']).toBe(4);
    expect(restoredVolumes(world)).toHaveLength(2);
    expect(new Set(restoredVolumes(world).map((v) => v.snapshotId)).size).toBe(2);
  });

  it('deletes the volumes it holds by id when a failure comes before EC2 lists them or shows their restore-id tag', async () => {
    const { world, runId } = await pairWorld('aws-vss', { maxLagSeconds: 30 });
    // EC2 shows the new volumes' tags only after 10 minutes: longer than Step Functions' retries of the failing
    // step (waited on the virtual clock) take to give up and send the execution to cleanup.
    world.consistency = new ConsistencyModel({ maxLagSeconds: 30, seed: 1 }, { 'volume-tag': 600_000 });
    let tagSearchMissed = false;
    const observe = ({ operation, input }: { operation: string; input: Record<string, unknown> }) => {
      const byTag = (input.Filters as { Name?: string }[] | undefined)?.some((f) => f.Name === `tag:${RESTORE_TAGS.restoreId}`);
      // A restored volume EC2 does not list yet, or whose tag it does not show yet (10 minutes, below).
      if (operation === 'DescribeVolumes' && byTag && restoredVolumes(world).some((v) => !shownView(world, v) || world.now < v.createdAt + 600_000)) tagSearchMissed = true;
    };

    // Check Volumes never gets to run: its Lambda fails until the Catch sends the execution to cleanup,
    // at once after CreateVolume.
    const result = await restoreAtoB(world, 'aws-vss', runId, { interceptors: [observe], lambdaFault: (state) => (state === 'Check Volumes' ? { serviceError: true } : undefined) });

    expect(result.status).toBe('FAILED');
    expect(tagSearchMissed).toBe(true);
    const created = restoredVolumes(world);
    expect(created).toHaveLength(2);
    expect(created.every((v) => v.deleted)).toBe(true);
    for (const v of created) expect(result.cause).toContain(v.volumeId);
    expect(result.cause).not.toMatch(/Nothing had been created/);
  });

  it('finds by its late tag a volume whose id was lost with a Lambda that died after CreateVolume', async () => {
    const { world, runId } = await pairWorld('aws-vss', { maxLagSeconds: 30 });
    const dies = lambdaDiesAt(world, (call) => call.operation === 'CreateVolume', { after: true, times: 100 });

    const result = await restoreAtoB(world, 'aws-vss', runId, { interceptors: [dies] });

    expect(result.error).toBe('Lambda.Unknown');
    const created = restoredVolumes(world);
    expect(created).toHaveLength(1);
    expect(created[0]?.deleted).toBe(true);
    expect(result.cause).toContain(`deleted ${created[0]?.volumeId}`);
  });

  it('cleans up completely when DescribeVolumes shows detaching, detached and deleting late, and Detach/DeleteVolume answers are lost', async () => {
    const { world, runId } = await pairWorld('diskshadow', { maxLagSeconds: 30, restore: 'revert-failed' });
    const lost = lostResponse(world, ({ operation }) => operation === 'DetachVolume' || operation === 'DeleteVolume', 4);

    const result = await restoreAtoB(world, 'diskshadow', runId, { interceptors: [lost] });

    expect(result.error).toBe('RevertFailedError');
    expect(result.cause).toMatch(/Cleaned up: deleted /);
    expect(result.cause).not.toMatch(/Not cleaned up in time|cleanup failed/i);
    const created = restoredVolumes(world);
    expect(created).toHaveLength(2);
    expect(created.every((v) => v.deleted && v.instanceId === undefined)).toBe(true);
    const refused = world.mutations.filter((m) => (m.call === 'ec2:DetachVolume' || m.call === 'ec2:DeleteVolume') && !m.ok).map((m) => m.error);
    expect(refused.length).toBeGreaterThan(0);
  });

  it('restores or cleanly fails with lags up to 30 s and 15 % API faults, for 10 lag seeds', async () => {
    for (let seed = 1; seed <= 10; seed += 1) {
      const { world, runId } = await pairWorld('diskshadow', { maxLagSeconds: 30, seed });
      world.faults = { rate: 0.15, seed, kinds: ['throttle', 'server', 'timeout'] };
      const result = await restoreAtoB(world, 'diskshadow', runId);
      expect(restoreCommands(world).length, `seed ${seed}`).toBeLessThanOrEqual(1);
      expectRestoredOrCleanlyFailed(world, result, `seed ${seed}`);
    }
  });
});

describe('a cleanup that fails too', () => {
  /** Runs the restore definition from "Clean Up Restore" with a cleanup Lambda that fails. */
  async function failCleanup(error: Record<string, unknown>): Promise<{ name: string; cause: string }> {
    const definition = loadDefinition('restore');
    definition.StartAt = 'Clean Up Restore';
    // Not validated: starting half-way leaves states unreachable (the definition itself is validated in definition.test.ts).
    const machine = new StateMachine(definition, { validationOptions: { noValidate: true } });
    const state = { restore: { restoreId: '20261128T000300Z-0badc0de', executionId: 'x', runId: '20261128T000000Z-3f2a9c1e', sourceInstanceId: SQL, targetInstanceId: APP, devices: null, keepOnFailure: false, startedAt: '2026-11-28T00:03:00.000Z' }, error };
    const execution = machine.run(state as never, {
      overrides: {
        taskResourceLocalHandlers: { 'Clean Up Restore': () => Promise.reject(Object.assign(new Error('not authorized to perform ec2:DeleteVolume'), { name: 'UnauthorizedOperation' })) } as never,
        retryIntervalOverrides: { 'Clean Up Restore': 0 },
      },
    });
    try {
      await execution.result;
      return { name: 'none', cause: '' };
    } catch (e) {
      const failure = e as { cause?: { name?: string; message?: string } };
      return { name: failure.cause?.name ?? '', cause: failure.cause?.message ?? '' };
    }
  }

  it('fails with the original error and says what to delete by hand', async () => {
    const failure = await failCleanup({ Error: 'RevertFailedError', Cause: 'The restore document failed on the target.' });
    expect(failure.name).toBe('RevertFailedError');
    expect(failure.cause).toMatch(/The restore document failed on the target\. The cleanup failed too \(UnauthorizedOperation\): delete the volumes tagged vss-snapshots:restore-id=20261128T000300Z-0badc0de yourself/);
  });

  it('does so too for an original error without a Cause (States.Format would fail with States.Runtime on the missing path)', async () => {
    const failure = await failCleanup({ Error: 'States.Timeout' });
    expect(failure.name).toBe('States.Timeout');
    expect(failure.cause).toMatch(/Restore 20261128T000300Z-0badc0de failed: States\.Timeout The cleanup failed too \(UnauthorizedOperation\)/);
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

