/**
 * Many nights in one simulated account (issue 12, item 6): the fleet file's `history`, `nights` and
 * `terminatedOnNight`, the night loop (one execution per night at its scheduled time, the run lease released each
 * night), and `vss-snapshots simulate` as a user runs it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { AsyncLocalStorage } from 'node:async_hooks';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { nightChart } from '../src/cli/night-chart.ts';
import { parseRetainOption, retainEnvironment } from '../src/cli/retain-option.ts';
import { ATTEMPT_TAG, HOLD_TAG, METHOD_TAG, RUN_TAG, STACK_TAG } from '../src/lib/run-id.ts';
import { leaseKey } from '../src/lib/run-lease.ts';
import { FALLBACK_TAG } from '../src/lib/sweep-run.ts';
import { loadFleetFile, parseFleet } from '../src/local/fleet.ts';
import { LOCAL_STACK_ID, OTHER_STAGE_STACK_ID } from '../src/local/history.ts';
import { NIGHT_MS, nightStart } from '../src/local/nights.ts';
import { REPORT_BUCKET, STATE_MACHINE_ARN, runWorkflow } from '../src/local/runner.ts';
import { isOurs, simulateNights } from '../src/local/simulation.ts';
import type { NightResult } from '../src/local/simulation.ts';
import { DEFAULT_START, worldFromFleet } from '../src/local/world.ts';
import type { World } from '../src/local/world.ts';

const BIN = new URL('../bin/vss-snapshots.mjs', import.meta.url).pathname;
const LIFECYCLE = new URL('../examples/fleets/lifecycle.json', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'vss-simulate-'));
const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 120_000 });
const DAY_MS = 86_400_000;
/** No background faults or lags where a test counts exact commands. */
const CLEAN = { faults: { rate: 0 }, consistency: { maxLagSeconds: 0 } };

const fleetFile = (name: string, fleet: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(fleet));
  return path;
};
const snapshotsOf = (world: World, instanceId: string) => [...world.snapshots.values()].filter((s) => s.instanceId === instanceId);

describe('fleet file: history, nights, terminatedOnNight', () => {
  it('rejects bad values with the field named and what is allowed', () => {
    const bad = (instance: unknown) => () => parseFleet({ instances: [{}, {}, instance] }, 'f.json');

    expect(bad({ history: [{ ageDays: -1, owner: 'ours' }] })).toThrow('instances[2].history[0].ageDays: must be ≥ 0');
    expect(bad({ history: [{ ageDays: 1, owner: 'mine' }] })).toThrow(/instances\[2\]\.history\[0\]\.owner: must be one of ours, ours-fallback, other-stage, foreign/);
    expect(bad({ history: [{ ageDays: 1, owner: 'ours', held: true }] })).toThrow(/instances\[2\]\.history\[0\]/);
    expect(bad({ nights: { 0: ['ok'] } })).toThrow('instances[2].nights: "0" is not a night number; nights are numbered "1" to "400"');
    expect(bad({ nights: { tuesday: ['ok'] } })).toThrow(/instances\[2\]\.nights: "tuesday"/);
    expect(bad({ nights: { 3: ['okay'] } })).toThrow(/instances\[2\]\.nights\.3\[0\]|instances\[2\]\.nights/);
    expect(bad({ terminatedOnNight: 0 })).toThrow('instances[2].terminatedOnNight: must be from 1 to 400');
    expect(bad({ terminatedOnNight: 2.5 })).toThrow('instances[2].terminatedOnNight: must be a whole number');
    expect(bad({ terminatedOnNight: 4, nights: { 4: ['ok'] } })).toThrow(/instances\[2\]\.nights\["4"\] is on or after its terminatedOnNight \(4\)/);
  });

  it('keeps every example fleet valid', () => {
    const files = readdirSync(new URL('../examples/fleets/', import.meta.url)).filter((f) => f.endsWith('.json'));

    for (const file of files) expect(() => loadFleetFile(new URL(`../examples/fleets/${file}`, import.meta.url).pathname), file).not.toThrow();
    expect(files).toContain('lifecycle.json');
  });
});

