/**
 * `vss-snapshots bench`: one run of the real workflow (the ASL and the handlers, unchanged) on a generated
 * simulated account of N instances, measured the way AWS would bill and limit it: API calls against their
 * floor, state transitions, history events, payload sizes, Lambda GB-seconds, the run-state object's size
 * and S3 traffic, simulated and wall time, and the orchestration cost in USD.
 */
import { loadConfig } from '../lib/config.ts';
import { reportKey } from '../lib/run-state.ts';
import type { RunReport } from '../lib/report.ts';
import { DEFAULT_LIMITS, accountLimits, withSsmRate } from '../local/limits.ts';
import type { LimitStats, LimitsConfig } from '../local/limits.ts';
import { REPORT_BUCKET, flattenStates, loadDefinition, runWorkflow } from '../local/runner.ts';
import type { EventLog, LocalRunResult } from '../local/runner.ts';
import type { CallInterceptor } from '../local/transport.ts';
import { worldFromFleet } from '../local/world.ts';
import type { World } from '../local/world.ts';
import { DR_STATES, drBenchResult, seedPreviousCopies } from './dr.ts';
import type { DrBenchResult } from './dr.ts';
import { benchFleet } from './fleet.ts';
import type { BenchFleetOptions } from './fleet.ts';
import { lambdaSettings, settingsFor } from './lambda-config.ts';
import { PRICES } from './prices.ts';

export interface BenchOptions extends BenchFleetOptions {
  /** EC2 token buckets, the SSM rate and call latency (limits.ts). */
  pressure: boolean;
  /** Assumed SSM read rate per second (write = half); default limits.ts. */
  ssmRate?: number;
  /** Extra Lambda environment (e.g. SEND_SLICE_INSTANCES). */
  env?: Record<string, string>;
  /** A line of progress now and then (stderr in the CLI). */
  progress?: (line: string) => void;
  /** DR copies into this Region of the simulated account (bench --dr-region). */
  drRegion?: string;
  /** DR_COPY_CONCURRENCY (default 20, AWS's quota). */
  drConcurrency?: number;
  /** Every volume already has an earlier copy in the DR Region: tonight's copies are incremental. */
  drSteady?: boolean;
}

export const BENCH_DEFAULTS = { volumes: 2, failRate: 0, hangRate: 0, commandSeconds: 60, snapshotMinutes: 10, pressure: true } as const;

/** Step Functions' limits and the issue's targets (issue 6). */
export const LIMITS = { historyEvents: 25_000, payloadBytes: 262_144 } as const;
export const TARGETS = {
  apiCallsPerFloor: 2,
  transitionsPerInstance: 0.05,
  historyEvents: 25_000,
  payloadBytes: 131_072,
  slackSeconds: 300,
  /** Per 10,000 instances (issue 15). */
  costPer10kUsd: 0.02,
  wallSeconds: 120,
  /** Across fleet sizes, each per-instance figure may change by at most this factor (issue 15). */
  perInstanceSpread: 1.3,
  /** A retry is sent within retryDelay + this many poll intervals of its failure (issue 15). */
  retryPolls: 2,
} as const;

export interface Target {
  name: string;
  limit: number;
  value: number;
  met: boolean;
}

