/**
 * Realistic pressure in the simulated account: the EC2 API's token buckets (aws-facts.md, "EC2 API
 * throttling"), an assumed SSM rate, and a latency per call, all on the virtual clock. Off unless a run
 * asks for it (`vss-snapshots bench` does): the functional tests stay fast and deterministic.
 *
 * - Calls the workflow makes go through a `CallInterceptor`: each call first costs its latency, then takes
 *   a token from its bucket or is answered with the service's real throttling error (EC2
 *   `RequestLimitExceeded`, HTTP 503; SSM `ThrottlingException`, HTTP 400). The SDK retries those like in
 *   AWS, so every throttled attempt shows in `world.apiCalls` and costs virtual time.
 * - Calls the instances make themselves (the VSS agent's `CreateSnapshots`, one per instance and command)
 *   go through `world.instanceApiGate`: they share the account's CreateSnapshots bucket, and the agent's
 *   SDK keeps retrying only while the VSS freeze lasts (Windows limits it to 10 s). A call still throttled
 *   then fails the command with a VSS freeze timeout, as in AWS.
 *
 * Every figure is an assumption stated here once, configurable per run.
 */
import type { CallInterceptor } from './transport.ts';
import { awsError } from './aws-error.ts';
import { REGION } from './world.ts';
import type { World } from './world.ts';

export interface BucketSpec {
  /** Tokens the bucket holds when full: the calls that may come at once. */
  burst: number;
  /** Tokens added per second. */
  perSecond: number;
}

export interface LimitsConfig {
  /** EC2's documented buckets (docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html). */
  ec2: {
    nonMutating: BucketSpec;
    unfilteredNonMutating: BucketSpec;
    mutating: BucketSpec;
    createSnapshots: BucketSpec;
    createTags: BucketSpec;
    deleteSnapshot: BucketSpec;
    /** CopySnapshot: the default "mutating" bucket of the throttling page, 50 burst, 5 per second (aws-facts-lifecycle §1). */
    copySnapshot: BucketSpec;
  };
  /**
   * SSM publishes no rates. Assumed: one bucket per API, `read` for Describe/List/Get, `write` for
   * SendCommand and CancelCommand. Tight polling is throttled in practice (aws-rfdk#1723); these are
   * deliberately modest.
   */
  ssm: { read: BucketSpec; write: BucketSpec };
  /** Round-trip time per call (ms) by `service:Operation`, then by service; `default` for the rest. */
  latencyMs: Record<string, number>;
  /** S3 transfer rate from a Lambda, for GetObject/PutObject of the run state (bytes per second). */
  s3BytesPerSecond: number;
  /** How long an instance's CreateSnapshots may wait for a token before the VSS freeze times out (ms). */
  instanceMaxWaitMs: number;
}

export const DEFAULT_LIMITS: LimitsConfig = {
  ec2: {
    nonMutating: { burst: 100, perSecond: 20 },
    unfilteredNonMutating: { burst: 50, perSecond: 10 },
    mutating: { burst: 200, perSecond: 5 },
    createSnapshots: { burst: 100, perSecond: 5 },
    createTags: { burst: 100, perSecond: 10 },
    deleteSnapshot: { burst: 100, perSecond: 5 },
    copySnapshot: { burst: 50, perSecond: 5 },
  },
  ssm: {
    read: { burst: 20, perSecond: 10 },
    write: { burst: 10, perSecond: 5 },
  },
  latencyMs: {
    'ec2:DescribeInstances': 500,
    'ec2:DescribeSnapshots': 300,
    ec2: 100,
    'ssm:SendCommand': 150,
    'ssm:ListCommands': 100,
    'ssm:ListCommandInvocations': 120,
    ssm: 80,
    s3: 20,
    sns: 40,
    sfn: 60,
    default: 50,
  },
  s3BytesPerSecond: 50_000_000,
  instanceMaxWaitMs: 10_000,
};

/** A token bucket on the virtual clock. `take` is all-or-nothing; `reserve` queues (FIFO) up to a wait. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    readonly spec: BucketSpec,
    start: number,
  ) {
    this.tokens = spec.burst;
    this.last = start;
  }

  private refill(at: number): void {
    if (at > this.last) {
      this.tokens = Math.min(this.spec.burst, this.tokens + ((at - this.last) / 1000) * this.spec.perSecond);
      this.last = at;
    }
  }

  take(at: number): boolean {
    this.refill(at);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Ms until this caller gets a token (callers queue behind earlier ones), or undefined past `maxWaitMs`. */
  reserve(at: number, maxWaitMs: number): number | undefined {
    this.refill(at);
    const waitMs = this.tokens >= 1 ? 0 : ((1 - this.tokens) / this.spec.perSecond) * 1000;
    if (waitMs > maxWaitMs) return undefined;
    this.tokens -= 1;
    return waitMs;
  }
}

export interface LimitStats {
  /** Throttled attempts by `service:Operation` (each was retried by the SDK or failed the call). */
  throttled: Record<string, number>;
  /** Virtual time spent in call latency (ms). */
  latencyMs: number;
  /** The instances' own CreateSnapshots calls. */
  instance: {
    calls: number;
    /** Calls that waited for a token, and the longest wait (ms). */
    delayed: number;
    maxWaitMs: number;
    /** Calls still throttled when the VSS freeze ended: those commands failed. */
    failed: number;
  };
}

export interface AccountLimits {
  interceptor: CallInterceptor;
  stats: LimitStats;
  /** Detaches the instance-side gate from the world. */
  uninstall: () => void;
}

