/**
 * "Clean Up Restore": every failure after Plan Restore lands here. Unless the input said keepOnFailure,
 * it detaches from the target and deletes every volume this restore created. It finds them two ways: by the
 * volume ids the payload holds, and by their restore-id tag (set on create), which finds a volume whose id was
 * lost with a crashed Lambda. EC2 shows both late (a new volume, and its tag, are missing from DescribeVolumes
 * for a while: "Eventual consistency in the Amazon EC2 API"), so a volume it cannot see yet is waited for
 * within VISIBILITY_GRACE_MS. Detaching takes a while too: the state machine calls this step again until done.
 */
import { DeleteVolumeCommand, DetachVolumeCommand, paginateDescribeVolumes } from '@aws-sdk/client-ec2';
import type { EC2Client, Volume } from '@aws-sdk/client-ec2';
import { clock } from '../clock.ts';
import type { RestoreConfig } from './config.ts';
import { createdVolumeIds, RESTORE_TAGS } from './state.ts';
import type { RestoreState } from './state.ts';
import { describeVolumesById, VISIBILITY_GRACE_MS } from './volumes.ts';

export interface CleanupDeps {
  ec2: EC2Client;
  config: RestoreConfig;
}

async function taggedVolumes(ec2: EC2Client, restoreId: string): Promise<Map<string, Volume>> {
  const volumes = new Map<string, Volume>();
  const pages = paginateDescribeVolumes({ client: ec2, pageSize: 500 }, { Filters: [{ Name: `tag:${RESTORE_TAGS.restoreId}`, Values: [restoreId] }] });
  for await (const page of pages) for (const v of page.Volumes ?? []) if (v.VolumeId) volumes.set(v.VolumeId, v);
  return volumes;
}

/**
 * Runs a Detach/DeleteVolume; false when EC2 refused it because the volume is not in the state the
 * (eventually consistent) DescribeVolumes showed: IncorrectState ("is in the 'available' state"),
 * InvalidAttachment.NotFound, VolumeInUse. The state machine calls this step again, which then sees the
 * volume as it is. Any other error still fails the cleanup.
 */
async function tolerateStale(call: () => Promise<unknown>): Promise<boolean> {
  try {
    await call();
    return true;
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'IncorrectState' || name === 'InvalidAttachment.NotFound' || name === 'VolumeInUse') return false;
    throw error;
  }
}

/** The original failure as one line: Step Functions passes a Lambda error's Cause as a JSON string. */
export function failureCause(cause: unknown): string {
  if (typeof cause !== 'string') return cause === undefined ? '(no cause)' : JSON.stringify(cause).slice(0, 2000);
  try {
    const parsed = JSON.parse(cause) as { errorMessage?: string };
    if (typeof parsed.errorMessage === 'string') return parsed.errorMessage.slice(0, 2000);
  } catch {
    // A plain message.
  }
  return cause.slice(0, 2000);
}

