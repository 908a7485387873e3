/** Progress lines: polling loops fold into one note; everything else is printed as it comes. */
import { describe, expect, it } from 'vitest';
import { progressWriter } from '../../src/cli/progress.ts';

function lines(input: string[]): string[] {
  const out: string[] = [];
  const progress = progressWriter((text) => out.push(text.trimEnd()));
  for (const line of input) progress(line);
  progress('[+09:00:00] Finish Run: report written');
  return out;
}

describe('progressWriter', () => {
  it('folds a repeated Wait/Check pair and shows the change that ends it', () => {
    const poll = (m: number, status: string) => [`[+00:0${m}:00] Wait For Commands`, `[+00:0${m}:00] Check Commands: ${status}`];
    const out = lines([...poll(1, '7 running'), ...poll(2, '7 running'), ...poll(3, '7 running'), ...poll(4, '7 running'), ...poll(5, '6 verifying')]);

    expect(out).toEqual([
      '[+00:01:00] Wait For Commands',
      '[+00:01:00] Check Commands: 7 running',
      '[+00:05:00] ... the 2 lines above came back 3 more times: polling, nothing changed',
      '[+00:05:00] Check Commands: 6 verifying',
      '[+09:00:00] Finish Run: report written',
    ]);
  });

  it('prints a line that merely equals the one before last when no loop follows', () => {
    const out = lines(['[1] A', '[2] B', '[3] A', '[4] C']);

    expect(out).toEqual(['[1] A', '[2] B', '[3] A', '[4] C', '[+09:00:00] Finish Run: report written']);
  });

  it('prints nothing when quiet, and skips empty lines', () => {
    const out: string[] = [];
    progressWriter((t) => out.push(t), true)('[1] A');
    progressWriter((t) => out.push(t))('');
    expect(out).toEqual([]);
  });
});
