/** The DR settings of the Lambda environment (src/lib/config.ts): off by default, checked before anything runs. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/lib/config.ts';

const BASE = { ALERT_TOPIC_ARN: 'arn:aws:sns:us-east-1:123456789012:alerts', REPORT_BUCKET: 'vss-reports', AWS_REGION: 'us-east-1' };

describe('DR settings', () => {
  it('are off without DR_REGION (or with it empty)', () => {
    expect(loadConfig(BASE).dr).toBeUndefined();
    expect(loadConfig({ ...BASE, DR_REGION: '' }).dr).toBeUndefined();
  });

  it('default to 20 copies in flight, 3 attempts, a 20-hour pass, a 2-minute poll and the DR rule 7 / 14', () => {
    expect(loadConfig({ ...BASE, DR_REGION: 'us-west-2' }).dr).toEqual({
      region: 'us-west-2',
      sourceRegion: 'us-east-1',
      kmsKeyId: undefined,
      encrypt: false,
      concurrency: 20,
      maxAttempts: 3,
      deadlineHours: 20,
      pollSeconds: 120,
      retention: { count: 7, days: 14, terminatedDays: 30, maxDeletes: 36_000, archiveAfterDays: 0 },
    });
  });

  it.each([
    [{ DR_REGION: 'us-east-1' }, /DR_REGION us-east-1 is the stack's own Region/],
    [{ DR_REGION: 'west' }, /DR_REGION must be an AWS Region code/],
    [{ DR_REGION: 'us-west-2', DR_KMS_KEY_ID: 'arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab' }, /DR_KMS_KEY_ID is a key of eu-west-1/],
    // A longer pass and its deletions would run into the state machine's 23-hour timeout.
    [{ DR_REGION: 'us-west-2', DR_COPY_DEADLINE_HOURS: '21' }, /DR_COPY_DEADLINE_HOURS/],
    // A shorter poll over a 20-hour pass would near Step Functions' 25,000 history events.
    [{ DR_REGION: 'us-west-2', DR_POLL_SECONDS: '30' }, /DR_POLL_SECONDS/],
  ])('refuses %o with a message naming the variable', (env, message) => {
    expect(() => loadConfig({ ...BASE, ...env })).toThrow(message);
  });
});
