/**
 * Runs the real state machine definition (statemachine/*.asl.json, unchanged) with the real handlers
 * against a simulated account, as Step Functions and Lambda would: ARNs substituted like
 * DefinitionSubstitutions, each Task's payload passed through JSON as Lambda does, Wait states costing
 * virtual time instead of real time.
 */
import './polyfill.ts';
import { readFileSync } from 'node:fs';
import { StateMachine } from 'aws-local-stepfunctions';
import type { StateMachineDefinition } from 'aws-local-stepfunctions';
import { DOCUMENTS } from '../documents/document-parameters.ts';
import { clients } from '../lib/clients.ts';
import { worldFaultInterceptors } from './faults.ts';
import { seededRandom, streamSeed } from './random.ts';
import { VirtualScheduler } from './scheduler.ts';
import { installWorld } from './transport.ts';
import type { CallInterceptor } from './transport.ts';
import { ACCOUNT_ID, REGION } from './world.ts';
import type { SimDocument, World } from './world.ts';

/** One event of the local execution's log (state entered/exited, retried, caught, ...). */
export type EventLog = ReturnType<StateMachine['run']>['eventLogs'] extends AsyncGenerator<infer E> ? E : never;

/** The state machines of the stack: each runs here from its own statemachine/*.asl.json, unchanged. */
export const WORKFLOWS = {
  nightly: { file: 'nightly-snapshots.asl.json', stateMachineName: 'vss-snapshots-nightly' },
  restore: { file: 'restore.asl.json', stateMachineName: 'vss-snapshots-restore' },
} as const;
export type WorkflowName = keyof typeof WORKFLOWS;

export const STATE_MACHINE_NAME = WORKFLOWS.nightly.stateMachineName;
export const stateMachineArn = (workflow: WorkflowName) => `arn:aws:states:${REGION}:${ACCOUNT_ID}:stateMachine:${WORKFLOWS[workflow].stateMachineName}`;
export const STATE_MACHINE_ARN = stateMachineArn('nightly');
export const TOPIC_ARN = `arn:aws:sns:${REGION}:${ACCOUNT_ID}:vss-snapshots-alerts`;
export const REPORT_BUCKET = `vss-snapshots-reports-${ACCOUNT_ID}`;
export const DISKSHADOW_DOCUMENT = 'VssSnapshots-DiskShadowSnapshot';
export const RESTORE_DOCUMENT = 'VssSnapshots-DiskShadowRestore';

/** Handler modules by the ASL placeholder's function key (`${AdvanceInstancesFunctionArn}`), all workflows. */
const HANDLER_MODULES: Record<string, string> = {
  ValidateRestoreInput: '../handlers/restore-validate-input.ts',
  PlanRestore: '../handlers/restore-plan.ts',
  CreateRestoreVolumes: '../handlers/restore-create-volumes.ts',
  CheckRestoreVolumes: '../handlers/restore-check-volumes.ts',
  AttachRestoreVolumes: '../handlers/restore-attach-volumes.ts',
  SendRevertCommand: '../handlers/restore-send-revert.ts',
  CheckRevertCommand: '../handlers/restore-check-revert.ts',
  FinishRestore: '../handlers/restore-finish.ts',
  CleanUpRestore: '../handlers/restore-clean-up.ts',
  PrepareRun: '../handlers/prepare-run.ts',
  DiscoverInstances: '../handlers/discover-instances.ts',
  AdvanceInstances: '../handlers/advance-instances.ts',
  RecordShardFailure: '../handlers/record-shard-failure.ts',
  PlanRetention: '../handlers/plan-retention.ts',
  ApplyRetention: '../handlers/apply-retention.ts',
  PlanDrCopies: '../handlers/plan-dr-copies.ts',
  AdvanceDrCopies: '../handlers/advance-dr-copies.ts',
  FinishRun: '../handlers/finish-run.ts',
  AlertWorkflowFailure: '../handlers/alert-workflow-failure.ts',
};

/**
 * The account-level resources a deployment creates (topic, bucket, documents), and the IAM scope its roles get:
 * the snapshot documents may be sent only to instances carrying the deployed selector tag (the stack's
 * TagKey/TagValue, the Lambdas' TAG_KEY/TAG_VALUE).
 */