describe('history: the snapshots an account already holds', () => {
  const world = worldFromFleet(
    parseFleet({
      ...CLEAN,
      instances: [
        {
          instanceId: 'i-0d000000000000001',
          name: 'sql-01',
          volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }],
          history: [
            { ageDays: 3, owner: 'ours' },
            { ageDays: 10, owner: 'ours-fallback' },
            { ageDays: 20, owner: 'other-stage' },
            { ageDays: 30, owner: 'foreign' },
            { ageDays: 40, owner: 'foreign' },
            { ageDays: 45, owner: 'ours', hold: true },
            { ageDays: 90, owner: 'ours', usedByImage: true },
          ],
        },
        { instanceId: 'i-0d000000000000002', history: [{ ageDays: 3, owner: 'ours' }] },
      ],
    }),
  );
  const sets = new Map<number, ReturnType<typeof snapshotsOf>>();
  for (const s of snapshotsOf(world, 'i-0d000000000000001')) {
    const age = (DEFAULT_START - s.startTime) / DAY_MS;
    sets.set(age, [...(sets.get(age) ?? []), s]);
  }
  const tagsAt = (age: number) => sets.get(age)?.[0]?.tags ?? {};

  it('seeds one completed snapshot per volume per entry, created ageDays before the first night', () => {
    expect([...sets.keys()].sort((a, b) => a - b)).toEqual([3, 10, 20, 30, 40, 45, 90]);
    for (const set of sets.values()) {
      expect(set.map((s) => world.volumes.get(s.volumeId)?.device).sort()).toEqual(['/dev/sda1', 'xvdf']);
      for (const s of set) expect(world.snapshotState(s)).toBe('completed');
    }
  });

  it('tags each set as its maker leaves it', () => {
    expect(tagsAt(3)).toMatchObject({ [RUN_TAG]: expect.stringMatching(/^20261125T000000Z-[0-9a-f]{8}$/), [ATTEMPT_TAG]: '1', [METHOD_TAG]: 'aws-vss', [STACK_TAG]: LOCAL_STACK_ID, AppConsistent: 'true' });
    expect(tagsAt(10)).toMatchObject({ [STACK_TAG]: LOCAL_STACK_ID, [FALLBACK_TAG]: expect.any(String) });
    expect(tagsAt(10).AppConsistent).toBeUndefined();
    expect(tagsAt(20)).toMatchObject({ [STACK_TAG]: OTHER_STAGE_STACK_ID, AppConsistent: 'true' });
    for (const age of [30, 40]) expect(Object.keys(tagsAt(age)).filter((k) => k.startsWith('vss-snapshots:'))).toEqual([]);
    expect(Object.keys(tagsAt(30))).toContain('aws:dlm:lifecycle-policy-id');
    expect(tagsAt(40).Name).toMatch(/sql-01 before patching/);
    expect(tagsAt(45)).toMatchObject({ [HOLD_TAG]: 'true', [STACK_TAG]: LOCAL_STACK_ID });
    expect([3, 10, 20, 30, 40, 90].filter((age) => HOLD_TAG in tagsAt(age))).toEqual([]);
    expect([3, 10, 45, 90].every((age) => isOurs({ tags: tagsAt(age) }))).toBe(true);
    expect([20, 30, 40].some((age) => isOurs({ tags: tagsAt(age) }))).toBe(false);
  });

  it('registers an AMI over a set usedByImage, dumped with the world', () => {
    const dump = world.dump();

    expect(dump.images).toHaveLength(1);
    expect(new Set(dump.images[0]?.snapshotIds)).toEqual(new Set(sets.get(90)?.map((s) => s.snapshotId)));
    expect(dump.images[0]?.imageId).toMatch(/^ami-0[0-9a-f]{16}$/);
  });

  it('gives sets of one night of two instances the same run id, as one past run made them', () => {
    const other = snapshotsOf(world, 'i-0d000000000000002')[0];

    expect(other?.tags[RUN_TAG]).toBe(tagsAt(3)[RUN_TAG]);
  });

  it('leaves a fleet without history exactly as before: same instance and volume ids', () => {
    const plain = { ...CLEAN, instances: [{}, { volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }] }] };
    const withHistory = { ...CLEAN, instances: [{ history: [{ ageDays: 1, owner: 'ours' }] }, { volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }] }] };
    const ids = (w: World) => [...w.instances.keys(), ...w.volumes.keys()];

    expect(ids(worldFromFleet(parseFleet(withHistory)))).toEqual(ids(worldFromFleet(parseFleet(plain))));
  });

  it('is seeded for `run` too, and a run leaves it alone', async () => {
    const w = worldFromFleet(parseFleet({ ...CLEAN, instances: [{ history: [{ ageDays: 5, owner: 'foreign' }, { ageDays: 6, owner: 'ours' }] }] }));
    const before = [...w.snapshots.keys()];

    const result = await runWorkflow(w);

    expect(result.status).toBe('SUCCEEDED');
    expect(before).toHaveLength(2);
    for (const id of before) expect(w.snapshots.get(id)?.deleted).toBe(false);
  });
});

