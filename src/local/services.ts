/** SNS, S3 and Step Functions of the simulated account: just what the workflow and its tests touch. */
import { awsError, paginate } from './aws-error.ts';
import type { World } from './world.ts';

type Input = Record<string, unknown>;

export const snsOperations: Record<string, (world: World, input: Input) => unknown> = {
  Publish(world, input) {
    const topicArn = input.TopicArn as string;
    if (!world.topics.has(topicArn)) throw awsError('NotFound', 'Topic does not exist', 404);
    const subject = input.Subject as string | undefined;
    const message = input.Message as string;
    if (subject !== undefined && (subject.length === 0 || subject.length > 100 || /[\r\n]/.test(subject))) {
      throw awsError('InvalidParameter', 'Invalid parameter: Subject must be 1-100 characters on one line.');
    }
    if (typeof message !== 'string' || message.length === 0) throw awsError('InvalidParameter', 'Invalid parameter: Empty message');
    if (Buffer.byteLength(message, 'utf8') > 262_144) throw awsError('InvalidParameter', 'Invalid parameter: Message too long');
    world.published.push({ topicArn, ...(subject !== undefined ? { subject } : {}), message, at: world.now });
    return { MessageId: `00000000-0000-4000-8000-${world.nextHex(12)}` };
  },
};

function bucketOf(world: World, input: Input): Map<string, string> {
  const bucket = world.buckets.get(input.Bucket as string);
  if (!bucket) throw awsError('NoSuchBucket', 'The specified bucket does not exist', 404);
  return bucket;
}

async function bodyText(body: unknown): Promise<string> {
  if (typeof body === 'string') return body;
  if (body instanceof Uint8Array) return Buffer.from(body).toString('utf8');
  throw awsError('InvalidRequest', 'The simulated S3 accepts string or byte bodies only.');
}

export const s3Operations: Record<string, (world: World, input: Input) => unknown> = {
  async PutObject(world, input) {
    bucketOf(world, input).set(input.Key as string, await bodyText(input.Body));
    return { ETag: `"${world.nextHex(32)}"` };
  },
  GetObject(world, input) {
    const text = bucketOf(world, input).get(input.Key as string);
    if (text === undefined) throw awsError('NoSuchKey', 'The specified key does not exist.', 404);
    return {
      ContentType: 'application/json',
      ContentLength: Buffer.byteLength(text),
      Body: { transformToString: async () => text, transformToByteArray: async () => new Uint8Array(Buffer.from(text)) },
    };
  },
};

export const sfnOperations: Record<string, (world: World, input: Input) => unknown> = {
  ListExecutions(world, input) {
    const status = input.statusFilter as string | undefined;
    const rows = world.executions
      .filter((e) => e.stateMachineArn === input.stateMachineArn && (!status || e.status === status))
      .sort((a, b) => b.startDate - a.startDate)
      .map((e) => ({
        executionArn: e.executionArn,
        stateMachineArn: e.stateMachineArn,
        name: e.name,
        status: e.status,
        startDate: new Date(e.startDate),
        ...(e.stopDate ? { stopDate: new Date(e.stopDate) } : {}),
      }));
    const { page, nextToken } = paginate(rows, (input.maxResults as number | undefined) || 100, input.nextToken as string | undefined, 'sfn');
    return { executions: page, ...(nextToken ? { nextToken } : {}) };
  },
};
