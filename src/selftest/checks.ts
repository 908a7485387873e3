/**
 * The self-test's verdicts: pure functions from what AWS and the self-test document reported to one
 * PASS/FAIL line per check. Each says what it checked and, when it fails, what was seen instead.
 */
import type { SnapshotMethod } from '../lib/config.ts';
import { methodDriver } from '../lib/methods/index.ts';
import { parseResultLine } from '../lib/result-line.ts';
import type { CleanupFacts, PrepareFacts, RestoredVolumeFacts, StopFacts } from './result.ts';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

const check = (name: string, ok: boolean, detail: string): Check => ({ name, ok, detail });

export function formatCheck(c: Check): string {
  return `${c.ok ? 'PASS' : 'FAIL'}  ${c.name}: ${c.detail}`;
}

/** The SSM Agent version that interpolates parameters into environment variables (interpolationType ENV_VAR). */
export const MIN_AGENT_VERSION = '3.3.2746.0';

export function agentVersionAtLeast(version: string | undefined, min: string = MIN_AGENT_VERSION): boolean {
  if (!version) return false;
  const a = version.split('.').map(Number);
  const b = min.split('.').map(Number);
  for (let i = 0; i < Math.max(a.length, b.length); i += 1) {
    const x = a[i] ?? 0;
    const y = b[i] ?? 0;
    if (Number.isNaN(x)) return false;
    if (x !== y) return x > y;
  }
  return true;
}

export interface InstanceView {
  instanceId: string;
  state: string | undefined;
  platformDetails: string | undefined;
  pingStatus: string | undefined;
  agentVersion: string | undefined;
}

export function instanceChecks(i: InstanceView): Check[] {
  return [
    check('instance is a running Windows instance', i.state === 'running' && /windows/i.test(i.platformDetails ?? ''), `${i.instanceId} is ${i.state ?? 'unknown'}, ${i.platformDetails ?? 'unknown platform'}`),
    check('SSM Agent online', i.pingStatus === 'Online', `PingStatus ${i.pingStatus ?? 'not registered'}`),
    check(
      `SSM Agent ${MIN_AGENT_VERSION} or later (ENV_VAR parameters)`,
      agentVersionAtLeast(i.agentVersion),
      `agent ${i.agentVersion ?? 'unknown'}`,
    ),
  ];
}

/** Trusted owners of the state folder: LocalSystem and BUILTIN\Administrators. */
const TRUSTED = ['S-1-5-18', 'S-1-5-32-544'];

export function prepareChecks(runId: string, facts: PrepareFacts, reportedRunId: string | null): Check[] {
  const state = facts.stateFolder;
  return [
    check('document parameters reach the script as environment variables (interpolationType ENV_VAR)', reportedRunId === runId, `the script read RunId ${reportedRunId ?? '(none)'}; sent ${runId}`),
    check('PowerShell in FullLanguage mode', facts.languageMode === 'FullLanguage', `${facts.languageMode}, PowerShell ${facts.powershell}`),
    // EC2 reports "xen" for Xen and Nitro instances alike (DescribeInstances, Hypervisor): the disks tell.
    check('Nitro instance (the restore finds disks by their EBS serial number)', facts.hypervisor === 'nitro', facts.hypervisor === 'nitro' ? 'EBS disks carry their volume ids as serial numbers' : 'no disk carries a volume id as its serial number (Xen)'),
    check('DiskShadow present', facts.diskshadow, facts.diskshadow ? 'C:\\Windows\\System32\\diskshadow.exe' : 'diskshadow.exe not found'),
    check('AWS Tools for PowerShell present', facts.awsTools, facts.awsTools ? 'AWS.Tools.EC2 or AWSPowerShell installed' : 'neither AWS.Tools.EC2 nor AWSPowerShell'),
    check('data volume is NTFS or ReFS, its shadow storage on itself', /^(NTFS|ReFS)$/.test(facts.dataVolume.fileSystem) && facts.shadowStorageHere, `${facts.dataVolume.drive}: ${facts.dataVolume.fileSystem}${facts.shadowStorageHere ? '' : ', shadow storage on another volume'}`),
    check(
      'state folder only SYSTEM and Administrators control',
      TRUSTED.includes(state.owner) && state.protected && state.identities.every((id) => TRUSTED.includes(id)),
      `${state.path}: owner ${state.owner}, ${state.protected ? 'protected' : 'inherits'}, access for ${state.identities.join(', ')}`,
    ),
    check('workload writing', facts.workload.journal.entries > 0 && facts.workload.journal.chainValid, `${facts.workload.journal.entries} journal entries in ${facts.workload.folder}`),
  ];
}