/** Puts `config`'s limits on `world`: pass `interceptor` to runWorkflow's `interceptors`. */
export function accountLimits(world: World, config: LimitsConfig = DEFAULT_LIMITS): AccountLimits {
  const stats: LimitStats = { throttled: {}, latencyMs: 0, instance: { calls: 0, delayed: 0, maxWaitMs: 0, failed: 0 } };
  const buckets = new Map<string, TokenBucket>();
  const bucket = (name: string, spec: BucketSpec): TokenBucket => {
    let b = buckets.get(name);
    if (!b) {
      b = new TokenBucket(spec, world.now);
      buckets.set(name, b);
    }
    return b;
  };

  const interceptor: CallInterceptor = ({ service, operation, input, region }) => {
    const key = `${service}:${operation}`;
    const latency = latencyOf(world, config, service, operation, input);
    stats.latencyMs += latency;
    world.advanceBy(latency);
    const limit = bucketFor(config, service, operation, input);
    // EC2's buckets are per account *and Region* (throttling page): a DR Region's calls have their own.
    if (!limit || bucket(region && region !== REGION ? `${region}/${limit.name}` : limit.name, limit.spec).take(world.now)) return;
    stats.throttled[key] = (stats.throttled[key] ?? 0) + 1;
    if (service === 'ec2') throw awsError('RequestLimitExceeded', 'Request limit exceeded.', 503);
    throw awsError('ThrottlingException', 'Rate exceeded', 400);
  };

  const createSnapshots = bucket('ec2:CreateSnapshots', config.ec2.createSnapshots);
  const previousGate = world.instanceApiGate;
  world.instanceApiGate = (operation, at, maxWaitMs) => {
    if (operation !== 'ec2:CreateSnapshots') return 0;
    stats.instance.calls += 1;
    const waited = createSnapshots.reserve(at, Math.min(maxWaitMs, config.instanceMaxWaitMs));
    if (waited === undefined) {
      stats.instance.failed += 1;
      return undefined;
    }
    if (waited > 0) stats.instance.delayed += 1;
    stats.instance.maxWaitMs = Math.max(stats.instance.maxWaitMs, waited);
    return waited;
  };

  return {
    interceptor,
    stats,
    uninstall: () => {
      world.instanceApiGate = previousGate;
    },
  };
}

function bucketFor(config: LimitsConfig, service: string, operation: string, input: Record<string, unknown>): { name: string; spec: BucketSpec } | undefined {
  if (service === 'ec2') {
    if (operation === 'DeleteSnapshot') return { name: 'ec2:DeleteSnapshot', spec: config.ec2.deleteSnapshot };
    if (operation === 'CreateSnapshot' || operation === 'CreateSnapshots') return { name: 'ec2:CreateSnapshots', spec: config.ec2.createSnapshots };
    if (operation === 'CreateTags') return { name: 'ec2:CreateTags', spec: config.ec2.createTags };
    if (operation === 'CopySnapshot') return { name: 'ec2:CopySnapshot', spec: config.ec2.copySnapshot };
    // No bucket of their own: the archive tier's calls take from the account's "mutating" bucket (EC2 API
    // throttling: every mutating action without its own bucket).
    if (operation === 'ModifySnapshotTier' || operation === 'RestoreSnapshotTier') return { name: 'ec2:mutating', spec: config.ec2.mutating };
    if (/^(Describe|Get|List)/.test(operation)) {
      const filtered = Array.isArray(input.Filters) && input.Filters.length > 0;
      const paginated = input.MaxResults !== undefined || input.NextToken !== undefined;
      const byId = Object.entries(input).some(([k, v]) => /Ids$/.test(k) && Array.isArray(v) && v.length > 0);
      return filtered || paginated || byId
        ? { name: 'ec2:non-mutating', spec: config.ec2.nonMutating }
        : { name: 'ec2:unfiltered-non-mutating', spec: config.ec2.unfilteredNonMutating };
    }
    return { name: 'ec2:mutating', spec: config.ec2.mutating };
  }
  if (service === 'ssm') {
    const write = operation === 'SendCommand' || operation === 'CancelCommand';
    return { name: `ssm:${operation}`, spec: write ? config.ssm.write : config.ssm.read };
  }
  return undefined;
}

function latencyOf(world: World, config: LimitsConfig, service: string, operation: string, input: Record<string, unknown>): number {
  const base = config.latencyMs[`${service}:${operation}`] ?? config.latencyMs[service] ?? config.latencyMs.default ?? 0;
  if (service !== 's3') return base;
  let bytes = 0;
  if (operation === 'PutObject') bytes = typeof input.Body === 'string' ? Buffer.byteLength(input.Body) : input.Body instanceof Uint8Array ? input.Body.byteLength : 0;
  if (operation === 'GetObject') bytes = world.buckets.get(String(input.Bucket))?.get(String(input.Key))?.length ?? 0;
  return base + Math.round((bytes / config.s3BytesPerSecond) * 1000);
}

/** `config` with the SSM read/write refill rates scaled to `readPerSecond` (burst = 2 s worth). */
export function withSsmRate(config: LimitsConfig, readPerSecond: number): LimitsConfig {
  const write = Math.max(1, readPerSecond / 2);
  return {
    ...config,
    ssm: { read: { burst: Math.max(1, 2 * readPerSecond), perSecond: readPerSecond }, write: { burst: Math.max(1, 2 * write), perSecond: write } },
  };
}
