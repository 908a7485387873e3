/**
 * Progress lines of a workflow execution, the same for a local run (events of the local Step Functions
 * runner) and for `--follow` on a deployed stack (Step Functions execution history): both are turned into
 * `StepEvent`s first, then described here. Per-instance lines come from the run progress (src/lib/run-progress.ts):
 * which instance failed and why, as it happens, and which attempt of how many it was on.
 */
import { readFileSync } from 'node:fs';
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { plural } from '../lib/report-text.ts';
import type { InstanceProgress, RunProgress } from '../lib/run-progress.ts';

/** One thing that happened to a state of the execution. */
export type StepEvent =
  | { type: 'entered'; state: string; stateType: string; input?: unknown }
  | { type: 'exited'; state: string; stateType: string; output?: unknown }
  | { type: 'retried'; state: string; error?: string }
  | { type: 'caught'; state: string; error?: string; next?: string };

export type WorkflowKind = 'nightly' | 'restore';
const DEFINITION_FILES: Record<WorkflowKind, string> = { nightly: 'nightly-snapshots.asl.json', restore: 'restore.asl.json' };

/** The minimal shape of the local runner's events (aws-local-stepfunctions EventLog) this module reads. */
export interface LocalEvent {
  type: string;
  state?: { name: string; type: string; input?: unknown; output?: unknown };
  catch?: { catcher: { Next: string } };
  Error?: string;
}

/** A local runner event as a StepEvent (undefined for events that say nothing to a person). */
export function fromLocalEvent(event: LocalEvent): StepEvent | undefined {
  const state = event.state;
  if (!state) return undefined;
  switch (event.type) {
    case 'StateEntered':
      return { type: 'entered', state: state.name, stateType: state.type, input: state.input };
    case 'StateExited':
      return { type: 'exited', state: state.name, stateType: state.type, output: state.output };
    case 'StateRetried':
      return { type: 'retried', state: state.name };
    case 'StateCaught':
      return { type: 'caught', state: state.name, ...(event.catch ? { next: event.catch.catcher.Next } : {}) };
    default:
      return undefined;
  }
}

const FAILURE_EVENTS = new Set(['LambdaFunctionFailed', 'LambdaFunctionTimedOut', 'LambdaFunctionStartFailed', 'LambdaFunctionScheduleFailed', 'TaskFailed', 'TaskTimedOut', 'TaskStartFailed', 'TaskSubmitFailed']);
const SCHEDULE_EVENTS = new Set(['LambdaFunctionScheduled', 'TaskScheduled']);

