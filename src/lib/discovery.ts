/**
 * "Discover Instances": finds every instance that carries the selection tag (and, if given, is one of
 * the requested ids), decides per instance whether a snapshot command can be sent, and records why not.
 * Terminated and shutting-down instances are left out; stopped ones are reported as skipped.
 */
import { DescribeInstancesCommand } from '@aws-sdk/client-ec2';
import type { EC2Client, Filter, Instance } from '@aws-sdk/client-ec2';
import { DescribeInstanceInformationCommand } from '@aws-sdk/client-ssm';
import type { InstanceInformation, SSMClient } from '@aws-sdk/client-ssm';
import { clock } from './clock.ts';
import { FAILURES } from './failure-catalogue.ts';
import { inParallel } from './in-parallel.ts';
import type { FailureCode } from './failure-catalogue.ts';
import type { InstanceRecord, RunState } from './run-state.ts';

const LISTED_STATES = ['pending', 'running', 'stopping', 'stopped'];
const SSM_PAGE = 50;
const EC2_PAGE = 1000;
const IDS_PER_FILTER = 200;

/** EC2 filter values treat `*` and `?` as wildcards; a tag value is data, so escape them. */
export function escapeFilterValue(value: string): string {
  return value.replace(/([\\*?])/g, '\\$1');
}

export async function listTaggedInstances(ec2: EC2Client, state: RunState): Promise<Instance[]> {
  const { tagKey, tagValue, instanceIds } = state.selector;
  const base: Filter[] = [
    { Name: `tag:${tagKey}`, Values: [escapeFilterValue(tagValue)] },
    { Name: 'instance-state-name', Values: LISTED_STATES },
  ];
  const idChunks: (string[] | undefined)[] = instanceIds ? chunk(instanceIds, IDS_PER_FILTER) : [undefined];
  const found = new Map<string, Instance>();
  for (const ids of idChunks) {
    const filters = ids ? [...base, { Name: 'instance-id', Values: ids }] : base;
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(new DescribeInstancesCommand({ Filters: filters, MaxResults: EC2_PAGE, NextToken: nextToken }));
      for (const reservation of page.Reservations ?? []) {
        for (const instance of reservation.Instances ?? []) {
          // Defence in depth: the filter already did this, but a wildcard or case slip must never widen the selection.
          const tag = instance.Tags?.find((t) => t.Key === tagKey);
          if (instance.InstanceId && tag?.Value === tagValue) found.set(instance.InstanceId, instance);
        }
      }
      nextToken = page.NextToken;
    } while (nextToken);
  }
  return [...found.values()].sort((a, b) => (a.InstanceId ?? '').localeCompare(b.InstanceId ?? ''));
}

/** Pages of DescribeInstanceInformation in flight at once (SSM's read rate is shared with the other shards' polls). */
const AGENT_LOOKUPS_IN_FLIGHT = 4;

export async function agentInformation(ssm: SSMClient, instanceIds: string[]): Promise<Map<string, InstanceInformation>> {
  const info = new Map<string, InstanceInformation>();
  await inParallel(chunk(instanceIds, SSM_PAGE), AGENT_LOOKUPS_IN_FLIGHT, async (ids) => {
    let nextToken: string | undefined;
    do {
      const page = await ssm.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: 'InstanceIds', Values: ids }],
          MaxResults: SSM_PAGE,
          NextToken: nextToken,
        }),
      );
      for (const item of page.InstanceInformationList ?? []) if (item.InstanceId) info.set(item.InstanceId, item);
      nextToken = page.NextToken;
    } while (nextToken);
  });
  return info;
}

export interface DiscoverDeps {
  ec2: EC2Client;
  ssm: SSMClient;
  /** The deployed selector tag: the stack's IAM sends the snapshot document only to instances carrying it. */
  sendScope?: { tagKey: string; tagValue: string };
}