export function provisionStack(world: World, environment: Record<string, string | undefined> = {}): void {
  world.iam = { snapshotSendTag: { key: environment.TAG_KEY ?? 'ConsistentSnapshot', value: environment.TAG_VALUE ?? 'WindowsVSS' } };
  world.topics.add(TOPIC_ARN);
  if (!world.buckets.has(REPORT_BUCKET)) world.buckets.set(REPORT_BUCKET, new Map());
  const bool = { allowedValues: ['True', 'False'] };
  const vss: SimDocument = {
    name: 'AWSEC2-CreateVssSnapshot',
    versions: ['1'],
    kind: 'aws-vss',
    parameters: {
      ExcludeBootVolume: bool,
      NoWriters: bool,
      CopyOnly: bool,
      CreateAmi: bool,
      AmiName: { allowedPattern: '^([a-zA-Z0-9() ./\\-_\'@]{3,128})?$' },
      description: { allowedPattern: '^.{0,255}$' },
      tags: { allowedPattern: '^([Kk]ey=[A-Za-z0-9 _.:/+\\-@]{1,128},[Vv]alue=[A-Za-z0-9 _.:/+\\-@]{0,256};?)*$' },
      executionTimeout: { allowedPattern: '^([1-9][0-9]{0,5})$' },
      CollectDiagnosticLogs: bool,
      SaveVssMetadata: bool,
    },
  };
  world.documents.set(vss.name, vss);
  // AWS's recommended document: installs or updates AwsVssComponents, then what AWSEC2-CreateVssSnapshot does.
  world.documents.set('AWSEC2-VssInstallAndSnapshot', { ...vss, name: 'AWSEC2-VssInstallAndSnapshot' });
  // The stack's own documents exist in the Region it is deployed in (SSM documents are Regional):
  // deployStackDocumentsTo adds another, which later runs keep.
  world.documents.set(DISKSHADOW_DOCUMENT, {
    name: DISKSHADOW_DOCUMENT,
    versions: ['1'],
    kind: 'diskshadow',
    regions: world.documents.get(DISKSHADOW_DOCUMENT)?.regions ?? [REGION],
    parameters: {
      RunId: { allowedPattern: '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$' },
      Attempt: { allowedPattern: '^[1-5]$' },
      StackId: { allowedPattern: '^([A-Za-z0-9][A-Za-z0-9._-]{0,127})?$', default: '' },
      ExcludeBootVolume: bool,
      CopyOnly: { ...bool, default: 'False' },
      executionTimeout: { allowedPattern: '^[1-9][0-9]{1,5}$' },
    },
  });
  // The restore document with the parameters the stack deploys (src/documents/document-parameters.ts). With DR
  // copies on, the operator also creates it in the DR Region under the same name (README "Restore from the DR
  // Region"): this local deployment does as that step says.
  world.documents.set(RESTORE_DOCUMENT, {
    name: RESTORE_DOCUMENT,
    versions: ['1'],
    kind: 'restore',
    regions: [...new Set([...(world.documents.get(RESTORE_DOCUMENT)?.regions ?? [REGION]), ...(environment.DR_REGION ? [environment.DR_REGION] : [])])],
    parameters: Object.fromEntries(
      Object.entries(DOCUMENTS['diskshadow-restore'].parameters).map(([name, p]) => [
        name,
        { allowedPattern: p.allowedPattern, ...('default' in p && p.default !== undefined ? { default: p.default } : {}) },
      ]),
    ),
  });
}

/**
 * Deploys the stack's own SSM documents (DiskShadow snapshot and restore) in one more Region too, as a stack
 * that restores in a DR Region must (SSM documents are Regional; AWS's own documents exist everywhere).
 */
export function deployStackDocumentsTo(world: World, region: string): void {
  for (const document of world.documents.values()) if (document.regions && !document.regions.includes(region)) document.regions.push(region);
}

/** The Lambda environment of a local deployment (the stack sets the same variables in AWS). */
export function lambdaEnvironment(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    ALERT_TOPIC_ARN: TOPIC_ARN,
    REPORT_BUCKET,
    DISKSHADOW_DOCUMENT_NAME: DISKSHADOW_DOCUMENT,
    RESTORE_DOCUMENT_NAME: RESTORE_DOCUMENT,
    POWERTOOLS_LOG_LEVEL: 'SILENT',
    POWERTOOLS_METRICS_DISABLED: 'true',
    AWS_REGION: REGION,
    ...overrides,
  };
}

export interface LambdaFault {
  /** Run the handler (its side effects happen), then fail as a Lambda timeout would. */
  crashAfter?: boolean;
  /** Fail before the handler runs, as a Lambda service error. */
  serviceError?: boolean;
}

