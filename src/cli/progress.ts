/**
 * Progress lines on stderr for `run` and `restore`. A polling loop (Wait, then the same check with the same
 * result) would print two identical lines per poll, sixty for a 30-minute command: repeats of the last two
 * lines are folded into one note that says how often they came back.
 */
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
    if (repeats >= 2) write(`${lastStamp}... the 2 lines above came back ${Math.floor(repeats / 2)} more time(s): polling, nothing changed\n`);
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
