/**
 * List prices the benchmark turns into dollars: the one place they are written down. US East (N. Virginia),
 * on-demand, free tiers ignored. Re-check against the pricing pages before quoting a figure.
 */
export const PRICES = {
  asOf: '2025-06',
  region: 'us-east-1',
  sources: [
    'https://aws.amazon.com/step-functions/pricing/',
    'https://aws.amazon.com/lambda/pricing/',
    'https://aws.amazon.com/s3/pricing/',
    'https://aws.amazon.com/sns/pricing/',
    'https://aws.amazon.com/systems-manager/pricing/',
  ],
  /** Standard workflows: per state transition (retries included); time in Wait states is free. */
  stepFunctionsPerTransition: 0.025 / 1000,
  /** Lambda compute per GB-second, by architecture. */
  lambdaPerGbSecond: { arm64: 0.0000133334, x86_64: 0.0000166667 } as Record<string, number>,
  lambdaPerRequest: 0.2 / 1_000_000,
  /** S3 Standard requests: PUT/COPY/POST/LIST, and GET/SELECT. */
  s3PerPut: 0.005 / 1000,
  s3PerGet: 0.0004 / 1000,
  /** SNS Publish requests (the alert's delivery to email/chat is the subscriber's cost). */
  snsPerPublish: 0.5 / 1_000_000,
  /** EC2 and SSM API calls, and Run Command on EC2 instances, cost nothing themselves. */
  ec2OrSsmPerCall: 0,
} as const;

/** Lambda memory and architecture assumed when serverless.yml cannot be read (see lambda-config.ts). */
export const DEFAULT_LAMBDA = { memoryMb: 512, architecture: 'arm64', timeoutSeconds: 300 } as const;
