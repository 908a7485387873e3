/** Every state machine definition: valid ASL, every Task retried and caught, placeholders only for ARNs. */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';

const aslValidator = createRequire(import.meta.url)('asl-validator') as (
  definition: unknown,
  options: { checkArn: boolean; checkPaths: boolean },
) => { isValid: boolean; errorsText: (separator?: string) => string };

type Definition = { States: Record<string, { Type: string; Retry?: { ErrorEquals: string[] }[]; Catch?: { ErrorEquals: string[]; Next?: string }[]; Resource?: string }> };

const DIRECTORY = new URL('../statemachine/', import.meta.url);
const files = readdirSync(DIRECTORY).filter((f) => f.endsWith('.asl.json')).sort();

it('finds the nightly definition', () => {
  expect(files).toContain('nightly-snapshots.asl.json');
});

describe.each(files)('statemachine/%s', (file) => {
  const text = readFileSync(new URL(file, DIRECTORY), 'utf8');
  const definition = JSON.parse(text) as Definition;

  it('passes asl-validator with path checks', () => {
    const { isValid, errorsText } = aslValidator(JSON.parse(text.replace(/\$\{(\w+)\}/g, 'arn:aws:lambda:us-east-1:123456789012:function:$1')), { checkArn: true, checkPaths: true });
    expect(errorsText('\n')).toBe('');
    expect(isValid).toBe(true);
  });

  it('uses JSONPath only (the local interpreter silently ignores JSONata)', () => {
    expect(text).not.toMatch(/"QueryLanguage"|"Arguments"|"Assign"|"Output"/);
  });

  it('retries Lambda service errors and catches everything in every Task', () => {
    for (const [name, state] of Object.entries(definition.States).filter(([, s]) => s.Type === 'Task')) {
      // A Task that must not run twice (a send without idempotency token) catches the errors after which its
      // Lambda may have done the work into a state that looks for that work, instead of retrying blind.
      const handled = (error: string) => state.Retry?.some((r) => r.ErrorEquals.includes(error)) || state.Catch?.some((c) => c.ErrorEquals.includes(error) && c.Next !== undefined);
      expect(handled('Lambda.ServiceException'), name).toBe(true);
      expect(handled('Lambda.Unknown'), name).toBe(true);
      expect(state.Catch?.length, name).toBeGreaterThan(0);
      expect(state.Resource, name).toMatch(/^\$\{[A-Za-z]+FunctionArn\}$/);
    }
  });

  it('has only ${...FunctionArn} placeholders', () => {
    expect([...text.matchAll(/\$\{([^}]+)\}/g)].every((m) => /FunctionArn$/.test(m[1] ?? ''))).toBe(true);
  });
});