export interface RunOptions {
  /** Which state machine to run (default the nightly one). */
  workflow?: WorkflowName;
  input?: unknown;
  executionName?: string;
  env?: Record<string, string>;
  interceptors?: CallInterceptor[];
  /** Decides per Task invocation whether the simulated Lambda misbehaves (crash tests). */
  lambdaFault?: (state: string, invocation: number) => LambdaFault | undefined;
  onEvent?: (event: EventLog, world: World) => void;
}

export interface RunStats {
  stateTransitions: number;
  /** History events of the largest execution (the parent, or one Map child). */
  historyEvents: number;
  /** Executions: the parent and each Distributed Map child. */
  executions: number;
  maxPayloadBytes: number;
  lambdaInvocations: number;
  lambdaMillis: number;
  /**
   * Per Task state: invocations and their duration — virtual time (API latency, S3 transfer, throttling
   * back-off) plus the real time the handler's own code ran in this process (the simulated services' work left
   * out): what Lambda would bill.
   */
  byState: Record<string, { invocations: number; billedMs: number; maxMs: number }>;
  simulatedSeconds: number;
  wallSeconds: number;
}

export interface LocalRunResult {
  status: 'SUCCEEDED' | 'FAILED';
  executionArn: string;
  output?: unknown;
  error?: string;
  cause?: string;
  stats: RunStats;
}

export function loadDefinition(workflow: WorkflowName = 'nightly'): StateMachineDefinition {
  const text = readFileSync(new URL(`../../statemachine/${WORKFLOWS[workflow].file}`, import.meta.url), 'utf8').replace(/\$\{([A-Za-z0-9]+)FunctionArn\}/g, (_m, key: string) => lambdaArn(key));
  return JSON.parse(text) as StateMachineDefinition;
}

const lambdaArn = (key: string) => `arn:aws:lambda:${REGION}:${ACCOUNT_ID}:function:vss-snapshots-${key}`;

