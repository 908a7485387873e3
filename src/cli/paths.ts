/**
 * Input and output paths are checked before anything runs: a run that would take a simulated night (or
 * start an execution in AWS) must not fail at its very end because `--report` points into a missing folder.
 */
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { UsageError } from './exit-codes.ts';

/** The text of a file the user named, or a UsageError that says file not found / not a file / not readable. */
export function readInputFile(path: string, flag: string): string {
  if (!existsSync(path)) throw new UsageError(`${flag}: file not found: ${path}`);
  if (!statSync(path).isFile()) throw new UsageError(`${flag}: ${path} is not a file.`);
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new UsageError(`${flag}: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}).`);
  }
}

/** Checks that `path` can be written (its folder exists and is writable; it is not a folder), without creating it. */
export function checkOutputPath(path: string, flag: string): void {
  const absolute = resolve(path);
  const folder = dirname(absolute);
  if (!existsSync(folder)) throw new UsageError(`${flag}: folder not found: ${folder} (create it first, or choose another path).`);
  if (!statSync(folder).isDirectory()) throw new UsageError(`${flag}: ${folder} is not a folder.`);
  if (existsSync(absolute)) {
    if (statSync(absolute).isDirectory()) throw new UsageError(`${flag}: ${path} is a folder; give a file name.`);
    try {
      accessSync(absolute, constants.W_OK);
    } catch {
      throw new UsageError(`${flag}: ${path} is not writable.`);
    }
    return;
  }
  try {
    accessSync(folder, constants.W_OK);
  } catch {
    throw new UsageError(`${flag}: folder ${folder} is not writable.`);
  }
}