export interface SnapshotView {
  snapshotId: string;
  volumeId: string;
  state: string;
  tags: Record<string, string>;
}

export interface CommandView {
  status: string;
  output: string;
}

export function snapshotChecks(method: SnapshotMethod, command: CommandView, snapshots: SnapshotView[], volumeIds: string[]): Check[] {
  const driver = methodDriver(method);
  const out: Check[] = [check(`${method}: snapshot command succeeded`, command.status === 'Success', command.status === 'Success' ? 'Success' : `${command.status}: ${tail(command.output)}`)];
  if (method === 'diskshadow') {
    const line = parseResultLine(command.output);
    const ok = line?.operation === 'snapshot' && line.outcome === 'success' && line.appConsistent && line.cleanup === 'done';
    out.push(check('diskshadow: result line success, shadow set created and deleted again', ok, line ? `${line.outcome}, vss ${line.operation === 'snapshot' ? line.vss : '?'}, cleanup ${line.operation === 'snapshot' ? line.cleanup : '?'}${line.warnings.length ? `, warnings: ${line.warnings.join(' | ')}` : ''}` : 'no result line'));
  }
  const byVolume = new Map(snapshots.map((s) => [s.volumeId, s]));
  const missing = volumeIds.filter((v) => !byVolume.has(v));
  const notCompleted = snapshots.filter((s) => s.state !== 'completed');
  out.push(check(`${method}: one completed snapshot per volume`, missing.length === 0 && notCompleted.length === 0 && snapshots.length === volumeIds.length, `${snapshots.length} snapshot(s) for ${volumeIds.length} volume(s)${missing.length ? `, none of ${missing.join(', ')}` : ''}${notCompleted.length ? `, ${notCompleted.map((s) => `${s.snapshotId} ${s.state}`).join(', ')}` : ''}`));
  const inconsistent = snapshots.filter((s) => !driver.isConsistent(s.tags));
  out.push(check(`${method}: snapshots tagged ${driver.consistencyTag}`, snapshots.length > 0 && inconsistent.length === 0, inconsistent.length ? `not: ${inconsistent.map((s) => s.snapshotId).join(', ')}` : `${snapshots.length} of ${snapshots.length}`));
  if (method === 'diskshadow') {
    const claim = snapshots.filter((s) => s.tags.AppConsistent !== undefined);
    out.push(check('diskshadow: no snapshot claims AppConsistent (consistent only after the revert)', claim.length === 0, claim.length ? `AppConsistent on ${claim.map((s) => s.snapshotId).join(', ')}` : 'none'));
  }
  return out;
}

export interface ExecutionView {
  status: string;
  output?: string;
  error?: string;
  cause?: string;
}

export interface RestoreOutput {
  volumes: { volumeId: string; sourceDevice: string; device: string }[];
  revert: null | { disks: { volumeId: string; reverted: number }[] };
}

export function restoreChecks(method: SnapshotMethod, execution: ExecutionView, output: RestoreOutput | undefined): Check[] {
  const out = [
    check(
      `${method}: restore workflow succeeded`,
      execution.status === 'SUCCEEDED' && !!output,
      execution.status === 'SUCCEEDED' ? (output?.volumes.map((v) => `${v.sourceDevice} -> ${v.volumeId} at ${v.device}`).join(', ') ?? 'no output') : `${execution.status} ${execution.error ?? ''}: ${execution.cause ?? ''}`,
    ),
  ];
  if (method === 'diskshadow') {
    const disks = output?.revert?.disks ?? [];
    out.push(check('diskshadow: every restored disk reverted to its shadow copy (DiskShadow "revert" of a persistent shadow copy)', disks.length > 0 && disks.every((d) => d.reverted > 0), disks.map((d) => `${d.volumeId}: ${d.reverted} volume(s)`).join(', ') || 'no revert'));
  }
  return out;
}

