/**
 * What the reliability tests (issue 5) check against the simulated account's ground truth: an oracle that
 * predicts each instance's outcome from its fleet entry alone, and detectors for anything done twice.
 */
import { expect } from 'vitest';
import type { RunReport } from '../src/lib/report.ts';
import { ATTEMPT_TAG, RUN_TAG } from '../src/lib/run-id.ts';
import type { Behaviour, Fleet, FleetInstance } from '../src/local/fleet.ts';
import type { World, WorldDump } from '../src/local/world.ts';

export interface Outcome {
  outcome: 'succeeded' | 'failed' | 'skipped' | 'planned';
  attempts: number;
  code?: string;
  /** Snapshots a succeeded instance must have (one per expected volume). */
  volumes?: number;
}

export interface RunOptionsForOracle {
  tagKey?: string;
  tagValue?: string;
  instanceIds?: string[];
  maxAttempts?: number;
  excludeBootVolume?: boolean;
  dryRun?: boolean;
}

const BEHAVIOUR_CODE: Record<Behaviour, string> = {
  ok: '',
  'vss-timeout': 'vss-timeout',
  'writer-failure': 'vss-writer-nonretryable',
  'access-denied': 'access-denied',
  undeliverable: 'undeliverable',
  hang: 'execution-timeout',
  'no-snapshots': 'no-snapshots',
  untagged: 'no-snapshots',
  'crash-consistent': 'crash-consistent',
  'snapshot-error': 'snapshot-error',
  'agent-lost': 'no-result',
  'partial-snapshots': 'no-snapshots',
  'component-excluded': 'vss-component-excluded',
};
const PERMANENT = new Set<Behaviour>(['writer-failure', 'access-denied']);
/** The tag the simulated stack was deployed with (its IAM scope for the snapshot command). */
export const DEPLOYED_TAG = { key: 'ConsistentSnapshot', value: 'WindowsVSS' };
const ROOT_DEVICE = '/dev/sda1';

/** Tags an instance of this fleet entry carries in the simulated account. */
export function tagsOf(spec: FleetInstance): Record<string, string> {
  return { ...(spec.tags ?? { ConsistentSnapshot: 'WindowsVSS' }), ...(spec.name !== undefined ? { Name: spec.name } : {}) };
}

/** Whether the run selects this instance: the exact tag (case-sensitive, no wildcards) and, if given, the id list. */
export function isSelected(spec: FleetInstance, instanceId: string, options: RunOptionsForOracle): boolean {
  const key = options.tagKey ?? 'ConsistentSnapshot';
  const value = options.tagValue ?? 'WindowsVSS';
  const tags = tagsOf(spec);
  return Object.hasOwn(tags, key) && tags[key] === value && (!options.instanceIds || options.instanceIds.includes(instanceId));
}

/** The outcome contract §4/§5 promises for a selected instance, from its fleet entry alone. */
export function expectedOutcome(spec: FleetInstance, options: RunOptionsForOracle): Outcome {
  const volumes = (spec.volumes ?? [{ device: ROOT_DEVICE }]).filter((v) => !(options.excludeBootVolume && v.device === ROOT_DEVICE)).length;
  if (spec.state !== 'running') return { outcome: 'skipped', attempts: 0, code: 'stopped' };
  if (spec.platform !== 'windows') return { outcome: 'skipped', attempts: 0, code: 'not-windows' };
  if ((spec.volumes ?? [{}]).length === 0 || volumes === 0) return { outcome: 'skipped', attempts: 0, code: 'no-ebs' };
  if (spec.agent === 'none') return { outcome: 'failed', attempts: 0, code: 'not-managed' };
  if (spec.agent === 'offline') return { outcome: 'failed', attempts: 0, code: 'agent-offline' };
  if (options.dryRun) return { outcome: 'planned', attempts: 0, code: 'planned' };
  // The stack's IAM sends the snapshot document only to instances carrying the deployed selector tag.
  if (tagsOf(spec)[DEPLOYED_TAG.key] !== DEPLOYED_TAG.value) return { outcome: 'failed', attempts: 0, code: 'access-denied' };
  const max = options.maxAttempts ?? 3;
  for (let attempt = 1; ; attempt += 1) {
    const behaviour = spec.attempts[Math.min(attempt, spec.attempts.length) - 1] as Behaviour;
    // Only the first volume snapshotted is the whole set when there is only one volume to snapshot.
    // component-excluded is acted out by the DiskShadow document only; AWS's (this oracle's) does what ok does.
    if (behaviour === 'ok' || behaviour === 'component-excluded' || (behaviour === 'partial-snapshots' && volumes <= 1)) return { outcome: 'succeeded', attempts: attempt, volumes };
    if (PERMANENT.has(behaviour) || attempt >= max) return { outcome: 'failed', attempts: attempt, code: BEHAVIOUR_CODE[behaviour] };
  }
}

