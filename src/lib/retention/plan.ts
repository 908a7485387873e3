/**
 * "Plan Retention": after every shard of this run has finished (so this run's sets are verified, or kept as
 * fallbacks, or deleted), decides what the stack's retention policy expires and writes the plan to
 * `runs/<runId>/retention.json`. Only counts go back to the workflow. Read-only towards EC2; "Apply Retention"
 * deletes. Retry-safe: planning again before anything was deleted gives the same plan.
 *
 * Sets due for deletion are taken oldest first, whole, up to RETENTION_MAX_DELETES snapshots a run; the rest are
 * deferred to the next run. Before a set is queued, DescribeImages (`block-device-mapping.snapshot-id`) asks
 * whether an AMI uses one of its snapshots: such a set is kept whole and reported `inUse` (EC2 would refuse the
 * deletion with InvalidSnapshot.InUse; the check keeps the set whole instead of half-deleted).
 */
import { DescribeImagesCommand } from '@aws-sdk/client-ec2';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { S3Client } from '@aws-sdk/client-s3';
import { clock, nowIso } from '../clock.ts';
import type { Config } from '../config.ts';
import { chunk } from '../discovery.ts';
import type { RetentionMode } from '../execution-input.ts';
import { isFinal } from '../run-state.ts';
import type { RunState } from '../run-state.ts';
import { groupIntoSets, listInstances, listStackSnapshots } from './inventory.ts';
import { archiveSettingNote, ARCHIVED_PER_VOLUME, CONCURRENT_ARCHIVES, deletableFrom, inOrGoingToArchive, listTierStatuses, newestPerVolume, notArchivable } from './archive.ts';
import type { TierStatus } from './archive.ts';
import { decideOwner, parseRetainTag } from './policy.ts';
import type { KeepReason, OwnerStatus, RetainRule, RetentionSet } from './policy.ts';
import { DELETE_WAIT_SECONDS, entriesOf, loadLedger, saveLedger, saveRetentionRecord } from './record.ts';
import type { RetentionProgress } from './record.ts';
import type { ArchiveRecord, Ledger, RetentionAnomaly, RetentionRecord } from './record.ts';
import { retentionSkippedText } from '../report-text.ts';
import { unfinishedDrSources } from '../dr/record.ts';


/** A set that could not be deleted this many runs in a row is an anomaly the alert names. */
export const STUCK_NIGHTS = 3;
/** EC2 filters take up to 200 values. */
const VALUES_PER_FILTER = 200;
/** Runs of deferred backlog remembered (to tell a shrinking backlog from a growing one). */
const DEFERRED_HISTORY = 14;

export interface RetentionDeps {
  ec2: EC2Client;
  s3: S3Client;
  config: Config;
}

type WholeRun = RunState & { shardErrors?: { shard: number }[] };

