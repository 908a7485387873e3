/**
 * Where a run report comes from: a FILE, an `s3://bucket/key`, or the deployed stack's report bucket
 * (`latest`, or a RUNID). Whatever the source, the JSON is checked to be a run report (docs/report.md)
 * before anything uses it.
 */
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import * as z from 'zod';
import type { RunReport } from '../lib/report.ts';
import { RUN_ID_PATTERN } from '../lib/restore/input.ts';
import { reportKey } from '../lib/run-state.ts';
import { awsFailure, openSession, resolveStack } from './aws-stack.ts';
import type { AwsOptions, AwsSession, StackOutputs } from './aws-stack.ts';
import { UsageError } from './exit-codes.ts';
import { readInputFile } from './paths.ts';

/** The parts of a run report the CLI reads; anything else is kept as it is (contract §4 adds fields). */
const SnapshotRefSchema = z.looseObject({ snapshotId: z.string(), volumeId: z.string(), device: z.string().optional(), state: z.string() });
const RunReportSchema = z.looseObject({
  runId: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  dryRun: z.boolean(),
  selector: z.looseObject({ tagKey: z.string(), tagValue: z.string(), instanceIds: z.array(z.string()).optional() }),
  summary: z.looseObject({ targeted: z.number(), succeeded: z.number(), failed: z.number(), skipped: z.number() }),
  instances: z.array(
    z.looseObject({
      instanceId: z.string(),
      outcome: z.enum(['succeeded', 'failed', 'skipped', 'planned']),
      attempts: z.number(),
      snapshots: z.array(SnapshotRefSchema),
      fallbackSnapshots: z.array(SnapshotRefSchema).optional(),
    }),
  ),
  alert: z.looseObject({ subject: z.string(), message: z.string() }).nullable(),
});

/** Parses text as a run report; a UsageError names the field that is wrong. */
export function parseRunReport(text: string, where: string): RunReport {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${where} is not valid JSON (${(error as Error).message}).`);
  }
  const result = RunReportSchema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    throw new UsageError(`${where} is not a vss-snapshots run report: ${issue?.path.join('.') || '(top level)'}: ${issue?.message} (see docs/report.md).`);
  }
  const report = result.data as unknown as RunReport;
  report.summary.planned ??= 0;
  report.method ??= 'aws-vss';
  return report;
}

export interface LoadedReport {
  report: RunReport;
  /** Where it was read: a path or an s3:// URL. */
  location: string;
  /** Set when the source needed the deployed stack. */
  stack?: StackOutputs;
  session?: AwsSession;
}

export type SourceKind = 'file' | 's3' | 'stack';

export function sourceKind(source: string): SourceKind {
  if (source.startsWith('s3://')) return 's3';
  if (source === 'latest' || RUN_ID_PATTERN.test(source)) return 'stack';
  return 'file';
}

/** Loads the report `source` names (FILE | s3://bucket/key | latest | RUNID). */
export async function loadReport(source: string, aws: AwsOptions): Promise<LoadedReport> {
  const kind = sourceKind(source);
  if (kind === 'file') {
    if (/^[0-9]{8}T/.test(source)) throw new UsageError(`"${source}" is not a run id (like 20261128T000000Z-3f2a9c1e) nor an existing file.`);
    return { report: parseRunReport(readInputFile(source, 'report'), source), location: source };
  }
  const session = await openSession(aws);
  if (kind === 's3') {
    const match = /^s3:\/\/([^/]+)\/(.+)$/.exec(source);
    if (!match) throw new UsageError(`"${source}" is not an s3://bucket/key URL.`);
    const [, bucket, key] = match as unknown as [string, string, string];
    return { report: parseRunReport(await getText(session.s3, bucket, key), source), location: source, session };
  }
  const stack = await resolveStack(session, aws);
  const runId = source === 'latest' ? await latestRunId(session.s3, stack) : source;
  const key = reportKey(runId);
  const location = `s3://${stack.reportBucket}/${key}`;
  return { report: parseRunReport(await getText(session.s3, stack.reportBucket, key, runId), location), location, stack, session };
}

async function getText(s3: S3Client, bucket: string, key: string, runId?: string): Promise<string> {
  try {
    const out = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return (await out.Body?.transformToString()) ?? '';
  } catch (error) {
    if (error instanceof Error && (error.name === 'NoSuchKey' || error.name === 'NotFound')) {
      throw new UsageError(
        runId
          ? `No report of run ${runId} in s3://${bucket}/ (a run that is still going has none yet: vss-snapshots status; reports expire after the stack's reportRetentionDays).`
          : `s3://${bucket}/${key} does not exist.`,
      );
    }
    if (error instanceof Error && error.name === 'NoSuchBucket') throw new UsageError(`Bucket ${bucket} does not exist.`);
    throw awsFailure(error, `reading s3://${bucket}/${key}`);
  }
}

/** The newest report in the stack's bucket: run ids start with their start time, so the last key is the latest. */
export async function latestRunId(s3: S3Client, stack: StackOutputs): Promise<string> {
  let latest: string | undefined;
  let token: string | undefined;
  try {
    do {
      const page = await s3.send(new ListObjectsV2Command({ Bucket: stack.reportBucket, Prefix: 'reports/', ...(token ? { ContinuationToken: token } : {}) }));
      for (const object of page.Contents ?? []) {
        const id = /^reports\/(.+)\.json$/.exec(object.Key ?? '')?.[1];
        if (id && RUN_ID_PATTERN.test(id) && (!latest || id > latest)) latest = id;
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  } catch (error) {
    throw awsFailure(error, `listing the reports in s3://${stack.reportBucket}/reports/`);
  }
  if (!latest) throw new UsageError(`No run report yet in s3://${stack.reportBucket}/reports/ (stack ${stack.stackName}): start a run with vss-snapshots start --follow.`);
  return latest;
}
