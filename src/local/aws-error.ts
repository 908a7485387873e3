/** An error shaped like the SDK's service exceptions, so SDK retries and handler code treat it as real. */
export class SimulatedAwsError extends Error {
  readonly $metadata: { httpStatusCode: number; requestId: string; attempts?: number };
  readonly $fault: 'client' | 'server';
  readonly Code: string;

  constructor(name: string, message: string, httpStatusCode = 400) {
    super(message);
    this.name = name;
    this.Code = name;
    this.$metadata = { httpStatusCode, requestId: 'simulated' };
    this.$fault = httpStatusCode >= 500 ? 'server' : 'client';
  }
}

export const awsError = (name: string, message: string, status = 400): SimulatedAwsError => new SimulatedAwsError(name, message, status);

/** Pagination with opaque tokens, as the real APIs do. */
export function paginate<T>(items: T[], maxResults: number, nextToken: string | undefined, service: string): { page: T[]; nextToken?: string } {
  let start = 0;
  if (nextToken !== undefined) {
    const match = /^sim:([0-9]+)$/.exec(nextToken);
    if (!match) throw awsError(service === 'ec2' ? 'InvalidParameterValue' : 'InvalidNextToken', `The token ${nextToken} is invalid.`);
    start = Number(match[1]);
  }
  const page = items.slice(start, start + maxResults);
  const next = start + maxResults < items.length ? `sim:${start + maxResults}` : undefined;
  return next ? { page, nextToken: next } : { page };
}

export function checkRange(value: number | undefined, min: number, max: number, field: string, errorName: string): void {
  if (value === undefined) return;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw awsError(errorName, `Value ${value} for ${field} must be between ${min} and ${max}.`);
  }
}
