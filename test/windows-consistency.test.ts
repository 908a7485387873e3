/**
 * The Windows side as the workflows see it: what the simulated instances act out for the DiskShadow
 * document (the tag that tells the truth, and the failure codes the scripts report), judged by the real
 * verify and restore handlers against the simulated account.
 */
import { describe, expect, it } from 'vitest';
import { CONSISTENCY_TAG, SHADOW_SET_TAG } from '../src/lib/methods/diskshadow.ts';
import { DEMO_FLEET } from '../src/local/demo-fleet.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { runWorkflow } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';
import { runFleet, runSnapshotsByVolume, twoVolumes } from './helpers.ts';

const ID = 'i-0123456789abcdef0';
const single = (attempts: string[], extra: Record<string, unknown> = {}) => ({ instances: [{ instanceId: ID, name: 'sql-01', volumes: twoVolumes, attempts, ...extra }] });
const diskshadow = { env: { SNAPSHOT_METHOD: 'diskshadow' } };

const SQL = 'i-0a1b2c3d4e5f60001'; // demo fleet sql-prod-01: /dev/sda1, xvdf, xvdg
const APP = 'i-0a1b2c3d4e5f60005'; // demo fleet app-01

async function nightlyDiskShadowWorld(changes: (fleet: typeof DEMO_FLEET) => void = () => undefined): Promise<{ world: World; runId: string }> {
  const fleet = structuredClone(DEMO_FLEET);
  changes(fleet);
  const world = worldFromFleet(parseFleet(fleet));
  const result = await runWorkflow(world, diskshadow);
  expect(result.status).toBe('SUCCEEDED');
  return { world, runId: (result.output as { runId: string }).runId };
}

const runSnapshotsOf = (world: World, runId: string, instanceId: string) =>
  [...world.snapshots.values()].filter((s) => !s.deleted && s.tags['vss-snapshots:run-id'] === runId && s.instanceId === instanceId);

describe('the tag that tells the truth', () => {
  it('marks DiskShadow snapshots consistent after a revert, never AppConsistent=true, and verify accepts exactly that', async () => {
    const { result, report, dump } = await runFleet(single(['ok']), diskshadow);

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded', attempts: 1 });
    const snaps = [...runSnapshotsByVolume(dump, report?.runId ?? '').values()].flat();
    expect(snaps).toHaveLength(2);
    for (const s of snaps) {
      expect(s.tags[CONSISTENCY_TAG]).toBe('after-revert');
      expect(s.tags[SHADOW_SET_TAG]).toMatch(/^[0-9a-f-]{36}$/);
      expect(s.tags.AppConsistent).toBeUndefined();
    }
  });

  it('keeps AppConsistent=true for AWS VSS snapshots, made inside the freeze', async () => {
    const { report, dump } = await runFleet(single(['ok']));
    const snaps = [...runSnapshotsByVolume(dump, report?.runId ?? '').values()].flat();
    for (const s of snaps) {
      expect(s.tags.AppConsistent).toBe('true');
      expect(s.tags[CONSISTENCY_TAG]).toBeUndefined();
    }
  });

  it('calls DiskShadow snapshots without the tag crash-consistent, naming the tag, and retries', async () => {
    const { report } = await runFleet(single(['crash-consistent', 'ok']), diskshadow);
    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded', attempts: 2 });

    const failed = await runFleet(single(['crash-consistent']), { ...diskshadow, input: { maxAttempts: 1 } });
    expect(failed.report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'crash-consistent' });
    expect(failed.report?.instances[0]?.reason).toContain('vss-snapshots:consistency=after-revert');
  });

  it('restores and reverts DiskShadow snapshots by that tag', async () => {
    const { world, runId } = await nightlyDiskShadowWorld();
    const result = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: SQL, targetInstanceId: APP }, ...diskshadow });
    expect(result.status, result.cause).toBe('SUCCEEDED');
  });

  it('restores a disk that held no shadowable volume (not-shadowed) as it stands and reverts the others', async () => {
    const { world, runId } = await nightlyDiskShadowWorld();
    const xvdg = runSnapshotsOf(world, runId, SQL).find((s) => s.tags.Device === 'xvdg');
    if (xvdg) xvdg.tags[CONSISTENCY_TAG] = 'not-shadowed';

    const result = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: SQL, targetInstanceId: APP }, ...diskshadow });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const disks = (result.output as { revert: { disks: { volumeId: string; reverted: number }[] } }).revert.disks;
    const fromXvdg = [...world.volumes.values()].find((v) => v.snapshotId === xvdg?.snapshotId)?.volumeId;
    expect(disks).toHaveLength(3);
    for (const d of disks) expect(d.reverted, d.volumeId).toBe(d.volumeId === fromXvdg ? 0 : 1);
  });

  it('refuses to restore a DiskShadow snapshot that says AppConsistent=true but lacks the tag', async () => {
    const { world, runId } = await nightlyDiskShadowWorld();
    const xvdf = runSnapshotsOf(world, runId, SQL).find((s) => s.tags.Device === 'xvdf');
    expect(xvdf).toBeDefined();
    if (xvdf) {
      delete xvdf.tags[CONSISTENCY_TAG];
      xvdf.tags.AppConsistent = 'true';
    }

    const result = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: SQL, targetInstanceId: APP }, ...diskshadow });

    expect(result.error).toBe('RestoreRefusedError');
    expect(result.cause).toContain(`xvdf (${xvdf?.snapshotId}) is not tagged vss-snapshots:consistency=after-revert`);
    expect(world.apiCalls['ec2:CreateVolume']).toBeUndefined();
  });
});

