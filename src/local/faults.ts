/**
 * API fault injection for the simulated account (fleet file `faults: {rate, seed, kinds}`, issue 5).
 *
 * Any SDK call may fail transiently the way AWS fails: throttling with each service's real error code,
 * a 500/503 server error, or a socket timeout shaped like the one the SDK's Node HTTP handler raises. The
 * faults come from a seeded generator, so the same fleet file always gives the same faults in the same
 * places. A timeout of a call that changes something is, half the time, a timeout *after* the service
 * applied the call (the response was lost): the SDK's retry then repeats a call that already happened,
 * which is what makes non-idempotent APIs (SSM SendCommand, SNS Publish) dangerous.
 *
 * Every fault here is one the SDK's retry strategy classifies as retryable (@smithy/core/retry):
 * throttling names (`ThrottlingException`, `ThrottledException`, `RequestLimitExceeded`, `SlowDown`),
 * HTTP 500/503, and the transient name `TimeoutError` (with `code: 'ETIMEDOUT'`). When the SDK gives up,
 * the Lambda fails with that same name, which the state machine's Retry (TRANSIENT_AWS_ERRORS) lists.
 */
import { SimulatedAwsError } from './aws-error.ts';
import { MUTATING_CALLS, applyCall } from './operations.ts';
import { seededRandom } from './random.ts';
import type { CallInterceptor } from './transport.ts';
import type { World } from './world.ts';

export const FAULT_KIND_NAMES = ['throttle', 'server', 'timeout'] as const;
export type FaultKind = (typeof FAULT_KIND_NAMES)[number];

export interface FaultSpec {
  /** Probability (0–0.5) that any one API call fails. */
  rate: number;
  seed: number;
  kinds: readonly FaultKind[];
}

/** What was injected, for tests and for reading a run's output. */
export interface FaultLog {
  total: number;
  byKind: Record<FaultKind, number>;
  /** `service:Operation` → faults injected into it. */
  byCall: Record<string, number>;
  /** Timeouts whose call had already taken effect (response lost). */
  afterEffect: number;
  /** The faults in order: `service:Operation code`. */
  events: string[];
}

export { seededRandom } from './random.ts';

/** The throttling error each service really answers with (EC2's is not ThrottlingException). */
export function throttlingError(service: string): SimulatedAwsError {
  switch (service) {
    case 'ec2':
      return new SimulatedAwsError('RequestLimitExceeded', 'Request limit exceeded.', 503);
    case 's3':
      return new SimulatedAwsError('SlowDown', 'Please reduce your request rate.', 503);
    case 'sns':
      // Wire code "Throttled" (HTTP 429); the SDK raises it as ThrottledException.
      return new SimulatedAwsError('ThrottledException', 'Rate exceeded', 429);
    default:
      return new SimulatedAwsError('ThrottlingException', 'Rate exceeded', 400);
  }
}

/** A 500 or a 503 with the name each service uses. */
export function serverError(service: string, unavailable: boolean): SimulatedAwsError {
  if (unavailable) {
    const name = service === 'ec2' ? 'Unavailable' : service === 's3' || service === 'sns' ? 'ServiceUnavailable' : 'ServiceUnavailableException';
    return new SimulatedAwsError(name, 'The service is unavailable. Please try again shortly.', 503);
  }
  const name = service === 'ssm' ? 'InternalServerError' : service === 'sfn' ? 'InternalFailure' : service === 'sns' ? 'InternalErrorException' : 'InternalError';
  return new SimulatedAwsError(name, 'An internal error has occurred.', 500);
}

/** Shaped like @smithy/node-http-handler's socket timeout: no HTTP status, name TimeoutError. */
export function socketTimeoutError(): Error {
  return Object.assign(
    new Error('@smithy/node-http-handler - the request socket timed out after 30000 ms of inactivity (configured by client requestHandler).'),
    { name: 'TimeoutError', code: 'ETIMEDOUT' },
  );
}

export function emptyFaultLog(): FaultLog {
  return { total: 0, byKind: { throttle: 0, server: 0, timeout: 0 }, byCall: {}, afterEffect: 0, events: [] };
}