export interface BenchResult {
  instances: number;
  volumes: number;
  failRate: number;
  hangRate: number;
  commandSeconds: number;
  snapshotMinutes: number;
  status: LocalRunResult['status'];
  error?: string;
  pressure: null | { assumptions: string; throttled: Record<string, number>; latencySeconds: number; instanceCreateSnapshots: LimitStats['instance'] };
  apiCalls: {
    total: number;
    floor: number;
    ratio: number;
    perInstance: number;
    floorPerInstance: number;
    byOperation: Record<string, number>;
    floors: Record<string, number>;
    ratios: Record<string, number | null>;
  };
  stateTransitions: number;
  stateTransitionsPerInstance: number;
  maxHistoryEvents: number;
  executions: number;
  maxPayloadBytes: number;
  lambda: {
    invocations: number;
    gbSeconds: number;
    memoryMb: number;
    architecture: string;
    settingsFrom: string;
    billedSeconds: number;
    maxInvocationSeconds: number;
    maxInvocationState: string;
    timeoutSeconds: number;
    byState: Record<string, { invocations: number; seconds: number; maxSeconds: number }>;
  };
  runState: { bytes: number; bytesPerInstance: number; reportBytes: number; s3Gets: number; s3Puts: number; mbRead: number; mbWritten: number };
  simulatedSeconds: number;
  rateForcedSeconds: number;
  wallSeconds: number;
  costUsd: number;
  costPer10kUsd: number;
  /** What one instance costs the orchestration, whatever the fleet size (issue 15: flat from 1,000 to 100,000). */
  perInstance: { apiCalls: number; gbSeconds: number; s3Bytes: number; stateTransitions: number };
  /**
   * Start of the run to the final outcome (the report's finishedAt) of the instances set to succeed on their
   * first attempt: what a hung or failing batch-mate must not delay.
   */
  latency: { healthyInstances: number; healthyP50Seconds: number | null; healthyP99Seconds: number | null };
  /**
   * Failure of an attempt (its invocation final) to the first SendCommand call of the next one, over every
   * retried instance; and to the command SSM then recorded (later when that call's answer was lost and the
   * send had to wait out the 5-minute confirm window before it could safely go again).
   */
  retry: { retried: number; maxSecondsAfterFailure: number | null; maxSecondsUntilRecorded: number | null; limitSeconds: number; retriedAfterSnapshotCheck: number };
  cost: { stepFunctions: number; lambdaCompute: number; lambdaRequests: number; s3Requests: number; sns: number; pricesAsOf: string; region: string };
  summary: { targeted: number; succeeded: number; failed: number; skipped: number };
  alert: null | { subject: string; namedInstances: number; more: number | null; bytes: number };
  targets: Target[];
  /** With --dr-region: the DR pass of the night (bench/dr.ts). */
  dr?: DrBenchResult | null;
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const wallStart = performance.now();
  const fleet = benchFleet(options);
  const world = worldFromFleet(fleet);
  if (options.drRegion && options.drSteady) seedPreviousCopies(world, options.drRegion);
  // More copies in flight than AWS's 20 needs a quota increase: the simulated account is given it.
  if (options.drConcurrency !== undefined && options.drConcurrency > world.dr.copyQuota) world.dr.copyQuota = options.drConcurrency;
  const drEnv = options.drRegion ? { DR_REGION: options.drRegion, ...(options.drConcurrency ? { DR_COPY_CONCURRENCY: String(options.drConcurrency) } : {}) } : {};
  const drCounts = { transitions: 0, advanceInvocations: 0 };
  const drRegionCalls: Record<string, number> = {};
  const drCalls: CallInterceptor = (call) => {
    if (options.drRegion && call.region === options.drRegion) drRegionCalls[`${call.service}:${call.operation}`] = (drRegionCalls[`${call.service}:${call.operation}`] ?? 0) + 1;
  };
  const limitsConfig: LimitsConfig = options.ssmRate !== undefined ? withSsmRate(DEFAULT_LIMITS, options.ssmRate) : DEFAULT_LIMITS;
  const limits = options.pressure ? accountLimits(world, limitsConfig) : undefined;
  const s3 = s3Meter(world);
  const sends = sendAttempts(world);
  const progress = progressReporter(world, options.progress);

  let result: LocalRunResult;
  try {
    result = await runWorkflow(world, {
      env: { ...options.env, ...drEnv },
      // The send recorder first: it sees every SendCommand call, the throttled and the lost ones too.
      interceptors: [sends.interceptor, drCalls, ...(limits ? [limits.interceptor] : []), s3.interceptor],
      onEvent: (event) => {
        if ((event.type === 'StateEntered' || event.type === 'StateRetried') && DR_STATES.has(event.state.name)) {
          drCounts.transitions += 1;
          if (event.type === 'StateEntered' && event.state.name === 'Advance DR Copies') drCounts.advanceInvocations += 1;
        }
        progress(event);
      },
    });
  } finally {
    limits?.uninstall();
  }
  const wallSeconds = (performance.now() - wallStart) / 1000;
  const report = readReport(world, result);