describe('failures the DiskShadow scripts report, acted out by the simulated instances', () => {
  it('component-excluded: fails without a snapshot and without retrying, naming the component', async () => {
    const { report, dump } = await runFleet(single(['component-excluded', 'ok']), diskshadow);

    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'vss-component-excluded', attempts: 1 });
    expect(report?.instances[0]?.reason).toContain('SqlServerWriter');
    expect(dump.snapshots.filter((s) => s.tags['vss-snapshots:run-id'] === report?.runId)).toEqual([]);
    expect(report?.alert?.message).toContain('VSS writer component left out of the backup');
  });

  it('component-excluded: does what ok does under the aws-vss method', async () => {
    const { report } = await runFleet(single(['component-excluded']));
    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded', attempts: 1 });
  });

  it.each([
    ['volume-in-use', 'revert-volume-in-use', /VSS_E_VOLUME_IN_USE/],
    ['shadow-not-on-disk', 'shadow-not-on-disk', /could revert the wrong volume/],
  ])('restore %s: the revert fails with %s, and the restored volumes are cleaned up', async (behaviour, code, message) => {
    const { world, runId } = await nightlyDiskShadowWorld((fleet) => {
      const app = fleet.instances.find((i) => i.instanceId === APP) as Record<string, unknown> | undefined;
      if (app) app.restore = behaviour;
    });

    const result = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: SQL, targetInstanceId: APP }, ...diskshadow });

    expect(result.status).toBe('FAILED');
    expect(result.cause).toContain(code);
    expect(result.cause).toMatch(message);
    const restored = [...world.volumes.values()].filter((v) => v.tags['vss-snapshots:restore-id'] !== undefined);
    expect(restored.length).toBeGreaterThan(0);
    expect(restored.every((v) => v.deleted)).toBe(true);
  });
});

describe('copy-only backups with DiskShadow', () => {
  it('sends CopyOnly=True to the DiskShadow document when COPY_ONLY is set, and succeeds', async () => {
    const { report, dump } = await runFleet(single(['ok']), { env: { SNAPSHOT_METHOD: 'diskshadow', COPY_ONLY: 'true' } });
    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded' });
    expect(dump.commands.map((c) => c.parameters.CopyOnly)).toEqual([['True']]);
  });

  it('sends CopyOnly=False by default, as AWS CopyOnly defaults to a full backup', async () => {
    const { dump } = await runFleet(single(['ok']), diskshadow);
    expect(dump.commands.map((c) => c.parameters.CopyOnly)).toEqual([['False']]);
  });
});

describe('AWSEC2-VssInstallAndSnapshot as the aws-vss document', () => {
  it('sends the chosen AWS document with the same parameters', async () => {
    const { report, dump } = await runFleet(single(['ok']), { env: { VSS_DOCUMENT_NAME: 'AWSEC2-VssInstallAndSnapshot' } });
    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded' });
    expect(dump.commands.map((c) => c.documentName)).toEqual(['AWSEC2-VssInstallAndSnapshot']);
  });
});