export interface FaultOptions {
  /** Needed for timeouts after the effect: the interceptor applies the call to the world, then times out. */
  world?: World;
  log?: FaultLog;
  /** Default true: half the timeouts of mutating calls land after the effect. */
  timeoutsAfterEffect?: boolean;
}

/** A seeded interceptor for installWorld/runWorkflow that fails calls at `spec.rate`. */
export function faultInterceptor(spec: FaultSpec, options: FaultOptions = {}): CallInterceptor {
  const random = seededRandom(spec.seed);
  const kinds = spec.kinds.length > 0 ? spec.kinds : FAULT_KIND_NAMES;
  const log = options.log ?? emptyFaultLog();
  return async ({ service, operation, input, region }) => {
    if (spec.rate <= 0 || random() >= spec.rate) return;
    const kind = kinds[Math.floor(random() * kinds.length)] as FaultKind;
    const key = `${service}:${operation}`;
    let error: Error;
    let applied = false;
    if (kind === 'throttle') error = throttlingError(service);
    else if (kind === 'server') error = serverError(service, random() < 0.5);
    else {
      error = socketTimeoutError();
      const afterEffect = random() < 0.5;
      if (afterEffect && options.timeoutsAfterEffect !== false && options.world && MUTATING_CALLS.has(key)) {
        // The service did the work; only the answer was lost. Errors of the call itself surface as usual.
        await applyCall(options.world, service, operation, input, region ? { region } : undefined);
        applied = true;
      }
    }
    log.total += 1;
    log.byKind[kind] += 1;
    log.byCall[key] = (log.byCall[key] ?? 0) + 1;
    if (applied) log.afterEffect += 1;
    log.events.push(`${key} ${error.name}${applied ? ' (after effect)' : ''}`);
    throw error;
  };
}

const logs = new WeakMap<World, FaultLog>();

/**
 * The interceptors a run against `world` needs for the faults of its fleet file (none without `faults`).
 * Each run gets a fresh generator from the seed, so a run is reproducible from the fleet file alone.
 */
export function worldFaultInterceptors(world: World): CallInterceptor[] {
  const spec = world.faults;
  if (!spec || spec.rate <= 0) return [];
  const log = logs.get(world) ?? emptyFaultLog();
  logs.set(world, log);
  return [faultInterceptor(spec, { world, log })];
}

/** Faults injected so far into runs against `world` (from its fleet file). */
export function faultLogOf(world: World): FaultLog {
  return logs.get(world) ?? emptyFaultLog();
}

/**
 * An interceptor that makes the calls `match` selects (the first `times` of them) take effect in the
 * world and then time out, as if the response was lost on the way back. For tests of one precise fault.
 */
export function lostResponse(world: World, match: (call: { service: string; operation: string; region?: string }) => boolean, times = 1): CallInterceptor {
  let left = times;
  return async ({ service, operation, input, region }) => {
    if (left <= 0 || !match({ service, operation, ...(region ? { region } : {}) })) return;
    left -= 1;
    await applyCall(world, service, operation, input, region ? { region } : undefined);
    throw socketTimeoutError();
  };
}

/** The error a Lambda that ran out of time raises in Step Functions (retried by every Task's Retry). */
export function lambdaTimeout(): Error {
  return Object.assign(new Error('Simulated: the Lambda timed out at this point.'), { name: 'Lambda.Unknown' });
}

/**
 * An interceptor that kills the running Lambda around the calls `match` selects (the first `times`): with
 * `after`, the call takes effect first (the side effect happened, the Lambda died before it could record
 * it); without, the Lambda dies just before the call. The SDK does not retry the error; the state
 * machine's Retry re-runs the whole step.
 */
export function lambdaDiesAt(world: World, match: (call: { service: string; operation: string; input: Record<string, unknown> }) => boolean, options: { after: boolean; times?: number }): CallInterceptor {
  let left = options.times ?? 1;
  return async (call) => {
    if (left <= 0 || !match(call)) return;
    left -= 1;
    if (options.after) await applyCall(world, call.service, call.operation, call.input, call.region ? { region: call.region } : undefined);
    throw lambdaTimeout();
  };
}