  const byOperation = Object.fromEntries(Object.entries(world.apiCalls).sort(([a], [b]) => a.localeCompare(b)));
  const floors = apiFloors(world, report);
  for (const op of Object.keys(byOperation)) floors[op] ??= 0;
  const total = sum(Object.values(byOperation));
  const floor = sum(Object.values(floors));
  const n = options.instances;
  const ratios = Object.fromEntries(Object.keys(floors).sort().map((op) => [op, floors[op] ? round((byOperation[op] ?? 0) / (floors[op] ?? 1), 2) : null]));

  const settings = lambdaSettings();
  let gbSeconds = 0;
  let computeUsd = 0;
  let maxInvocation = { seconds: 0, state: '', timeout: settings.provider.timeoutSeconds };
  const byState: BenchResult['lambda']['byState'] = {};
  const functionKeys = taskFunctionKeys();
  for (const [state, t] of Object.entries(result.stats.byState)) {
    const fn = settingsFor(settings, functionKeys.get(state) ?? state);
    const gb = (fn.memoryMb / 1024) * (t.billedMs / 1000);
    gbSeconds += gb;
    computeUsd += gb * (PRICES.lambdaPerGbSecond[fn.architecture] ?? PRICES.lambdaPerGbSecond.x86_64 ?? 0);
    byState[state] = { invocations: t.invocations, seconds: round(t.billedMs / 1000, 1), maxSeconds: round(t.maxMs / 1000, 1) };
    if (t.maxMs / 1000 > maxInvocation.seconds) maxInvocation = { seconds: t.maxMs / 1000, state, timeout: fn.timeoutSeconds };
  }

  const stats = result.stats;
  const cost = {
    stepFunctions: stats.stateTransitions * PRICES.stepFunctionsPerTransition,
    lambdaCompute: computeUsd,
    lambdaRequests: stats.lambdaInvocations * PRICES.lambdaPerRequest,
    s3Requests: (byOperation['s3:PutObject'] ?? 0) * PRICES.s3PerPut + (byOperation['s3:GetObject'] ?? 0) * PRICES.s3PerGet,
    sns: (byOperation['sns:Publish'] ?? 0) * PRICES.snsPerPublish,
  };
  const costUsd = cost.stepFunctions + cost.lambdaCompute + cost.lambdaRequests + cost.s3Requests + cost.sns;

  const createSnapshots = limitsConfig.ec2.createSnapshots;
  // Every CreateSnapshots call that got through had to wait for its token: the least time the bucket forces.
  const granted = limits ? limits.stats.instance.calls - limits.stats.instance.failed : 0;
  const rateForcedSeconds = Math.max(0, (granted - createSnapshots.burst) / createSnapshots.perSecond);
  const alert = report?.alert ? describeAlert(report.alert) : null;
  const summary = { targeted: report?.summary.targeted ?? 0, succeeded: report?.summary.succeeded ?? 0, failed: report?.summary.failed ?? 0, skipped: report?.summary.skipped ?? 0 };