/** Times the DiskShadow snapshot script logged (same clock as the workload's): shadow copies created, EBS requested. */
export interface DiskShadowTimeline {
  createdAt: string;
  requestedAt: string;
}

const LOG_TIME = '([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z)';

export function diskShadowTimeline(output: string): DiskShadowTimeline | undefined {
  const created = new RegExp(`^${LOG_TIME} Shadow copy set [0-9a-f-]{36} created for`, 'm').exec(output)?.[1];
  const requested = new RegExp(`^${LOG_TIME} Requesting the EBS snapshots`, 'm').exec(output)?.[1];
  return created && requested ? { createdAt: created, requestedAt: requested } : undefined;
}

export function dataChecks(method: SnapshotMethod, facts: RestoredVolumeFacts | undefined): Check[] {
  if (!facts?.folder || !facts.knownFiles || !facts.journal || !facts.pages) {
    return [check(`${method}: the restored data volume holds the test folder`, false, facts ? `not found on disk ${facts.diskNumber} (${facts.volumeId})` : 'the restored volume was not verified')];
  }
  const k = facts.knownFiles;
  const j = facts.journal;
  const p = facts.pages;
  return [
    check(`${method}: known files intact`, k.matching === k.expected, `${k.matching} of ${k.expected} match${k.differing ? `, ${k.differing} differ` : ''}${k.missing ? `, ${k.missing} missing` : ''}`),
    check(`${method}: journal whole (hash chain from the first entry; only the last may be torn)`, j.found && j.chainValid && j.entries > 0, `${j.entries} entries up to ${j.lastUtc ?? '-'}${j.firstInvalidEntry ? `, entry ${j.firstInvalidEntry} broken` : ''}${j.tornTail ? ', last line torn' : ''}`),
    check(`${method}: every written page whole`, p.found && p.written > 0 && p.valid === p.written, `${p.valid} of ${p.written} written pages valid`),
  ];
}

/**
 * The revert really rolled the volume back to the shadow copies: the reverted journal ends no later than
 * the shadow copies were created, while the workload demonstrably kept writing until the EBS request.
 * Without the revert the restored journal would run on to the request.
 */
export function revertChecks(reverted: RestoredVolumeFacts | undefined, timeline: DiskShadowTimeline | undefined, live: StopFacts | undefined): Check[] {
  if (!timeline) return [check('diskshadow: revert rolled back the writes after the shadow copies', false, 'the snapshot log has no shadow-copy or request time')];
  const inGap = live?.journal.inWindow ?? 0;
  const last = reverted?.journal?.lastUtc ?? null;
  return [
    check('diskshadow: the workload wrote between the shadow copies and the EBS request (the test is meaningful)', inGap > 0, `${inGap} entries between ${timeline.createdAt} and ${timeline.requestedAt}`),
    check('diskshadow: revert rolled back the writes after the shadow copies', !!last && last <= timeline.createdAt, `restored journal ends ${last ?? '-'}; shadow copies created by ${timeline.createdAt}`),
  ];
}

export interface CleanupView {
  volumesDeleted: string[];
  volumesLeft: string[];
  snapshotsDeleted: string[];
  snapshotsLeft: string[];
}

export function cleanupChecks(view: CleanupView, facts: CleanupFacts | undefined): Check[] {
  return [
    check('no persistent shadow copy of the DiskShadow run left on the instance', !!facts && facts.shadowCopiesLeft.length === 0, facts ? (facts.shadowCopiesLeft.join(', ') || 'none') : 'cleanup did not report'),
    check('test folder and workload removed', !!facts && facts.folderRemoved, facts ? (facts.folderRemoved ? 'removed' : 'still there') : 'cleanup did not report'),
    check('restored volumes and test snapshots deleted', view.volumesLeft.length === 0 && view.snapshotsLeft.length === 0, `${view.volumesDeleted.length} volume(s), ${view.snapshotsDeleted.length} snapshot(s) deleted${view.volumesLeft.length || view.snapshotsLeft.length ? `; left: ${[...view.volumesLeft, ...view.snapshotsLeft].join(', ')}` : ''}`),
  ];
}

function tail(output: string): string {
  return output.trim().split(/\r?\n/).filter(Boolean).slice(-2).join(' / ').slice(0, 300);
}
