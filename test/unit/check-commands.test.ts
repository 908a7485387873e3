import { describe, expect, it } from 'vitest';
import { classifyInvocation } from '../../src/lib/check-commands.ts';
import { awsVss, formatVssTags } from '../../src/lib/methods/aws-vss.ts';
import type { InvocationResult } from '../../src/lib/methods/types.ts';

const classify = (r: Partial<InvocationResult>) => classifyInvocation({ status: 'Failed', statusDetails: 'Failed', output: '', ...r }, awsVss.diagnose);

describe('classifyInvocation', () => {
  it.each([
    [{ status: 'Success', statusDetails: 'Success' }, 'ok'],
    [{ statusDetails: 'AccessDenied' }, 'access-denied'],
    [{ statusDetails: 'InvalidPlatform' }, 'invalid-platform'],
    [{ statusDetails: 'Undeliverable' }, 'undeliverable'],
    [{ status: 'TimedOut', statusDetails: 'DeliveryTimedOut' }, 'undeliverable'],
    [{ status: 'TimedOut', statusDetails: 'ExecutionTimedOut' }, 'execution-timeout'],
    [{ statusDetails: 'Terminated' }, 'command-terminated'],
    [{ status: 'Cancelled', statusDetails: 'Cancelled' }, 'command-cancelled'],
    [{ output: 'ERROR: timeout waiting for VSS Freeze' }, 'vss-timeout'],
    [{ output: 'Thaw pipe connection timed out' }, 'vss-timeout'],
    [{ output: 'writer SqlServerWriter VSS_E_WRITERERROR_NONRETRYABLE' }, 'vss-writer-nonretryable'],
    [{ output: 'VSS_E_WRITERERROR_TIMEOUT' }, 'vss-writer-retryable'],
    [{ output: 'VSS_E_SNAPSHOT_SET_IN_PROGRESS' }, 'vss-in-progress'],
    [{ output: 'Cannot invoke method. Method invocation is supported only on core types in this language mode.' }, 'language-mode'],
    [{ output: 'AwsVssComponents package is not installed' }, 'package-missing'],
    [{ output: 'something odd', responseCode: 5 }, 'script-failed'],
  ])('classifies %j as %s', (result, expected) => {
    const verdict = classify(result);
    expect(verdict === 'ok' ? 'ok' : verdict.code).toBe(expected);
  });
});

describe('formatVssTags', () => {
  it('builds the document tags parameter', () => {
    expect(formatVssTags({ a: '1', 'b:c': 'x y' })).toBe('Key=a,Value=1;Key=b:c,Value=x y');
  });

  it.each(['Device', 'AppConsistent', 'AwsVssConfig'])('refuses the reserved tag %s', (key) => {
    expect(() => formatVssTags({ [key]: 'x' })).toThrowError(/reserved/);
  });

  it('refuses values that would change the meaning of the tags string', () => {
    expect(() => formatVssTags({ k: 'a;Key=Device,Value=x' })).toThrowError(/may only use/);
  });
});
