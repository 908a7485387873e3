/**
 * Focused regression tests for the idempotency bugs the reliability work (issue 5) found, each on the real
 * workflow against the simulated account: a retried call or step must not do anything twice.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { TRANSIENT_AWS_ERRORS } from '../src/lib/errors.ts';
import { SimulatedAwsError } from '../src/local/aws-error.ts';
import { lostResponse } from '../src/local/faults.ts';
import { parseFleet } from '../src/local/fleet.ts';
import { runWorkflow } from '../src/local/runner.ts';
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
    ['sfn', 'ListExecutions', 'InternalFailure', 500],
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