describe('nights: behaviours and terminations on the right night', () => {
  const fleet = parseFleet({
    ...CLEAN,
    instances: [
      { instanceId: 'i-0e000000000000001', name: 'steady', attempts: ['vss-timeout', 'ok'] },
      { instanceId: 'i-0e000000000000002', name: 'bad-night', nights: { 3: ['writer-failure'] } },
      { instanceId: 'i-0e000000000000003', name: 'leaving', volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }], terminatedOnNight: 4 },
    ],
  });

  it('applies nights["3"] on night 3 only, starts attempts over every night, terminates on its night', async () => {
    const world = worldFromFleet(fleet);
    const seen: { night: number; outcomes: Record<string, string>; commands: Record<string, number>; leaving: string }[] = [];

    const results = await simulateNights(world, fleet, {
      nights: 5,
      onNight: (night, w) => {
        const report = JSON.parse(w.buckets.get(REPORT_BUCKET)?.get(`reports/${night.runId}.json`) ?? 'null') as { instances: { instanceId: string; outcome: string; code?: string; attempts: number }[] } | null;
        const byName = (id: string) => w.instances.get(id)?.name ?? id;
        seen.push({
          night: night.night,
          outcomes: Object.fromEntries((report?.instances ?? []).map((i) => [byName(i.instanceId), i.outcome === 'failed' ? `failed ${i.code}` : i.outcome])),
          commands: Object.fromEntries((report?.instances ?? []).map((i) => [byName(i.instanceId), i.attempts])),
          leaving: w.instances.get('i-0e000000000000003')?.state ?? 'gone',
        });
      },
    });

    expect(results.map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED', 'SUCCEEDED']);
    expect(seen.map((s) => s.outcomes['bad-night'])).toEqual(['succeeded', 'succeeded', 'failed vss-writer-nonretryable', 'succeeded', 'succeeded']);
    // `attempts` describes one night: every night, the first command times out and the retry succeeds.
    expect(seen.map((s) => s.commands.steady)).toEqual([2, 2, 2, 2, 2]);
    expect(seen.map((s) => s.outcomes.steady)).toEqual(Array(5).fill('succeeded'));
    expect(seen.map((s) => s.outcomes.leaving)).toEqual(['succeeded', 'succeeded', 'succeeded', undefined, undefined]);
    expect(seen.map((s) => s.leaving)).toEqual(['running', 'running', 'running', 'terminated', 'terminated']);
    expect(results.map((r) => r.needsAttention)).toEqual([false, false, true, false, false]);
    expect(results.map((r) => r.terminated)).toEqual([[], [], [], ['i-0e000000000000003'], []]);
    expect(results.map((r) => r.summary?.targeted)).toEqual([3, 3, 3, 2, 2]);
  });

  it('terminates as EC2 does: at the night\'s start, the root volume deleted, the data volume detached, the snapshots kept', async () => {
    const world = worldFromFleet(fleet);
    const volumes = world.volumesOf('i-0e000000000000003').map((v) => v.volumeId);

    await simulateNights(world, fleet, { nights: 4 });

    const instance = world.instances.get('i-0e000000000000003');
    expect(instance?.state).toBe('terminated');
    expect(instance?.terminatedAt).toBe(nightStart(DEFAULT_START, 4));
    expect(volumes.map((id) => world.volumes.get(id)?.deleted ?? false)).toEqual([true, false]);
    expect(volumes.map((id) => world.volumes.get(id)?.instanceId)).toEqual([undefined, undefined]);
    // Three nights of two-volume sets, none deleted by termination.
    expect(snapshotsOf(world, 'i-0e000000000000003').filter((s) => !s.deleted)).toHaveLength(6);
  });

  it('applies nights["1"] and a termination on night 1 to a single run as well', async () => {
    const world = worldFromFleet(parseFleet({ ...CLEAN, instances: [{ nights: { 1: ['writer-failure'] } }, { terminatedOnNight: 1 }] }));

    const result = await runWorkflow(world);
    const report = JSON.parse([...(world.buckets.get(REPORT_BUCKET)?.entries() ?? [])].find(([k]) => k.startsWith('reports/'))?.[1] ?? '{}') as { summary: { targeted: number; failed: number } };

    expect(result.status).toBe('SUCCEEDED');
    expect(report.summary).toMatchObject({ targeted: 1, failed: 1 });
  });
});

