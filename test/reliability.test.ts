/**
 * Reliability under faults (issue 5): API faults from the fleet file, Lambdas that time out after their
 * side effects, and overlapping executions, all on the real workflow against the simulated account and
 * checked against its ground truth: nothing lost, nothing doubled, the same outcome as a clean run.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { isThrottlingError, isTransientError } from '@smithy/core/retry';
import { describe, expect, it } from 'vitest';
import { TRANSIENT_AWS_ERRORS } from '../src/lib/errors.ts';
import { buildReport } from '../src/lib/report.ts';
import type { RunReport } from '../src/lib/report.ts';
import type { RunState } from '../src/lib/run-state.ts';
import { faultInterceptor, faultLogOf, lambdaDiesAt, serverError, socketTimeoutError, throttlingError } from '../src/local/faults.ts';
import type { FaultLog } from '../src/local/faults.ts';
import { loadFleetFile, parseFleet } from '../src/local/fleet.ts';
import type { Fleet } from '../src/local/fleet.ts';
import { REPORT_BUCKET, runWorkflow } from '../src/local/runner.ts';
import type { LambdaFault, RunOptions } from '../src/local/runner.ts';
import { worldFromFleet } from '../src/local/world.ts';
import { readReport } from './helpers.ts';
import { checkRunInvariants, doubleCommands, doubleSnapshotSets, outcomesOf } from './reliability-helpers.ts';

const MIXED = loadFleetFile(new URL('../examples/fleets/mixed.json', import.meta.url).pathname);
const SERVICES = ['ec2', 'ssm', 'sns', 's3', 'sfn'] as const;

async function run(fleet: Fleet, options: RunOptions = {}) {
  const world = worldFromFleet(fleet);
  const result = await runWorkflow(world, options);
  return { world, result, report: readReport(world, result), dump: world.dump() };
}

/** Clean runs are deterministic: one per fleet is enough for all the comparisons of this file. */
const cleanRuns = new Map<Fleet, ReturnType<typeof run>>();
function cleanRun(fleet: Fleet): ReturnType<typeof run> {
  if (!cleanRuns.has(fleet)) cleanRuns.set(fleet, run(fleet));
  return cleanRuns.get(fleet) as ReturnType<typeof run>;
}

const withFaults = (fleet: Fleet, rate: number, seed: number): Fleet => ({ ...fleet, faults: { rate, seed, kinds: ['throttle', 'server', 'timeout'] } });
/** Tests of one precise, injected fault turn the account's background faults off (the lags stay on). */
const NO_FAULTS = { faults: { rate: 0, seed: 1, kinds: ['throttle', 'server', 'timeout'] as ('throttle' | 'server' | 'timeout')[] } };
/** Which attempts each instance received: comparable across runs whatever the sends were numbered or batched. */
const commandsSent = (dump: { commands: { comment?: string; instanceIds: string[] }[] }): string[] =>
  dump.commands.flatMap((c) => c.instanceIds.map((id) => `${id} attempt ${/ attempt ([0-9]+) /.exec(c.comment ?? '')?.[1]}`)).sort();
const lostPublishes = (log: FaultLog) => log.events.filter((e) => e.startsWith('sns:Publish') && e.endsWith('(after effect)')).length;

