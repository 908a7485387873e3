/**
 * Prints an execution as it happens: a line per step (WorkflowDescriber), after each Task the instances
 * whose fate changed (read through readRunProgress), and on a terminal a counter of final instances that is
 * rewritten in place. Used by the local `run` and by `--follow` on a deployed stack alike.
 */
import type { RunProgress } from '../lib/run-progress.ts';
import { counterText, progressWriter, StatusLine } from './progress.ts';
import type { Progress, StatusStream } from './progress.ts';
import { WorkflowDescriber } from './workflow-progress.ts';
import type { StepEvent, WorkflowKind } from './workflow-progress.ts';

export interface WatcherOptions {
  workflow: WorkflowKind;
  quiet: boolean;
  /** Where progress goes (stderr). */
  stream: StatusStream;
  /** Reads a run's progress; absent for workflows without a run state (restore). */
  readProgress?: (runId: string) => Promise<RunProgress | undefined>;
}

export class ExecutionWatcher {
  runId: string | undefined;
  progress: RunProgress | undefined;
  private readonly describer: WorkflowDescriber;
  private readonly print: Progress;
  readonly status: StatusLine;

  constructor(private readonly options: WatcherOptions) {
    this.describer = new WorkflowDescriber(options.workflow);
    this.status = new StatusLine(options.quiet ? { write: () => undefined } : options.stream);
    this.print = progressWriter((text) => {
      this.status.clear();
      options.stream.write(text);
    }, options.quiet);
  }

  /** A free-form line (headings, notes). */
  line(text: string): void {
    this.print(text);
  }

  /**
   * One step event `atMs` after the execution started; after a Task, the instances that changed. `current`:
   * the event is the newest known (always in a local run; for --follow the last Task exit of a batch), so the
   * progress read now is the progress of that moment.
   */
  async event(step: StepEvent, atMs: number, current = true): Promise<void> {
    // A local run learns its run id here; --follow knows it from the execution (the same id) beforehand.
    if (step.type === 'exited' && step.state === 'Prepare Run' && !this.runId) {
      const runId = (step.output as { runId?: unknown } | undefined)?.runId;
      if (typeof runId === 'string') this.runId = runId;
    }
    const afterTask = step.type === 'exited' && step.stateType === 'Task';
    if (afterTask && current) await this.refresh();
    this.print(this.describer.step(step, atMs, afterTask && current ? this.progress : undefined));
    if (afterTask && current) this.printInstances();
  }

  /** Reads the run's progress again and prints the instances that changed (a poll of `--follow`). */
  async poll(): Promise<void> {
    await this.refresh();
    this.printInstances();
  }

  /** Redraws the terminal counter with `note` after it (nothing when not a terminal). */
  showStatus(note = ''): void {
    const count = WorkflowDescriber.finalCount(this.progress);
    const parts = [count && count.total > 0 ? counterText(count.final, count.total) : '', note].filter(Boolean);
    if (parts.length > 0) this.status.update(parts.join(' · '));
  }

  finish(): void {
    this.status.clear();
  }

  private async refresh(): Promise<void> {
    if (!this.runId || !this.options.readProgress) return;
    try {
      this.progress = (await this.options.readProgress(this.runId)) ?? this.progress;
    } catch {
      // Progress is a courtesy: a failed read must not stop the run or the watch; the next read may work.
    }
  }

  private printInstances(): void {
    for (const line of this.describer.instances(this.progress)) this.print(line);
    this.showStatus();
  }
}
