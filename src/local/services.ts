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

/**
 * S3 is strongly consistent (S3 user guide, "Amazon S3 data consistency model"), and honours conditional writes
 * (S3 user guide, "How to prevent object overwrites with conditional writes"): `If-None-Match: *` fails with
 * 412 PreconditionFailed when the key exists; `If-Match: <ETag>` fails with 412 when the object's ETag differs
 * and with 404 NoSuchKey when there is no object. (Two conditional writes racing in flight can also get 409
 * ConditionalRequestConflict; calls here are applied one at a time, so the 412 is what a loser sees.)
 */
export const s3Operations: Record<string, (world: World, input: Input) => unknown> = {
  async PutObject(world, input) {
    const bucket = bucketOf(world, input);
    const key = input.Key as string;
    const etagKey = `${String(input.Bucket)}/${key}`;
    const exists = bucket.has(key);
    if (input.IfNoneMatch !== undefined) {
      if (input.IfNoneMatch !== '*') throw awsError('NotImplemented', 'If-None-Match accepts only "*" on PutObject.', 501);
      if (exists) throw awsError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', 412);
    }
    if (input.IfMatch !== undefined) {
      if (!exists) throw awsError('NoSuchKey', 'The specified key does not exist.', 404);
      if (world.etags.get(etagKey) !== input.IfMatch) throw awsError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', 412);
    }
    bucket.set(key, await bodyText(input.Body));
    const etag = `"${world.nextHex(32)}"`;
    world.etags.set(etagKey, etag);
    return { ETag: etag };
  },
  GetObject(world, input) {
    const text = bucketOf(world, input).get(input.Key as string);
    if (text === undefined) throw awsError('NoSuchKey', 'The specified key does not exist.', 404);
    return {
      ContentType: 'application/json',
      ContentLength: Buffer.byteLength(text),
      ETag: world.etags.get(`${String(input.Bucket)}/${String(input.Key)}`),
      Body: { transformToString: async () => text, transformToByteArray: async () => new Uint8Array(Buffer.from(text)) },
    };
  },
  DeleteObject(world, input) {
    const bucket = bucketOf(world, input);
    const key = input.Key as string;
    if (input.IfMatch !== undefined && bucket.has(key) && world.etags.get(`${String(input.Bucket)}/${key}`) !== input.IfMatch) {
      throw awsError('PreconditionFailed', 'At least one of the pre-conditions you specified did not hold', 412);
    }
    bucket.delete(key);
    world.etags.delete(`${String(input.Bucket)}/${key}`);
    return {};
  },
};

export const sfnOperations: Record<string, (world: World, input: Input) => unknown> = {
  /** "Best effort": a just-started execution may be missing (Step Functions API reference, ListExecutions). */
  ListExecutions(world, input) {
    const status = input.statusFilter as string | undefined;
    const rows = world.executions
      .filter((e) => e.stateMachineArn === input.stateMachineArn && (!status || e.status === status) && (e.listedAt ?? 0) <= world.now)
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

  /** Reads one execution by its ARN; strongly consistent for an execution the caller already knows of. */
  DescribeExecution(world, input) {
    const execution = world.executions.find((e) => e.executionArn === input.executionArn);
    if (!execution) throw awsError('ExecutionDoesNotExist', `Execution Does Not Exist: '${String(input.executionArn)}'`);
    return {
      executionArn: execution.executionArn,
      stateMachineArn: execution.stateMachineArn,
      name: execution.name,
      status: execution.status,
      startDate: new Date(execution.startDate),
      ...(execution.stopDate ? { stopDate: new Date(execution.stopDate) } : {}),
      input: execution.input,
    };
  },
};