export async function cleanUpRestore(deps: CleanupDeps, state: RestoreState): Promise<RestoreState> {
  const r = state.restore;
  const now = clock.now();
  const previous = state.cleanup ?? {
    done: false,
    deadline: new Date(now + deps.config.cleanupDeadlineSeconds * 1000).toISOString(),
    startedAt: new Date(now).toISOString(),
    deleted: [],
    detached: [],
    kept: [],
    waiting: [],
    missingSince: {},
    notFound: [],
  };
  const startedAt = Date.parse(previous.startedAt ?? new Date(now).toISOString());
  const withinGrace = now - startedAt <= VISIBILITY_GRACE_MS;
  const held = createdVolumeIds(state);
  const found = await taggedVolumes(deps.ec2, r.restoreId);
  for (const [id, v] of await describeVolumesById(deps.ec2, held.filter((id) => !found.has(id)))) found.set(id, v);

  const deleted = new Set(previous.deleted);
  const detached = new Set(previous.detached);
  const notFound = new Set(previous.notFound);
  const missingSince: Record<string, string> = {};
  const kept: string[] = [];
  const waiting: string[] = [];

  // Held ids EC2 does not list: not shown yet (a new volume), or already gone.
  for (const id of held) {
    if (found.has(id) || deleted.has(id) || notFound.has(id)) continue;
    if (r.keepOnFailure) {
      kept.push(`${id} (not listed by EC2 yet)`);
      continue;
    }
    const since = previous.missingSince[id] ?? new Date(now).toISOString();
    if (now - Date.parse(since) > VISIBILITY_GRACE_MS) notFound.add(id);
    else {
      missingSince[id] = since;
      waiting.push(`${id} not listed yet`);
    }
  }
  // Create Volumes failed before the payload got every id: a volume it made may exist that only its tag,
  // shown late, leads to. Look for it for the whole grace (the ClientToken made at most one per snapshot).
  const idsMayBeLost = !r.keepOnFailure && (state.plan?.volumes ?? []).some((v) => !v.volumeId);
  if (idsMayBeLost && withinGrace) waiting.push(`volumes whose ids were lost (found by tag ${RESTORE_TAGS.restoreId}=${r.restoreId}, which EC2 shows late)`);

  for (const v of found.values()) {
    const id = v.VolumeId ?? '';
    const state = v.State ?? 'unknown';
    if (state === 'deleting' || state === 'deleted') {
      deleted.add(id);
      continue;
    }
    if (r.keepOnFailure) {
      kept.push(`${id} (${state}${v.Attachments?.[0] ? `, ${v.Attachments[0].State} to ${v.Attachments[0].InstanceId} at ${v.Attachments[0].Device}` : ''})`);
      continue;
    }
    const attachment = v.Attachments?.find((a) => a.State !== 'detached');
    if (attachment) {
      if (attachment.InstanceId !== r.targetInstanceId) {
        // Someone moved it: not this restore's to detach.
        kept.push(`${id} (attached to ${attachment.InstanceId}, not the target: left alone)`);
        continue;
      }
      if (attachment.State === 'attached' || attachment.State === 'attaching') {
        if (await tolerateStale(() => deps.ec2.send(new DetachVolumeCommand({ VolumeId: id, InstanceId: r.targetInstanceId })))) detached.add(id);
      }
      waiting.push(`${id} detaching`);
      continue;
    }
    if (state === 'creating') {
      waiting.push(`${id} creating`);
      continue;
    }
    try {
      if (await tolerateStale(() => deps.ec2.send(new DeleteVolumeCommand({ VolumeId: id })))) deleted.add(id);
      else waiting.push(`${id} ${state}`);
    } catch (error) {
      // Listed, so EC2 knows the id: NotFound means it is deleted (a retry after a lost answer, or an earlier,
      // interrupted try of this step).
      if ((error as Error).name !== 'InvalidVolume.NotFound') throw error;
      deleted.add(id);
    }
  }

  const overdue = clock.now() > Date.parse(previous.deadline);
  const done = waiting.length === 0 || overdue;
  const cleanup = {
    done,
    deadline: previous.deadline,
    startedAt: new Date(startedAt).toISOString(),
    deleted: [...deleted].sort(),
    detached: [...detached].sort(),
    kept,
    waiting,
    missingSince,
    notFound: [...notFound].sort(),
  };
  if (!done) return { ...state, cleanup };

  const error = state.error?.Error ?? 'RestoreFailed';
  let summary: string;
  if (r.keepOnFailure) summary = kept.length > 0 ? `Kept as asked (keepOnFailure): ${kept.join(', ')}.` : 'Nothing had been created.';
  else if (deleted.size === 0 && waiting.length === 0 && kept.length === 0 && notFound.size === 0) summary = 'Nothing had been created.';
  else {
    summary = `Cleaned up: ${deleted.size > 0 ? `deleted ${[...deleted].sort().join(', ')}` : 'deleted nothing'}${detached.size > 0 ? ` (detached from ${r.targetInstanceId} first: ${[...detached].sort().join(', ')})` : ''}.`;
    if (notFound.size > 0) summary += ` Not listed by EC2 any more (deleted earlier, or never made): ${[...notFound].sort().join(', ')}.`;
    if (kept.length > 0) summary += ` Left: ${kept.join(', ')}.`;
    if (waiting.length > 0) summary += ` Not cleaned up in time, delete yourself (tag ${RESTORE_TAGS.restoreId}=${r.restoreId}): ${waiting.join(', ')}.`;
  }
  const cause = `Restore ${r.restoreId} of ${r.sourceInstanceId} (run ${r.runId}${r.region ? `, its DR copies in ${r.region}` : ''}) to ${r.targetInstanceId} failed: ${failureCause(state.error?.Cause)} ${summary}`;
  return { ...state, cleanup, failure: { error, cause: cause.slice(0, 30_000) } };
}
