/** Pure parts of the restore: device names, input checking, reading snapshot tags, the revert parameters, the revert's send decisions. */
import { ListCommandsCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { clock } from '../../src/lib/clock.ts';
import { MAX_REVERT_SENDS, revertComment, sendRevertCommand } from '../../src/lib/restore/revert.ts';
import { SEND_CONFIRM_WINDOW_MS } from '../../src/lib/send-command-once.ts';
import { deviceSlot, freeDeviceNames, normalizeDevice } from '../../src/lib/restore/devices.ts';
import { parseRestoreInput } from '../../src/lib/restore/input.ts';
import { toRunSnapshot } from '../../src/lib/restore/plan.ts';
import { revertParameters } from '../../src/lib/restore/revert.ts';
import { loadRestoreConfig } from '../../src/lib/restore/config.ts';
import { clientToken } from '../../src/lib/restore/volumes.ts';
import type { RestoreState } from '../../src/lib/restore/state.ts';

describe('device names', () => {
  it('treats xvdf, /dev/xvdf, /dev/sdf and xvdf1 as one slot', () => {
    expect(new Set(['xvdf', '/dev/xvdf', '/dev/sdf', 'xvdf1'].map(deviceSlot))).toEqual(new Set(['f']));
    expect(deviceSlot('/dev/sda1')).toBe('a');
    expect(normalizeDevice('/dev/xvdg')).toBe('xvdg');
  });

  it('never picks a name whose slot is in use, and says when there are not enough', () => {
    expect(freeDeviceNames(['/dev/sda1', '/dev/sdf', 'xvdh'], 3)).toEqual(['xvdg', 'xvdi', 'xvdj']);
    expect(freeDeviceNames(['/dev/sda1'], 21)).toHaveLength(21);
    expect(freeDeviceNames(['/dev/sda1', 'xvdf'], 21)).toBeUndefined();
  });
});

describe('parseRestoreInput', () => {
  const valid = { runId: '20261128T000000Z-3f2a9c1e', sourceInstanceId: 'i-0123456789abcdef0', targetInstanceId: 'i-0fedcba9876543210' };

  it('accepts the minimal input and the optional fields', () => {
    expect(parseRestoreInput(valid)).toEqual(valid);
    expect(parseRestoreInput({ ...valid, devices: ['xvdf', '/dev/sda1'], keepOnFailure: true, Comment: 'x' })).toMatchObject({ devices: ['xvdf', '/dev/sda1'], keepOnFailure: true });
  });

  it.each([
    [null, /must be a JSON object/],
    [[], /must be a JSON object/],
    [{}, /field "runId" is required/],
    [{ ...valid, devices: [] }, /field "devices" must list 1-40 device names/],
    [{ ...valid, devices: 'xvdf' }, /field "devices" must be an array of device names/],
    [{ ...valid, targetInstanceId: 'i-0FEDCBA9876543210' }, /field "targetInstanceId" is not an EC2 instance id/],
    [{ ...valid, dryRun: true }, /unknown field "dryRun"; allowed fields: runId, sourceInstanceId, targetInstanceId, devices, keepOnFailure/],
  ])('rejects %j naming the field', (input, message) => {
    expect(() => parseRestoreInput(input)).toThrow(expect.objectContaining({ name: 'InvalidInputError', message: expect.stringMatching(message) }));
  });
});

describe('toRunSnapshot', () => {
  const tags = (t: Record<string, string>) => Object.entries(t).map(([Key, Value]) => ({ Key, Value }));

  it('reads a DiskShadow snapshot by its shadow set tag even without the method tag', () => {
    const s = toRunSnapshot({ SnapshotId: 'snap-1', VolumeId: 'vol-1', State: 'completed', VolumeSize: 8, Tags: tags({ 'vss-snapshots:shadow-set-id': 'abc', 'vss-snapshots:consistency': 'after-revert', Device: '/dev/xvdf' }) });
    expect(s).toMatchObject({ method: 'diskshadow', shadowSetId: 'abc', device: 'xvdf', appConsistent: true });
    // AppConsistent=true does not make a DiskShadow snapshot consistent: only the revert does.
    const legacy = toRunSnapshot({ SnapshotId: 'snap-3', VolumeId: 'vol-3', State: 'completed', Tags: tags({ 'vss-snapshots:shadow-set-id': 'abc', AppConsistent: 'true' }) });
    expect(legacy).toMatchObject({ method: 'diskshadow', appConsistent: false });
  });

  it('reads an AWS VSS snapshot without an instance tag', () => {
    const s = toRunSnapshot({ SnapshotId: 'snap-2', VolumeId: 'vol-2', State: 'pending', Tags: tags({ 'vss-snapshots:method': 'aws-vss', 'vss-snapshots:attempt': '2' }) });
    expect(s).toMatchObject({ method: 'aws-vss', instanceId: undefined, attempt: 2, appConsistent: false, state: 'pending' });
  });
});

describe('idempotency and document parameters', () => {
  it('derives one ClientToken per restore and snapshot, within EC2 limits', () => {
    const a = clientToken('20261128T000000Z-3f2a9c1e', 'snap-0123456789abcdef0');
    expect(a).toBe(clientToken('20261128T000000Z-3f2a9c1e', 'snap-0123456789abcdef0'));
    expect(a).not.toBe(clientToken('20261128T000000Z-3f2a9c1f', 'snap-0123456789abcdef0'));
    expect(a.length).toBeLessThanOrEqual(64);
  });

  it('builds the restore document parameters from the created volumes only, checked against the document', () => {
    const state: RestoreState = {
      restore: { restoreId: '20261128T000000Z-3f2a9c1e', executionId: 'x', runId: '20261128T000000Z-3f2a9c1e', sourceInstanceId: 'i-0123456789abcdef0', targetInstanceId: 'i-0fedcba9876543210', devices: null, keepOnFailure: false, startedAt: '2026-11-28T00:00:00.000Z' },
      plan: {
        method: 'diskshadow',
        availabilityZone: 'us-east-1a',
        targetState: 'running',
        shadowSetId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f',
        volumes: [
          { sourceDevice: 'xvdf', sourceVolumeId: 'vol-1', snapshotId: 'snap-1', sizeGiB: 1, device: 'xvdf', volumeId: 'vol-0aaaaaaaaaaaaaaa1' },
          { sourceDevice: 'xvdg', sourceVolumeId: 'vol-2', snapshotId: 'snap-2', sizeGiB: 1, device: 'xvdg', volumeId: 'vol-0aaaaaaaaaaaaaaa2' },
        ],
      },
    };
    expect(revertParameters(state, loadRestoreConfig({}))).toEqual({
      RunId: ['20261128T000000Z-3f2a9c1e'],
      VolumeIds: ['vol-0aaaaaaaaaaaaaaa1,vol-0aaaaaaaaaaaaaaa2'],
      ShadowSetId: ['4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f'],
      executionTimeout: ['1800'],
    });
    const bad = { ...state, plan: { ...state.plan, shadowSetId: 'not-a-guid' } } as RestoreState;
    expect(() => revertParameters(bad, loadRestoreConfig({}))).toThrow(/ShadowSetId/);
  });
});

describe('sending the revert: at most once as far as anything can tell', () => {
  const ssm = mockClient(SSMClient);
  const NOW = Date.parse('2026-11-28T00:10:00.000Z');
  const config = loadRestoreConfig({ RESTORE_DOCUMENT_NAME: 'VssSnapshots-DiskShadowRestore' });
  const base: RestoreState = {
    restore: { restoreId: '20261128T000000Z-3f2a9c1e', executionId: 'x', runId: '20261128T000000Z-3f2a9c1e', sourceInstanceId: 'i-0123456789abcdef0', targetInstanceId: 'i-0fedcba9876543210', devices: null, keepOnFailure: false, startedAt: '2026-11-28T00:00:00.000Z' },
    plan: {
      method: 'diskshadow',
      availabilityZone: 'us-east-1a',
      targetState: 'running',
      shadowSetId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f',
      volumes: [{ sourceDevice: 'xvdf', sourceVolumeId: 'vol-1', snapshotId: 'snap-1', sizeGiB: 1, device: 'xvdf', volumeId: 'vol-0aaaaaaaaaaaaaaa1' }],
    },
  };
  const unconfirmed = (since: number, sends = 1): RestoreState => ({
    ...base,
    revert: { commandId: null, documentName: 'VssSnapshots-DiskShadowRestore', status: 'unconfirmed', sends, unconfirmedSince: new Date(since).toISOString(), deadline: '2026-11-28T02:00:00.000Z', disks: [], warnings: [] },
  });
  const named = (name: string, status: number) => Object.assign(new Error(name), { name, $metadata: { httpStatusCode: status } });
  const realNow = clock.now;

  beforeEach(() => {
    ssm.reset();
    clock.now = () => NOW;
    ssm.on(ListCommandsCommand).resolves({ Commands: [] });
  });
  afterEach(() => {
    clock.now = realNow;
  });

  it('sends once and follows the command', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-1' } });
    const out = await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, base);
    expect(out.revert).toMatchObject({ commandId: 'cmd-1', status: 'pending', sends: 1 });
    expect(ssm.commandCalls(SendCommandCommand)[0]?.args[0].input).toMatchObject({ Comment: revertComment(base.restore.restoreId), InstanceIds: ['i-0fedcba9876543210'], MaxErrors: '0' });
  });

  it('takes a send whose answer was lost (or a 5xx) as unconfirmed, and does not send again', async () => {
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error('socket timed out'), { name: 'TimeoutError', code: 'ETIMEDOUT' }));
    const out = await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, base);
    expect(out.revert).toMatchObject({ commandId: null, status: 'unconfirmed', sends: 1, unconfirmedSince: new Date(NOW).toISOString() });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(1);
  });

  it('fails at once on an answer that proves nothing was sent (a 4xx such as InvalidParameters)', async () => {
    ssm.on(SendCommandCommand).rejects(named('InvalidParameters', 400));
    await expect(sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, base)).rejects.toMatchObject({ name: 'InvalidParameters' });
  });

  it('while unconfirmed only looks: adopts the command once ListCommands shows it, never sends', async () => {
    const state = unconfirmed(NOW - 60_000);
    expect((await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, state)).revert).toMatchObject({ status: 'unconfirmed', sends: 1, unconfirmedSince: new Date(NOW - 60_000).toISOString() });
    ssm.on(ListCommandsCommand).resolves({ Commands: [{ CommandId: 'cmd-late', Comment: revertComment(base.restore.restoreId) }] });
    expect((await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, state)).revert).toMatchObject({ commandId: 'cmd-late', status: 'pending', sends: 1 });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
    expect(ssm.commandCalls(ListCommandsCommand)[0]?.args[0].input).toMatchObject({ InstanceId: 'i-0fedcba9876543210', Filters: [{ key: 'InvokedAfter', value: base.restore.startedAt }] });
  });

  it('takes a send as never arrived only once it stayed unlisted past the window, and gives up after the last send', async () => {
    const justInside = await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, unconfirmed(NOW - SEND_CONFIRM_WINDOW_MS));
    expect(justInside.revert?.status).toBe('unconfirmed');
    const past = await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, unconfirmed(NOW - SEND_CONFIRM_WINDOW_MS - 1));
    expect(past.revert).toMatchObject({ status: 'not-sent', sends: 1, commandId: null });
    await expect(sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, unconfirmed(NOW - SEND_CONFIRM_WINDOW_MS - 1, MAX_REVERT_SENDS))).rejects.toMatchObject({ name: 'RevertFailedError' });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('counts a send whose Lambda died as made, and waits out its listing lag from now; a Lambda that died while only looking adds no send', async () => {
    const crashedSending = { ...base, revertSendError: { Error: 'Lambda.Unknown', Cause: 'timed out' } };
    const first = await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, crashedSending);
    expect(first.revert).toMatchObject({ status: 'unconfirmed', sends: 1, unconfirmedSince: new Date(NOW).toISOString() });
    expect(first.revertSendError).toBeUndefined();

    const crashedLooking = { ...unconfirmed(NOW - 120_000, 2), revertSendError: { Error: 'Lambda.Unknown' } };
    expect((await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, crashedLooking)).revert).toMatchObject({ status: 'unconfirmed', sends: 2, unconfirmedSince: new Date(NOW - 120_000).toISOString() });
    expect(ssm.commandCalls(SendCommandCommand)).toHaveLength(0);
  });

  it('sends again after not-sent, counting the sends', async () => {
    ssm.on(SendCommandCommand).resolves({ Command: { CommandId: 'cmd-2' } });
    const notSent: RestoreState = { ...unconfirmed(NOW - SEND_CONFIRM_WINDOW_MS - 1), revert: { ...(unconfirmed(0).revert as NonNullable<RestoreState['revert']>), status: 'not-sent' } };
    expect((await sendRevertCommand({ ssm: ssm as unknown as SSMClient, config }, notSent)).revert).toMatchObject({ commandId: 'cmd-2', status: 'pending', sends: 2 });
  });
});
