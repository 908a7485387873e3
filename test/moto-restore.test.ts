/**
 * Wire-level tests of the restore (issue 10): the restore's own functions make real SDK calls — real
 * serialization, real HTTP, real error parsing — against moto_server, so the simulated account is not the only
 * thing that has seen its CreateVolume, AttachVolume, DescribeVolumes, DetachVolume, DeleteVolume, SendCommand,
 * ListCommands and GetCommandInvocation requests.
 *
 * What moto (5.2) does not do, and how these tests deal with it (the simulated account covers each; see
 * docs/reliability.md, "Restore"):
 * - CreateVolume ignores ClientToken (a repeat makes a second volume): the token is checked on the wire, its
 *   idempotency in the simulated account.
 * - Volumes are `available`, attachments `attached` and deletions done at once, and a repeated AttachVolume
 *   succeeds (EC2 answers VolumeInUse): no eventual consistency here.
 * - DescribeVolumes ignores MaxResults (one page, no NextToken): a middleware cuts moto's real answer into
 *   pages, so the restore's paginator has to follow NextToken.
 * - DetachVolume from an instance it is not attached to answers InvalidInstanceID.NotFound for an unknown
 *   instance, and a repeated DetachVolume InvalidAttachment.NotFound (EC2: IncorrectState); the cleanup takes
 *   both as "look again next round".
 * - SSM DescribeInstanceInformation and ListCommandInvocations answer HTTP 500 (not implemented): the one
 *   DescribeInstanceInformation a DiskShadow plan makes is answered by a stub middleware.
 * - SSM runs no document: a command is `Success` at once with empty output. The result line the restore
 *   document prints is put into GetCommandInvocation's answer by a middleware, after the real call.
 * - GetCommandInvocation of an unknown command answers InvalidCommandId (SSM: InvocationDoesNotExist).
 * - ListCommands ignores the InvokedAfter filter, and a command's InstanceIds lists every instance of the
 *   account: the tests check what the restore asked for on the wire, and filter by Comment.
 *
 * Skipped, with a printed notice, only when moto_server is not installed.
 */
import { readFileSync } from 'node:fs';
import {
  AttachVolumeCommand,
  CreateSnapshotCommand,
  CreateVolumeCommand,
  DeleteVolumeCommand,
  DescribeVolumesCommand,
  EC2Client,
  RunInstancesCommand,
} from '@aws-sdk/client-ec2';
import type { Volume } from '@aws-sdk/client-ec2';
import { S3Client } from '@aws-sdk/client-s3';
import { CreateDocumentCommand, ListCommandsCommand, SSMClient } from '@aws-sdk/client-ssm';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildDocument } from '../src/documents/build-documents.ts';
import { DOCUMENTS } from '../src/documents/document-parameters.ts';
import { clock } from '../src/lib/clock.ts';
import { SHADOW_SET_TAG } from '../src/lib/methods/diskshadow.ts';
import { cleanUpRestore } from '../src/lib/restore/cleanup.ts';
import { loadRestoreConfig } from '../src/lib/restore/config.ts';
import { finishRestore } from '../src/lib/restore/finish.ts';
import { planRestore } from '../src/lib/restore/plan.ts';
import { checkRevertCommand, revertComment, sendRevertCommand } from '../src/lib/restore/revert.ts';
import { RESTORE_TAGS } from '../src/lib/restore/state.ts';
import type { RestoreState } from '../src/lib/restore/state.ts';
import { validateRestoreInput } from '../src/lib/restore/validate.ts';
import { attachVolumes, checkVolumes, createVolumes, describeVolumesById } from '../src/lib/restore/volumes.ts';
import { formatResultLine } from '../src/lib/result-line.ts';
import { ATTEMPT_TAG, INSTANCE_TAG, METHOD_TAG, RUN_TAG } from '../src/lib/run-id.ts';
import { MOTO_ACCOUNT, MOTO_REGION, motoAvailability, startMoto } from './moto-server.ts';
import type { MotoServer } from './moto-server.ts';

const availability = motoAvailability();
if (!availability.available) {
  process.stderr.write(`\n[moto-restore.test.ts] SKIPPED: the restore's wire-level tests against moto did not run: ${availability.reason}\n\n`);
}

