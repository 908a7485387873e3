import { describe, expect, it } from 'vitest';
import { retryWaitSeconds } from '../../src/local/runner.ts';

describe('the wait before a Step Functions retry, on the virtual clock', () => {
  const never = () => 1;

  it('grows by BackoffRate from IntervalSeconds, capped by MaxDelaySeconds', () => {
    const retrier = { IntervalSeconds: 10, BackoffRate: 2, MaxDelaySeconds: 60 };
    expect([1, 2, 3, 4, 5].map((n) => retryWaitSeconds(retrier, n, never))).toEqual([10, 20, 40, 60, 60]);
  });

  it('uses the documented defaults (1 s, rate 2) and with FULL jitter a random share of the wait', () => {
    expect(retryWaitSeconds({}, 3, never)).toBe(4);
    expect(retryWaitSeconds({ IntervalSeconds: 10, BackoffRate: 2, JitterStrategy: 'FULL' }, 2, () => 0.25)).toBe(5);
  });
});