/** Executes one execution of a workflow (default the nightly one) against `world`. */
export async function runWorkflow(world: World, options: RunOptions = {}): Promise<LocalRunResult> {
  const environment = lambdaEnvironment(options.env);
  provisionStack(world, environment);
  // The fleet file's `faults` (if any) come after the caller's own interceptors.
  const uninstall = attachWorld(world, environment, [...(options.interceptors ?? []), ...worldFaultInterceptors(world)]);
  const workflow = options.workflow ?? 'nightly';
  const definition = loadDefinition(workflow);
  const machineName = WORKFLOWS[workflow].stateMachineName;
  const machineArn = stateMachineArn(workflow);
  const states = definition.States as Record<string, StateDef>;
  // The states of Map item processors too: their Tasks run here like the parent's (names are unique per definition).
  const allStates = flattenStates(states);

  const stats: RunStats = { stateTransitions: 0, historyEvents: 0, executions: 1, maxPayloadBytes: 0, lambdaInvocations: 0, lambdaMillis: 0, byState: {}, simulatedSeconds: 0, wallSeconds: 0 };
  const invocationsByState = new Map<string, number>();
  const handlers: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const [stateName, state] of Object.entries(allStates)) {
    if (state.Type !== 'Task' || !state.Resource) continue;
    const key = /function:vss-snapshots-([A-Za-z0-9]+)$/.exec(state.Resource)?.[1] ?? '';
    const modulePath = HANDLER_MODULES[key];
    if (!modulePath) throw new Error(`No local handler for ${state.Resource} (state "${stateName}").`);
    const module = (await import(modulePath)) as { handler: (event: unknown) => Promise<unknown> };
    handlers[stateName] = async (input) => {
      const n = (invocationsByState.get(stateName) ?? 0) + 1;
      invocationsByState.set(stateName, n);
      const fault = options.lambdaFault?.(stateName, n);
      const payload = JSON.stringify(input);
      stats.maxPayloadBytes = Math.max(stats.maxPayloadBytes, Buffer.byteLength(payload));
      stats.lambdaInvocations += 1;
      if (fault?.serviceError) throw namedError('Lambda.ServiceException', 'Simulated Lambda service error');
      // Let the event consumer catch up (it registers the Wait the actor just left) before the "Lambda" runs.
      await new Promise((resolve) => setImmediate(resolve));
      const scheduler = world.scheduler as VirtualScheduler;
      const result = await scheduler.turn(actorOf(name, input), async () => {
        const started = world.now;
        const wallStarted = performance.now();
        const simulatorStarted = world.simulatorMillis;
        try {
          return await module.handler(JSON.parse(payload));
        } finally {
          stats.lambdaMillis += Math.max(world.now - started, 100);
          // Virtual time (API latency, S3 transfer, back-off) plus the handler's own CPU (real time less the
          // simulated services' work; turns run one at a time, so nothing else is in it).
          const cpu = Math.max(0, performance.now() - wallStarted - (world.simulatorMillis - simulatorStarted));
          const ms = Math.max(1, world.now - started + cpu);
          const timing = (stats.byState[stateName] ??= { invocations: 0, billedMs: 0, maxMs: 0 });
          timing.invocations += 1;
          timing.billedMs += Math.ceil(ms);
          timing.maxMs = Math.max(timing.maxMs, ms);
        }
      });
      if (fault?.crashAfter) throw namedError('Lambda.Unknown', 'Simulated: the Lambda timed out after its side effects happened.');
      const out = JSON.stringify(result ?? null);
      stats.maxPayloadBytes = Math.max(stats.maxPayloadBytes, Buffer.byteLength(out));
      return JSON.parse(out);
    };
  }
  // 1 ms, not 0: the library skips the timer for 0, and the timer is what lets the event consumer below
  // move the virtual clock before the next Task runs.
  const zero = Object.fromEntries(Object.entries(allStates).filter(([, s]) => s.Type === 'Wait').map(([n]) => [n, 1]));
  const zeroRetry = Object.fromEntries(Object.entries(allStates).filter(([, s]) => s.Type === 'Task').map(([n]) => [n, 0]));

  const name = options.executionName ?? `run-${world.nextHex(8)}`;
  const executionArn = `arn:aws:states:${REGION}:${ACCOUNT_ID}:execution:${machineName}:${name}`;
  const input = options.input ?? {};
  world.executions.push({ executionArn, stateMachineArn: machineArn, name, status: 'RUNNING', startDate: world.now, input: JSON.stringify(input), listedAt: world.now + world.lagMs('execution-listed') });
  const record = world.executions.at(-1);
  const wallStart = performance.now();
  const simStart = world.now;

  // Validating the definition costs ~100 ms (JSON schema); once per process is enough for the same text.
  const definitionText = JSON.stringify(definition);
  const machine = new StateMachine(definition, { validationOptions: validatedDefinitions.has(definitionText) ? { noValidate: true } : { checkArn: false } });
  validatedDefinitions.add(definitionText);
  // The library stamps $$.Execution.StartTime with `new Date()` synchronously inside run(); give it the
  // virtual clock for that one call.
  const execution = withVirtualDate(world.now, () => machine.run(input as never, {
    overrides: { taskResourceLocalHandlers: handlers as never, waitTimeOverrides: zero, retryIntervalOverrides: zeroRetry },
    context: {
      Execution: { Id: executionArn, Name: name, StartTime: new Date(world.now).toISOString(), Input: input as never, RoleArn: `arn:aws:iam::${ACCOUNT_ID}:role/vss-snapshots` },
      StateMachine: { Id: machineArn, Name: machineName },
    } as never,
  }));

  // Wait states are skipped in real time; the virtual clock jumps by what each would have waited. The
  // event for entering a Wait arrives (microtask) before its zero-length timer fires, so the next Task
  // already sees the later time.
  // Each execution's history: the parent's, and each Map child's (a Distributed Map runs its items as child
  // executions with histories of their own).
  const history = new Map<string, number>();
  const retryJitter = seededRandom(streamSeed(1, `retries ${name}`));
  const shardOfIndex = new Map<number, number>();
  const unattributed = new Map<number, number>();
  const consume = (async () => {
    for await (const event of execution.eventLogs) {
      // A child's actor is its shard (what its Tasks' turns are keyed by, actorOf); its Map index tells which shard
      // an event without the shard in its input belongs to.
      const index = 'index' in event && typeof event.index === 'number' ? event.index : undefined;
      const shard = (('state' in event ? event.state?.input : undefined) as { shard?: unknown } | undefined)?.shard;
      if (index !== undefined && typeof shard === 'number') shardOfIndex.set(index, shard);
      const known = index === undefined ? undefined : shardOfIndex.get(index);
      const weight = historyWeight(event, allStates);
      const actor = index === undefined ? `${name}:root` : known !== undefined ? actorOf(name, { shard: known }) : `${name}:item ${index}`;
      if (index !== undefined && known === undefined) {
        // Before the child's first state (its start): counted once the shard is known.
        unattributed.set(index, (unattributed.get(index) ?? 0) + weight);
      } else {
        history.set(actor, (history.get(actor) ?? 0) + weight + (index !== undefined ? (unattributed.get(index) ?? 0) : 0));
        if (index !== undefined) unattributed.delete(index);
      }
      if (event.type === 'StateEntered') {
        stats.stateTransitions += 1;
        const state = allStates[event.state.name];
        // Wait states cost no real time; the actor's next turn starts when the wait ends (scheduler.ts).
        if (state?.Type === 'Wait') world.scheduler?.waitStarted(actor, waitOf(state, event.state.input));
      }
      if (event.type === 'StateRetried') {
        stats.stateTransitions += 1;
        // Step Functions waits before the retry (IntervalSeconds × BackoffRate^(n−1), capped, FULL jitter): on
        // the virtual clock too, so a throttled step is not retried into the same empty bucket at once.
        world.scheduler?.waitStarted(actor, { seconds: retryWaitSeconds(event.retry.retrier, event.retry.attempt, retryJitter) });
      }
      options.onEvent?.(event, world);
    }
  })();

  const finish = () => {
    stats.historyEvents = Math.max(0, ...history.values());
    stats.executions = Math.max(1, history.size);
    if (world.scheduler) world.accountNow = world.scheduler.latest();
  };
  try {
    const output = await execution.result;
    await consume.catch(() => undefined);
    finish();
    finishRecord(record, world, 'SUCCEEDED');
    return { status: 'SUCCEEDED', executionArn, output, stats: finalStats(stats, world, simStart, wallStart) };
  } catch (error) {
    await consume.catch(() => undefined);
    finish();
    finishRecord(record, world, 'FAILED');
    const { errorName, cause } = executionFailure(error);
    return { status: 'FAILED', executionArn, error: errorName, cause, stats: finalStats(stats, world, simStart, wallStart) };
  } finally {
    uninstall();
  }
}