  const out: BenchResult = {
    instances: n,
    volumes: options.volumes,
    failRate: options.failRate,
    hangRate: options.hangRate,
    commandSeconds: options.commandSeconds,
    snapshotMinutes: options.snapshotMinutes,
    status: result.status,
    ...(result.error ? { error: `${result.error}: ${result.cause ?? ''}` } : {}),
    pressure: limits
      ? {
          assumptions: describeLimits(limitsConfig),
          throttled: limits.stats.throttled,
          latencySeconds: round(limits.stats.latencyMs / 1000, 1),
          instanceCreateSnapshots: { ...limits.stats.instance, maxWaitMs: Math.round(limits.stats.instance.maxWaitMs) },
        }
      : null,
    apiCalls: {
      total,
      floor,
      ratio: round(total / Math.max(1, floor), 2),
      perInstance: round(total / Math.max(1, n), 4),
      floorPerInstance: round(floor / Math.max(1, n), 4),
      byOperation,
      floors: Object.fromEntries(Object.entries(floors).sort(([a], [b]) => a.localeCompare(b))),
      ratios,
    },
    stateTransitions: stats.stateTransitions,
    stateTransitionsPerInstance: round(stats.stateTransitions / Math.max(1, n), 4),
    maxHistoryEvents: stats.historyEvents,
    executions: stats.executions,
    maxPayloadBytes: stats.maxPayloadBytes,
    lambda: {
      invocations: stats.lambdaInvocations,
      gbSeconds: round(gbSeconds, 2),
      memoryMb: settings.provider.memoryMb,
      architecture: settings.provider.architecture,
      settingsFrom: settings.source,
      billedSeconds: round(sum(Object.values(result.stats.byState).map((t) => t.billedMs)) / 1000, 1),
      maxInvocationSeconds: round(maxInvocation.seconds, 1),
      maxInvocationState: maxInvocation.state,
      timeoutSeconds: maxInvocation.timeout,
      byState,
    },
    runState: {
      bytes: s3.stateBytes,
      bytesPerInstance: Math.round(s3.stateBytes / Math.max(1, n)),
      reportBytes: s3.reportBytes,
      s3Gets: s3.stateGets,
      s3Puts: s3.statePuts,
      mbRead: round(s3.bytesRead / 1e6, 1),
      mbWritten: round(s3.bytesWritten / 1e6, 1),
    },
    simulatedSeconds: stats.simulatedSeconds,
    rateForcedSeconds: Math.round(rateForcedSeconds),
    wallSeconds: round(wallSeconds, 1),
    costUsd: round(costUsd, 5),
    costPer10kUsd: round((costUsd / Math.max(1, n)) * 10_000, 5),
    perInstance: {
      apiCalls: round(total / Math.max(1, n), 4),
      gbSeconds: round(gbSeconds / Math.max(1, n), 6),
      s3Bytes: Math.round((s3.bytesRead + s3.bytesWritten) / Math.max(1, n)),
      stateTransitions: round(stats.stateTransitions / Math.max(1, n), 4),
    },
    latency: healthyLatency(fleet, world, report),
    retry: retryLag(world, sends.firstAt, limitsOfRetry(options.env)),
    cost: { ...roundAll(cost, 6), pricesAsOf: PRICES.asOf, region: PRICES.region },
    summary,
    alert,
    targets: [],
    ...(options.drRegion
      ? {
          dr: drBenchResult(world, report?.runId, Date.parse(report?.startedAt ?? new Date(world.now).toISOString()), drCounts, {
            region: options.drRegion,
            concurrency: options.drConcurrency ?? 20,
            steady: options.drSteady === true,
            drRegionCalls,
          }),
        }
      : {}),
  };
  out.targets = evaluateTargets(out);
  return out;
}

/** The targets, judged on this run (they are stated for 10,000 healthy instances). */
export function evaluateTargets(r: BenchResult): Target[] {
  const t = (name: string, limit: number, value: number): Target => ({ name, limit: round(limit, 4), value, met: value <= limit });
  const expectedFailures = Math.round(r.instances * r.failRate) + Math.round(r.instances * r.hangRate);
  const targets = [
    t('failed instances ≤ those set to fail or hang', expectedFailures, r.summary.failed),
    t('API calls ≤ 2 × floor', round(TARGETS.apiCallsPerFloor * r.apiCalls.floor, 0), r.apiCalls.total),
    t('state transitions per instance ≤ 0.05', TARGETS.transitionsPerInstance, r.stateTransitionsPerInstance),
    t('history events per execution ≤ 25,000', TARGETS.historyEvents, r.maxHistoryEvents),
    t('largest payload ≤ 128 KiB', TARGETS.payloadBytes, r.maxPayloadBytes),
    t('cost per 10,000 instances ≤ $0.02', TARGETS.costPer10kUsd, r.costPer10kUsd),
    t('Lambda invocation ≤ its timeout', r.lambda.timeoutSeconds, r.lambda.maxInvocationSeconds),
    t('bench wall seconds ≤ 120', TARGETS.wallSeconds, r.wallSeconds),
  ];
  // A healthy night ends within command + snapshot + 5 min (and what EC2's CreateSnapshots rate forces); hung
  // or failing instances make it longer by their deadlines and retry delays, so only a healthy fleet is held to it.
  if (r.failRate === 0 && r.hangRate === 0) {
    targets.splice(5, 0, t('simulated seconds ≤ command + snapshot + 5 min + rate-forced', r.commandSeconds + r.snapshotMinutes * 60 + TARGETS.slackSeconds + r.rateForcedSeconds, r.simulatedSeconds));
  }
  if (r.retry.maxSecondsAfterFailure !== null) targets.push(t('retry sent ≤ retryDelay + 2 polls after its failure (s)', r.retry.limitSeconds, r.retry.maxSecondsAfterFailure));
  return targets;
}

