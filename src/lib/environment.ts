/**
 * Reading a Lambda's environment: the shared pieces of src/lib/config.ts (nightly) and
 * src/lib/restore/config.ts (restore). A missing or malformed variable is a ConfigurationError naming it.
 */
import * as z from 'zod';
import { ConfigurationError } from './errors.ts';

/** A whole number given as a string, within [min, max]. */
export const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^[0-9]+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

/** Parses `env` with `schema`, or throws a ConfigurationError that lists every bad variable. */
export function parseEnvironment<S extends z.ZodType>(schema: S, env: NodeJS.ProcessEnv): z.output<S> {
  const parsed = schema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')} ${i.message}`).join('; ');
    throw new ConfigurationError(`Lambda environment is invalid: ${problems}`);
  }
  return parsed.data;
}
