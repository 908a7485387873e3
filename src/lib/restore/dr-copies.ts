/**
 * The snapshots of a restore in the DR Region: the run's DR copies of the source instance there, found by their
 * tags alone (`vss-snapshots:run-id` and `vss-snapshots:instance-id`, which every copy carries: src/lib/dr/advance.ts)
 * with that Region's EC2 client. Nothing is read from the home Region (not the source instance, not the run's
 * report, not the DR record): a restore from the DR Region is what an operator does when the home Region is
 * unavailable. A copy's own VolumeId is meaningless; its `Device` and source-volume tags say which disk it is.
 *
 * Only completed copies are restored. A copy that is still pending, or failed (`error`), or a device the operator
 * names that has no copy, makes the run's copy incomplete: refused, naming those devices and the runs whose
 * copies of the source are complete there. A copy that was never started (waiting for the copy quota) leaves no
 * copy in the DR Region; every copy carries its set's size (`vss-snapshots:set-size`), so a whole-set restore
 * sees the gap without reading the home Region.
 */
import { paginateDescribeSnapshots } from '@aws-sdk/client-ec2';
import type { EC2Client } from '@aws-sdk/client-ec2';
import { InvalidInputError, RestoreRefusedError } from '../errors.ts';
import { INSTANCE_TAG, SOURCE_SNAPSHOT_TAG } from '../run-id.ts';
import { preference, toRunSnapshot } from './run-snapshots.ts';
import type { RunSnapshot } from './run-snapshots.ts';
import type { RestoreState } from './state.ts';

/** Runs named at most in a refusal. */
const MAX_RUNS_NAMED = 10;

export interface ChosenSnapshot {
  device: string;
  snapshot: RunSnapshot;
}

/** Every DR copy of `instanceId` in the client's Region (copies only: they carry the source-snapshot tag). */
async function copiesOf(ec2: EC2Client, instanceId: string): Promise<RunSnapshot[]> {
  const found: RunSnapshot[] = [];
  const pages = paginateDescribeSnapshots(
    { client: ec2, pageSize: 1000 },
    { OwnerIds: ['self'], Filters: [{ Name: `tag:${INSTANCE_TAG}`, Values: [instanceId] }, { Name: 'tag-key', Values: [SOURCE_SNAPSHOT_TAG] }] },
  );
  for await (const page of pages) for (const s of page.Snapshots ?? []) found.push(toRunSnapshot(s));
  return found;
}

/** Device -> copies of it, for one run's copies. The Device tag, else the source volume: never the copy's VolumeId. */
function byDevice(copies: RunSnapshot[]): Map<string, RunSnapshot[]> {
  const devices = new Map<string, RunSnapshot[]>();
  for (const c of copies) {
    const device = c.device ?? c.volumeId;
    devices.set(device, [...(devices.get(device) ?? []), c]);
  }
  return devices;
}

/** What keeps `devices` of a run's copies from being restored: no copy, or its best copy not completed and consistent. */
function problemsOf(set: Map<string, RunSnapshot[]>, devices: string[], wholeSet = false): string[] {
  // Every copy names its set's size: a volume whose copy was never started leaves no copy to see, but a gap.
  const expected = Math.max(0, ...[...set.values()].flat().map((c) => c.setSize ?? 0));
  const missing = wholeSet && expected > set.size ? [`${expected - set.size} of the set's ${expected} volumes have no copy there (never copied: the DR pass had not started them)`] : [];
  return [...missing, ...devices.flatMap((device) => {
    const best = [...(set.get(device) ?? [])].sort(preference)[0];
    if (!best) return [`${device} has no copy there`];
    if (best.state === 'error') return [`${device} (${best.snapshotId}, copy of ${best.copyOf}) failed to copy (state error)`];
    if (best.state !== 'completed') return [`${device} (${best.snapshotId}, copy of ${best.copyOf}) is still ${best.state}${best.progress ? ` (${best.progress})` : ''}`];
    return [];
  })];
}

export async function chooseDrCopies(ec2: EC2Client, state: RestoreState): Promise<ChosenSnapshot[]> {
  const { runId, sourceInstanceId: source, devices, region } = state.restore;
  const runs = new Map<string, RunSnapshot[]>();
  for (const c of await copiesOf(ec2, source)) if (c.runId) runs.set(c.runId, [...(runs.get(c.runId) ?? []), c]);
  const complete = [...runs.entries()]
    .filter(([, copies]) => {
      const set = byDevice(copies);
      return problemsOf(set, [...set.keys()], true).length === 0;
    })
    .map(([id]) => id)
    .filter((id) => id !== runId)
    .sort()
    .reverse();
  const alternatives =
    complete.length > 0
      ? `runs whose copies of ${source} are complete in ${region}, newest first: ${complete.slice(0, MAX_RUNS_NAMED).join(', ')}${complete.length > MAX_RUNS_NAMED ? `, and ${complete.length - MAX_RUNS_NAMED} older` : ''}`
      : `no run has a complete copy of ${source} in ${region}`;

  const copies = runs.get(runId);
  if (!copies) {
    throw new InvalidInputError(
      `Run ${runId} has no DR copies of source instance ${source} in ${region} (fields "runId", "sourceInstanceId"): it was not copied there (yet), or the DR retention deleted its copies; ${alternatives}. Nothing was created.`,
    );
  }
  const set = byDevice(copies);
  const wanted = devices ?? [...set.keys()].sort();
  const problems = problemsOf(set, wanted, !devices);
  if (problems.length > 0) {
    const next = complete.length > 0 ? `use an earlier run: ${alternatives}` : `${alternatives}; wait for the copies in progress to complete`;
    throw new RestoreRefusedError(`The DR copy of run ${runId} of ${source} in ${region} is not complete: ${problems.join('; ')}. Restore only completed copies: ${next}. Nothing was created.`);
  }
  return wanted.map((device) => ({ device, snapshot: [...(set.get(device) ?? [])].sort(preference)[0] as RunSnapshot }));
}
