/**
 * `--dr-region REGION`: DR copies of a local run or simulation into that Region of the simulated account
 * (contract §7; the stack parameter DrRegion in AWS). It reaches the Lambdas as DR_REGION, as in the stack.
 */
import { InvalidArgumentError } from 'commander';
import { REGION_NAME } from '../lib/aws-region.ts';
import { REGION } from '../local/world.ts';


/** A commander argument parser: a bad value is a usage error (exit 2) before anything runs. */
export function parseDrRegionOption(text: string): string {
  if (!REGION_NAME.test(text)) throw new InvalidArgumentError(`"${text.slice(0, 40)}" is not a Region code; use e.g. --dr-region us-west-2.`);
  if (text === REGION) throw new InvalidArgumentError(`${text} is the simulated stack's own Region; name another one, e.g. --dr-region us-west-2.`);
  return text;
}

export const drEnvironment = (region: string | undefined): Record<string, string> => (region ? { DR_REGION: region } : {});