/** Fills `state.instances` and `state.notFound`; returns nothing, the caller saves the state. */
export async function discoverInstances(deps: DiscoverDeps, state: RunState): Promise<void> {
  const instances = await listTaggedInstances(deps.ec2, state);
  const records = instances.map((instance) => toRecord(instance, deps.sendScope));
  for (const record of records) {
    if (record.phase === 'send' && expectedVolumes(record, state.options.excludeBootVolume).length === 0) {
      setFinal(record, 'no-ebs', 'Only the boot volume is attached and the boot volume is excluded from this run.');
    }
  }

  const candidates = records.filter((r) => r.phase === 'send').map((r) => r.instanceId);
  const agents = candidates.length > 0 ? await agentInformation(deps.ssm, candidates) : new Map<string, InstanceInformation>();
  for (const record of records) {
    if (record.phase !== 'send') continue;
    const agent = agents.get(record.instanceId);
    if (!agent) {
      setFinal(record, 'not-managed', 'The instance is not registered with SSM, so no command was sent.');
    } else if (agent.PingStatus !== 'Online') {
      const since = agent.LastPingDateTime ? ` since ${new Date(agent.LastPingDateTime).toISOString()}` : '';
      setFinal(record, 'agent-offline', `SSM Agent ping status is ${agent.PingStatus ?? 'unknown'}${since}, so no command was sent.`);
    } else if (state.dryRun) {
      record.phase = 'planned';
      record.finishedAt = clock.now();
      delete record.dueAt;
      record.code = 'planned';
      record.detail = record.reason = `Dry run: would send the snapshot command (${state.options.method}) for ${describeVolumes(record, state)}.`;
    }
  }

  state.instances = records;
  const seen = new Set(records.map((r) => r.instanceId));
  state.notFound = (state.selector.instanceIds ?? []).filter((id) => !seen.has(id));
}

function toRecord(instance: Instance, sendScope?: DiscoverDeps['sendScope']): InstanceRecord {
  const instanceId = instance.InstanceId ?? '';
  const name = instance.Tags?.find((t) => t.Key === 'Name')?.Value;
  const volumes = (instance.BlockDeviceMappings ?? [])
    .filter((m) => m.Ebs?.VolumeId && m.Ebs.Status !== 'detaching' && m.Ebs.Status !== 'detached')
    .map((m) => ({ volumeId: m.Ebs?.VolumeId ?? '', device: m.DeviceName ?? '', boot: m.DeviceName === instance.RootDeviceName }));
  const record: InstanceRecord = {
    instanceId,
    ...(name !== undefined ? { name } : {}),
    ...(instance.Placement?.AvailabilityZone ? { availabilityZone: instance.Placement.AvailabilityZone } : {}),
    volumes,
    ...(sendScope ? { inSendScope: instance.Tags?.some((t) => t.Key === sendScope.tagKey && t.Value === sendScope.tagValue) ?? false } : {}),
    phase: 'send',
    dueAt: clock.now(),
    attempts: 0,
    snapshots: [],
  };
  const stateName = instance.State?.Name ?? 'unknown';
  if (stateName !== 'running') {
    setFinal(record, 'stopped', `The instance is ${stateName}.`);
  } else if ((instance.Platform ?? '').toLowerCase() !== 'windows') {
    setFinal(record, 'not-windows', `Platform is ${instance.PlatformDetails ?? 'Linux/UNIX'}, not Windows.`);
  } else if (volumes.length === 0) {
    setFinal(record, 'no-ebs', 'The instance has no attached EBS volume.');
  }
  return record;
}

/** Marks a record final (failed or skipped per the catalogue) with a reason that says what to do. */
export function setFinal(record: InstanceRecord, code: FailureCode, detail: string): void {
  const kind = FAILURES[code];
  record.phase = 'skip' in kind && kind.skip ? 'skipped' : 'failed';
  record.finishedAt = clock.now();
  delete record.dueAt;
  record.code = code;
  record.detail = detail;
  record.reason = `${detail} ${kind.action}`;
}

/** The volumes a run must snapshot on this instance. */
export function expectedVolumes(record: InstanceRecord, excludeBootVolume: boolean): InstanceRecord['volumes'] {
  return record.volumes.filter((v) => !(excludeBootVolume && v.boot));
}

function describeVolumes(record: InstanceRecord, state: RunState): string {
  const vols = expectedVolumes(record, state.options.excludeBootVolume);
  return `${vols.length} volume${vols.length === 1 ? '' : 's'} (${vols.map((v) => v.device).join(', ')})`;
}

export function chunk<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