const parseJson = (text: string | undefined): unknown => {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/**
 * Turns a Step Functions execution history (GetExecutionHistory, oldest first, fed in batches as it grows)
 * into StepEvents. The history has no "retried" or "caught" event: a Lambda failure followed by a new
 * schedule of the same state is a retry; one followed by the state's exit was caught by a Catch, whose
 * target is the next state entered (API reference, HistoryEvent).
 */
export class HistoryTranslator {
  private failure: { state: string; error?: string } | undefined;
  /** A failed state's exit, held until the next state entered says where its Catch went. */
  private pendingCatch: { state: string; error?: string; exit: StepEvent; timestamp: Date | undefined } | undefined;
  private current: string | undefined;

  push(events: HistoryEvent[]): { step: StepEvent; timestamp: Date | undefined }[] {
    const out: { step: StepEvent; timestamp: Date | undefined }[] = [];
    const flushCatch = (next: string | undefined) => {
      const pending = this.pendingCatch;
      if (!pending) return;
      this.pendingCatch = undefined;
      out.push({ step: { type: 'caught', state: pending.state, ...(pending.error ? { error: pending.error } : {}), ...(next ? { next } : {}) }, timestamp: pending.timestamp });
      out.push({ step: pending.exit, timestamp: pending.timestamp });
    };
    for (const event of events) {
      const timestamp = event.timestamp;
      const type = event.type ?? '';
      const entered = /^(\w+?)StateEntered$/.exec(type);
      const exited = /^(\w+?)StateExited$/.exec(type);
      if (entered) {
        const details = event.stateEnteredEventDetails;
        const name = details?.name ?? '';
        flushCatch(name);
        this.current = name;
        this.failure = undefined;
        out.push({ step: { type: 'entered', state: name, stateType: entered[1] ?? '', input: parseJson(details?.input) }, timestamp });
      } else if (exited) {
        const details = event.stateExitedEventDetails;
        const name = details?.name ?? this.current ?? '';
        const step: StepEvent = { type: 'exited', state: name, stateType: exited[1] ?? '', output: parseJson(details?.output) };
        if (this.failure && this.failure.state === name) {
          this.pendingCatch = { ...this.failure, exit: step, timestamp };
          this.failure = undefined;
        } else {
          out.push({ step, timestamp });
        }
      } else if (FAILURE_EVENTS.has(type) && this.current) {
        const details =
          event.lambdaFunctionFailedEventDetails ??
          event.lambdaFunctionTimedOutEventDetails ??
          event.taskFailedEventDetails ??
          event.taskTimedOutEventDetails ??
          event.lambdaFunctionStartFailedEventDetails ??
          event.lambdaFunctionScheduleFailedEventDetails;
        this.failure = { state: this.current, ...(details?.error ? { error: details.error } : {}) };
      } else if (SCHEDULE_EVENTS.has(type) && this.failure && this.failure.state === this.current) {
        out.push({ step: { type: 'retried', state: this.failure.state, ...(this.failure.error ? { error: this.failure.error } : {}) }, timestamp });
        this.failure = undefined;
      } else if (type === 'ExecutionFailed' || type === 'ExecutionAborted' || type === 'ExecutionTimedOut') {
        flushCatch(undefined);
      }
    }
    return out;
  }
}

/** `+00:21:00`: time since the execution started. */
export function elapsed(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `+${String(Math.floor(s / 3600)).padStart(2, '0')}:${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}:${String(s % 60).padStart(2, '0')}`;
}

/** `30 s`, `10 min`, `1 h 30 min`. */
export function duration(seconds: number): string {
  if (seconds < 60) return `${seconds} s`;
  if (seconds < 3600) return seconds % 60 === 0 ? `${seconds / 60} min` : `${Math.floor(seconds / 60)} min ${seconds % 60} s`;
  const m = Math.round((seconds % 3600) / 60);
  return `${Math.floor(seconds / 3600)} h${m ? ` ${m} min` : ''}`;
}

interface Counts {
  send?: number;
  command?: number;
  verify?: number;
  retry?: number;
  succeeded?: number;
  failed?: number;
  skipped?: number;
  planned?: number;
  /** Sends whose answer was lost and whose command SSM does not list yet. */
  unconfirmed?: number;
  /** Snapshots decided for deletion and not deleted yet. */
  discard?: number;
}

/**
 * `attempt 2 of 3` (or `attempts 1-2 of 3`): the attempts of the instances in flight when the step ended,
 * from progress read at that moment (the caller passes none when it has only a later one, as `--follow` has
 * for all but the newest step of a batch). Not a count of steps or waves: each instance has its own attempts.
 */
export function attemptLabel(progress: RunProgress | undefined): string {
  if (!progress) return '';
  const inFlight = progress.instances.filter((i) => i.attempts > 0 && (i.phase === 'command' || i.phase === 'verify' || i.phase === 'send' || i.phase === 'retry')).map((i) => i.attempts);
  if (inFlight.length === 0) return '';
  const low = Math.min(...inFlight);
  const high = Math.max(...inFlight);
  return low === high ? `attempt ${low} of ${progress.maxAttempts}` : `attempts ${low}-${high} of ${progress.maxAttempts}`;
}

/** At most this many instance lines per step; the rest are counted (the report has them all). */
export const MAX_INSTANCE_LINES = 20;

/** Describes an execution as lines a person can follow. One per execution. */
export class WorkflowDescriber {
  private readonly waitPaths: Map<string, string>;
  private readonly caught = new Set<string>();
  private readonly seen = new Map<string, InstanceProgress>();

  constructor(private readonly workflow: WorkflowKind) {
    type States = Record<string, { Type: string; SecondsPath?: string; Seconds?: number; TimestampPath?: string; ItemProcessor?: { States: States }; Iterator?: { States: States } }>;
    const definition = JSON.parse(readFileSync(new URL(`../../statemachine/${DEFINITION_FILES[workflow]}`, import.meta.url), 'utf8')) as { States: States };
    // Wait states anywhere, also inside a Map's item processor (the shards' loop).
    const waits = (states: States): [string, string][] =>
      Object.entries(states).flatMap(([name, s]) => {
        const nested = s.ItemProcessor?.States ?? s.Iterator?.States;
        if (nested) return waits(nested);
        if (s.Type !== 'Wait') return [];
        // A Wait until a time (TimestampPath …resumeAt) is shown by its length, which Advance Instances hands over
        // next to the time as …nextSeconds.
        const path = s.SecondsPath ?? (s.Seconds !== undefined ? `=${s.Seconds}` : s.TimestampPath?.replace(/\.resumeAt$/, '.nextSeconds') ?? '');
        return [[name, path]];
      });
    this.waitPaths = new Map(waits(definition.States));
  }

  /**
   * The line for one event `atMs` after the start (empty when there is nothing to say). `progress`, when it is
   * the run's progress at that moment, adds the attempts of the instances in flight.
   */
  step(event: StepEvent, atMs: number, progress?: RunProgress): string {
    const prefix = `[${elapsed(atMs)}] ${event.state}`;
    if (event.type === 'caught') {
      this.caught.add(event.state);
      return `${prefix}: ${this.caughtText(event)}`;
    }
    if (event.type === 'retried') return `${prefix}: retried after an error${event.error ? ` (${event.error})` : ''}`;
    if (event.type === 'exited' && this.caught.delete(event.state)) return '';
    if (event.type === 'entered' && event.stateType === 'Wait') {
      const seconds = this.waitSeconds(event.state, event.input);
      return seconds === undefined ? prefix : `${prefix}: ${duration(seconds)}`;
    }
    if (event.type === 'entered' && event.stateType === 'Map') {
      // A Distributed Map: the shards' steps are in their own child executions' histories (a deployed run shows
      // the instances' fate from the run's state instead; a local run prints the children's steps as well).
      const shards = (event.input as { shards?: unknown } | undefined)?.shards;
      const n = Array.isArray(shards) ? shards.length : undefined;
      return n === undefined ? prefix : `${prefix}: ${plural(n, 'shard')}, each advanced by its own child execution`;
    }
    if (event.type === 'exited' && event.stateType === 'Task') {
      if (this.workflow !== 'nightly') return `${prefix}: done`;
      // DR copies off (no DrRegion): the step only said so; not worth a line.
      if (event.state === 'Plan DR Copies' && (event.output as { dr?: DrCounts } | undefined)?.dr?.enabled === false) return '';
      const { attempt, text } = this.nightlyExit(event, progress);
      return `${prefix}${attempt ? ` (${attempt})` : ''}: ${text}`;
    }
    return '';
  }

  private caughtText(event: Extract<StepEvent, { type: 'caught' }>): string {
    if (this.workflow === 'nightly') {
      // InvalidInputError goes to "Input Rejected": the execution fails, nothing is sent and nothing is alerted.
      if (event.next === 'Input Rejected' || (event.next === undefined && event.error === 'InvalidInputError')) return 'input rejected, nothing sent';
      return `failed${event.error ? ` (${event.error})` : ''}, alerting`;
    }
    if (event.next === 'Restore Refused') return 'refused, nothing created';
    if (event.next === 'Cleanup Failed') return `cleanup failed${event.error ? ` (${event.error})` : ''}`;
    return `failed${event.error ? ` (${event.error})` : ''}, cleaning up`;
  }

  private nightlyExit(event: Extract<StepEvent, { type: 'exited' }>, progress?: RunProgress): { attempt?: string; text: string } {
    const out = event.output as { runId?: string; counts?: Counts; summary?: Counts; alertPublished?: boolean } | undefined;
    if (event.state === 'Prepare Run') return { text: `input accepted, no other run in progress${out?.runId ? `; run ${out.runId}` : ''}` };
    const retention = (event.output as { retention?: { mode?: string; remaining?: number; deleted?: number; deferred?: number } } | undefined)?.retention;
    if ((event.state === 'Plan Retention' || event.state === 'Apply Retention') && retention) return { text: retentionText(retention) };
    const dr = (event.output as { dr?: DrCounts } | undefined)?.dr;
    if ((event.state === 'Plan DR Copies' || event.state === 'Advance DR Copies') && dr) return { text: drText(dr) };
    if (out?.summary) return { text: `report written${out.alertPublished === true ? ', alert published' : out.alertPublished === false ? ', no alert needed' : ''}` };
    if (!out?.counts) return { text: 'done' };
    const c = out.counts;
    const parts = [
      c.send ? `${c.send} waiting for a command` : '',
      c.command ? `${plural(c.command, 'command')} running` : '',
      c.verify ? `${c.verify} verifying` : '',
      c.retry ? `${c.retry} waiting to retry` : '',
      c.succeeded ? `${c.succeeded} succeeded` : '',
      c.failed ? `${c.failed} failed` : '',
      c.skipped ? `${c.skipped} skipped` : '',
      c.planned ? `${c.planned} planned` : '',
      c.unconfirmed ? `${plural(c.unconfirmed, 'send')} unconfirmed` : '',
      c.discard ? `${plural(c.discard, 'snapshot')} to delete` : '',
    ].filter(Boolean);
    const attempt = attemptLabel(progress);
    return { ...(attempt ? { attempt } : {}), text: parts.join(', ') || 'no instances' };
  }

  private waitSeconds(state: string, input: unknown): number | undefined {
    const path = this.waitPaths.get(state);
    if (!path) return undefined;
    if (path.startsWith('=')) return Number(path.slice(1));
    let value: unknown = input;
    for (const part of path.replace(/^\$\.?/, '').split('.').filter(Boolean)) value = (value as Record<string, unknown> | undefined)?.[part];
    return typeof value === 'number' ? value : undefined;
  }

  /**
   * Lines for the instances whose phase changed since the last call: failures first, with the reason and
   * the attempt; at most MAX_INSTANCE_LINES, then a count.
   */
  instances(progress: RunProgress | undefined): string[] {
    if (!progress) return [];
    const changes: { rank: number; line: string; phase: string }[] = [];
    for (const instance of progress.instances) {
      const before = this.seen.get(instance.instanceId);
      this.seen.set(instance.instanceId, instance);
      if (before && before.phase === instance.phase && before.attempts === instance.attempts) continue;
      const line = this.instanceLine(instance, progress, before);
      if (line) changes.push(line);
    }
    changes.sort((a, b) => a.rank - b.rank);
    const shown = changes.slice(0, MAX_INSTANCE_LINES).map((c) => `  ${c.line}`);
    const rest = changes.slice(MAX_INSTANCE_LINES);
    if (rest.length > 0) {
      const byPhase = new Map<string, number>();
      for (const c of rest) byPhase.set(c.phase, (byPhase.get(c.phase) ?? 0) + 1);
      shown.push(`  ... and ${plural(rest.length, 'more instance')}: ${[...byPhase].map(([phase, n]) => `${n} ${phase}`).join(', ')} (the report lists them all)`);
    }
    return shown;
  }

  private instanceLine(i: InstanceProgress, progress: RunProgress, before: InstanceProgress | undefined): { rank: number; line: string; phase: string } | undefined {
    const who = `${i.instanceId}${i.name ? ` (${i.name})` : ''}`;
    // The recorded detail ends with its own attempt note (record-failure.ts); these lines say the attempt first.
    const why = (i.detail ?? i.reason ?? '').replace(/ \((attempt [0-9]+ of [0-9]+; will retry|gave up after [0-9]+ attempts?)\)$/, '');
    const of = `of ${progress.maxAttempts}`;
    switch (i.phase) {
      case 'failed':
        return {
          rank: 0,
          phase: 'failed',
          line: i.attempts > 0 ? `${who}: FAILED after attempt ${i.attempts} ${of}: ${why}` : `${who}: FAILED, no command sent: ${why}`,
        };
      case 'retry':
        return { rank: 1, phase: 'waiting to retry', line: `${who}: attempt ${i.attempts} ${of} failed, will retry: ${why}` };
      case 'succeeded':
        return { rank: i.attempts > 1 ? 2 : 4, phase: 'succeeded', line: `${who}: succeeded${i.attempts > 0 ? ` on attempt ${i.attempts} ${of}` : ''}` };
      case 'skipped':
        return { rank: 3, phase: 'skipped', line: `${who}: skipped: ${why}` };
      case 'planned':
        return { rank: 5, phase: 'planned', line: `${who}: planned (dry run)` };
      default:
        // Sent, running, verifying: the step line counts them; only a new attempt after a retry is worth a line.
        if (before?.phase === 'retry' && i.phase === 'command') return { rank: 1, phase: 'retrying', line: `${who}: attempt ${i.attempts} ${of} sent` };
        return undefined;
    }
  }

  /** Instances final / all, for a counter. */
  static finalCount(progress: RunProgress | undefined): { final: number; total: number } | undefined {
    if (!progress) return undefined;
    const final = progress.instances.filter((i) => ['succeeded', 'failed', 'skipped', 'planned'].includes(i.phase)).length;
    return { final, total: progress.instances.length };
  }
}

/** A retention step's line: what is left to delete tonight, what was deleted, what waits for the next run. */
interface DrCounts {
  enabled?: boolean;
  done?: boolean;
  waiting?: number;
  copying?: number;
  completed?: number;
  failed?: number;
  deletions?: number;
}

function drText(d: DrCounts): string {
  if (d.enabled === false) return 'DR copies off';
  const parts = [
    `${plural(d.completed ?? 0, 'copy', 'copies')} completed`,
    d.copying ? `${d.copying} copying` : '',
    d.waiting ? `${d.waiting} waiting for a copy slot` : '',
    d.failed ? `${d.failed} failed` : '',
    d.deletions ? `${plural(d.deletions, 'DR snapshot')} to delete` : '',
  ].filter(Boolean);
  return `${parts.join(', ')}${d.done ? '; DR pass over' : ''}`;
}

function retentionText(r: { mode?: string; remaining?: number; deleted?: number; deferred?: number }): string {
  const parts = [`retention ${r.mode ?? 'apply'}`];
  if (r.mode === 'apply') parts.push(r.remaining ? `${plural(r.remaining, 'set')} to delete` : r.deleted ? 'all due sets deleted' : 'nothing to delete');
  if (r.deleted) parts.push(`${plural(r.deleted, 'snapshot')} deleted`);
  if (r.deferred) parts.push(`${plural(r.deferred, 'snapshot')} deferred to the next run`);
  return parts.join(', ');
}
