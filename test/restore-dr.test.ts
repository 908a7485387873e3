/**
 * Restore from the DR Region (issue 13, item 5) through the real restore workflow on the simulated account with
 * Regions: a nightly run with DR_REGION copies every verified set into us-west-2, then the restore, with
 * `region: "us-west-2"`, creates volumes there from those copies and attaches them to a target that lives there.
 * Checked against the world: which snapshots the volumes came from, in which Region, and that nothing was created
 * when the restore is refused.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { RestoreReport } from '../src/lib/restore/finish.ts';
import { parseRestoreInput } from '../src/lib/restore/input.ts';
import { RESTORE_TAGS } from '../src/lib/restore/state.ts';
import { INSTANCE_TAG, RUN_TAG, SOURCE_SNAPSHOT_TAG } from '../src/lib/run-id.ts';
import { awsError } from '../src/local/aws-error.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { DISKSHADOW_DOCUMENT, RESTORE_DOCUMENT, runWorkflow } from '../src/local/runner.ts';
import { ssmOperations } from '../src/local/ssm.ts';
import type { RunOptions } from '../src/local/runner.ts';
import type { CallInterceptor } from '../src/local/transport.ts';
import { REGION, worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';

const DR = 'us-west-2';
const DAY = 86_400_000;
const SOURCE = 'i-0a1b2c3d4e5f60001';
const DR_TARGET = 'i-0d1b2c3d4e5f60001';
const HOME_TARGET = 'i-0a1b2c3d4e5f60005';

type Method = 'aws-vss' | 'diskshadow';

/** A source at home with two volumes, a target in the DR Region with one (so xvdf is taken), one at home. */
function drWorld(xvdfGiB = 100): World {
  return worldFromFleet(
    parseFleet(
      {
        faults: { rate: 0 },
        instances: [
          { instanceId: SOURCE, name: 'sql-prod-01', volumes: [{ device: '/dev/sda1', sizeGiB: 60 }, { device: 'xvdf', sizeGiB: xvdfGiB }] },
          { instanceId: DR_TARGET, name: 'sql-dr-01', region: DR, tags: { Backup: 'none' }, volumes: [{ device: '/dev/sda1', sizeGiB: 60 }, { device: 'xvdf', sizeGiB: 10 }] },
          { instanceId: HOME_TARGET, name: 'app-01', volumes: [{ device: '/dev/sda1', sizeGiB: 60 }] },
        ],
      },
      'dr restore fleet',
    ),
  );
}

async function nightly(world: World, method: Method, env: Record<string, string> = {}): Promise<string> {
  const result = await runWorkflow(world, { env: { SNAPSHOT_METHOD: method, DR_REGION: DR, ...env } });
  expect(result.status, result.cause).toBe('SUCCEEDED');
  return (result.output as { runId: string }).runId;
}

function restore(world: World, method: Method, input: Record<string, unknown>, options: RunOptions = {}) {
  return runWorkflow(world, { workflow: 'restore', input, env: { SNAPSHOT_METHOD: method, DR_REGION: DR }, ...options });
}

const restored = (world: World) => [...world.volumes.values()].filter((v) => v.tags[RESTORE_TAGS.restoreId] !== undefined).map((v) => world.settleVolume(v));
const copiesOf = (world: World, runId: string) => [...world.snapshots.values()].filter((s) => !s.deleted && s.region === DR && s.tags[RUN_TAG] === runId && s.tags[INSTANCE_TAG] === SOURCE);