describe('60 nights of the lifecycle example', () => {
  const fleet = loadFleetFile(LIFECYCLE);
  const world = worldFromFleet(fleet);
  const leases: { night: number; holder?: string; released?: boolean }[] = [];
  let results: NightResult[] = [];

  it('runs one execution per night, each at its scheduled time, and releases the run lease every night', async () => {
    results = await simulateNights(world, fleet, {
      nights: 60,
      onNight: (night, w) => {
        const lease = JSON.parse(w.buckets.get(REPORT_BUCKET)?.get(leaseKey(STATE_MACHINE_ARN)) ?? '{}') as { holder?: string; released?: boolean };
        leases.push({ night: night.night, ...lease });
      },
    });

    expect(results).toHaveLength(60);
    expect(results.every((r) => r.status === 'SUCCEEDED')).toBe(true);
    expect(world.executions).toHaveLength(60);
    expect(new Set(world.executions.map((e) => e.name)).size).toBe(60);
    expect(world.executions.map((e) => e.startDate)).toEqual(results.map((_, i) => DEFAULT_START + i * NIGHT_MS));
    expect(world.executions.every((e) => e.status === 'SUCCEEDED' && (e.stopDate ?? Infinity) < (e.startDate + NIGHT_MS))).toBe(true);
    expect(leases.map((l) => [l.holder, l.released])).toEqual(world.executions.map((e) => [e.executionArn, true]));
  });

  it('needs attention on exactly the failing nights (5: a writer failure, 12: VSS timeouts)', () => {
    expect(results.filter((r) => r.needsAttention).map((r) => r.night)).toEqual([5, 12]);
    expect(results[19]?.terminated).toEqual(['i-0c100000000000005']);
    expect(results.map((r) => r.summary?.targeted)).toEqual([...Array(19).fill(6), ...Array(41).fill(5)]);
  });

  it('never deletes a snapshot it did not make, and with the default retention this stack\'s snapshots level off', () => {
    expect(results.map((r) => r.othersDeleted)).toEqual(Array(60).fill(0));
    expect(results.map((r) => r.snapshotsOthers)).toEqual(Array(60).fill(10));
    // count=7, days=14: two weeks of sets per instance, then one set in and one set out each night (night 50:
    // the last set of the instance terminated on night 20 expires after TERMINATED_RETAIN_DAYS, 30).
    const ours = results.map((r) => r.snapshotsOurs);
    expect(new Set(ours.slice(-10)).size, ours.join(' ')).toBe(1);
    expect(ours[49]).toBeLessThan(ours[48] ?? 0);
    expect(Math.max(...ours)).toBeLessThan(2 * (ours.at(-1) ?? 0));
    expect(results.slice(1).every((r) => r.deleted > 0)).toBe(true);
    const counted = [...world.snapshots.values()].filter((s) => !s.deleted && isOurs(s)).length;
    expect(results.at(-1)?.snapshotsOurs).toBe(counted);
  });

  it('counts the night\'s deletions from the mutation log, which the dump carries with their times', () => {
    const dump = world.dump();
    const deletes = dump.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot' && m.ok);
    const night = (at: string) => Math.floor((Date.parse(at) - DEFAULT_START) / NIGHT_MS) + 1;

    expect(results.reduce((n, r) => n + r.deleted, 0)).toBe(new Set(deletes.flatMap((m) => m.ids)).size);
    expect([...new Set(deletes.map((m) => night(m.at)))]).toEqual(results.filter((r) => r.deleted > 0).map((r) => r.night));
    expect(dump.images).toHaveLength(1);
    expect(dump.instances.find((i) => i.instanceId === 'i-0c100000000000005')?.state).toBe('terminated');
  });
});

