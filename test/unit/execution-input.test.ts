import { describe, expect, it } from 'vitest';
import { InvalidInputError } from '../../src/lib/errors.ts';
import { parseExecutionInput } from '../../src/lib/execution-input.ts';

describe('parseExecutionInput', () => {
  it('accepts the empty input and the console default comment', () => {
    expect(parseExecutionInput({})).toEqual({});
    expect(parseExecutionInput(null)).toEqual({});
    expect(parseExecutionInput({ Comment: 'Insert your JSON here' })).toEqual({ Comment: 'Insert your JSON here' });
  });

  it('accepts every documented field', () => {
    const input = { tagKey: 'Backup', tagValue: 'nightly', instanceIds: ['i-12345678', 'i-0123456789abcdef0'], dryRun: true, excludeBootVolume: false, maxAttempts: 5, force: true, retention: 'preview', comment: 'x' };
    expect(parseExecutionInput(input)).toEqual(input);
  });

  it('names an unknown field and lists the allowed ones', () => {
    expect(() => parseExecutionInput({ instanceID: [] })).toThrowError(/unknown field "instanceID"; allowed fields: tagKey, tagValue, instanceIds, dryRun, excludeBootVolume, maxAttempts, force, retention, Comment, comment/);
  });

  it('throws InvalidInputError, the name the state machine routes on', () => {
    try {
      parseExecutionInput({ maxAttempts: 0 });
      expect.unreachable();
    } catch (error) {
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as Error).name).toBe('InvalidInputError');
      expect((error as Error).message).toMatch(/field "maxAttempts" must be a whole number from 1 to 5/);
    }
  });

  it.each([
    [{ tagKey: 'aws:cloudformation:stack-name' }, /tagKey.*reserved/],
    [{ tagKey: '' }, /tagKey.*1-128/],
    [{ tagValue: 'x'.repeat(257) }, /tagValue.*1-256/],
    [{ tagValue: 'a\nb' }, /tagValue.*control characters/],
    [{ instanceIds: [] }, /instanceIds.*1-1000/],
    [{ instanceIds: ['I-12345678'] }, /instanceIds\[0\]/],
    [{ instanceIds: 'i-12345678' }, /instanceIds.*array/],
    [{ maxAttempts: 2.5 }, /maxAttempts/],
    [{ force: 1 }, /force.*true or false/],
    [42, /JSON object/],
  ])('rejects %j', (input, message) => {
    expect(() => parseExecutionInput(input)).toThrowError(message);
  });

  it('keeps tag values with shell metacharacters as data', () => {
    const tagValue = "'; Remove-Item C:\\ -Recurse # $(whoami) `x` {{ y }}";
    expect(parseExecutionInput({ tagValue })).toEqual({ tagValue });
  });
});