describe('API faults from the fleet file', () => {
  it('are errors the SDK itself retries, under the names each service uses', () => {
    for (const service of SERVICES) {
      const throttle = throttlingError(service);
      expect(isThrottlingError(throttle as never), `${service} ${throttle.name}`).toBe(true);
      for (const unavailable of [false, true]) {
        const server = serverError(service, unavailable);
        expect(isTransientError(server as never), `${service} ${server.name}`).toBe(true);
        expect(server.$metadata.httpStatusCode).toBe(unavailable ? 503 : 500);
        expect(TRANSIENT_AWS_ERRORS).toContain(server.name);
      }
      expect(TRANSIENT_AWS_ERRORS).toContain(throttle.name);
    }
    expect(throttlingError('ec2').name).toBe('RequestLimitExceeded');
    expect(throttlingError('ssm').name).toBe('ThrottlingException');
    const timeout = socketTimeoutError();
    expect(isTransientError(timeout as never)).toBe(true);
    expect(timeout).toMatchObject({ name: 'TimeoutError', code: 'ETIMEDOUT' });
  });

  it('come from the seed: the same fleet file gives the same faults in the same places', async () => {
    const fleet = withFaults(MIXED, 0.2, 42);

    const first = await run(fleet);
    const second = await run(fleet);

    expect(faultLogOf(first.world).total).toBeGreaterThan(10);
    expect(faultLogOf(second.world).events).toEqual(faultLogOf(first.world).events);
    expect(second.dump).toEqual(first.dump);
  });

  it('hit every kind at the configured rate, and only the kinds asked for', async () => {
    const log = { total: 0, byKind: { throttle: 0, server: 0, timeout: 0 }, byCall: {}, afterEffect: 0, events: [] };
    const intercept = faultInterceptor({ rate: 0.1, seed: 3, kinds: ['throttle', 'server'] }, { log });
    let thrown = 0;
    for (let i = 0; i < 10_000; i += 1) {
      try {
        await intercept({ service: SERVICES[i % 5] as string, operation: 'Describe', input: {} });
      } catch {
        thrown += 1;
      }
    }
    expect(thrown).toBe(log.total);
    expect(thrown).toBeGreaterThan(850);
    expect(thrown).toBeLessThan(1150);
    expect(log.byKind.timeout).toBe(0);
    expect(log.byKind.throttle).toBeGreaterThan(300);
    expect(log.byKind.server).toBeGreaterThan(300);
  });

  it.each([1, 2, 3, 4, 5, 6, 7, 8])('give the same per-instance outcomes as the clean run (rate 0.25, seed %i), with nothing doubled', async (seed) => {
    const clean = await cleanRun(MIXED);

    const faulty = await run(withFaults(MIXED, 0.25, seed));

    const log = faultLogOf(faulty.world);
    expect(log.total).toBeGreaterThan(10);
    expect(faulty.result.status).toBe('SUCCEEDED');
    expect(outcomesOf(faulty.report)).toEqual(outcomesOf(clean.report));
    expect(commandsSent(faulty.dump)).toEqual(commandsSent(clean.dump));
    checkRunInvariants({ fleet: MIXED, world: faulty.world, report: faulty.report, options: {}, extraAlerts: lostPublishes(log) });
    expect(faulty.dump.published).toHaveLength(1 + lostPublishes(log));
  });

  it('at rate 0.5 give the clean outcomes, or fail the run with an alert naming the step and a partial report that agrees with the clean run on every instance it calls final; never double anything', async () => {
    const clean = outcomesOf((await cleanRun(MIXED)).report);
    let full = 0;
    let partial = 0;

    const seeds = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
    for (const seed of seeds) {
      const faulty = await run(withFaults(MIXED, 0.5, seed));

      expect(doubleCommands(faulty.dump), `seed ${seed}`).toEqual([]);
      expect(doubleSnapshotSets(faulty.world), `seed ${seed}`).toEqual([]);
      if (faulty.result.status === 'SUCCEEDED') {
        full += 1;
        expect(outcomesOf(faulty.report), `seed ${seed}`).toEqual(clean);
        checkRunInvariants({ fleet: MIXED, world: faulty.world, report: faulty.report, options: {}, extraAlerts: lostPublishes(faultLogOf(faulty.world)) });
        continue;
      }
      // The SDK's retry quota runs dry under a sustained 50 % error rate and the workflow gives up: it says so.
      expect(faulty.dump.published.some((p) => /^vss-snapshots: workflow failed at [A-Z]/.test(p.subject ?? '')), `seed ${seed}`).toBe(true);
      // What the run knew when it stopped: its partial report, or (when even that write failed) its run state.
      const objects = faulty.world.buckets.get(REPORT_BUCKET) ?? new Map<string, string>();
      const reportText = [...objects.entries()].find(([k]) => k.startsWith('reports/'))?.[1];
      const stateText = [...objects.entries()].find(([k]) => /^runs\/.*\/state\.json$/.test(k))?.[1];
      if (!reportText && !stateText) continue; // failed before a run state existed (Prepare Run): nothing to compare
      partial += 1;
      const report = reportText ? (JSON.parse(reportText) as RunReport) : buildReport(JSON.parse(stateText as string) as RunState, '', '');
      for (const [id, outcome] of Object.entries(outcomesOf(report))) {
        if (outcome.code === 'unfinished') continue;
        // Whatever the partial report calls final is what the clean run says (a succeeded one has its verified set).
        expect({ id, ...outcome }, `seed ${seed}`).toEqual({ id, ...clean[id] });
      }
    }
    // The comparison must not be skipped for most seeds (a run that fails in Prepare Run has nothing to compare).
    expect(full + partial).toBeGreaterThanOrEqual(seeds.length / 2);
    expect(full).toBeGreaterThan(0);
  });

  it('reach the CLI: `run --fleet` with faults exits and reports as the clean fleet does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vss-faults-'));
    const cleanFile = join(dir, 'clean.json');
    const faultyFile = join(dir, 'faulty.json');
    writeFileSync(cleanFile, JSON.stringify(MIXED));
    writeFileSync(faultyFile, JSON.stringify(withFaults(MIXED, 0.2, 7)));
    const cli = (file: string, report: string) =>
      promisify(execFile)(process.execPath, ['bin/vss-snapshots.mjs', 'run', '--fleet', file, '--json', '--report', report, '--dump-world', `${report}.world`], { cwd: new URL('..', import.meta.url).pathname }).then(
        () => 0,
        (error: { code?: number }) => error.code ?? -1,
      );

    const [cleanExit, faultyExit] = await Promise.all([cli(cleanFile, join(dir, 'clean-report.json')), cli(faultyFile, join(dir, 'faulty-report.json'))]);

    expect(cleanExit).toBe(3);
    expect(faultyExit).toBe(3);
    const read = (f: string) => JSON.parse(readFileSync(join(dir, f), 'utf8'));
    expect(outcomesOf(read('faulty-report.json'))).toEqual(outcomesOf(read('clean-report.json')));
    expect(read('faulty-report.json.world').apiCalls).not.toEqual(read('clean-report.json.world').apiCalls);
  }, 60_000);
});