export async function planRetention(deps: RetentionDeps, state: WholeRun): Promise<RetentionProgress> {
  const { config } = deps;
  const mode: RetentionMode = state.options.retention ?? 'apply';
  const record: RetentionRecord = {
    runId: state.runId,
    mode,
    stackId: config.stackId,
    policy: config.retention,
    kept: 0,
    keptBy: {},
    held: [],
    inUse: [],
    queue: [],
    cursor: 0,
    deleted: [],
    partial: [],
    deferred: 0,
    overrides: [],
    anomalies: [],
    plannedAt: nowIso(),
  };
  const skip = skipReason(state, mode);
  if (skip) {
    record.skipped = skip;
    record.finishedAt = record.plannedAt;
    await saveRetentionRecord(deps.s3, config.reportBucket, record);
    return { mode, remaining: 0, deleted: 0, deferred: 0, waitSeconds: DELETE_WAIT_SECONDS };
  }

  const runStart = Date.parse(state.startedAt);
  const now = clock.now();
  const [snapshots, instances, ledger] = await Promise.all([listStackSnapshots(deps.ec2, config.stackId), listInstances(deps.ec2), loadLedger(deps.s3, config.reportBucket)]);
  const { sets, unidentified, volumeOwners } = groupIntoSets(snapshots, instances, ledger.volumes ?? {});
  const byOwner = new Map<string, RetentionSet[]>();
  for (const set of sets) byOwner.set(set.owner, [...(byOwner.get(set.owner) ?? []), set]);

  const candidates: { set: RetentionSet; reason: string }[] = [];
  const keptSets: { set: RetentionSet; keep: KeepReason; rule: RetainRule }[] = [];
  const gone: Record<string, string> = {};
  let total = unidentified.length;
  if (unidentified.length > 0) record.keptBy.unidentified = unidentified.length;
  for (const [owner, ownerSets] of byOwner) {
    const info = owner.startsWith('i-') ? instances.get(owner) : undefined;
    const exists = info !== undefined && info.state !== 'terminated';
    const status: OwnerStatus = { exists };
    if (exists && info.retainTag !== undefined) {
      const parsed = parseRetainTag(info.retainTag);
      if ('rule' in parsed) status.rule = parsed.rule;
      else record.overrides.push({ instanceId: owner, value: info.retainTag, error: `${parsed.error}; the stack defaults apply` });
    }
    if (!exists) {
      gone[owner] = ledger.gone[owner] ?? new Date(now).toISOString();
      status.goneSince = Date.parse(gone[owner]);
    }
    const rule: RetainRule = status.rule ?? { count: config.retention.count, days: config.retention.days };
    for (const decision of decideOwner(ownerSets, status, { runStart, now, defaults: config.retention })) {
      total += decision.set.snapshotIds.length;
      if ('keep' in decision) {
        keptSets.push({ set: decision.set, keep: decision.keep, rule });
        record.keptBy[decision.keep] = (record.keptBy[decision.keep] ?? 0) + decision.set.snapshotIds.length;
        if (decision.keep === 'held') {
          record.held.push(...entriesOf(decision.set, decision.set.snapshotIds, `due for deletion, kept: ${decision.set.held.join(', ')} tagged vss-snapshots:hold`));
        }
      } else {
        candidates.push({ set: decision.set, reason: decision.deleteReason });
      }
    }
  }

  // The archive tier: read when archive is on, a set of this stack has an archived member, or a set is due for
  // deletion (with archive back off, a member may still be archiving or temporarily restored: DescribeSnapshots
  // shows both as `standard`, only DescribeSnapshotTierStatus tells, and its 90 days still hold).
  const archiveOn = config.retention.archiveAfterDays > 0;
  const tiers = archiveOn || candidates.length > 0 || sets.some((set) => (set.archived ?? []).length > 0) ? await listTierStatuses(deps.ec2) : undefined;
  const archive: ArchiveRecord | undefined = tiers ? emptyArchive(config.retention.archiveAfterDays, tiers, sets) : undefined;
  if (archive) {
    const note = archiveSettingNote(config.retention.archiveAfterDays, config.retention);
    if (note) archive.note = note;
    // A set with a member archived less than 90 days ago waits: deleting it now would bill the rest of the 90 days.
    for (let i = candidates.length - 1; i >= 0; i -= 1) {
      const c = candidates[i] as (typeof candidates)[number];
      const until = deletableFrom(c.set, tiers as Map<string, TierStatus>, now);
      if (until === undefined) continue;
      candidates.splice(i, 1);
      record.keptBy['archive-minimum'] = (record.keptBy['archive-minimum'] ?? 0) + c.set.snapshotIds.length;
      const from = new Date(until).toISOString();
      archive.deletionDeferred.push(
        ...entriesOf(c.set, c.set.snapshotIds, `due for deletion (${c.reason}), kept until ${from.slice(0, 10)}: archived less than 90 days ago (an earlier deletion bills the rest of the 90 days)`).map((e) => ({ ...e, deletableFrom: from })),
      );
    }
  }

  // Oldest first, whole sets, up to the cap; an AMI's snapshot keeps its set.
  candidates.sort((a, b) => a.set.start - b.set.start || a.set.key.localeCompare(b.set.key));
  const inUseSets = new Map<string, string[]>();
  let queuedSnapshots = 0;
  let next = 0;
  let full = false;
  while (!full && next < candidates.length && queuedSnapshots < config.retention.maxDeletes) {
    // The next candidates whose snapshots fill one DescribeImages filter.
    const batch: typeof candidates = [];
    let values = 0;
    while (next < candidates.length && (batch.length === 0 || values + (candidates[next]?.set.snapshotIds.length ?? 0) <= VALUES_PER_FILTER)) {
      const c = candidates[next] as (typeof candidates)[number];
      batch.push(c);
      values += c.set.snapshotIds.length;
      next += 1;
    }
    const used = await imagesUsing(deps.ec2, batch.flatMap((c) => c.set.snapshotIds));
    for (const [index, c] of batch.entries()) {
      const images = [...new Set(c.set.snapshotIds.flatMap((id) => used.get(id) ?? []))];
      if (images.length > 0) {
        inUseSets.set(c.set.key, images);
        record.keptBy['in-use'] = (record.keptBy['in-use'] ?? 0) + c.set.snapshotIds.length;
        const inUse = c.set.snapshotIds.filter((id) => used.has(id));
        record.inUse.push(
          ...entriesOf(c.set, c.set.snapshotIds, `due for deletion, kept whole: ${inUse.join(', ')} in use by ${images.join(', ')} (deregister the AMI first)`).map((e) => ({ ...e, imageIds: images })),
        );
        continue;
      }
      if (queuedSnapshots + c.set.snapshotIds.length > config.retention.maxDeletes) {
        // Does not fit tonight: this and every later candidate is deferred.
        next = next - batch.length + index;
        full = true;
        break;
      }
      queuedSnapshots += c.set.snapshotIds.length;
      record.queue.push({ key: c.set.key, owner: c.set.owner, runId: c.set.runId, attempt: c.set.attempt, snapshotIds: c.set.snapshotIds, reason: c.reason, deleted: [] });
    }
  }
  const deferredSets = candidates.slice(next).filter((c) => !inUseSets.has(c.set.key));
  record.deferred = deferredSets.reduce((n, c) => n + c.set.snapshotIds.length, 0);
  if (record.deferred > 0) record.keptBy.deferred = record.deferred;
  if (archive) {
    // DR on: a source whose copy the last DR pass left unfinished is carried to tonight's pass; it stays copyable.
    const drPending = archiveOn && config.dr ? await unfinishedDrSources(deps.s3, config.reportBucket) : new Set<string>();
    await planArchive(deps.ec2, archive, keptSets, sets, tiers as Map<string, TierStatus>, now, drPending);
    if (mode === 'preview') {
      archive.planned = archive.queue.flatMap((q) => entriesOf(q, q.snapshotIds, q.reason));
      archive.queue = [];
    }
    // With archive off, the section appears only when the stack has something in (or from) the archive.
    if (archiveOn || archive.inArchive > 0 || archive.deletionDeferred.length > 0) record.archive = archive;
  }
  if (mode === 'preview') {
    record.planned = record.queue.flatMap((q) => entriesOf(q, q.snapshotIds, q.reason));
    record.kept = total - queuedSnapshots;
    record.queue = [];
    record.finishedAt = nowIso();
  } else {
    // Apply: the snapshots queued are counted as kept until deleted (Apply Retention takes them off).
    record.kept = total;
  }

  record.anomalies = anomaliesOf(record, ledger, inUseSets, candidates);
  if (mode === 'apply') await saveLedger(deps.s3, config.reportBucket, nextLedger(ledger, record, gone, inUseSets, candidates, sets, volumeOwners));
  await saveRetentionRecord(deps.s3, config.reportBucket, record);
  return { mode, remaining: record.queue.length + (record.archive?.queue.length ?? 0), deleted: 0, deferred: record.deferred, waitSeconds: DELETE_WAIT_SECONDS };
}