/** Expected outcome of every selected instance, by id (the ids the world gave the fleet's instances). */
export function expectedOutcomes(fleet: Fleet, world: World, options: RunOptionsForOracle): Map<string, Outcome> {
  const ids = [...world.instances.keys()];
  const expected = new Map<string, Outcome>();
  fleet.instances.forEach((spec, i) => {
    const id = ids[i] as string;
    if (isSelected(spec, id, options)) expected.set(id, expectedOutcome(spec, options));
  });
  return expected;
}

/** Per-instance outcomes of a report in a form two runs can be compared by. */
export function outcomesOf(report: RunReport | undefined): Record<string, Outcome & { snapshots: number }> {
  return Object.fromEntries(
    (report?.instances ?? []).map((i) => [
      i.instanceId,
      { outcome: i.outcome, attempts: i.attempts, ...(i.code !== undefined ? { code: i.code } : {}), snapshots: i.snapshots.length },
    ]),
  );
}

const COMMENT = /^vss-snapshots (\S+) attempt ([0-9]+) send [0-9]+(\.[0-9]+)*$/;

/** `runId instanceId attempt` of every (instance, attempt) that received more than one snapshot command. */
export function doubleCommands(dump: WorldDump): string[] {
  const seen = new Map<string, number>();
  for (const command of dump.commands) {
    const match = COMMENT.exec(command.comment ?? '');
    expect(match, `command ${command.commandId} carries the run's Comment`).not.toBeNull();
    for (const id of command.instanceIds) {
      const key = `${match?.[1]} ${id} attempt ${match?.[2]}`;
      seen.set(key, (seen.get(key) ?? 0) + 1);
    }
  }
  return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
}

/**
 * `volume run attempt` of every volume that ever got two snapshots from one attempt of a run: a second
 * snapshot set. Deleted snapshots count too: nothing may be doubled even for a while.
 */
export function doubleSnapshotSets(world: World): string[] {
  const seen = new Map<string, number>();
  for (const s of world.snapshots.values()) {
    const run = s.tags[RUN_TAG];
    if (!run) continue;
    const key = `${s.volumeId} ${run} attempt ${s.tags[ATTEMPT_TAG]}`;
    seen.set(key, (seen.get(key) ?? 0) + 1);
  }
  return [...seen].filter(([, n]) => n > 1).map(([k, n]) => `${k} ×${n}`);
}

/** Commands (ids) per instance in a run, from the world. */
export function commandsPerInstance(dump: WorldDump, runId: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const command of dump.commands) {
    if (COMMENT.exec(command.comment ?? '')?.[1] !== runId) continue;
    for (const id of command.instanceIds) counts.set(id, (counts.get(id) ?? 0) + 1);
  }
  return counts;
}

/**
 * The invariants of issue 5 that hold for any run, checked against the world (ground truth):
 * report ⇔ selection, succeeded ⇒ exactly one good snapshot per volume, failed ⇒ reason and named in the
 * alert, attempts ⇔ commands, alert ⇔ (failed or nothing matched), commands only to sendable instances.
 */