/**
 * Several sizes of one bench: how much each per-instance figure changes from the smallest fleet of at least
 * 1,000 instances to the largest (issue 15: at most 1.3×, up or down). Null with fewer than two such sizes.
 */
export function scaling(results: BenchResult[]): null | { from: number; to: number; spread: Record<keyof BenchResult['perInstance'], number>; targets: Target[] } {
  const sized = results.filter((r) => r.instances >= 1000).sort((a, b) => a.instances - b.instances);
  const first = sized[0];
  const last = sized.at(-1);
  if (!first || !last || first === last) return null;
  const keys = Object.keys(first.perInstance) as (keyof BenchResult['perInstance'])[];
  const spread = Object.fromEntries(
    keys.map((k) => {
      const values = sized.map((r) => r.perInstance[k]);
      const lo = Math.min(...values);
      return [k, lo > 0 ? round(Math.max(...values) / lo, 3) : 1];
    }),
  ) as Record<keyof BenchResult['perInstance'], number>;
  const targets = keys.map((k) => ({ name: `per-instance ${k}: largest ÷ smallest ≤ ${TARGETS.perInstanceSpread}`, limit: TARGETS.perInstanceSpread, value: spread[k], met: spread[k] <= TARGETS.perInstanceSpread }));
  return { from: first.instances, to: last.instances, spread, targets };
}

/** p50/p99 of start → finishedAt over the instances the fleet sets to succeed on their first attempt. */
function healthyLatency(fleet: ReturnType<typeof benchFleet>, world: World, report: RunReport | undefined): BenchResult['latency'] {
  const healthyNames = new Set(fleet.instances.filter((i) => i.attempts.length === 1 && i.attempts[0] === 'ok').map((i) => i.name));
  const start = report ? Date.parse(report.startedAt) : NaN;
  const nameOf = new Map([...world.instances.values()].map((i) => [i.instanceId, i.name]));
  const seconds = (report?.instances ?? [])
    .filter((i) => healthyNames.has(nameOf.get(i.instanceId) ?? '') && i.finishedAt)
    .map((i) => (Date.parse(i.finishedAt as string) - start) / 1000)
    .sort((a, b) => a - b);
  const pct = (p: number) => (seconds.length ? round(seconds[Math.min(seconds.length - 1, Math.ceil((p / 100) * seconds.length) - 1)] as number, 1) : null);
  return { healthyInstances: seconds.length, healthyP50Seconds: pct(50), healthyP99Seconds: pct(99) };
}