function emptyArchive(afterDays: number, tiers: ReadonlyMap<string, TierStatus>, sets: readonly RetentionSet[]): ArchiveRecord {
  let inArchive = 0;
  for (const set of sets) for (const id of set.snapshotIds) if (set.archived?.includes(id) || inOrGoingToArchive(tiers.get(id))) inArchive += 1;
  const inProgress = [...tiers.values()].filter((t) => t.status === 'archival-in-progress').length;
  return { afterDays, queue: [], cursor: 0, archived: [], deferred: 0, failed: [], deletionDeferred: [], notArchived: [], inArchive, inProgress };
}

/**
 * Queues tonight's archives (archive.ts says which sets qualify): oldest first, whole sets, within the account's
 * free archive slots (25 less the archives in progress) and each volume's 25 archived; an AMI's snapshot keeps
 * its set in the standard tier.
 */
async function planArchive(
  ec2: EC2Client,
  archive: ArchiveRecord,
  kept: readonly { set: RetentionSet; keep: KeepReason; rule: RetainRule }[],
  sets: readonly RetentionSet[],
  tiers: ReadonlyMap<string, TierStatus>,
  now: number,
  drPending: ReadonlySet<string>,
): Promise<void> {
  if (archive.afterDays <= 0) return;
  const ctx = { now, afterDays: archive.afterDays, newestOfVolume: newestPerVolume(sets) };
  const eligible = kept
    .filter((k) => notArchivable(k.set, k.keep, k.rule, ctx) === undefined)
    .map((k) => ({
      set: k.set,
      rule: k.rule,
      todo: k.set.snapshotIds.filter((id) => !k.set.archived?.includes(id) && !inOrGoingToArchive(tiers.get(id))),
      // Someone restored it from the archive (to make volumes of it, or for good): archiving it again would undo that.
      restored: k.set.snapshotIds.filter((id) => /restore/.test(tiers.get(id)?.status ?? '')),
    }))
    .filter((e) => e.todo.length > 0)
    .sort((a, b) => a.set.start - b.set.start || a.set.key.localeCompare(b.set.key));
  if (eligible.length === 0) return;
  const perVolume = new Map<string, number>();
  for (const t of tiers.values()) if (inOrGoingToArchive(t)) perVolume.set(t.volumeId, (perVolume.get(t.volumeId) ?? 0) + 1);
  let free = Math.max(0, CONCURRENT_ARCHIVES - archive.inProgress);
  const used = await imagesUsing(ec2, eligible.flatMap((e) => e.todo));
  for (const e of eligible) {
    const age = Math.floor((now - e.set.start) / 86_400_000);
    const copying = e.set.snapshotIds.filter((id) => drPending.has(id));
    if (copying.length > 0) {
      archive.notArchived.push(...entriesOf(e.set, e.todo, `eligible for the archive, kept in the standard tier: the DR copy of ${copying.join(', ')} is not finished (an archived snapshot cannot be copied)`));
      continue;
    }
    if (e.restored.length > 0) {
      archive.notArchived.push(...entriesOf(e.set, e.todo, `eligible for the archive, kept in the standard tier: ${e.restored.join(', ')} restored from the archive (RestoreSnapshotTier); not archived again by retention`));
      continue;
    }
    const images = [...new Set(e.set.snapshotIds.flatMap((id) => used.get(id) ?? []))];
    if (images.length > 0) {
      archive.notArchived.push(...entriesOf(e.set, e.todo, `eligible for the archive, kept in the standard tier: in use by ${images.join(', ')}`));
      continue;
    }
    const volumes = e.todo.map((id) => e.set.volumes?.[id] ?? '');
    const full = volumes.find((v) => (perVolume.get(v) ?? 0) >= ARCHIVED_PER_VOLUME);
    if (full) {
      archive.notArchived.push(...entriesOf(e.set, e.todo, `eligible for the archive, kept in the standard tier: volume ${full} has ${ARCHIVED_PER_VOLUME} archived snapshots (the EBS quota)`));
      continue;
    }
    if (e.todo.length > free) {
      archive.deferred += e.todo.length;
      free = 0;
      continue;
    }
    free -= e.todo.length;
    for (const v of volumes) perVolume.set(v, (perVolume.get(v) ?? 0) + 1);
    archive.queue.push({
      key: e.set.key,
      owner: e.set.owner,
      runId: e.set.runId,
      attempt: e.set.attempt,
      snapshotIds: e.todo,
      reason: `set of run ${e.set.runId} attempt ${e.set.attempt}, ${age} day(s) old: older than ${archive.afterDays} days, kept by the days rule (${e.rule.days} days) at least 90 more days`,
      archived: [],
    });
  }
}

