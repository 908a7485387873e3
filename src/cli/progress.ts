/**
 * Progress lines on stderr for `run`, `restore` and `--follow`. A polling loop (Wait, then the same check with the same
 * result) would print two identical lines per poll, sixty for a 30-minute command: repeats of the last two
 * lines are folded into one note that says how often they came back.
 */
import { plural } from '../lib/report-text.ts';

export type Progress = (line: string) => void;

const stamp = /^\[[^\]]*\] /;

export function progressWriter(write: (text: string) => void, quiet = false): Progress {
  if (quiet) return () => undefined;
  const printed: string[] = []; // bodies (without the time stamp) of the last two printed lines
  let cycle: [string, string] | undefined;
  let position = 0;
  let repeats = 0;
  let lastStamp = '';

  const flush = () => {
    if (repeats >= 2) write(`${lastStamp}... the 2 lines above came back ${plural(Math.floor(repeats / 2), 'more time')}: polling, nothing changed\n`);
    else if (repeats === 1 && cycle) write(`${lastStamp}${cycle[0]}\n`);
    cycle = undefined;
    repeats = 0;
  };

  return (line: string) => {
    if (!line) return;
    const body = line.replace(stamp, '');
    const at = line.slice(0, line.length - body.length);
    if (cycle && body === cycle[position]) {
      repeats += 1;
      position = 1 - position;
      lastStamp = at;
      return;
    }
    if (cycle) flush();
    else if (printed.length === 2 && body === printed[0]) {
      cycle = [printed[0], printed[1] as string];
      position = 1;
      repeats = 1;
      lastStamp = at;
      return;
    }
    write(`${line}\n`);
    printed.push(body);
    if (printed.length > 2) printed.shift();
  };
}

/** The part of a stream the status line needs (process.stderr in the CLI). */
export interface StatusStream {
  isTTY?: boolean;
  columns?: number;
  write(text: string): unknown;
}

/**
 * One line at the bottom of a terminal that is rewritten in place (a counter or bar during long waits).
 * On anything that is not a terminal (a pipe, a file, CI) it writes nothing at all.
 */
export class StatusLine {
  private shown = false;

  constructor(private readonly stream: StatusStream) {}

  get active(): boolean {
    return this.stream.isTTY === true;
  }

  update(text: string): void {
    if (!this.active) return;
    const width = Math.max(20, (this.stream.columns || 80) - 1);
    this.stream.write(`\r\x1b[2K${text.length > width ? `${text.slice(0, width - 1)}…` : text}`);
    this.shown = true;
  }

  /** Removes the line (before a normal line is printed, and at the end). */
  clear(): void {
    if (!this.shown) return;
    this.stream.write('\r\x1b[2K');
    this.shown = false;
  }
}

/** `[#######-------] 5 of 8 instances final` */
export function counterText(final: number, total: number, width = 20): string {
  const filled = total === 0 ? width : Math.round((final / total) * width);
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${final.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} instances final`;
}