/** Retry delay and poll interval of the run (the Lambda environment, or the defaults of config.ts). */
function limitsOfRetry(env: Record<string, string> | undefined): number {
  const config = loadConfig({ ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:bench', REPORT_BUCKET: REPORT_BUCKET, ...env });
  return config.retryDelaySeconds + TARGETS.retryPolls * config.commandPollSeconds;
}

const attemptOf = (comment: string | undefined) => Number(/ attempt ([0-9]+) /.exec(comment ?? '')?.[1] ?? 0);

/** When each instance's attempt was first asked of SSM (`instanceId attempt` → virtual ms), lost calls included. */
function sendAttempts(world: World): { interceptor: CallInterceptor; firstAt: Map<string, number> } {
  const firstAt = new Map<string, number>();
  return {
    firstAt,
    interceptor: ({ service, operation, input }) => {
      if (service !== 'ssm' || operation !== 'SendCommand') return;
      const attempt = attemptOf(typeof input.Comment === 'string' ? input.Comment : undefined);
      for (const id of (input.InstanceIds as string[] | undefined) ?? []) {
        const key = `${id} ${attempt}`;
        if (!firstAt.has(key)) firstAt.set(key, world.now);
      }
    },
  };
}

/**
 * For every instance sent a later attempt after its command failed: when that invocation became final (the
 * failure, from the simulated account's own records) to the first SendCommand call of the next attempt, and to
 * the command SSM recorded for it. Retries after a command that succeeded but left unusable snapshots are only
 * counted (their failure is the snapshot check's, minutes later).
 */
function retryLag(world: World, firstAt: Map<string, number>, limitSeconds: number): BenchResult['retry'] {
  const byInstance = new Map<string, { attempt: number; requestedAt: number; finishAt: number; commandFailed: boolean }[]>();
  for (const command of world.commands.values()) {
    const attempt = attemptOf(command.comment);
    for (const invocation of command.invocations) {
      const list = byInstance.get(invocation.instanceId) ?? [];
      list.push({ attempt, requestedAt: command.requestedAt, finishAt: invocation.finishAt, commandFailed: invocation.final.status !== 'Success' });
      byInstance.set(invocation.instanceId, list);
    }
  }
  let retried = 0;
  let afterSnapshotCheck = 0;
  let worst: number | null = null;
  let worstRecorded: number | null = null;
  for (const [instanceId, sends] of byInstance) {
    sends.sort((a, b) => a.requestedAt - b.requestedAt);
    for (let k = 1; k < sends.length; k += 1) {
      const before = sends[k - 1];
      const next = sends[k];
      if (!before || !next || next.attempt <= before.attempt || !Number.isFinite(before.finishAt)) continue;
      // A command that succeeded but left unusable snapshots fails later, when they are judged (complete, and a
      // missing snapshot or AppConsistent tag only after the consistency grace): not a failure of the command.
      if (!before.commandFailed) {
        afterSnapshotCheck += 1;
        continue;
      }
      retried += 1;
      const recorded = (next.requestedAt - before.finishAt) / 1000;
      const asked = ((firstAt.get(`${instanceId} ${next.attempt}`) ?? next.requestedAt) - before.finishAt) / 1000;
      worst = worst === null ? asked : Math.max(worst, asked);
      worstRecorded = worstRecorded === null ? recorded : Math.max(worstRecorded, recorded);
    }
  }
  const r = (x: number | null) => (x === null ? null : round(x, 1));
  return { retried, maxSecondsAfterFailure: r(worst), maxSecondsUntilRecorded: r(worstRecorded), limitSeconds, retriedAfterSnapshotCheck: afterSnapshotCheck };
}

/**
 * The fewest calls that could do the run's work: one listing of the instances (1,000 a page) and of their
 * agents (50 a page); per attempt wave, one SendCommand per 50 instances, one ListCommands sweep (50
 * commands a page), one ListCommandInvocations page per command and one DescribeSnapshots listing (1,000 a
 * page); every deletion and cancellation once; the report written once, the alert published once, the
 * run lease (one read, a write to take it, one to release it). Reading and writing the run-state object is the design's own overhead.
 */
export function apiFloors(world: World, report: RunReport | undefined): Record<string, number> {
  const instances = report?.instances ?? [];
  const candidates = instances.filter((i) => i.outcome !== 'skipped').length;
  const floors: Record<string, number> = {
    // The run lease: read once, written to take it and to release it.
    's3:GetObject': 2,
    's3:PutObject': report ? 3 : 2,
    'ec2:DescribeInstances': Math.max(1, Math.ceil(instances.length / 1000)),
    'ssm:DescribeInstanceInformation': Math.ceil(candidates / 50),
  };
  const maxAttempt = Math.max(0, ...instances.map((i) => i.attempts));
  let send = 0;
  let sweeps = 0;
  for (let a = 1; a <= maxAttempt; a += 1) {
    const commands = Math.ceil(instances.filter((i) => i.attempts >= a).length / 50);
    send += commands;
    sweeps += Math.ceil(commands / 50);
  }
  floors['ssm:SendCommand'] = send;
  floors['ssm:ListCommands'] = sweeps;
  floors['ssm:ListCommandInvocations'] = send;

  // One DescribeSnapshots listing per wave in which some command succeeded (there is something to verify).
  const attemptOf = (comment: string | undefined) => Number(/ attempt ([0-9]+) /.exec(comment ?? '')?.[1] ?? 0);
  const verifiedWaves = new Set<number>();
  let cancelled = 0;
  for (const command of world.commands.values()) {
    if (command.invocations.some((i) => i.status === 'Success')) verifiedWaves.add(attemptOf(command.comment));
    if (command.invocations.some((i) => i.status === 'Cancelled')) cancelled += 1;
  }
  const snapshotsByAttempt = new Map<number, number>();
  for (const s of world.snapshots.values()) {
    const attempt = Number(s.tags['vss-snapshots:attempt'] ?? 0);
    snapshotsByAttempt.set(attempt, (snapshotsByAttempt.get(attempt) ?? 0) + 1);
  }
  floors['ec2:DescribeSnapshots'] = sum([...verifiedWaves].map((a) => Math.max(1, Math.ceil((snapshotsByAttempt.get(a) ?? 0) / 1000))));
  const deleted = [...world.snapshots.values()].filter((s) => s.deleted).length;
  if (deleted > 0) floors['ec2:DeleteSnapshot'] = deleted;
  if (cancelled > 0) floors['ssm:CancelCommand'] = cancelled;
  // A failed invocation's whole output is read once (GetCommandInvocation: the listing cuts it).
  const failedScripts = [...world.commands.values()].reduce((n, c) => n + c.invocations.filter((i) => i.status === 'Failed' && i.statusDetails === 'Failed').length, 0);
  if (failedScripts > 0) floors['ssm:GetCommandInvocation'] = failedScripts;
  // A kept crash-consistent fallback set is labelled (one CreateTags per failure code, 1,000 snapshots a call).
  const fallbacks = [...world.snapshots.values()].filter((s) => !s.deleted && s.tags['vss-snapshots:fallback']).length;
  if (fallbacks > 0) floors['ec2:CreateTags'] = Math.ceil(fallbacks / 1000);
  if (report?.alert) floors['sns:Publish'] = 1;
  return floors;
}

interface S3Meter {
  interceptor: CallInterceptor;
  stateBytes: number;
  reportBytes: number;
  stateGets: number;
  statePuts: number;
  bytesRead: number;
  bytesWritten: number;
}

/** Sizes and traffic of the run-state object (runs/<id>/state.json) and the report. */
function s3Meter(world: World): S3Meter {
  const meter: S3Meter = {
    stateBytes: 0,
    reportBytes: 0,
    stateGets: 0,
    statePuts: 0,
    bytesRead: 0,
    bytesWritten: 0,
    interceptor: ({ service, operation, input }) => {
      if (service !== 's3') return;
      const key = String(input.Key ?? '');
      // The run object and its shards (runs/<id>/state.json, runs/<id>/shards/<n>.json).
      const isState = /^runs\/[^/]+\/(state|shards\/[0-9]+)\.json$/.test(key);
      if (operation === 'GetObject') {
        const bytes = Buffer.byteLength(world.buckets.get(String(input.Bucket))?.get(key) ?? '');
        meter.bytesRead += bytes;
        if (isState) meter.stateGets += 1;
      }
      if (operation === 'PutObject') {
        const bytes = typeof input.Body === 'string' ? Buffer.byteLength(input.Body) : input.Body instanceof Uint8Array ? input.Body.byteLength : 0;
        meter.bytesWritten += bytes;
        if (isState) {
          meter.statePuts += 1;
          meter.stateBytes = Math.max(meter.stateBytes, bytes);
        }
        if (key.startsWith('reports/')) meter.reportBytes = bytes;
      }
    },
  };
  return meter;
}

/** The function key of each Task state (parent and Map children): which Lambda settings it runs with. */
function taskFunctionKeys(): Map<string, string> {
  const keys = new Map<string, string>();
  for (const [name, state] of Object.entries(flattenStates(loadDefinition().States as never) as Record<string, { Type: string; Resource?: string }>)) {
    if (state.Type === 'Task') keys.set(name, /function:vss-snapshots-([A-Za-z0-9]+)$/.exec(state.Resource ?? '')?.[1] ?? name);
  }
  return keys;
}

function progressReporter(world: World, write: ((line: string) => void) | undefined): (event: EventLog) => void {
  if (!write) return () => undefined;
  const start = world.now;
  let last = 0;
  return (event) => {
    if (event.type !== 'StateExited' || event.state.type !== 'Task') return;
    const now = performance.now();
    const out = event.state.output as { counts?: Record<string, number> } | undefined;
    if (now - last < 2000 && event.state.name !== 'Finish Run') return;
    last = now;
    const c = out?.counts;
    const counts = c ? ` to send ${c.send}, running ${c.command}, verifying ${c.verify}, to retry ${c.retry}, succeeded ${c.succeeded}, failed ${c.failed}` : '';
    write(`  [+${Math.round((world.now - start) / 1000)} s simulated] ${event.state.name}:${counts}`);
  };
}

function readReport(world: World, result: LocalRunResult): RunReport | undefined {
  const runId = (result.output as { runId?: string } | undefined)?.runId;
  const objects = world.buckets.get(REPORT_BUCKET);
  const key = runId ? reportKey(runId) : [...(objects?.keys() ?? [])].filter((k) => k.startsWith('reports/')).sort().at(-1);
  const text = key ? objects?.get(key) : undefined;
  return text ? (JSON.parse(text) as RunReport) : undefined;
}

function describeAlert(alert: { subject: string; message: string }): NonNullable<BenchResult['alert']> {
  const named = alert.message.split('\n').filter((l) => l.startsWith('- ')).length;
  const more = /and ([0-9]+) more/.exec(alert.message);
  return { subject: alert.subject, namedInstances: named, more: more ? Number(more[1]) : null, bytes: Buffer.byteLength(alert.message) };
}

function describeLimits(c: LimitsConfig): string {
  const b = (s: { burst: number; perSecond: number }) => `${s.burst}/${s.perSecond}/s`;
  return (
    `EC2 non-mutating ${b(c.ec2.nonMutating)}, unfiltered ${b(c.ec2.unfilteredNonMutating)}, CreateSnapshots ${b(c.ec2.createSnapshots)} ` +
    `(instances wait at most ${c.instanceMaxWaitMs / 1000} s: the VSS freeze), DeleteSnapshot ${b(c.ec2.deleteSnapshot)}; ` +
    `SSM (assumed) read ${b(c.ssm.read)}, SendCommand/CancelCommand ${b(c.ssm.write)} per API; latency per call ${c.latencyMs.default} ms ` +
    `(DescribeInstances ${c.latencyMs['ec2:DescribeInstances']} ms, DescribeSnapshots ${c.latencyMs['ec2:DescribeSnapshots']} ms, SendCommand ${c.latencyMs['ssm:SendCommand']} ms), ` +
    `S3 ${c.latencyMs.s3} ms + ${c.s3BytesPerSecond / 1e6} MB/s`
  );
}

const sum = (values: number[]): number => values.reduce((a, b) => a + b, 0);
const round = (value: number, digits: number): number => Number(value.toFixed(digits));
const roundAll = <T extends Record<string, number>>(o: T, digits: number): T => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, round(v, digits)])) as T;