const validatedDefinitions = new Set<string>();

interface Attachment {
  world: World;
  runs: number;
  release: () => void;
}
let attached: Attachment | undefined;

/**
 * Plugs `world` beneath the shared SDK clients and sets the Lambda environment until the run ends. Two
 * executions on the same world may overlap (the schedule and an operator starting together): they share
 * the first one's attachment (its environment and interceptors), and it stays until the last of them ends.
 */
function attachWorld(world: World, environment: Record<string, string>, interceptors: CallInterceptor[]): () => void {
  let mine = attached;
  if (!mine || mine.world !== world) {
    const previousEnv = Object.fromEntries(Object.keys(environment).map((k) => [k, process.env[k]]));
    Object.assign(process.env, environment);
    const uninstall = installWorld(clients, world, { interceptors });
    // One virtual clock for every execution on this account, and each Lambda turn's own clock within it.
    world.scheduler = new VirtualScheduler(
      () => world.accountNow,
      (t) => {
        world.accountNow = t;
        world.settle();
      },
    );
    mine = {
      world,
      runs: 0,
      release: () => {
        world.scheduler?.dispose();
        delete world.scheduler;
        uninstall();
        for (const [k, v] of Object.entries(previousEnv)) {
          if (v === undefined) delete process.env[k];
          else process.env[k] = v;
        }
      },
    };
    attached = mine;
  }
  const attachment = mine;
  attachment.runs += 1;
  return () => {
    attachment.runs -= 1;
    if (attachment.runs === 0 && attached === attachment) {
      attached = undefined;
      attachment.release();
    }
  };
}

function withVirtualDate<T>(now: number, fn: () => T): T {
  const RealDate = Date;
  class VirtualDate extends RealDate {
    constructor(...args: unknown[]) {
      if (args.length === 0) super(now);
      else super(...(args as [string]));
    }
    static override now(): number {
      return now;
    }
  }
  globalThis.Date = VirtualDate as DateConstructor;
  try {
    return fn();
  } finally {
    globalThis.Date = RealDate;
  }
}

function finishRecord(record: World['executions'][number] | undefined, world: World, status: 'SUCCEEDED' | 'FAILED'): void {
  if (!record) return;
  record.status = status;
  record.stopDate = world.now;
}

function finalStats(stats: RunStats, world: World, simStart: number, wallStart: number): RunStats {
  return { ...stats, simulatedSeconds: Math.round((world.now - simStart) / 1000), wallSeconds: Number(((performance.now() - wallStart) / 1000).toFixed(3)) };
}