/** Why this run's retention pass does nothing, if it does nothing. */
function skipReason(state: WholeRun, mode: RetentionMode): string | undefined {
  if (mode === 'skip') return retentionSkippedText('input');
  if ((state.shardErrors ?? []).length > 0 || !state.instances.every((i) => isFinal(i.phase))) return retentionSkippedText('unfinished');
  return undefined;
}

/** Snapshot id → the AMIs of this account that use it (DescribeImages, `block-device-mapping.snapshot-id`). */
export async function imagesUsing(ec2: EC2Client, snapshotIds: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const wanted = new Set(snapshotIds);
  for (const ids of chunk(snapshotIds, VALUES_PER_FILTER)) {
    let nextToken: string | undefined;
    do {
      const page = await ec2.send(
        new DescribeImagesCommand({ Owners: ['self'], Filters: [{ Name: 'block-device-mapping.snapshot-id', Values: [...ids] }], MaxResults: 1000, NextToken: nextToken }),
      );
      for (const image of page.Images ?? []) {
        for (const m of image.BlockDeviceMappings ?? []) {
          const id = m.Ebs?.SnapshotId;
          if (id && wanted.has(id) && image.ImageId) out.set(id, [...(out.get(id) ?? []), image.ImageId]);
        }
      }
      nextToken = page.NextToken;
    } while (nextToken);
  }
  return out;
}

