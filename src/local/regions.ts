/**
 * Regions of the simulated account. Every instance, volume, snapshot and image lives in one Region (absent:
 * the home Region, `REGION`), and each EC2 or SSM call sees only the resources of its client's Region: an id
 * from another Region is unknown there, with the usual NotFound code ("InvalidSnapshot.NotFound: The specified
 * snapshot does not exist ... in this Region": EC2 API reference, "Error codes for the Amazon EC2 API").
 */
import { REGION } from './world.ts';

/** What every simulated call knows besides its input: the Region of the client that made it. */
export interface CallContext {
  region: string;
}

export const HOME_CONTEXT: CallContext = { region: REGION };

/** The Region a resource lives in. */
export function regionOf(resource: { region?: string } | undefined): string {
  return resource?.region ?? REGION;
}

/** Whether a resource lives in the Region of this call (a call without a context is a home-Region call). */
export function inRegion(resource: { region?: string } | undefined, context: CallContext | undefined): boolean {
  return regionOf(resource) === (context?.region ?? REGION);
}

/** The Region of a call. */
export function callRegion(context: CallContext | undefined): string {
  return context?.region ?? REGION;
}

/** The simulated Availability Zones of a Region: `<region>a`, `b`, `c`. */
export function azsOf(region: string): string[] {
  return ['a', 'b', 'c'].map((letter) => `${region}${letter}`);
}

/** `{ region }` when it is not the home Region (keeps home resources and their dumps as they were). */
export function regionField(region: string | undefined): { region?: string } {
  return region !== undefined && region !== REGION ? { region } : {};
}
