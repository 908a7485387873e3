/**
 * Focused regression tests for the idempotency bugs the reliability work (issue 5) found, each on the real
 * workflow against the simulated account: a retried call or step must not do anything twice.
 */
import { describe, expect, it } from 'vitest';
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
