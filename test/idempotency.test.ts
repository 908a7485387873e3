/**
 * Focused regression tests for the idempotency bugs the reliability work (issue 5) found, each on the real
 * workflow against the simulated account: a retried call or step must not do anything twice.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TRANSIENT_AWS_ERRORS } from '../src/lib/errors.ts';
import { SimulatedAwsError } from '../src/local/aws-error.ts';
import { lambdaDiesAt, lostResponse } from '../src/local/faults.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { runWorkflow } from '../src/local/runner.ts';
import type { CallInterceptor } from '../src/local/transport.ts';
import { worldFromFleet } from '../src/local/world.ts';
import { readReport, runFleet } from './helpers.ts';
import { doubleCommands, outcomesOf } from './reliability-helpers.ts';

const fleetOf = (count: number, behaviours: string[] = ['ok']) => ({ instances: Array.from({ length: count }, () => ({ attempts: behaviours })) });

describe('SendCommand whose response is lost', () => {
  it('retries without starting a second command for the same instances and attempt', async () => {
    const fleet = parseFleet(fleetOf(3, ['vss-timeout', 'ok']));
    const clean = await runFleet(fleet);
    const world = worldFromFleet(fleet);

    const result = await runWorkflow(world, { interceptors: [lostResponse(world, (c) => c.operation === 'SendCommand', 2)] });

    const dump = world.dump();
    expect(doubleCommands(dump)).toEqual([]);
    expect(dump.commands.map((c) => c.comment)).toEqual(clean.dump.commands.map((c) => c.comment));
    expect(outcomesOf(readReport(world, result))).toEqual(outcomesOf(clean.report));
  });

  it('finds the right batch among several when the second of three is lost', async () => {
    const fleet = parseFleet(fleetOf(120));
    const world = worldFromFleet(fleet);
    let sends = 0;

    const result = await runWorkflow(world, { interceptors: [lostResponse(world, (c) => c.operation === 'SendCommand' && ++sends === 2)] });

    const dump = world.dump();
    expect(dump.commands.map((c) => c.instanceIds.length)).toEqual([50, 50, 20]);
    expect(doubleCommands(dump)).toEqual([]);
    expect(readReport(world, result)?.summary).toMatchObject({ targeted: 120, succeeded: 120, snapshots: 120 });
  });
});

describe('a step that died after its sends, before it saved them', () => {
  it('adopts the sends it had announced and gives every later send its own Comment (the key a lost answer is looked up by)', async () => {
    const world = worldFromFleet(parseFleet(fleetOf(150)));
    let sent = false;
    let died = false;
    const dies = lambdaDiesAt(world, (c) => (sent ||= c.operation === 'SendCommand') && c.operation === 'PutObject' && String(c.input.Key).endsWith('/state.json'), { after: false });
    const diesBeforeSaving: CallInterceptor = async (call) => {
      try {
        await dies(call);
      } catch (error) {
        died = true;
        throw error;
      }
    };

    const result = await runWorkflow(world, { interceptors: [diesBeforeSaving] });

    expect(died).toBe(true);
    const comments = world.dump().commands.map((c) => c.comment);
    expect(comments).toHaveLength(3); // the two sends of the first slice (adopted, not sent again) and the next slice
    expect(new Set(comments).size).toBe(comments.length);
    expect(doubleCommands(world.dump())).toEqual([]);
    expect(readReport(world, result)?.summary).toMatchObject({ targeted: 150, succeeded: 150 });
  });
});

describe('a call the SDK gave up on after its own retries', () => {
  const definition = JSON.parse(readFileSync(new URL('../statemachine/nightly-snapshots.asl.json', import.meta.url), 'utf8')) as {
    States: Record<string, { Type: string; Retry?: { ErrorEquals: string[] }[] }>;
  };

  it('is retried by every Task state under each name the five services really use', () => {
    for (const [name, state] of Object.entries(definition.States).filter(([, s]) => s.Type === 'Task')) {
      const retried = new Set(state.Retry?.flatMap((r) => r.ErrorEquals));
      expect(TRANSIENT_AWS_ERRORS.filter((e) => !retried.has(e)), name).toEqual([]);
    }
  });

  it.each([
    ['s3', 'PutObject', 'SlowDown', 503],
    ['sns', 'Publish', 'ThrottledException', 429],
    ['sns', 'Publish', 'InternalErrorException', 500],
    ['ec2', 'DescribeInstances', 'Unavailable', 503],
    ['ec2', 'DescribeSnapshots', 'RequestLimitExceeded', 503],
    ['s3', 'GetObject', 'InternalError', 500],
    ['ssm', 'ListCommands', 'ThrottlingException', 400],
  ] as const)('%s:%s failing with %s on all 5 SDK attempts is retried by the workflow, not alerted as a failed run', async (service, operation, name, status) => {
    const fleet = { instances: [{ attempts: ['ok'] }, { attempts: ['writer-failure'] }] };
    const clean = await runFleet(fleet);
    let left = 5;

    const faulty = await runFleet(fleet, {
      interceptors: [(c) => {
        if (c.service === service && c.operation === operation && left-- > 0) throw new SimulatedAwsError(name, 'simulated', status);
      }],
    });

    expect(left).toBeLessThan(0);
    expect(faulty.result.status).toBe('SUCCEEDED');
    expect(outcomesOf(faulty.report)).toEqual(outcomesOf(clean.report));
    expect(faulty.dump.published.map((p) => p.subject)).toEqual(clean.dump.published.map((p) => p.subject));
  });
});

describe('a step retried after it deleted the snapshots of an attempt it will retry', () => {
  it('judges as the first try did, so the retry goes out when it would have without the crash', async () => {
    const fleet = parseFleet({ instances: [{ attempts: ['crash-consistent', 'ok'] }, { attempts: ['vss-timeout', 'ok'] }, { attempts: ['snapshot-error', 'crash-consistent', 'ok'] }] });
    const clean = await runFleet(fleet);
    const world = worldFromFleet(fleet);

    let deleted = false;
    const diesBeforeSavingAfterDeleting = lambdaDiesAt(world, (c) => (deleted ||= c.operation === 'DeleteSnapshot') && c.operation === 'PutObject', { after: false });

    const result = await runWorkflow(world, { interceptors: [diesBeforeSavingAfterDeleting] });

    const dump = world.dump();
    expect(dump.commands.map((c) => [c.comment, c.instanceIds])).toEqual(clean.dump.commands.map((c) => [c.comment, c.instanceIds]));
    // Apart only by the step's own retry wait (Lambda.Unknown: 10 s at most, FULL jitter), not by minutes.
    dump.commands.forEach((c, i) => {
      const apart = Date.parse(c.requestedAt) - Date.parse(clean.dump.commands[i]?.requestedAt ?? '');
      expect(Math.abs(apart), c.comment).toBeLessThanOrEqual(10_000);
    });
    expect(outcomesOf(readReport(world, result))).toEqual(outcomesOf(clean.report));
    expect(dump.deletedSnapshots).toHaveLength(clean.dump.deletedSnapshots.length);
  });

  it('still deletes every unusable snapshot when it died before deleting them', async () => {
    const fleet = parseFleet({ instances: [{ volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }], attempts: ['crash-consistent', 'ok'] }] });
    const world = worldFromFleet(fleet);

    const result = await runWorkflow(world, { interceptors: [lambdaDiesAt(world, (c) => c.operation === 'DeleteSnapshot', { after: false })] });

    const report = readReport(world, result);
    expect(report?.instances[0]).toMatchObject({ outcome: 'succeeded', attempts: 2 });
    expect(world.dump().snapshots.map((s) => s.tags['vss-snapshots:attempt'])).toEqual(['2', '2']);
  });

  it('does not report the deleted snapshots of an earlier attempt when the last attempt fails, and keeps only its crash-consistent set as the fallback', async () => {
    const { report, dump } = await runFleet({ instances: [{ attempts: ['crash-consistent', 'vss-timeout'] }] }, { input: { maxAttempts: 2 } });

    expect(report?.instances[0]).toMatchObject({ outcome: 'failed', code: 'vss-timeout', attempts: 2, snapshots: [] });
    expect(report?.summary.snapshots).toBe(0);
    // AWS's document leaves the snapshots of a timed-out freeze, without AppConsistent: the last one is the fallback.
    const fallback = report?.instances[0]?.fallbackSnapshots ?? [];
    expect(fallback).toHaveLength(1);
    expect(dump.snapshots.map((s) => s.snapshotId)).toEqual(fallback.map((f) => f.snapshotId));
    expect(dump.snapshots[0]?.tags).toMatchObject({ 'vss-snapshots:attempt': '2', 'vss-snapshots:fallback': 'vss-timeout', 'vss-snapshots:consistency': 'crash-consistent' });
    expect(dump.snapshots[0]?.tags.AppConsistent).toBeUndefined();
  });
});

describe('alerts when the alerting step is retried', () => {
  const failingSend = () => {
    throw Object.assign(new Error('Document is not accessible'), { name: 'InvalidDocument', $metadata: { httpStatusCode: 400 }, $fault: 'client' });
  };

  it('Finish Run retried after it saved that the alert went out does not publish again', async () => {
    const { dump } = await runFleet({ instances: [{ attempts: ['writer-failure'] }] }, { lambdaFault: (state, n) => (state === 'Finish Run' && n === 1 ? { crashAfter: true } : undefined) });

    expect(dump.published).toHaveLength(1);
  });

  it('Alert Workflow Failure retried after it recorded its alert does not publish again', async () => {
    const { result, dump } = await runFleet(
      { instances: [{}] },
      {
        interceptors: [(c) => (c.operation === 'SendCommand' ? failingSend() : undefined)],
        lambdaFault: (state, n) => (state === 'Alert Workflow Failure' && n === 1 ? { crashAfter: true } : undefined),
      },
    );

    expect(result).toMatchObject({ status: 'FAILED', error: 'InvalidDocument' });
    expect(dump.published.map((p) => p.subject)).toEqual(['vss-snapshots: workflow failed at Advance Instances']);
  });

  it('is at least once: a Lambda dying between the publish and its record sends the alert twice (SNS cannot deduplicate)', async () => {
    const fleet = parseFleet({ instances: [{ attempts: ['writer-failure'] }] });
    const world = worldFromFleet(fleet);
    const diesRightAfterPublishing = lambdaDiesAt(world, (c) => c.operation === 'Publish', { after: true });

    await runWorkflow(world, { interceptors: [diesRightAfterPublishing] });

    expect(world.published).toHaveLength(2);
    // The same alert, but for the time it was written (the retry runs after Step Functions' retry wait).
    const timeless = (m: string | undefined) => m?.replace(/finished \S+Z\./, 'finished <time>.');
    expect(world.published[1]?.subject).toBe(world.published[0]?.subject);
    expect(timeless(world.published[0]?.message)).toBe(timeless(world.published[1]?.message));
  });
});