export function checkRunInvariants(args: {
  fleet: Fleet;
  world: World;
  report: RunReport | undefined;
  options: RunOptionsForOracle;
  /** Alerts that may have gone out twice (a fault or crash between publishing and recording it). */
  extraAlerts?: number;
}): void {
  const { fleet, world, report, options } = args;
  const dump = world.dump();
  expect(report, 'the run wrote a report').toBeDefined();
  if (!report) return;
  const expected = expectedOutcomes(fleet, world, options);

  // Every matching instance is in the report exactly once, nothing else is; each with the predicted outcome.
  const reported = report.instances.map((i) => i.instanceId);
  expect(new Set(reported).size, 'no instance reported twice').toBe(reported.length);
  expect([...reported].sort()).toEqual([...expected.keys()].sort());
  const actual = outcomesOf(report);
  for (const [id, want] of expected) {
    const got = actual[id];
    expect({ id, outcome: got?.outcome, attempts: got?.attempts, code: got?.code }).toEqual({
      id,
      outcome: want.outcome,
      attempts: want.attempts,
      code: want.outcome === 'succeeded' ? undefined : want.code,
    });
  }

  const live = new Map(dump.snapshots.map((s) => [s.snapshotId, s]));
  const volumesByInstance = new Map<string, WorldDump['volumes']>();
  for (const v of dump.volumes) if (v.instanceId) volumesByInstance.set(v.instanceId, [...(volumesByInstance.get(v.instanceId) ?? []), v]);
  const perInstanceCommands = commandsPerInstance(dump, report.runId);
  const publishedText = dump.published.map((p) => `${p.subject}\n${p.message}`).join('\n');

  // No leaked snapshot (contract §4): every live snapshot of this run is a succeeded instance's verified set or a
  // failed instance's complete, labelled crash-consistent fallback.
  const accounted = new Map<string, string>();
  for (const instance of report.instances) {
    for (const s of instance.snapshots) accounted.set(s.snapshotId, `${instance.instanceId} verified`);
    for (const s of instance.fallbackSnapshots ?? []) accounted.set(s.snapshotId, `${instance.instanceId} fallback`);
  }
  if (!report.dryRun) {
    const leaked = dump.snapshots.filter((s) => s.tags[RUN_TAG] === report.runId && !accounted.has(s.snapshotId)).map((s) => `${s.snapshotId} of ${s.instanceId} (attempt ${s.tags[ATTEMPT_TAG]})`);
    expect(leaked, 'no leaked snapshot of this run').toEqual([]);
  }

  for (const instance of report.instances) {
    // What the report lists still exists.
    for (const s of instance.snapshots) expect(live.has(s.snapshotId), `${instance.instanceId}: reported ${s.snapshotId} exists`).toBe(true);
    if (instance.outcome !== 'failed') expect(instance.fallbackSnapshots ?? [], `${instance.instanceId}: a fallback only for a failed instance`).toEqual([]);
    const fallback = instance.fallbackSnapshots ?? [];
    if (fallback.length > 0) {
      // A fallback is complete (one per volume, none in error), of the last attempt, and labelled as such.
      const volumes = (volumesByInstance.get(instance.instanceId) ?? []).filter((v) => !(options.excludeBootVolume && v.device === ROOT_DEVICE));
      expect(new Set(fallback.map((f) => f.volumeId)), `${instance.instanceId}: a complete fallback set`).toEqual(new Set(volumes.map((v) => v.volumeId)));
      for (const f of fallback) {
        const snap = live.get(f.snapshotId);
        expect(snap, `${instance.instanceId}: fallback ${f.snapshotId} exists`).toBeDefined();
        expect(snap?.state).not.toBe('error');
        expect(snap?.tags).toMatchObject({ [ATTEMPT_TAG]: String(instance.attempts), 'vss-snapshots:fallback': instance.code });
        if (snap?.tags.AppConsistent !== 'true') expect(snap?.tags['vss-snapshots:consistency']).toBe('crash-consistent');
      }
    }
    // Attempts are the commands this instance really received in this run.
    expect(perInstanceCommands.get(instance.instanceId) ?? 0, `${instance.instanceId}: attempts = commands received`).toBe(instance.attempts);
    if (instance.outcome === 'succeeded') {
      const volumes = (volumesByInstance.get(instance.instanceId) ?? []).filter((v) => !(options.excludeBootVolume && v.device === ROOT_DEVICE));
      expect(instance.snapshots.length, `${instance.instanceId}: one snapshot per volume`).toBe(volumes.length);
      for (const volume of volumes) {
        const ofRun = dump.snapshots.filter((s) => s.volumeId === volume.volumeId && s.tags[RUN_TAG] === report.runId);
        expect(ofRun, `${volume.volumeId} of ${instance.instanceId}: exactly one snapshot of this run`).toHaveLength(1);
        expect(ofRun[0]).toMatchObject({ state: 'completed', instanceId: instance.instanceId, tags: { AppConsistent: 'true', [ATTEMPT_TAG]: String(instance.attempts) } });
      }
      if (options.excludeBootVolume) {
        const boot = (volumesByInstance.get(instance.instanceId) ?? []).find((v) => v.device === ROOT_DEVICE);
        if (boot) expect(dump.snapshots.filter((s) => s.volumeId === boot.volumeId && s.tags[RUN_TAG] === report.runId)).toEqual([]);
      }
    } else {
      expect(instance.reason, `${instance.instanceId}: a reason`).toMatch(/\S/);
    }
  }

  // An alert exactly when an instance failed or nothing matched (never in a dry run), naming the failed.
  const failed = report.instances.filter((i) => i.outcome === 'failed');
  const alertDue = !report.dryRun && (failed.length > 0 || report.instances.length === 0);
  const runAlerts = dump.published.filter((p) => p.message.includes(report.runId));
  if (alertDue) {
    expect(runAlerts.length, 'one alert (more only for a lost or crashed publish)').toBeGreaterThanOrEqual(1);
    expect(runAlerts.length).toBeLessThanOrEqual(1 + (args.extraAlerts ?? 0));
    expect(report.alert).not.toBeNull();
    if (failed.length <= 100) for (const f of failed) expect(publishedText, `alert names ${f.instanceId}`).toContain(f.instanceId);
    else expect(publishedText).toContain(`and ${failed.length - 100} more`);
  } else {
    expect(dump.published, 'no alert').toEqual([]);
    expect(report.alert).toBeNull();
  }

  // Commands reach only selected, running, Windows instances with an online agent; nothing twice.
  const sendable = new Set([...expected].filter(([, o]) => o.attempts > 0).map(([id]) => id));
  for (const command of dump.commands) for (const id of command.instanceIds) expect(sendable.has(id), `command to ${id}`).toBe(true);
  expect(doubleCommands(dump)).toEqual([]);
  expect(doubleSnapshotSets(world)).toEqual([]);
}
