/** Progress lines from a Step Functions execution history (retries and catches) and the terminal counter. */
import type { HistoryEvent } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { counterText, StatusLine } from '../../src/cli/progress.ts';
import { HistoryTranslator, WorkflowDescriber } from '../../src/cli/workflow-progress.ts';
import type { RunProgress } from '../../src/lib/run-progress.ts';

let id = 0;
const at = (seconds: number) => new Date(Date.UTC(2026, 11, 3, 0, 0, seconds));
const event = (type: string, seconds: number, details: Partial<HistoryEvent> = {}): HistoryEvent => ({ id: ++id, type: type as HistoryEvent['type'], timestamp: at(seconds), ...details });
const entered = (type: string, name: string, seconds: number, input: unknown = {}) => event(`${type}StateEntered`, seconds, { stateEnteredEventDetails: { name, input: JSON.stringify(input) } });
const exited = (type: string, name: string, seconds: number, output: unknown) => event(`${type}StateExited`, seconds, { stateExitedEventDetails: { name, output: JSON.stringify(output) } });
const lambdaFailed = (error: string, seconds: number) => event('LambdaFunctionFailed', seconds, { lambdaFunctionFailedEventDetails: { error, cause: 'boom' } });
const lambdaOk = (seconds: number) => [event('LambdaFunctionScheduled', seconds), event('LambdaFunctionStarted', seconds), event('LambdaFunctionSucceeded', seconds)];

function lines(history: HistoryEvent[], workflow: 'nightly' | 'restore' = 'nightly', progress?: RunProgress): string[] {
  const describer = new WorkflowDescriber(workflow);
  const start = at(0).getTime();
  return new HistoryTranslator()
    .push(history)
    .map(({ step, timestamp }) => describer.step(step, (timestamp?.getTime() ?? start) - start, progress))
    .filter(Boolean);
}

describe('HistoryTranslator', () => {
  it('reads a Lambda failure followed by a new schedule of the same state as a retry', () => {
    const history = [
      entered('Task', 'Check Commands', 60, {}),
      event('LambdaFunctionScheduled', 60),
      lambdaFailed('Lambda.ServiceException', 61),
      ...lambdaOk(63),
      exited('Task', 'Check Commands', 63, { counts: { command: 2 } }),
    ];

    expect(lines(history)).toEqual(['[+00:01:03] Check Commands: retried after an error (Lambda.ServiceException)', '[+00:01:03] Check Commands: 2 commands running']);
  });

  it('reads a failure followed by the state\'s exit as a Catch, named by the state it went to', () => {
    const caught = [
      entered('Task', 'Verify Snapshots', 0),
      event('LambdaFunctionScheduled', 0),
      lambdaFailed('ConfigurationError', 1),
      exited('Task', 'Verify Snapshots', 1, { error: { Error: 'ConfigurationError' } }),
      entered('Pass', 'Verify Snapshots Failed', 1),
    ];
    const rejected = [
      entered('Task', 'Prepare Run', 0),
      event('LambdaFunctionScheduled', 0),
      lambdaFailed('InvalidInputError', 0),
      exited('Task', 'Prepare Run', 0, { Error: 'InvalidInputError' }),
      entered('Fail', 'Input Rejected', 0),
      event('ExecutionFailed', 0),
    ];
    const refused = [entered('Task', 'Plan Restore', 0), event('LambdaFunctionScheduled', 0), lambdaFailed('RestoreRefusedError', 0), exited('Task', 'Plan Restore', 0, {}), entered('Fail', 'Restore Refused', 0)];

    expect(lines(caught)).toEqual(['[+00:00:01] Verify Snapshots: failed (ConfigurationError), alerting']);
    expect(lines(rejected)).toEqual(['[+00:00:00] Prepare Run: input rejected, nothing sent']);
    expect(lines(refused, 'restore')).toEqual(['[+00:00:00] Plan Restore: refused, nothing created']);
  });

  it('holds a caught exit until the next batch says where the Catch went', () => {
    const translator = new HistoryTranslator();
    const first = translator.push([entered('Task', 'Send Snapshot Commands', 0), lambdaFailed('States.Timeout', 5), exited('Task', 'Send Snapshot Commands', 5, {})]);
    const second = translator.push([entered('Pass', 'Send Snapshot Commands Failed', 5)]);

    expect(first.map((e) => e.step.type)).toEqual(['entered']);
    expect(second.map((e) => e.step)).toEqual([
      { type: 'caught', state: 'Send Snapshot Commands', error: 'States.Timeout', next: 'Send Snapshot Commands Failed' },
      { type: 'exited', state: 'Send Snapshot Commands', stateType: 'Task', output: {} },
      { type: 'entered', state: 'Send Snapshot Commands Failed', stateType: 'Pass', input: {} },
    ]);
  });

  it('says "attempt N of M" from the progress of the moment, and nothing without it', () => {
    const progress: RunProgress = {
      runId: 'r',
      dryRun: false,
      maxAttempts: 3,
      instances: [
        { instanceId: 'i-1', phase: 'command', attempts: 2 },
        { instanceId: 'i-2', phase: 'retry', attempts: 1 },
        { instanceId: 'i-3', phase: 'succeeded', attempts: 3 },
      ],
    };
    const step = [exited('Task', 'Send Snapshot Commands', 0, { counts: { command: 1, retry: 1, succeeded: 1 } })];

    expect(lines(step, 'nightly', progress)).toEqual(['[+00:00:00] Send Snapshot Commands (attempts 1-2 of 3): 1 command running, 1 waiting to retry, 1 succeeded']);
    expect(lines(step, 'nightly')).toEqual(['[+00:00:00] Send Snapshot Commands: 1 command running, 1 waiting to retry, 1 succeeded']);
  });
});

describe('StatusLine', () => {
  it('redraws one line in place on a terminal and writes nothing elsewhere', () => {
    const tty: string[] = [];
    const pipe: string[] = [];
    const onTerminal = new StatusLine({ isTTY: true, columns: 60, write: (t) => tty.push(t) });
    const onPipe = new StatusLine({ write: (t) => pipe.push(t) });

    for (const line of [onTerminal, onPipe]) {
      line.update(counterText(3, 8));
      line.update(counterText(8, 8));
      line.clear();
    }

    expect(tty).toEqual(['\r\x1b[2K[########------------] 3 of 8 instances final', '\r\x1b[2K[####################] 8 of 8 instances final', '\r\x1b[2K']);
    expect(pipe).toEqual([]);
  });
});