describe('the simulator stays as fast on night 200 as on night 2', () => {
  it('ends the async context of each execution\'s scheduler (each one left enabled slows every later promise)', async () => {
    const disable = vi.spyOn(AsyncLocalStorage.prototype, 'disable');
    const world = worldFromFleet(parseFleet({ ...CLEAN, instances: [{}] }));

    await runWorkflow(world);
    await runWorkflow(world);

    expect(disable).toHaveBeenCalledTimes(2);
    disable.mockRestore();
  });
});

describe('--retain and the chart', () => {
  it('parses the tag grammar; a rule left out is off', () => {
    expect(parseRetainOption('count=10,days=30')).toEqual({ count: 10, days: 30 });
    expect(parseRetainOption('days=7')).toEqual({ days: 7 });
    expect(retainEnvironment({ count: 10 })).toEqual({ RETAIN_COUNT: '10', RETAIN_DAYS: '0' });
    for (const bad of ['', 'count=1001', 'days=3651', 'count=5,count=6', 'weeks=2', 'count=ten', 'count=5,', 'count=-1']) {
      expect(() => parseRetainOption(bad), bad).toThrow(/use count=N, days=N or count=N,days=M/);
    }
  });

  it('hands the policy to the Lambdas as RETAIN_COUNT and RETAIN_DAYS', async () => {
    const fleet = parseFleet({ ...CLEAN, instances: [{}] });
    const seen = new Set<string>();

    await simulateNights(worldFromFleet(fleet), fleet, { nights: 2, env: retainEnvironment({ count: 7 }), onEvent: () => seen.add(`${process.env.RETAIN_COUNT}/${process.env.RETAIN_DAYS}`) });

    expect([...seen]).toEqual(['7/0']);
    expect(process.env.RETAIN_COUNT).toBeUndefined();
  });

  it('draws plain ASCII bars, folding more nights than columns', () => {
    const small = nightChart([2, 4, 6, 8], { title: 'T', height: 4 });
    const large = nightChart(Array.from({ length: 400 }, (_, i) => i + 1), { title: 'T' });

    expect(small).toBe(['T', '8 |   #', '  |  ##', '4 | ###', '  |####', '0 +----', '   1  4', '   night', ''].join('\n'));
    expect(/^[\x20-\x7e\n]*$/.test(large)).toBe(true);
    expect(large.split('\n')[1]).toMatch(/^400 \| +#####$/);
    expect(large.split('\n')[9]).toBe(`  0 +${'-'.repeat(58)}`);
    expect(large).toContain('one column per 7 nights');
  });
});

describe('vss-snapshots simulate', () => {
  it('--help prints its usage and the exit codes, exit 0', () => {
    const out = cli('simulate', '--help');

    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/^Usage: vss-snapshots simulate /);
    expect(out.stdout).toMatch(/--nights <n>/);
    expect(out.stdout).toMatch(/--retain <policy>/);
    expect(out.stdout).toMatch(/Exit codes \(every command\):/);
  });

  it.each([
    [['--nights', '0'], /--nights.*whole number from 1 to 400/],
    [['--nights', '401'], /--nights.*whole number from 1 to 400/],
    [['--nights', 'ten'], /--nights.*whole number from 1 to 400/],
    [[], /required option '--nights <n>'/],
    [['--nights', '3', '--retain', 'count=1001'], /--retain.*count must be 0-1000/],
    [['--nights', '3', '--retain', 'weeks=2'], /--retain.*"weeks=2": expected count=N, days=N or count=N,days=M/],
    [['--nights', '3', '--fleet', join(dir, 'missing.json')], /--fleet: file not found/],
    [['--nights', '3', '--input', '{"dryrun": true}'], /dryrun/],
    [['--nights', '3', '--dump-world', join(dir, 'no-such-folder', 'w.json')], /--dump-world: folder not found/],
  ])('%j is refused before anything runs: exit 2', (args, message) => {
    const dump = join(dir, `refused-${Math.random().toString(16).slice(2)}.json`);
    const withDump = args.includes('--dump-world') ? args : [...args, '--dump-world', dump];

    const out = cli('simulate', ...withDump);

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(message);
    expect(out.stdout).toBe('');
    expect(existsSync(dump)).toBe(false);
  });

  it('prints a line per night and the chart, exit 0 when every night is clean', () => {
    const fleet = fleetFile('clean.json', { ...CLEAN, instances: [{ name: 'a', history: [{ ageDays: 1, owner: 'foreign' }] }, { name: 'b', nights: { 9: ['hang'] }, terminatedOnNight: 10 }] });

    const out = cli('simulate', '--nights', '4', '--fleet', fleet);

    expect(out.status, out.stderr).toBe(0);
    const lines = out.stdout.split('\n');
    expect(lines[0]).toMatch(/^night\s+date\s+outcome\s+ours\s+deleted\s+others$/);
    expect(lines.slice(1, 5)).toEqual([1, 2, 3, 4].map((n) => expect.stringMatching(new RegExp(`^\\s+${n}  2026-(11|12)-\\d\\d  clean\\s+2 ok\\s+${2 * n}\\s+0\\s+1$`))));
    expect(out.stdout).toMatch(/Snapshots of this stack in the account, after each night:\n8 \|   #\n/);
    expect(out.stdout).toMatch(/4 nights in [0-9.]+ s: every night clean\./);
    expect(/^[\x20-\x7e\n]*$/.test(out.stdout)).toBe(true);
    // The same file serves longer simulations: what lies beyond the last night is said, not an error.
    expect(out.stderr).toContain('note: instances[1].nights["9"] is after the last night (4): not used.');
    expect(out.stderr).toContain('note: instances[1].terminatedOnNight 10 is after the last night (4): not terminated.');
  });

  it('--json prints one object with every night, exit 3 when a night needs attention; --dump-world has mutations and images', () => {
    const fleet = fleetFile('attention.json', {
      ...CLEAN,
      instances: [{ name: 'a', nights: { 2: ['writer-failure'] }, history: [{ ageDays: 2, owner: 'ours', usedByImage: true }] }, { name: 'b', attempts: ['vss-timeout', 'ok'] }],
    });
    const dumpPath = join(dir, 'world.json');

    const out = cli('simulate', '--nights', '3', '--fleet', fleet, '--json', '--retain', 'count=5', '--dump-world', dumpPath);

    expect(out.status, out.stderr).toBe(3);
    const json = JSON.parse(out.stdout) as { nights: NightResult[]; retain: unknown };
    expect(json.retain).toEqual({ count: 5 });
    expect(json.nights.map((n) => [n.night, n.status, n.needsAttention, n.summary?.failed])).toEqual([
      [1, 'SUCCEEDED', false, 0],
      [2, 'SUCCEEDED', true, 1],
      [3, 'SUCCEEDED', false, 0],
    ]);
    for (const n of json.nights) {
      expect(n.runId).toMatch(/^\d{8}T\d{6}Z-[0-9a-f]{8}$/);
      expect(Object.keys(n)).toEqual(expect.arrayContaining(['scheduledAt', 'summary', 'snapshotsOurs', 'snapshotsOthers', 'deleted', 'othersDeleted']));
    }
    expect(json.nights.map((n) => n.snapshotsOurs)).toEqual([3, 4, 6]);
    // b's first attempt each night leaves a crash-consistent set (aws-vss) that the sweep deletes.
    expect(json.nights.map((n) => n.deleted)).toEqual([1, 1, 1]);
    expect(out.stderr).toMatch(/^\s+2  2026-11-29  attention 1 ok, 1 failed/m);
    const dump = JSON.parse(readFileSync(dumpPath, 'utf8')) as { mutations: { at: string; call: string; ids: string[]; ok: boolean }[]; images: { snapshotIds: string[] }[] };
    expect(dump.images).toHaveLength(1);
    const deletes = dump.mutations.filter((m) => m.call === 'ec2:DeleteSnapshot');
    expect(deletes.map((m) => m.at.slice(0, 10))).toEqual(['2026-11-28', '2026-11-29', '2026-11-30']);
  });
});

describe('simulate with DR copies (--dr-region)', () => {
  it('copies every night\'s sets into the DR Region and keeps the copies there by the DR rule: the count levels off, a terminated instance keeps its last copy', async () => {
    const fleet = parseFleet({
      ...CLEAN,
      instances: [
        { instanceId: 'i-0d000000000000001', name: 'db', volumes: [{ device: '/dev/sda1', sizeGiB: 30 }, { device: 'xvdf', sizeGiB: 20 }] },
        { instanceId: 'i-0d000000000000002', name: 'flaky', volumes: [{ device: '/dev/sda1', sizeGiB: 30 }], nights: { 4: ['writer-failure'], 5: ['writer-failure'] } },
        { instanceId: 'i-0d000000000000003', name: 'leaving', volumes: [{ device: '/dev/sda1', sizeGiB: 30 }], terminatedOnNight: 6 },
      ],
    });
    const world = worldFromFleet(fleet);
    const results = await simulateNights(world, fleet, { nights: 14, env: { DR_REGION: 'us-west-2', DR_RETAIN_COUNT: '3', DR_RETAIN_DAYS: '0' } });

    expect(results.every((r) => r.status === 'SUCCEEDED')).toBe(true);
    // Every night's verified sets are protected in the DR Region by the end of that night's pass.
    for (const r of results) {
      const copies = r.copies as { protected: number; inProgress: number; failed: unknown[] };
      expect(copies.protected, `night ${r.night}`).toBe(r.summary?.succeeded);
      expect(copies.inProgress + copies.failed.length, `night ${r.night}`).toBe(0);
    }
    // 4 copies a night (db 2 volumes, flaky 1, leaving 1) until each instance has 3 sets there; then 3 sets of
    // db (6) and flaky (3), and the terminated instance's newest copy, kept TerminatedRetainDays (30) after it left.
    const counts = results.map((r) => r.drCopiesOurs);
    expect(counts.slice(0, 3)).toEqual([4, 8, 12]);
    expect(new Set(counts.slice(8))).toEqual(new Set([10]));
    expect(results.reduce((n, r) => n + (r.drDeleted ?? 0), 0)).toBeGreaterThan(0);
    const leaving = [...world.snapshots.values()].filter((s) => !s.deleted && s.region === 'us-west-2' && s.tags['vss-snapshots:instance-id'] === 'i-0d000000000000003');
    expect(leaving).toHaveLength(1);
  }, 60_000);
});
