/**
 * The deployed-stack commands end to end: the real binary, with AWS credentials from the environment, against
 * the packaged template deployed into moto_server (test/moto-stack.ts says what moto cannot do and how that
 * is stood in for). Names come from the stack's outputs; executions run the real definition in moto's Step
 * Functions interpreter, whose history `--follow` turns into the local run's progress lines.
 *
 * Skipped, with a printed notice, only when moto_server is not installed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DescribeExecutionCommand, ListExecutionsCommand, SFNClient, StopExecutionCommand } from '@aws-sdk/client-sfn';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildReport } from '../src/lib/report.ts';
import type { RunReport } from '../src/lib/report.ts';
import { runIdFor } from '../src/lib/run-id.ts';
import { leaseKey } from '../src/lib/run-lease.ts';
import { reportKey, stateKey } from '../src/lib/run-state.ts';
import type { InstanceRecord, RunState } from '../src/lib/run-state.ts';
import { motoAvailability, startMoto } from './moto-server.ts';
import type { MotoServer } from './moto-server.ts';
import { deployStack, offlineEnv, packageStack, STACK, STAGE } from './moto-stack.ts';
import type { DeployedStack } from './moto-stack.ts';

const availability = motoAvailability();
if (!availability.available) process.stderr.write(`\n[stack-commands.test.ts] SKIPPED: the deployed-stack commands did not run against moto: ${availability.reason}\n\n`);

const BIN = new URL('../bin/vss-snapshots.mjs', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'vss-stack-cli-'));
const OLD_RUN = '20261201T000000Z-0000000a';
const LAST_RUN = '20261202T000000Z-0000000b';
const GOOD = 'i-0a00000000000000a';
const CC = 'i-0c00000000000000c';

interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

/** A run state as the workflow keeps it: a good instance and one whose snapshots were only crash-consistent. */
function state(runId: string, overrides: Partial<Record<string, Partial<InstanceRecord>>> = {}): RunState {
  // Without fields only some versions of the workflow keep (the wave).
  const runState = (s: Omit<RunState, 'wave'>): RunState => s as RunState;
  const instance = (instanceId: string, name: string, rest: Partial<InstanceRecord>): InstanceRecord => ({
    instanceId,
    name,
    volumes: [{ volumeId: `vol-${instanceId.slice(2)}`, device: '/dev/sda1', boot: true }],
    phase: 'succeeded',
    attempts: 1,
    snapshots: [{ snapshotId: `snap-${instanceId.slice(2)}`, volumeId: `vol-${instanceId.slice(2)}`, device: '/dev/sda1', state: 'completed' }],
    ...rest,
    ...(overrides[instanceId] ?? {}),
  });
  return runState({
    runId,
    executionArn: `arn:aws:states:us-east-1:123456789012:execution:${STACK}-nightly-snapshots:x`,
    startedAt: '2026-12-02T00:00:00.000Z',
    dryRun: false,
    selector: { tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' },
    options: { method: 'aws-vss', excludeBootVolume: false, maxAttempts: 3 },
    notFound: [],
    commands: [],
    instances: [
      instance(GOOD, 'sql-01', {}),
      instance(CC, 'file-01', {
        phase: 'failed',
        attempts: 3,
        code: 'crash-consistent',
        detail: 'Snapshot(s) not tagged AppConsistent=true: snap-0cc1 of /dev/sda1, snap-0cc2 of xvdf. (gave up after 3 attempts)',
        reason: 'Snapshot only crash-consistent: ...',
        snapshots: [],
      }),
    ],
  });
}

/** The report Finish Run writes, with the crash-consistent set the failed instance keeps (contract §4). */
function report(runId: string, bucket: string, s: RunState = state(runId)): RunReport {
  const built = buildReport(s, '2026-12-02T01:05:00.000Z', `s3://${bucket}/${reportKey(runId)}`);
  for (const i of built.instances) {
    if (i.outcome === 'failed') {
      i.fallbackSnapshots = [
        { snapshotId: 'snap-0cc1', volumeId: 'vol-0cc1', device: '/dev/sda1', state: 'completed' },
        { snapshotId: 'snap-0cc2', volumeId: 'vol-0cc2', device: 'xvdf', state: 'completed' },
      ];
    }
  }
  return built;
}

/** A RunContext as the Lambdas return it (moto's "lambda simple" answers with these). */
const context = (counts: Record<string, number>, resumeAt = new Date(), done = false) => ({
  runId: '20000101T000000Z-00000000', // moto's stand-in Lambdas cannot know the run id; --follow takes it from the execution
  dryRun: false,
  done,
  shards: [0],
  shard: 0,
  counts: { send: 0, command: 0, verify: 0, retry: 0, succeeded: 0, failed: 0, skipped: 0, planned: 0, unconfirmed: 0, discard: 0, ...counts },
  waits: { nextSeconds: Math.max(1, Math.round((resumeAt.getTime() - Date.now()) / 1000)), resumeAt: resumeAt.toISOString() },
});
const FINISHED = { runId: 'x', dryRun: false, summary: { targeted: 1, succeeded: 1, failed: 0, skipped: 0, planned: 0, snapshots: 1, fallbackSnapshots: 0 }, reportLocation: 's3://x', alertPublished: false };
const DR_OFF = { enabled: false, done: true, waiting: 0, copying: 0, completed: 0, failed: 0, deletions: 0, waitSeconds: 1 };
const attempt = (state: string, rest: string) => expect.stringMatching(new RegExp(`^${state}( \\(attempts? [0-9-]+ of 3\\))?: ${rest}$`));

/**
 * One retried instance, as the packaged definition runs it in Step Functions: the parent's history has Prepare
 * Run, Discover Instances, the Distributed Map and Finish Run; Advance Instances runs in the shard's child
 * execution, whose history is its own (as in AWS), so --follow tells the instances' fate from the run's state
 * in the report bucket, polled. The Lambdas' answers in order (the shard's Wait lasts long enough for the test
 * to write each state when --follow has printed the previous one), and the step lines --follow prints.
 */
function retryScenario() {
  const later = new Date(Date.now() + 20_000);
  return {
    results: [
      context({}), // Prepare Run
      context({ send: 1 }), // Discover Instances
      context({ command: 1 }, later), // Advance Instances in the shard: sent; then Wait For Work until `later`
      context({ succeeded: 1 }, later, true), // Advance Instances: done
      { mode: 'apply', remaining: 0, deleted: 0, deferred: 0, waitSeconds: 20 }, // Plan Retention: nothing due
      FINISHED,
      DR_OFF, // Plan DR Copies: DR copies off (no DrRegion)
    ],
    waits: [/attempt 1 of 3 failed, will retry/, /attempt 2 of 3 sent$/],
    steps: [attempt('Discover Instances', '1 waiting for a command'), 'Snapshot Shards: 1 shard, each advanced by its own child execution', 'Plan Retention: retention apply, nothing to delete'],
  };
}

describe.skipIf(!availability.available)('the deployed-stack commands against the packaged template in moto', () => {
  let moto: MotoServer;
  let stack: DeployedStack;
  let s3: S3Client;
  let sfn: SFNClient;
  let env: NodeJS.ProcessEnv;

  beforeAll(async () => {
    const [server, template] = await Promise.all([startMoto(), packageStack()]);
    moto = server;
    stack = await deployStack(moto, template);
    s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
    sfn = new SFNClient(moto.clientConfig);
    env = offlineEnv({ AWS_ENDPOINT_URL: moto.endpoint, AWS_ACCESS_KEY_ID: 'test', AWS_SECRET_ACCESS_KEY: 'test', AWS_REGION: 'us-east-1' });
  }, 180_000);

  afterAll(async () => {
    await moto?.stop();
  });

  /** Runs the binary; `onLine` sees each stderr line as it comes (to act while --follow watches). */
  const cli = (args: string[], onLine?: (line: string) => void, extraEnv: Record<string, string> = {}): Promise<Run> =>
    new Promise((resolve) => {
      const child = spawn(process.execPath, [BIN, ...args], { cwd: ROOT, env: { ...env, ...extraEnv } });
      let stdout = '';
      let stderr = '';
      let partial = '';
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
      });
      child.stderr.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        partial += chunk.toString();
        const lines = partial.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) onLine?.(line);
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 90_000);
      child.on('close', (code) => {
        clearTimeout(timer);
        resolve({ status: code ?? -1, stdout, stderr });
      });
    });
  const stage = ['--stage', STAGE];
  const put = (key: string, body: unknown) => s3.send(new PutObjectCommand({ Bucket: stack.reportBucket, Key: key, Body: JSON.stringify(body) }));
  const executions = async () => (await sfn.send(new ListExecutionsCommand({ stateMachineArn: stack.stateMachineArn }))).executions ?? [];
  /** The execution the CLI just started (moto lists it a moment later), with its run id. */
  const startedExecution = async () => {
    let execution;
    for (let i = 0; i < 400 && !execution; i++) {
      execution = (await executions())[0];
      if (!execution) await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const arn = execution?.executionArn ?? '';
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn: arn }));
    return { arn, described, runId: runIdFor(arn, (described.startDate ?? new Date()).toISOString()) };
  };

  it('finds the stack by --stage and says which stack and Region it looked in when there is none', async () => {
    const [missing, empty] = await Promise.all([cli(['report', 'latest', '--stage', 'nope']), cli(['report', 'latest', ...stage])]);

    expect(missing.status).toBe(2);
    expect(missing.stderr).toMatch(/No stack vss-snapshots-nope in us-east-1/);
    expect(empty.status).toBe(2);
    expect(empty.stderr).toMatch(new RegExp(`No run report yet in s3://${stack.reportBucket}/reports/`));
  });

  it('report latest|RUNID|s3://|FILE prints the same summary; the counts keep the crash-consistent fallback apart from usable snapshots', async () => {
    await put(reportKey(OLD_RUN), report(OLD_RUN, stack.reportBucket, state(OLD_RUN, { [CC]: { phase: 'succeeded', attempts: 1, code: undefined } })));
    await put(reportKey(LAST_RUN), report(LAST_RUN, stack.reportBucket));
    const file = join(dir, 'report.json');
    writeFileSync(file, JSON.stringify(report(LAST_RUN, stack.reportBucket)));

    const [latest, byId, byUrl, byFile, old] = await Promise.all([
      cli(['report', 'latest', ...stage]),
      cli(['report', LAST_RUN, ...stage]),
      cli(['report', `s3://${stack.reportBucket}/${reportKey(LAST_RUN)}`]),
      cli(['report', file]),
      cli(['report', OLD_RUN, ...stage]),
    ]);

    expect(latest.status, latest.stderr).toBe(3);
    expect(latest.stdout).toMatch(new RegExp(`Run ${LAST_RUN}`));
    expect(latest.stdout).toMatch(/1 succeeded, 1 failed, 0 skipped of 2 matched; 1 usable snapshot \(verified, application-consistent\); 1 failed instance keeps a crash-consistent fallback set \(2 snapshots, NOT application-consistent\)/);
    expect(latest.stdout).toMatch(/i-0c00000000000000c\s+file-01\s+failed\s+3\s+2 fallback/);
    for (const other of [byId, byUrl, byFile]) {
      expect(other.status).toBe(3);
      expect(other.stdout.replace(/^Report: .*$/m, '')).toBe(latest.stdout.replace(/^Report: .*$/m, ''));
    }
    expect(old.status).toBe(0);
    expect(old.stdout).toMatch(/2 succeeded, 0 failed/);
  });

  it('report --failed --json lists only the failed instances; --failed prints the retry input', async () => {
    const [json, text] = await Promise.all([cli(['report', 'latest', '--failed', '--json', ...stage]), cli(['report', 'latest', '--failed', ...stage])]);

    expect(json.status).toBe(3);
    expect((JSON.parse(json.stdout) as RunReport).instances.map((i) => i.instanceId)).toEqual([CC]);
    expect(text.stdout).not.toMatch(/sql-01/);
    expect(text.stdout).toContain(`{"tagKey":"ConsistentSnapshot","tagValue":"WindowsVSS","instanceIds":["${CC}"]}`);
    expect(text.stdout).toContain(`vss-snapshots retry-failed ${LAST_RUN} --follow`);
  });

  it('start refuses bad input before anything is started', async () => {
    const out = await cli(['start', '--input', '{"instanceID": ["i-0123456789abcdef0"]}', ...stage]);

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/unknown field "instanceID"/);
    expect(await executions()).toEqual([]);
  });

  it('retry-failed latest --follow starts a run for the failed ids and watches it to its end with the local run\'s progress lines', async () => {
    const scenario = retryScenario();
    await stack.queueLambdaResults(scenario.results);
    // The test writes what the handlers would write, when the execution gets there (as --follow prints it).
    // Each expected line, in order, releases the next write.
    const pending = scenario.waits.map((pattern) => {
      let resolve: () => void = () => undefined;
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      return { pattern, resolve, promise };
    });
    let next = 0;
    const watching = cli(['retry-failed', 'latest', '--follow', '--interval', '0.2', ...stage], (line) => {
      const waiting = pending[next];
      if (waiting && waiting.pattern.test(line)) {
        next += 1;
        waiting.resolve();
      }
    });
    const [retryWait, snapshotWait] = pending.map((p) => p.promise);
    const { arn, described, runId } = await startedExecution();
    const at = (instance: Partial<InstanceRecord>) => {
      const s = state(runId, { [CC]: instance });
      s.instances = s.instances.filter((i) => i.instanceId === CC);
      s.selector.instanceIds = [CC];
      return s;
    };
    await put(stateKey(runId), at({ phase: 'retry', attempts: 1, detail: 'Snapshot(s) not tagged AppConsistent=true: snap-1 of /dev/sda1. (attempt 1 of 3; will retry)' }));
    await retryWait;
    await put(stateKey(runId), at({ phase: 'command', attempts: 2 }));
    await snapshotWait;
    const done = at({ phase: 'succeeded', attempts: 2, code: undefined, snapshots: [{ snapshotId: 'snap-2', volumeId: 'vol-1', device: '/dev/sda1', state: 'completed' }] });
    await put(stateKey(runId), done);
    await put(reportKey(runId), buildReport(done, '2026-12-03T00:30:00.000Z', `s3://${stack.reportBucket}/${reportKey(runId)}`));
    const out = await watching;

    expect(JSON.parse(described.input ?? '{}')).toEqual({ tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS', instanceIds: [CC] });
    expect(out.status, `${out.stdout}\n${out.stderr}`).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`Retrying the 1 failed instance of run ${LAST_RUN}`));
    expect(out.stdout).toMatch(new RegExp(`Started run ${runId} of stack ${STACK} \\(us-east-1\\)`));
    expect(out.stderr).toMatch(new RegExp(`Following run ${runId}`));
    const steps = out.stderr.split('\n').filter((l) => /^\[\+/.test(l)).map((l) => l.replace(/^\[\+[0-9:]+\] /, ''));
    expect(steps).toEqual(['Prepare Run: input accepted, no other run in progress; run 20000101T000000Z-00000000', ...scenario.steps, 'Finish Run: report written, no alert needed']);
    const instanceLines = out.stderr.split('\n').filter((l) => l.startsWith('  i-'));
    expect(instanceLines).toEqual([
      '  i-0c00000000000000c (file-01): attempt 1 of 3 failed, will retry: Snapshot(s) not tagged AppConsistent=true: snap-1 of /dev/sda1.',
      '  i-0c00000000000000c (file-01): attempt 2 of 3 sent',
      '  i-0c00000000000000c (file-01): succeeded on attempt 2 of 3',
    ]);
    expect(out.stdout).toMatch(/1 succeeded, 0 failed, 0 skipped of 1 matched; 1 usable snapshot \(verified, application-consistent\)/);
    expect(out.stderr).not.toMatch(/\r|\x1b\[/);
  }, 90_000);

  it('status lists the runs with their outcome, newest first', async () => {
    const [text, json] = await Promise.all([cli(['status', ...stage]), cli(['status', '--json', ...stage])]);

    expect(text.status).toBe(0);
    expect(text.stdout).toMatch(new RegExp(`Stack ${STACK} \\(us-east-1\\), state machine ${STACK}-nightly-snapshots: 0 runs in progress`));
    expect(text.stdout).toMatch(/RUN ID\s+STATUS\s+STARTED \(UTC\)\s+DURATION\s+OUTCOME/);
    expect(text.stdout).toMatch(/SUCCEEDED\s+.*1 succeeded, 0 failed, 0 skipped of 1 matched/);
    const rows = JSON.parse(json.stdout) as { status: string; summary?: { succeeded: number } }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ status: 'SUCCEEDED', summary: { succeeded: 1, failed: 0 } });
  });

  it('start and retry-failed refuse while another run is in progress, and start one when asked to', async () => {
    await stack.freshStateMachine();
    await stack.queueLambdaResults([context({}), context({ send: 1 }), context({ command: 1 }, new Date(Date.now() + 600_000))]);
    const first = await cli(['start', '--input', '{"dryRun": true}', ...stage]);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^Started run [0-9]{8}T[0-9]{6}Z-[0-9a-f]{8} of stack vss-snapshots-e2e \(us-east-1\) with input \{"dryRun":true\}\nExecution: arn:aws:states:us-east-1:123456789012:execution:vss-snapshots-e2e-nightly-snapshots:manual-/);
    const arn = /^Execution: (\S+)$/m.exec(first.stdout)?.[1] ?? '';
    // What its Prepare Run writes (moto's stand-in Lambdas do not): the run lease, held until the report is written.
    const lease = { holder: arn, holderName: arn.split(':').at(-1), acquiredAt: new Date().toISOString(), expiresAt: new Date(Date.now() + 86_400_000).toISOString() };
    await put(leaseKey(stack.stateMachineArn), lease);

    const [start, retry, status] = await Promise.all([cli(['start', ...stage]), cli(['retry-failed', LAST_RUN, ...stage]), cli(['status', ...stage])]);

    for (const refused of [start, retry]) {
      expect(refused.status).toBe(2);
      expect(refused.stderr).toMatch(/is still in progress; nothing was started/);
    }
    expect(status.stdout).toMatch(/1 run in progress/);
    expect(status.stdout).toMatch(/RUNNING/);
    expect((await executions()).filter((e) => e.status === 'RUNNING')).toHaveLength(1);
    for (const refused of [start, retry]) expect(refused.stderr).toContain(`(execution ${arn.split(':').at(-1)})`);

    // Once the run has written its report it releases the lease; its execution may go on for hours (retention,
    // DR copies), and a run started now is accepted (Prepare Run would take the released lease).
    await put(leaseKey(stack.stateMachineArn), { ...lease, released: true });
    expect((await executions()).filter((e) => e.status === 'RUNNING')).toHaveLength(1);
    const later = await cli(['start', '--input', '{"dryRun": true}', ...stage]);
    // Not refused: it goes on to StartExecution (which moto, allowing one start per state machine, then fails).
    expect(later.stderr).not.toMatch(/still in progress/);
    expect(later.stderr).toMatch(/starting an execution of/);
    await sfn.send(new StopExecutionCommand({ executionArn: arn }));
  }, 60_000);

  it('retry-failed with more failed instances than one run takes needs --follow (runs never overlap)', async () => {
    const many = state('20261202T000000Z-0000000c');
    many.instances = Array.from({ length: 1001 }, (_, n) => ({ ...(many.instances[1] as InstanceRecord), instanceId: `i-${n.toString(16).padStart(17, '0')}` }));
    const file = join(dir, 'many.json');
    writeFileSync(file, JSON.stringify(buildReport(many, '2026-12-02T01:00:00.000Z', 's3://x/y')));

    const out = await cli(['retry-failed', file, ...stage]);

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/has 1,001 failed instances: that is 2 runs of at most 1,000, which cannot overlap\. Add --follow/);
  });

  it('--follow stops at the report when the execution goes on copying to the DR Region for hours', async () => {
    await stack.freshStateMachine();
    await stack.queueLambdaResults([
      context({}), // Prepare Run
      context({ send: 1 }), // Discover Instances
      context({ succeeded: 1 }, new Date(), true), // Advance Instances in the shard: done
      { mode: 'apply', remaining: 0, deleted: 0, deferred: 0, waitSeconds: 20 }, // Plan Retention
      FINISHED,
      // Plan DR Copies: two copies to make; the execution then waits an hour for them (Wait For Copies).
      { enabled: true, done: false, waiting: 2, copying: 0, completed: 0, failed: 0, deletions: 0, waitSeconds: 3600 },
    ]);
    const watching = cli(['start', '--follow', '--interval', '0.2', ...stage]);
    const { arn, described, runId } = await startedExecution();
    const done = state(runId, { [CC]: { phase: 'succeeded', attempts: 1, code: undefined, snapshots: [{ snapshotId: 'snap-2', volumeId: 'vol-1', device: '/dev/sda1', state: 'completed' }] } });
    await put(reportKey(runId), buildReport(done, '2026-12-03T00:30:00.000Z', `s3://${stack.reportBucket}/${reportKey(runId)}`));

    const out = await watching;

    expect(out.status, `${out.stdout}\n${out.stderr}`).toBe(0);
    expect(out.stderr).toMatch(/its execution goes on in the background/);
    expect(out.stdout).toMatch(/2 succeeded, 0 failed/);
    expect((await sfn.send(new DescribeExecutionCommand({ executionArn: arn }))).status).toBe('RUNNING');
    await sfn.send(new StopExecutionCommand({ executionArn: arn }));
  }, 120_000);
});