function nextLedger(
  ledger: Ledger,
  record: RetentionRecord,
  gone: Record<string, string>,
  inUseSets: ReadonlyMap<string, string[]>,
  candidates: readonly { set: RetentionSet }[],
  sets: readonly RetentionSet[],
  volumes: Record<string, string>,
): Ledger {
  const present = new Set(sets.map((s) => s.key));
  const stuck: Ledger['stuck'] = {};
  for (const [key, entry] of Object.entries(ledger.stuck)) {
    // A partly deleted set stays remembered while any of it is left; an in-use one while it is still in use.
    if (entry.reason === 'partial' && present.has(key)) stuck[key] = entry;
  }
  const candidateKeys = new Set(candidates.map((c) => c.set.key));
  for (const [key, images] of inUseSets) {
    if (!candidateKeys.has(key)) continue;
    const before = ledger.stuck[key];
    const again = before && before.reason === 'in-use';
    stuck[key] = {
      reason: 'in-use',
      since: again ? before.since : (record.plannedAt ?? nowIso()),
      nights: again ? before.nights + (before.lastRunId === record.runId ? 0 : 1) : 1,
      lastRunId: record.runId,
      detail: `in use by ${images.join(', ')}`,
    };
  }
  const deferred = [...ledger.deferred.filter((d) => d.runId !== record.runId), { runId: record.runId, count: record.deferred }].slice(-DEFERRED_HISTORY);
  return { version: 1, gone, stuck, deferred, volumes };
}

/** What the alert should name: things that will not fix themselves. */
function anomaliesOf(record: RetentionRecord, ledger: Ledger, inUseSets: ReadonlyMap<string, string[]>, candidates: readonly { set: RetentionSet }[]): RetentionAnomaly[] {
  const out: RetentionAnomaly[] = [];
  const candidateKeys = new Set(candidates.map((c) => c.set.key));
  const stuckInUse = [...inUseSets.entries()].filter(([key]) => {
    const before = ledger.stuck[key];
    const runs = before?.reason === 'in-use' ? before.nights + (before.lastRunId === record.runId ? 0 : 1) : 1;
    return candidateKeys.has(key) && runs >= STUCK_NIGHTS;
  });
  if (stuckInUse.length > 0) out.push({ kind: 'in-use', sets: stuckInUse.length, runs: STUCK_NIGHTS, imageIds: [...new Set(stuckInUse.flatMap(([, i]) => i))] });
  const partialBefore = Object.values(ledger.stuck).filter((e) => e.reason === 'partial').length;
  if (partialBefore > 0) out.push({ kind: 'partial-before', sets: partialBefore });
  const previous = ledger.deferred.filter((d) => d.runId !== record.runId).at(-1);
  if (record.deferred > 0 && previous && previous.count > 0 && record.deferred >= previous.count) {
    out.push({ kind: 'backlog', deferred: record.deferred, previous: previous.count, maxDeletes: record.policy.maxDeletes });
  }
  for (const o of record.overrides) out.push({ kind: 'retain-tag', instanceId: o.instanceId, error: o.error ?? 'not understood' });
  return out;
}