/** Every Task state of the definition. */
const TASKS = ['Prepare Run', 'Discover Instances', 'Advance Instances', 'Finish Run'];

/**
 * A fleet that drives every Task through its paths: a healthy server, retries that succeed (crash-consistent,
 * VSS timeout, snapshot error), one that gives up after 3 attempts, a permanent failure, a hang, an offline
 * agent and skipped instances.
 */
const CRASH_FLEET = parseFleet({
  ...NO_FAULTS,
  instances: [
    { name: 'ok', volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }] },
    { name: 'crash-then-ok', volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }], attempts: ['crash-consistent', 'ok'] },
    { name: 'vss-then-ok', attempts: ['vss-timeout', 'ok'] },
    { name: 'error-then-ok', attempts: ['snapshot-error', 'ok'], snapshotMinutes: 5 },
    { name: 'never', attempts: ['untagged'] },
    { name: 'writer', attempts: ['writer-failure'] },
    { name: 'hang-then-ok', attempts: ['hang', 'ok'] },
    { name: 'offline', agent: 'offline' },
    { name: 'linux', platform: 'linux' },
    { name: 'stopped', state: 'stopped' },
  ],
});

describe('a Lambda that times out after its side effects (crashAfter)', () => {
  const cases = TASKS.flatMap((task) => [
    [task, 'its first invocation', (state: string, n: number) => state === task && n === 1],
    [task, 'every invocation once', (state: string, n: number) => state === task && n % 2 === 1],
  ] as const);

  it.each(cases)('%s crashing on %s: same outcomes, one command per instance and attempt, one snapshot set, one alert', async (_task, _when, crashes) => {
    const clean = await cleanRun(CRASH_FLEET);

    const crashed = await run(CRASH_FLEET, { lambdaFault: (state, n): LambdaFault | undefined => (crashes(state, n) ? { crashAfter: true } : undefined) });

    expect(crashed.result.status).toBe('SUCCEEDED');
    expect(outcomesOf(crashed.report)).toEqual(outcomesOf(clean.report));
    checkRunInvariants({ fleet: CRASH_FLEET, world: crashed.world, report: crashed.report, options: {} });
    expect(crashed.dump.published).toHaveLength(1);
  });

  it('every Task state crashing once on every invocation still gives the clean run', async () => {
    const clean = await cleanRun(CRASH_FLEET);

    let crashes = 0;
    const crashed = await run(CRASH_FLEET, { lambdaFault: (_state, n) => (n % 2 === 1 ? (crashes++, { crashAfter: true }) : undefined) });

    // Each invocation crashed once and its retry went through (the retries' waits may merge a few wake-ups, so
    // the count is not exactly twice the clean run's).
    expect(crashes).toBeGreaterThan(0);
    expect(crashed.result.stats.lambdaInvocations).toBe(2 * crashes);
    expect(outcomesOf(crashed.report)).toEqual(outcomesOf(clean.report));
    expect(commandsSent(crashed.dump)).toEqual(commandsSent(clean.dump));
    checkRunInvariants({ fleet: CRASH_FLEET, world: crashed.world, report: crashed.report, options: {} });
    expect(crashed.dump.published).toHaveLength(1);
  });
});

