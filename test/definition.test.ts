/** The one state machine definition: valid ASL, every Task retried and caught, placeholders only for ARNs. */
import { readFileSync } from 'node:fs';
import aslValidator from 'asl-validator';
import { describe, expect, it } from 'vitest';

const text = readFileSync(new URL('../statemachine/nightly-snapshots.asl.json', import.meta.url), 'utf8');
const definition = JSON.parse(text) as { States: Record<string, { Type: string; Retry?: { ErrorEquals: string[] }[]; Catch?: unknown[]; Resource?: string; SecondsPath?: string }> };

describe('statemachine/nightly-snapshots.asl.json', () => {
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
      expect(state.Retry?.[0]?.ErrorEquals, name).toContain('Lambda.ServiceException');
      expect(state.Retry?.some((r) => r.ErrorEquals.includes('Lambda.Unknown')), name).toBe(true);
      expect(state.Catch?.length, name).toBeGreaterThan(0);
      expect(state.Resource, name).toMatch(/^\$\{[A-Za-z]+FunctionArn\}$/);
    }
  });

  it('has only ${...FunctionArn} placeholders', () => {
    expect([...text.matchAll(/\$\{([^}]+)\}/g)].every((m) => /FunctionArn$/.test(m[1] ?? ''))).toBe(true);
  });
});