describe.each<Method>(['aws-vss', 'diskshadow'])('restore from the DR copies (%s)', (method) => {
  it('creates the volumes in the DR Region from the copies there and attaches them to a target that lives there', async () => {
    const world = drWorld();
    const runId = await nightly(world, method);
    const copies = copiesOf(world, runId);
    expect(copies).toHaveLength(2);

    const result = await restore(world, method, { runId, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    const report = result.output as RestoreReport;
    expect(report).toMatchObject({ region: DR, fromDrCopies: true, targetInstanceId: DR_TARGET, method });
    expect(report.availabilityZone.startsWith(DR)).toBe(true);
    const dump = world.dump();
    const created = dump.volumes.filter((v) => v.tags?.[RESTORE_TAGS.restoreId] !== undefined);
    // One volume per copy, from the copies (not from the home snapshots), in the DR Region, attached at free names.
    expect(created.map((v) => v.snapshotId).sort()).toEqual(copies.map((c) => c.snapshotId).sort());
    for (const v of restored(world)) {
      expect(v.region).toBe(DR);
      expect(v.availabilityZone).toBe(report.availabilityZone);
    }
    expect(created.map((v) => v.state)).toEqual(['attached', 'attached']);
    expect(created.every((v) => v.instanceId === DR_TARGET)).toBe(true);
    expect(created.map((v) => v.device).sort()).toEqual(['xvdg', 'xvdh']);
    // The report names, by source device, the copy and the home snapshot it was copied from.
    for (const v of report.volumes) {
      const copy = world.snapshots.get(v.snapshotId);
      expect(copy?.region).toBe(DR);
      expect(v.copyOf).toBe(copy?.tags[SOURCE_SNAPSHOT_TAG]);
      expect(copy?.tags.Device?.replace('/dev/', '')).toBe(v.sourceDevice);
    }
    expect(report.volumes.map((v) => v.sourceDevice).sort()).toEqual(['sda1', 'xvdf']);
    expect(report.message).toContain(`the DR copies of run ${runId} in ${DR}`);
    const commands = [...world.commands.values()].filter((c) => c.documentName === RESTORE_DOCUMENT);
    if (method === 'diskshadow') {
      // Reverted by SSM in the DR Region, on the target only.
      expect(commands).toHaveLength(1);
      expect(commands[0]?.region).toBe(DR);
      expect(commands[0]?.instanceIds).toEqual([DR_TARGET]);
      expect(report.revert?.shadowSetId).toBe(copies[0]?.tags['vss-snapshots:shadow-set-id']);
    } else {
      expect(commands).toHaveLength(0);
    }
  });

  it('still restores when every home-Region EC2 and SSM call fails during the restore', async () => {
    const world = drWorld();
    const runId = await nightly(world, method);
    const homeCalls: string[] = [];
    const drCalls: string[] = [];
    const homeDown: CallInterceptor = ({ service, operation, region }) => {
      if (region === DR) drCalls.push(`${service}:${operation}`);
      if ((service === 'ec2' || service === 'ssm') && (region ?? REGION) === REGION) {
        homeCalls.push(`${service}:${operation}`);
        throw awsError(service === 'ec2' ? 'Unavailable' : 'ServiceUnavailableException', `The home Region ${REGION} is unavailable.`);
      }
    };

    const result = await restore(world, method, { runId, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR }, { interceptors: [homeDown] });

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(homeCalls).toEqual([]);
    expect(drCalls).toEqual(expect.arrayContaining(['ec2:DescribeInstances', 'ec2:DescribeSnapshots', 'ec2:CreateVolume', 'ec2:AttachVolume']));
    if (method === 'diskshadow') expect(drCalls).toEqual(expect.arrayContaining(['ssm:DescribeInstanceInformation', 'ssm:SendCommand', 'ssm:GetCommandInvocation']));
    expect(restored(world).filter((v) => !v.deleted).map((v) => v.region)).toEqual([DR, DR]);
  });
});

describe('restore from the DR copies: refusals, before anything is created', () => {
  it('refuses a run whose copy is not complete, naming the device and the runs whose copies are complete', async () => {
    // xvdf is 300 GiB: its full copy the first night takes 3 h (within the default 20 h pass). The second night
    // changes all of it (incremental copy as long as a full one) and the pass stops after 2 h: xvdf still pending.
    const world = drWorld(300);
    const first = await nightly(world, 'aws-vss');
    world.advanceBy(DAY);
    world.dr.copyTiming.incrementalFraction = 1;
    const second = await nightly(world, 'aws-vss', { DR_COPY_DEADLINE_HOURS: '1' });
    const pending = copiesOf(world, second).filter((c) => world.snapshotState(c) !== 'completed');
    expect(pending.map((c) => c.tags.Device)).toEqual(['xvdf']);

    const result = await restore(world, 'aws-vss', { runId: second, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('RestoreRefusedError');
    expect(result.cause).toContain(`The DR copy of run ${second} of ${SOURCE} in ${DR} is not complete`);
    expect(result.cause).toMatch(/xvdf \(snap-[0-9a-f]+, copy of snap-[0-9a-f]+\) is still pending/);
    expect(result.cause).not.toMatch(/sda1/);
    expect(result.cause).toContain(`use an earlier run: runs whose copies of ${SOURCE} are complete in ${DR}, newest first: ${first}`);
    expect(restored(world)).toHaveLength(0);

    // The earlier run named there restores; and only the complete device of the newer run, asked for, does too.
    const earlier = await restore(world, 'aws-vss', { runId: first, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR });
    expect(earlier.status, earlier.cause).toBe('SUCCEEDED');
  });

  it('refuses a set with a volume whose copy was never made (each copy names its set\'s size), listing no such run as complete', async () => {
    const world = drWorld();
    const first = await nightly(world, 'aws-vss');
    world.advanceBy(DAY);
    const second = await nightly(world, 'aws-vss');
    // As if the pass never started xvdf's copy of the second run (it waited for a copy slot until its deadline).
    const [xvdf] = copiesOf(world, second).filter((c) => c.tags.Device === 'xvdf');
    expect(xvdf?.tags['vss-snapshots:set-size']).toBe('2');
    world.snapshots.delete(xvdf?.snapshotId as string);

    const result = await restore(world, 'aws-vss', { runId: second, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR });

    expect(`${result.status} ${result.error}: ${result.cause}`).toContain('RestoreRefusedError');
    expect(result.cause).toContain("1 of the set's 2 volumes have no copy there");
    expect(result.cause).toContain(`newest first: ${first}`);
    expect(restored(world)).toHaveLength(0);
  });

  it('refuses DiskShadow copies when the restore document does not exist in the DR Region (documents are regional)', async () => {
    const world = drWorld();
    const runId = await nightly(world, 'diskshadow');
    // What SSM in the DR Region answers before the operator has created the document there.
    const noDocument: CallInterceptor = ({ service, operation, region }) => {
      if (service === 'ssm' && operation === 'DescribeDocument' && region === DR) throw awsError('InvalidDocument', 'The specified document does not exist.');
    };
    const result = await restore(world, 'diskshadow', { runId, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR }, { interceptors: [noDocument] });
    expect(result.error).toBe('RestoreRefusedError');
    expect(result.cause).toContain(`the restore document ${RESTORE_DOCUMENT} must revert them on the target in ${DR}, and it does not exist there`);
    expect(result.cause).toContain(`aws ssm create-document --region ${DR} --name ${RESTORE_DOCUMENT}`);
    expect(restored(world)).toHaveLength(0);
    // The simulated account keeps documents per Region: the stack's own exist only where they were created.
    const snapshotDocument = world.documents.get(DISKSHADOW_DOCUMENT);
    expect(snapshotDocument?.regions).toEqual([REGION]);
    expect(world.documents.get(RESTORE_DOCUMENT)?.regions).toEqual([REGION, DR]);
    expect(() => ssmOperations.SendCommand?.(world, { DocumentName: DISKSHADOW_DOCUMENT, InstanceIds: [DR_TARGET] }, { region: DR })).toThrow(expect.objectContaining({ name: 'InvalidDocument' }));
    expect(() => ssmOperations.DescribeDocument?.(world, { Name: RESTORE_DOCUMENT }, { region: 'eu-west-1' })).toThrow(expect.objectContaining({ name: 'InvalidDocument' }));
  });

  it('refuses a run with no copies in the DR Region, listing the runs that have', async () => {
    const world = drWorld();
    const runId = await nightly(world, 'aws-vss');
    const unknown = '20261127T000000Z-0000000a';
    const result = await restore(world, 'aws-vss', { runId: unknown, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR });
    expect(result.error).toBe('InvalidInputError');
    expect(result.cause).toContain(`Run ${unknown} has no DR copies of source instance ${SOURCE} in ${DR}`);
    expect(result.cause).toContain(runId);
    expect(restored(world)).toHaveLength(0);
  });

  it('refuses a target that is not in the restore Region, in either direction, creating nothing', async () => {
    const world = drWorld();
    const runId = await nightly(world, 'aws-vss');
    const home = await restore(world, 'aws-vss', { runId, sourceInstanceId: SOURCE, targetInstanceId: HOME_TARGET, region: DR });
    expect(home.error).toBe('InvalidInputError');
    expect(home.cause).toContain(`Target instance ${HOME_TARGET} does not exist in ${DR}, the Region of this restore`);
    const dr = await restore(world, 'aws-vss', { runId, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET });
    expect(dr.error).toBe('InvalidInputError');
    expect(dr.cause).toContain('give its code in field "region"');
    expect(restored(world)).toHaveLength(0);
  });

  it('refuses a Region that is neither the stack\'s nor its DR Region, at Validate Input', async () => {
    const world = drWorld();
    const runId = await nightly(world, 'aws-vss');
    const calls: string[] = [];
    const result = await restore(world, 'aws-vss', { runId, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: 'eu-west-1' }, { interceptors: [({ operation }) => void calls.push(operation)] });
    expect(result.error).toBe('InvalidInputError');
    expect(result.cause).toContain(`field "region" is eu-west-1; this stack restores only in this stack's Region ${REGION} or its DR Region ${DR}`);
    expect(calls).toEqual([]);
    // Without DR copies configured, any other Region is refused the same way.
    const off = await runWorkflow(world, { workflow: 'restore', input: { runId, sourceInstanceId: SOURCE, targetInstanceId: DR_TARGET, region: DR } });
    expect(off.cause).toContain('DR copies are off');
  });

  it('checks the region field strictly', () => {
    const valid = { runId: '20261128T000000Z-3f2a9c1e', sourceInstanceId: 'i-0123456789abcdef0', targetInstanceId: 'i-0fedcba9876543210' };
    expect(parseRestoreInput({ ...valid, region: 'us-west-2' }).region).toBe('us-west-2');
    for (const region of ['us-west2', 'US-WEST-2', '', 'us-west-2a']) {
      expect(() => parseRestoreInput({ ...valid, region })).toThrow(/field "region" is not an AWS Region code such as us-west-2/);
    }
    expect(() => parseRestoreInput({ ...valid, region: 2 })).toThrow(/field "region" must be a string/);
  });
});

describe('vss-snapshots restore --dr-region', () => {
  const BIN = new URL('../bin/vss-snapshots.mjs', import.meta.url).pathname;
  const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });
  const fleet = join(mkdtempSync(join(tmpdir(), 'vss-drr-')), 'fleet.json');
  writeFileSync(
    fleet,
    JSON.stringify({
      faults: { rate: 0 },
      instances: [
        { instanceId: SOURCE, volumes: [{ device: '/dev/sda1', sizeGiB: 60 }, { device: 'xvdf', sizeGiB: 100 }] },
        { instanceId: DR_TARGET, region: DR, volumes: [{ device: '/dev/sda1', sizeGiB: 60 }] },
        { instanceId: HOME_TARGET, volumes: [{ device: '/dev/sda1', sizeGiB: 60 }] },
      ],
    }),
  );

  it('copies the night\'s sets into the DR Region, then restores from those copies to a target there', () => {
    const out = cli('restore', '--fleet', fleet, '--source', SOURCE, '--target', DR_TARGET, '--dr-region', DR, '--method', 'diskshadow', '--json');
    expect(out.status, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as RestoreReport;
    expect(report).toMatchObject({ region: DR, fromDrCopies: true, targetInstanceId: DR_TARGET, method: 'diskshadow' });
    expect(report.volumes.every((v) => v.copyOf?.startsWith('snap-'))).toBe(true);
    expect(out.stderr).toContain(`DR copies in ${DR}: 2 instances protected`);
  });

  it('refuses a target that does not live in the DR Region (exit 2), and a bad Region code before the night', () => {
    const home = cli('restore', '--fleet', fleet, '--source', SOURCE, '--target', HOME_TARGET, '--dr-region', DR, '--quiet');
    expect(home.status).toBe(2);
    expect(home.stderr).toContain(`restore refused, nothing created: Target instance ${HOME_TARGET} does not exist in ${DR}`);
    const bad = cli('restore', '--fleet', fleet, '--source', SOURCE, '--target', DR_TARGET, '--dr-region', 'us-west2');
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('is not a Region code');
  });
});
