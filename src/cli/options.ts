/** Option values shared by several commands: the execution input (JSON text or a file) and numbers. */
import { InvalidArgumentError } from 'commander';
import { readInputFile } from './paths.ts';
import { UsageError } from './exit-codes.ts';

const JSON_EXAMPLE = `'{"dryRun": true}'`;

/**
 * `--input` is the execution input as JSON text or as the path of a JSON file (contract §2). Text that
 * starts like JSON is JSON; anything else is a path, so a mistyped path says "file not found" rather than
 * "not valid JSON".
 */
export function readJsonOption(value: string, flag = '--input'): unknown {
  const text = value.trimStart();
  if (/^[{["]/.test(text) || /^(true|false|null|-?[0-9])/.test(text)) {
    try {
      return JSON.parse(value);
    } catch (error) {
      throw new UsageError(`${flag} is not valid JSON (${(error as Error).message}). Example: ${flag} ${JSON_EXAMPLE}`);
    }
  }
  let fileText: string;
  try {
    fileText = readInputFile(value, flag);
  } catch (error) {
    if (error instanceof UsageError) throw new UsageError(`${error.message} (${flag} takes JSON text, e.g. ${JSON_EXAMPLE}, or the path of a JSON file)`);
    throw error;
  }
  try {
    return JSON.parse(fileText);
  } catch (error) {
    throw new UsageError(`${flag}: file ${value} is not valid JSON (${(error as Error).message}).`);
  }
}

/** A commander argument parser for a whole number within [min, max]. */
export function wholeNumber(min: number, max: number): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (!/^[0-9]+$/.test(text) || n < min || n > max) throw new InvalidArgumentError(`must be a whole number from ${min} to ${max}.`);
    return n;
  };
}

/** A commander argument parser for a number within [min, max] (decimals allowed). */
export function decimal(min: number, max: number, what = 'a number'): (text: string) => number {
  return (text) => {
    const n = Number(text);
    if (text.trim() === '' || !Number.isFinite(n) || n < min || n > max) throw new InvalidArgumentError(`must be ${what} from ${min} to ${max}.`);
    return n;
  };
}