describe('a Lambda that dies in the middle, just before or just after one of its changes', () => {
  const CHANGES = new Set(['ssm:SendCommand', 'ssm:CancelCommand', 'ec2:DeleteSnapshot', 'sns:Publish', 's3:PutObject']);
  // CRASH_FLEET without the hang, whose hour of polling only repeats the same saves.
  const MID_FLEET = parseFleet({ ...NO_FAULTS, instances: CRASH_FLEET.instances.filter((i) => i.name !== 'hang-then-ok') });

  it('gives the clean outcomes, with nothing doubled, wherever it dies', async () => {
    const clean = await cleanRun(MID_FLEET);
    const changes = Object.entries(clean.dump.apiCalls).filter(([k]) => CHANGES.has(k)).reduce((n, [, v]) => n + v, 0);
    expect(changes).toBeGreaterThan(20);

    const problems: string[] = [];
    let twice = 0;
    for (const after of [false, true]) {
      for (let k = 1; k <= changes; k += 1) {
        const world = worldFromFleet(MID_FLEET);
        let n = 0;
        let lastPublish = -1;
        let where = '';
        const dies = lambdaDiesAt(world, (c) => {
          const key = `${c.service}:${c.operation}`;
          if (!CHANGES.has(key)) return false;
          n += 1;
          if (key === 'sns:Publish') lastPublish = n;
          if (n === k) where = key;
          return n === k;
        }, { after });
        const result = await runWorkflow(world, { interceptors: [dies] });
        const report = readReport(world, result);
        const label = `${after ? 'after' : 'before'} change #${k} (${where})`;
        if (result.status !== 'SUCCEEDED') problems.push(`${label}: ${result.status} ${result.error}`);
        if (JSON.stringify(outcomesOf(report)) !== JSON.stringify(outcomesOf(clean.report))) problems.push(`${label}: outcomes differ`);
        if (doubleCommands(world.dump()).length > 0 || doubleSnapshotSets(world).length > 0) problems.push(`${label}: doubled`);
        // The one allowed double: the Lambda died between publishing the alert and recording it.
        const diedRightAfterPublishing = after ? lastPublish === k : lastPublish === k - 1 && where === 's3:PutObject';
        if (world.published.length === 2 && diedRightAfterPublishing) twice += 1;
        else if (world.published.length !== 1) problems.push(`${label}: ${world.published.length} alerts`);
      }
    }
    expect(problems).toEqual([]);
    // Dying as the alert is published doubles it; dying at the save that records it does not any more here: the
    // simulated death is an error thrown from that PutObject, which Finish Run's save-after-publish tries again.
    expect(twice).toBe(1);
  }, 60_000);
});