function namedError(name: string, message: string): Error {
  const error = new Error(message);
  error.name = name;
  return error;
}

function executionFailure(error: unknown): { errorName: string; cause: string } {
  const e = error as { name?: string; message?: string; cause?: { name?: string; message?: string } };
  const errorName = e.cause?.name ?? e.name ?? 'Error';
  const cause = typeof e.cause?.message === 'string' ? e.cause.message : (e.message ?? String(error));
  return { errorName, cause };
}

interface StateDef {
  Type: string;
  Resource?: string;
  Seconds?: number;
  SecondsPath?: string;
  Timestamp?: string;
  TimestampPath?: string;
  ItemProcessor?: { States: Record<string, StateDef> };
  Iterator?: { States: Record<string, StateDef> };
}

export function flattenStates(states: Record<string, StateDef>): Record<string, StateDef> {
  const all: Record<string, StateDef> = {};
  for (const [name, state] of Object.entries(states)) {
    all[name] = state;
    const inner = state.ItemProcessor ?? state.Iterator;
    if (inner) Object.assign(all, flattenStates(inner.States));
  }
  return all;
}

/** The actor a Task input belongs to: a Map child carries its item (`shard`), the parent nothing. */
function actorOf(execution: string, input: unknown): string {
  const shard = (input as { shard?: unknown } | null)?.shard;
  return typeof shard === 'number' ? `${execution}:${shard}` : `${execution}:root`;
}

/** How long a Wait state waits, given its input: seconds, or until a timestamp. */
/**
 * The wait before retry `attempt` (1 = the first retry) of a Task, as Step Functions computes it: IntervalSeconds
 * (default 1) × BackoffRate (default 2) ^ (attempt − 1), at most MaxDelaySeconds, and with JitterStrategy FULL a
 * random share of it (Step Functions developer guide, "Handling errors": retriers, jitter).
 */
export function retryWaitSeconds(retrier: { IntervalSeconds?: number; BackoffRate?: number; MaxDelaySeconds?: number; JitterStrategy?: string }, attempt: number, random: () => number): number {
  const base = (retrier.IntervalSeconds ?? 1) * (retrier.BackoffRate ?? 2) ** Math.max(0, attempt - 1);
  const capped = retrier.MaxDelaySeconds !== undefined ? Math.min(base, retrier.MaxDelaySeconds) : base;
  return retrier.JitterStrategy === 'FULL' ? capped * random() : capped;
}

function waitOf(state: StateDef, input: unknown): { seconds?: number; until?: number } {
  const path = (p: string): unknown => {
    let value: unknown = input;
    for (const part of p.replace(/^\$\.?/, '').split('.').filter(Boolean)) value = (value as Record<string, unknown> | undefined)?.[part];
    return value;
  };
  // "Step Functions considers the time value up to seconds and truncates milliseconds" (Step Functions developer
  // guide, "Wait workflow state"): a timestamp with a fraction of a second ends the wait up to 999 ms before it.
  const toSecond = (at: number): number => Math.floor(at / 1000) * 1000;
  if (state.Timestamp) return { until: toSecond(Date.parse(state.Timestamp)) };
  if (state.TimestampPath) {
    const at = Date.parse(String(path(state.TimestampPath)));
    return Number.isNaN(at) ? { seconds: 0 } : { until: toSecond(at) };
  }
  return { seconds: waitSeconds(state, input) };
}

function waitSeconds(state: { Seconds?: number; SecondsPath?: string }, input: unknown): number {
  if (typeof state.Seconds === 'number') return state.Seconds;
  if (state.SecondsPath) {
    let value: unknown = input;
    for (const part of state.SecondsPath.replace(/^\$\.?/, '').split('.').filter(Boolean)) value = (value as Record<string, unknown> | undefined)?.[part];
    return typeof value === 'number' ? value : 0;
  }
  return 0;
}

/** Approximate Step Functions history events per local event (a Lambda task writes five). */
function historyWeight(event: EventLog, states: Record<string, { Type: string }>): number {
  if (event.type === 'StateEntered') return states[event.state.name]?.Type === 'Task' ? 4 : 1;
  if (event.type === 'StateExited' || event.type === 'StateFailed' || event.type === 'StateRetried' || event.type === 'StateCaught') return 1;
  if (event.type === 'ExecutionStarted' || event.type === 'ExecutionSucceeded' || event.type === 'ExecutionFailed') return 1;
  return 0;
}
