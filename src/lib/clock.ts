/**
 * The one source of "now" for the workflow's logic. In AWS it is the Lambda's wall clock; the local
 * runner points it at the simulated account's virtual clock, the same way it plugs the simulated
 * account beneath the SDK clients. Handlers never know which one they get.
 */
export const clock = {
  now: (): number => Date.now(),
};

export function nowIso(): string {
  return new Date(clock.now()).toISOString();
}