describe('overlapping runs (the schedule and an operator starting together)', () => {
  const FLEET = parseFleet({ ...NO_FAULTS, instances: [{ name: 'a' }, { name: 'b', volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }] }, { name: 'c', attempts: ['vss-timeout', 'ok'] }] });

  it('runs exactly one; the other ends with RunInProgressError, does nothing and alerts', async () => {
    const world = worldFromFleet(FLEET);

    const [first, second] = await Promise.all([runWorkflow(world), runWorkflow(world)]);

    // Same start time: the tie goes to the smaller execution ARN, the one started first here.
    expect(first.status).toBe('SUCCEEDED');
    expect(second).toMatchObject({ status: 'FAILED', error: 'RunInProgressError' });
    expect(second.cause).toContain(first.executionArn.split(':').at(-1));
    const runId = (first.output as { runId: string }).runId;
    const dump = world.dump();
    expect(dump.commands.every((c) => c.comment?.includes(runId))).toBe(true);
    expect(dump.snapshots.every((s) => s.tags['vss-snapshots:run-id'] === runId)).toBe(true);
    // Besides the run's own objects: the lease, and what retention remembers between nights (written by the winner).
    expect(dump.objects.filter((o) => !o.includes(runId)).sort()).toEqual(['s3://vss-snapshots-reports-123456789012/leases/vss-snapshots-nightly.json', 's3://vss-snapshots-reports-123456789012/retention/ledger.json']);
    expect(dump.published.map((p) => p.subject)).toEqual(['vss-snapshots: workflow failed at Prepare Run']);
    expect(dump.published[0]?.message).toMatch(/Another snapshot run is in progress[\s\S]*"force": true/);
    expect(outcomesOf(readReport(world, first))).toEqual(outcomesOf((await cleanRun(FLEET)).report));
  });

  it('lets the one that started earlier win even when its name sorts later', async () => {
    const world = worldFromFleet(FLEET);
    let started!: () => void;
    const earlyStarted = new Promise<void>((resolve) => (started = resolve));
    const early = runWorkflow(world, { executionName: 'zz-operator', onEvent: (e) => (e.type === 'ExecutionStarted' ? started() : undefined) });
    await earlyStarted;
    world.now += 1_000;

    const [first, second] = await Promise.all([early, runWorkflow(world, { executionName: 'aa-schedule' })]);

    expect(first.status).toBe('SUCCEEDED');
    expect(second).toMatchObject({ status: 'FAILED', error: 'RunInProgressError' });
  });

  it('runs both with force, each with its own run id and one snapshot set per volume', async () => {
    const world = worldFromFleet(FLEET);

    const results = await Promise.all([runWorkflow(world, { input: { force: true } }), runWorkflow(world, { input: { force: true } })]);

    expect(results.map((r) => r.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    const runIds = results.map((r) => (r.output as { runId: string }).runId);
    expect(new Set(runIds).size).toBe(2);
    for (const r of results) expect(readReport(world, r)?.summary).toMatchObject({ targeted: 3, succeeded: 3, failed: 0 });
    const dump = world.dump();
    for (const runId of runIds) expect(dump.snapshots.filter((s) => s.tags['vss-snapshots:run-id'] === runId)).toHaveLength(4);
    expect(doubleCommands(dump)).toEqual([]);
    expect(doubleSnapshotSets(world)).toEqual([]);
    expect(dump.published).toEqual([]);
  });
});