const WINDOWS_AMI = 'ami-b7e93bce';
const RUN_ID = '20261128T000000Z-0a1b2c3d';
const SHADOW_SET = '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f';
const RESTORE_DOCUMENT = 'VssSnapshots-DiskShadowRestore';

/** A middleware on a client for the length of one test: removed in afterEach. */
type Installed = { client: EC2Client | SSMClient; name: string };

describe.skipIf(!availability.available)('restore on the wire against moto_server', () => {
  let moto: MotoServer;
  let ec2: EC2Client;
  let ssm: SSMClient;
  let s3: S3Client;
  let installed: Installed[] = [];
  const realNow = clock.now;
  const config = loadRestoreConfig({ RESTORE_DOCUMENT_NAME: RESTORE_DOCUMENT });

  beforeAll(async () => {
    moto = await startMoto();
    ec2 = new EC2Client(moto.clientConfig);
    ssm = new SSMClient(moto.clientConfig);
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  }, 60_000);

  afterAll(async () => {
    for (const client of [ec2, ssm, s3]) client?.destroy();
    await moto?.stop();
  });

  beforeEach(async () => {
    await moto.reset();
  });

  afterEach(() => {
    for (const { client, name } of installed) client.middlewareStack.remove(name);
    installed = [];
    clock.now = realNow;
  });

  /** Adds a middleware to a client for this test only. */
  function install(client: EC2Client | SSMClient, name: string, step: 'initialize' | 'finalizeRequest' | 'deserialize', middleware: (next: (args: any) => Promise<any>, context: { commandName?: string }) => (args: any) => Promise<any>): void {
    (client.middlewareStack as { add: (m: unknown, o: unknown) => void }).add(middleware, { step, name, priority: step === 'deserialize' ? 'high' : 'normal' });
    installed.push({ client, name });
  }

  /** The form-encoded bodies of the EC2 requests of one Action, as they went on the wire. */
  function captureBodies(action: string): string[] {
    const bodies: string[] = [];
    install(ec2, `capture${action}`, 'finalizeRequest', (next) => async (args) => {
      const body = String(args.request?.body ?? '');
      if (body.includes(`Action=${action}&`)) bodies.push(decodeURIComponent(body.replace(/\+/g, ' ')));
      return next(args);
    });
    return bodies;
  }

  async function launch(az: string, tags: Record<string, string> = {}): Promise<string> {
    const out = await ec2.send(
      new RunInstancesCommand({
        ImageId: WINDOWS_AMI,
        MinCount: 1,
        MaxCount: 1,
        InstanceType: 'm5.large',
        Placement: { AvailabilityZone: az },
        ...(Object.keys(tags).length > 0 ? { TagSpecifications: [{ ResourceType: 'instance', Tags: Object.entries(tags).map(([Key, Value]) => ({ Key, Value })) }] } : {}),
      }),
    );
    return out.Instances?.[0]?.InstanceId ?? '';
  }

  /** A source in us-east-1a with a boot and a data volume, and one snapshot of each from the nightly run. */
  async function sourceWithRunSnapshots(method: 'aws-vss' | 'diskshadow'): Promise<{ source: string; snapshots: Map<string, string> }> {
    const source = await launch(`${MOTO_REGION}a`, { ConsistentSnapshot: 'WindowsVSS' });
    const data = await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${MOTO_REGION}a`, Size: 20 }));
    await ec2.send(new AttachVolumeCommand({ InstanceId: source, VolumeId: data.VolumeId, Device: 'xvdf' }));
    const volumes = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: 'attachment.instance-id', Values: [source] }] }));
    const snapshots = new Map<string, string>();
    for (const v of volumes.Volumes ?? []) {
      const device = v.Attachments?.[0]?.Device ?? '';
      const tags = [
        { Key: RUN_TAG, Value: RUN_ID },
        { Key: ATTEMPT_TAG, Value: '1' },
        { Key: METHOD_TAG, Value: method },
        { Key: 'Device', Value: device },
        // What each method marks a usable snapshot with: AWS's document AppConsistent=true, the DiskShadow script its consistency tag.
        ...(method === 'diskshadow'
          ? [{ Key: 'vss-snapshots:consistency', Value: 'after-revert' }, { Key: SHADOW_SET_TAG, Value: SHADOW_SET }, { Key: INSTANCE_TAG, Value: source }]
          : [{ Key: 'AppConsistent', Value: 'true' }]),
      ];
      const snap = await ec2.send(new CreateSnapshotCommand({ VolumeId: v.VolumeId, TagSpecifications: [{ ResourceType: 'snapshot', Tags: tags }] }));
      snapshots.set(device.replace(/^\/dev\//, ''), snap.SnapshotId ?? '');
    }
    return { source, snapshots };
  }

  const validated = (source: string, target: string, extra: Record<string, unknown> = {}): RestoreState =>
    validateRestoreInput({
      input: { runId: RUN_ID, sourceInstanceId: source, targetInstanceId: target, ...extra },
      execution: { id: `arn:aws:states:${MOTO_REGION}:${MOTO_ACCOUNT}:execution:vss-snapshots-restore:wire-${Math.random().toString(16).slice(2)}`, startTime: new Date(Date.now() - 60_000).toISOString() },
    });

  const tagsOf = (v: Volume | undefined) => Object.fromEntries((v?.Tags ?? []).map((t) => [t.Key, t.Value]));

  it('plans, creates (ClientToken and tags on the wire), checks, attaches and reports an AWS VSS restore', async () => {
    const { source, snapshots } = await sourceWithRunSnapshots('aws-vss');
    const target = await launch(`${MOTO_REGION}b`);
    const createBodies = captureBodies('CreateVolume');
    const attachBodies = captureBodies('AttachVolume');

    const planned = await planRestore({ ec2, ssm, s3, reportBucket: undefined }, validated(source, target));
    const created = await createVolumes({ ec2, config }, planned);
    const available = await checkVolumes({ ec2, config }, created);
    const attaching = await attachVolumes({ ec2, config }, available);
    const attached = await checkVolumes({ ec2, config }, attaching);
    const report = await finishRestore({ ec2 }, attached);

    expect(planned.plan).toMatchObject({ method: 'aws-vss', availabilityZone: `${MOTO_REGION}b` });
    expect(planned.plan?.volumes.map((v) => [v.sourceDevice, v.snapshotId]).sort()).toEqual([...snapshots.entries()].sort());
    // One CreateVolume per snapshot, each with its own ClientToken and the restore's tags on create.
    expect(createBodies).toHaveLength(2);
    for (const body of createBodies) {
      expect(body).toMatch(/ClientToken=vss-restore-[0-9a-f]{40}(&|$)/);
      expect(body).toContain('TagSpecification.1.ResourceType=volume');
      expect(body).toContain(`=${RESTORE_TAGS.restoreId}&`);
      expect(body).toContain(`AvailabilityZone=${MOTO_REGION}b`);
    }
    expect(new Set(createBodies.map((b) => /ClientToken=([^&]+)/.exec(b)?.[1])).size).toBe(2);
    expect(available.ready).toBe(true);
    expect(attachBodies.map((b) => /Device=([^&]+)/.exec(b)?.[1]).sort()).toEqual(['xvdf', 'xvdg']);
    expect(attached.ready).toBe(true);
    // Read back from moto, not from the payload: tagged, in the target's AZ, attached to it.
    const ids = created.plan?.volumes.map((v) => v.volumeId ?? '') ?? [];
    const onWire = await describeVolumesById(ec2, ids);
    for (const id of ids) {
      const v = onWire.get(id);
      expect(v).toMatchObject({ AvailabilityZone: `${MOTO_REGION}b`, State: 'in-use', Attachments: [expect.objectContaining({ InstanceId: target, State: 'attached' })] });
      expect(tagsOf(v)).toMatchObject({ [RESTORE_TAGS.restoreId]: planned.restore.restoreId, [RESTORE_TAGS.runId]: RUN_ID, [RESTORE_TAGS.sourceInstance]: source, [RESTORE_TAGS.targetInstance]: target });
    }
    expect(report.volumes.map((v) => v.volumeId).sort()).toEqual([...ids].sort());
    expect(report.revert).toBeNull();
  });

  it('pages DescribeVolumes by the volume-id filter and takes a volume EC2 does not list as "not yet", where VolumeIds fails the whole call', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 7; i += 1) ids.push((await ec2.send(new CreateVolumeCommand({ AvailabilityZone: `${MOTO_REGION}a`, Size: 1 }))).VolumeId ?? '');
    const unknown = 'vol-0ffffffffffffffff';
    // moto ignores MaxResults on DescribeVolumes (one page, no NextToken): cut its real answer into pages of 3,
    // as EC2 would with MaxResults 3, so the restore's paginator has to follow NextToken.
    const requests: { maxResults?: number; nextToken?: string; filters?: unknown }[] = [];
    install(ec2, 'pagesOfThree', 'initialize', (next, context) => async (args) => {
      if (context.commandName !== 'DescribeVolumesCommand') return next(args);
      requests.push({ maxResults: args.input.MaxResults, nextToken: args.input.NextToken, filters: args.input.Filters });
      const start = Number(/^page:([0-9]+)$/.exec(args.input.NextToken ?? '')?.[1] ?? 0);
      const result = await next({ ...args, input: { ...args.input, NextToken: undefined } });
      const all = (result.output.Volumes ?? []) as Volume[];
      result.output.Volumes = all.slice(start, start + 3);
      result.output.NextToken = start + 3 < all.length ? `page:${start + 3}` : undefined;
      return result;
    });

    const found = await describeVolumesById(ec2, [...ids, unknown]);

    expect([...found.keys()].sort()).toEqual([...ids].sort());
    expect(requests.map((r) => r.nextToken)).toEqual([undefined, 'page:3', 'page:6']);
    expect(requests.every((r) => r.maxResults === 500)).toBe(true);
    expect(requests[0]?.filters).toEqual([{ Name: 'volume-id', Values: [...ids, unknown] }]);
    await expect(ec2.send(new DescribeVolumesCommand({ VolumeIds: [ids[0] as string, unknown] }))).rejects.toMatchObject({ name: 'InvalidVolume.NotFound' });

    // Check Volumes right after CreateVolume: an id EC2 does not list yet is waited for, not an error.
    const target = await launch(`${MOTO_REGION}a`);
    const state = validated('i-0123456789abcdef0', target);
    const withPlan: RestoreState = {
      ...state,
      phase: 'creating',
      phaseStartedAt: new Date().toISOString(),
      plan: {
        method: 'aws-vss',
        availabilityZone: `${MOTO_REGION}a`,
        targetState: 'running',
        shadowSetId: null,
        volumes: [ids[0] as string, unknown].map((volumeId, i) => ({ sourceDevice: `xvd${'fg'[i]}`, sourceVolumeId: 'vol-0aaaaaaaaaaaaaaa1', snapshotId: `snap-0aaaaaaaaaaaaaa${i}`, sizeGiB: 1, device: `xvd${'fg'[i]}`, volumeId })),
      },
    };
    expect((await checkVolumes({ ec2, config }, withPlan)).ready).toBe(false);
  });

  it('cleans up by the ids it holds and by tag: detaches, then deletes; a DeleteVolume repeated after its answer was lost (NotFound) counts as deleted', async () => {
    const { source } = await sourceWithRunSnapshots('aws-vss');
    const target = await launch(`${MOTO_REGION}b`);
    const planned = await planRestore({ ec2, ssm, s3, reportBucket: undefined }, validated(source, target));
    const attached = await attachVolumes({ ec2, config }, await createVolumes({ ec2, config }, planned));
    const held = attached.plan?.volumes.map((v) => v.volumeId ?? '') ?? [];
    // A volume of this restore whose id never reached the payload: only its tag leads to it.
    const lost = await ec2.send(
      new CreateVolumeCommand({ AvailabilityZone: `${MOTO_REGION}b`, Size: 1, TagSpecifications: [{ ResourceType: 'volume', Tags: [{ Key: RESTORE_TAGS.restoreId, Value: planned.restore.restoreId }] }] }),
    );
    // Every DeleteVolume reaches moto, its answer is lost, and the SDK's retry meets InvalidVolume.NotFound.
    const retriesAnswered: string[] = [];
    install(ec2, 'loseDeleteAnswers', 'finalizeRequest', (next) => async (args) => {
      const body = String(args.request?.body ?? '');
      if (!body.includes('Action=DeleteVolume&')) return next(args);
      await next(args);
      try {
        return await next(args);
      } catch (error) {
        retriesAnswered.push((error as Error).name);
        throw error;
      }
    });
    let now = Date.now();
    clock.now = () => now;
    let state: RestoreState = { ...attached, error: { Error: 'RevertFailedError', Cause: 'the revert failed' } };

    for (let round = 0; round < 40 && !state.cleanup?.done; round += 1) {
      state = await cleanUpRestore({ ec2, config }, state);
      now += 10_000;
    }

    expect(state.cleanup?.done).toBe(true);
    expect(state.cleanup?.detached).toEqual([...held].sort());
    expect(state.cleanup?.deleted).toEqual([...held, lost.VolumeId ?? ''].sort());
    expect(state.cleanup?.waiting).toEqual([]);
    const left = await ec2.send(new DescribeVolumesCommand({ Filters: [{ Name: `tag:${RESTORE_TAGS.restoreId}`, Values: [planned.restore.restoreId] }] }));
    expect(left.Volumes).toEqual([]);
    expect(retriesAnswered).toEqual(['InvalidVolume.NotFound', 'InvalidVolume.NotFound', 'InvalidVolume.NotFound']);
    expect(state.failure?.cause).toMatch(/failed: the revert failed Cleaned up: deleted vol-/);
    await expect(ec2.send(new DeleteVolumeCommand({ VolumeId: held[0] }))).rejects.toMatchObject({ name: 'InvalidVolume.NotFound' });
  });

  describe('the DiskShadow revert through SSM Run Command', () => {
    /** Registers the project's real restore document (built from src/scripts) in moto. */
    async function registerRestoreDocument(): Promise<void> {
      const definition = DOCUMENTS['diskshadow-restore'];
      const content = buildDocument('diskshadow-restore', readFileSync(new URL(`../src/scripts/${definition.script}`, import.meta.url), 'utf8'));
      await ssm.send(new CreateDocumentCommand({ Name: RESTORE_DOCUMENT, DocumentType: 'Command', DocumentFormat: 'JSON', Content: JSON.stringify(content) }));
    }

    /** A DiskShadow restore planned against moto (its agent check stubbed), volumes created and attached. */
    async function attachedDiskShadowRestore(): Promise<RestoreState> {
      await registerRestoreDocument();
      const { source } = await sourceWithRunSnapshots('diskshadow');
      const target = await launch(`${MOTO_REGION}b`);
      // moto lacks DescribeInstanceInformation (HTTP 500): answer the one call a DiskShadow plan makes.
      install(ssm, 'agentOnline', 'initialize', (next, context) => async (args) => {
        if (context.commandName !== 'DescribeInstanceInformationCommand') return next(args);
        return { output: { InstanceInformationList: [{ InstanceId: target, PingStatus: 'Online' }], $metadata: {} }, response: {} };
      });
      const planned = await planRestore({ ec2, ssm, s3, reportBucket: undefined }, validated(source, target));
      expect(planned.plan).toMatchObject({ method: 'diskshadow', shadowSetId: SHADOW_SET });
      return attachVolumes({ ec2, config }, await createVolumes({ ec2, config }, planned));
    }

    const listed = async (restoreId: string) => {
      const out = await ssm.send(new ListCommandsCommand({}));
      return (out.Commands ?? []).filter((c) => c.Comment === revertComment(restoreId));
    };

    it('sends the restore document to the target only, with the restored volume ids and the shadow set, and reads its result line through GetCommandInvocation', async () => {
      const state = await attachedDiskShadowRestore();
      const volumeIds = state.plan?.volumes.map((v) => v.volumeId ?? '') ?? [];
      const target = state.restore.targetInstanceId;
      // moto runs no script: GetCommandInvocation's stdout is what the document prints on success.
      install(ssm, 'documentOutput', 'deserialize', (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName === 'GetCommandInvocationCommand') {
          const disks = volumeIds.map((volumeId, i) => ({ volumeId, diskNumber: i + 1, signatureChanged: false, online: true, reverted: [{ volume: `\\\\?\\Volume{0000000${i}-0000-4000-8000-000000000000}\\`, shadowCopyId: `0000000${i}-0000-4000-8000-000000000001` }] }));
          const line = formatResultLine({ version: 1, operation: 'restore', runId: RUN_ID, instanceId: target, outcome: 'success', errorCode: null, retryable: false, exitCode: 0, message: 'Reverted.', shadowSetId: SHADOW_SET, warnings: [], disks });
          result.output.StandardOutputContent = `${line}\nDiskShadow revert completed.\n`;
        }
        return result;
      });

      const bodies: string[] = [];
      install(ssm, 'captureSend', 'finalizeRequest', (next, context) => async (args) => {
        const body = args.request?.body as string | Uint8Array | undefined;
        if (context.commandName === 'SendCommandCommand') bodies.push(typeof body === 'string' ? body : new TextDecoder().decode(body));
        return next(args);
      });

      const sent = await sendRevertCommand({ ssm, config }, state);
      const checked = await checkRevertCommand({ ssm, config }, sent);

      const commands = await listed(state.restore.restoreId);
      expect(commands).toHaveLength(1);
      expect(commands[0]).toMatchObject({ CommandId: sent.revert?.commandId, DocumentName: RESTORE_DOCUMENT, MaxErrors: '0' });
      // On the wire, to the target only (moto echoes every instance of the account in InstanceIds).
      expect(bodies.map((b) => (JSON.parse(b) as { InstanceIds: string[] }).InstanceIds)).toEqual([[target]]);
      expect(commands[0]?.Parameters).toMatchObject({ RunId: [RUN_ID], ShadowSetId: [SHADOW_SET], VolumeIds: [volumeIds.join(',')] });
      expect(checked.revert).toMatchObject({ status: 'success', commandId: sent.revert?.commandId });
      expect(checked.revert?.disks.map((d) => d.volumeId)).toEqual(volumeIds);
    });

    it('fails the revert when the command succeeded but printed no result line (what moto answers without help)', async () => {
      const state = await attachedDiskShadowRestore();
      const sent = await sendRevertCommand({ ssm, config }, state);
      await expect(checkRevertCommand({ ssm, config }, sent)).rejects.toMatchObject({ name: 'RevertFailedError', message: expect.stringMatching(/exited 0 .* but printed no successful restore result line/) });
    });

    it('does not send again when the SendCommand answer is lost on the wire: it finds the command by Comment, target and InvokedAfter', async () => {
      const state = await attachedDiskShadowRestore();
      let lost = false;
      install(ssm, 'loseFirstSendAnswer', 'deserialize', (next, context) => async (args) => {
        const result = await next(args);
        if (context.commandName === 'SendCommandCommand' && !lost) {
          lost = true;
          throw Object.assign(new Error('socket timed out after reaching SSM'), { name: 'TimeoutError', code: 'ETIMEDOUT' });
        }
        return result;
      });

      const unconfirmed = await sendRevertCommand({ ssm, config }, state);
      const lookups: unknown[] = [];
      install(ssm, 'captureLookups', 'initialize', (next, context) => async (args) => {
        if (context.commandName === 'ListCommandsCommand') lookups.push({ ...args.input });
        return next(args);
      });
      const confirmed = await sendRevertCommand({ ssm, config }, unconfirmed);

      expect(lost).toBe(true);
      expect(unconfirmed.revert).toMatchObject({ status: 'unconfirmed', commandId: null, sends: 1 });
      const commands = await listed(state.restore.restoreId);
      expect(commands).toHaveLength(1);
      expect(confirmed.revert).toMatchObject({ status: 'pending', commandId: commands[0]?.CommandId, sends: 1 });
      // The look-up asked SSM for this target's commands since the restore began (moto ignores the filter).
      expect(lookups[0]).toMatchObject({ InstanceId: state.restore.targetInstanceId, Filters: [{ key: 'InvokedAfter', value: state.restore.startedAt }], MaxResults: 50 });
    });
  });
});
