/**
 * Sending snapshot commands: one SSM SendCommand per 50 instances (the API's limit), with MaxErrors high enough
 * that one failing instance never stops the others, the document version pinned, and the run id and attempt in
 * the parameters so they end up in the snapshots' tags. Instances go out when they are due — the first time, or
 * `retryDelay` after their own failure — in paced slices: at most `sendSliceInstances` per `sendSliceSeconds`,
 * because every instance's VSS agent calls EC2 CreateSnapshots inside a freeze Windows ends after 10 s, and
 * the account's CreateSnapshots bucket holds 100 calls refilled at 5 per second.
 *
 * At most one command per instance and attempt, whatever is lost:
 * - Before sending, the sends this invocation is about to make are written to a small intent object; a retried
 *   invocation (the Lambda died after sending, before the run state was saved) reads it and treats those sends
 *   as unconfirmed instead of sending again.
 * - A send whose answer is lost is looked up by its Comment inside the SDK's retry loop (send-command-once.ts);
 *   when SSM does not list it yet it is unconfirmed, and check-commands.ts looks for it again until the confirm
 *   window has passed.
 *
 * The stack's IAM lets the send role use the snapshot document only on instances carrying the deployed selector
 * tag; SSM checks every instance of a call and refuses the whole call for one outside that scope
 * (AccessDeniedException). Instances known to lack the tag are failed without sending; an unexpected denial is
 * isolated — the named instance (or, failing a name, half the batch at a time) is taken out and the rest sent
 * again — so one denied instance never stops the others.
 */
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { clock } from './clock.ts';
import type { SendClock } from './send-clock.ts';
import type { Config } from './config.ts';
import { chunk } from './discovery.ts';
import { ConfigurationError } from './errors.ts';
import { methodDriver } from './methods/index.ts';
import { fail } from './record-failure.ts';
import { onGrid } from './run-state.ts';
import type { InstanceRecord, RunState, SentCommand } from './run-state.ts';
import { CONFIRM_POLL_MS } from './check-commands.ts';
import { SendOutcomeUnknownError, sendCommandOnce } from './send-command-once.ts';

export const MAX_IDS_PER_COMMAND = 50;

/** The Comment that identifies one send of this run (≤ 100 characters); parts of a split send add `.<n>`. */
export function commandComment(runId: string, attempt: number, send: number): string {
  return `vss-snapshots ${runId} attempt ${attempt} send ${send}`;
}

/** What a send is about to do, written before it is done (see the module comment). */
export interface SendIntent {
  tickSeq: number;
  sends: { comment: string; attempt: number; instanceIds: string[]; at: number }[];
}
/** Where a run's (or a shard's) send intent is kept. */
export const intentKey = (runId: string, shard?: number): string => (shard === undefined ? `runs/${runId}/send-intent.json` : `runs/${runId}/shards/${shard}.send-intent.json`);

export interface SendDeps {
  ssm: SSMClient;
  config: Config;
  /** Persists the intent before anything is sent (S3 in AWS). */
  writeIntent: (intent: SendIntent) => Promise<void>;
  /** The run's one send pace when it has several shards (send-clock.ts); none for a run of one shard. */
  sendClock?: SendClock;
}

/** A claim this close to now is sent at once. */
const CLAIM_SLACK_MS = 1_000;
/** A claim woken up for this late is given up (a wake-up lands on the next whole second, plus the step's start). */
const CLAIM_LATE_MS = 5_000;

/** The deadline of a command sent at `sentAt`: delivery, execution and five minutes' margin. */
export const commandDeadline = (config: Config, sentAt: number): number => sentAt + (config.deliveryTimeoutSeconds + config.commandTimeoutSeconds + 300) * 1000;

/** Instances whose next command may go now (first attempt, or their retry delay has passed). */
export function dueForSend(state: RunState, now: number): InstanceRecord[] {
  return state.instances.filter((i) => (i.phase === 'send' || i.phase === 'retry') && (i.dueAt ?? 0) <= now);
}

/** Sends the next slice of due instances, if the pacing allows it now. */
export async function sendDue(deps: SendDeps, state: RunState): Promise<void> {
  const { config } = deps;
  const now = clock.now();
  const due = dueForSend(state, now);
  // A claimed share of the send clock may go up to CLAIM_SLACK_MS early (a wake-up lands on a whole second).
  if (due.length === 0 || (state.nextSendAt ?? 0) > now + (state.sendClaim ? CLAIM_SLACK_MS : 0)) return;

  // The stack's IAM cannot send the snapshot document to these: say so, send nothing.
  const { tagKey, tagValue } = config;
  for (const record of due.filter((r) => r.inSendScope === false)) {
    fail(record, state, 'access-denied', `The instance lacks the tag ${tagKey}=${tagValue}: the stack's IAM lets the workflow send the snapshot command only to instances with it, so none was sent.`);
  }
  let slice = due
    .filter((r) => r.inSendScope !== false)
    .sort((a, b) => (a.dueAt ?? 0) - (b.dueAt ?? 0) || a.instanceId.localeCompare(b.instanceId))
    .slice(0, config.sendSliceInstances);
  if (slice.length === 0) return;

  if (deps.sendClock) {
    // The account's time is shared by every shard (send-clock.ts): send what this shard claimed, when it is due.
    // A claim this step woke too late for (its other work ran past it) is given up: other shards' claims follow
    // it, so sending now would share their seconds. Its share stays unused; a new one is claimed.
    if (state.sendClaim && now > state.sendClaim.at + CLAIM_LATE_MS) delete state.sendClaim;
    if (state.sendClaim && now + CLAIM_SLACK_MS >= state.sendClaim.at) {
      slice = slice.slice(0, state.sendClaim.instances);
      delete state.sendClaim;
    } else if (state.sendClaim) {
      state.nextSendAt = state.sendClaim.at;
      return;
    } else {
      const claim = await deps.sendClock.claim(slice.length);
      if (!claim.claimed || claim.at > now + CLAIM_SLACK_MS) {
        if (claim.claimed) state.sendClaim = { at: claim.at, instances: slice.length };
        state.nextSendAt = claim.at;
        return;
      }
    }
  }

  const document = config.documents[state.options.method];
  if (!document.name) throw new ConfigurationError(`No SSM document is configured for method ${state.options.method} (DISKSHADOW_DOCUMENT_NAME).`);
  const driver = methodDriver(state.options.method);

  // Instances can be on different attempts; the attempt is a document parameter (and a snapshot tag).
  const byAttempt = new Map<number, InstanceRecord[]>();
  for (const record of slice) byAttempt.set(record.attempts + 1, [...(byAttempt.get(record.attempts + 1) ?? []), record]);
  const sends: { comment: string; attempt: number; records: InstanceRecord[] }[] = [];
  for (const [attempt, records] of [...byAttempt.entries()].sort((a, b) => a[0] - b[0])) {
    for (const batch of chunk(records, MAX_IDS_PER_COMMAND)) {
      state.sendCounter = (state.sendCounter ?? 0) + 1;
      sends.push({ comment: commandComment(state.runId, attempt, state.sendCounter), attempt, records: batch });
    }
  }
  await deps.writeIntent({ tickSeq: state.tickSeq ?? 0, sends: sends.map((s) => ({ comment: s.comment, attempt: s.attempt, instanceIds: s.records.map((r) => r.instanceId), at: now })) });

  for (const send of sends) {
    const parameters = driver.parameters({
      runId: state.runId,
      attempt: send.attempt,
      excludeBootVolume: state.options.excludeBootVolume,
      copyOnly: config.copyOnly,
      commandTimeoutSeconds: config.commandTimeoutSeconds,
      stackId: config.stackId,
      ...(state.shard !== undefined ? { shard: state.shard } : {}),
    });
    await sendBatch(deps, state, send.records, { documentName: document.name, documentVersion: document.version, parameters, attempt: send.attempt, comment: send.comment, base: send.comment, parts: { n: 0 } });
  }
  // On the slice grid: the next slice is due one slice after this one was, not after this step's own latency.
  // (With a send clock, the claim decides when the account has room; this keeps each shard to one slice a turn.)
  const sliceMs = config.sendSliceSeconds * 1000;
  const scheduled = state.nextSendAt ?? now;
  state.nextSendAt = (now - scheduled < sliceMs ? scheduled : now) + sliceMs;
}

interface BatchOptions {
  documentName: string;
  documentVersion: string;
  parameters: Record<string, string[]>;
  attempt: number;
  /** This call's Comment; `base` is the send's, parts of a split send are `<base>.<n>`. */
  comment: string;
  base: string;
  parts: { n: number };
}

async function sendBatch(deps: SendDeps, state: RunState, batch: InstanceRecord[], options: BatchOptions): Promise<void> {
  const { config } = deps;
  const now = clock.now();
  const instanceIds = batch.map((b) => b.instanceId);
  const since = new Date(Math.max(Date.parse(state.startedAt), now - 5 * 60_000)).toISOString();
  const record = (entry: Omit<SentCommand, 'attempt' | 'instanceIds' | 'sentAt' | 'deadline' | 'completedSeen'>) => {
    state.commands.push({ ...entry, attempt: options.attempt, instanceIds, sentAt: now, deadline: commandDeadline(config, now), completedSeen: 0 });
    for (const r of batch) {
      r.phase = 'command';
      r.attempts = options.attempt;
      r.sendComment = options.base;
      if (entry.commandId) r.commandId = entry.commandId;
      else delete r.commandId;
      delete r.dueAt;
      delete r.verifySince;
      delete r.nextCheckAt;
    }
  };
  try {
    const command = await sendCommandOnce(
      deps.ssm,
      {
        DocumentName: options.documentName,
        DocumentVersion: options.documentVersion,
        InstanceIds: instanceIds,
        Parameters: options.parameters,
        Comment: options.comment,
        TimeoutSeconds: config.deliveryTimeoutSeconds,
        MaxConcurrency: '100%',
        MaxErrors: '100%',
        ...(config.commandLogGroup ? { CloudWatchOutputConfig: { CloudWatchOutputEnabled: true, CloudWatchLogGroupName: config.commandLogGroup } } : {}),
      },
      since,
    );
    record({ comment: options.comment, commandId: command.CommandId as string, status: 'open', nextPollAt: onGrid(now + (config.commandPollSeconds * 1000 * 3) / 4, state, config.commandPollSeconds * 1000) });
  } catch (error) {
    const name = (error as Error).name;
    if (error instanceof SendOutcomeUnknownError) {
      // It may exist: follow it up by its Comment (check-commands.ts), never send it again while SSM may lag.
      record({ comment: options.base, status: 'unconfirmed', nextPollAt: now + CONFIRM_POLL_MS });
      return;
    }
    if (name === 'AccessDeniedException') return isolateDenied(deps, state, batch, options, (error as Error).message);
    if (name === 'InvalidInstanceId') return isolateInvalid(deps, state, batch, options);
    throw error;
  }
}

const nextPart = (options: BatchOptions): BatchOptions => {
  options.parts.n += 1;
  return { ...options, comment: `${options.base}.${options.parts.n}` };
};

/** IAM refused the whole call: take out the instance it names (or split the batch) and send the rest again. */
async function isolateDenied(deps: SendDeps, state: RunState, batch: InstanceRecord[], options: BatchOptions, message: string): Promise<void> {
  const { tagKey, tagValue } = deps.config;
  const named = /:instance\/(i-[0-9a-f]+)/.exec(message)?.[1];
  const denied = /:document\//.test(message) ? batch : batch.filter((r) => r.instanceId === named || batch.length === 1);
  if (denied.length > 0) {
    for (const r of denied) {
      const why = denied.length === 1 && r.instanceId === named
        ? `the stack's IAM allows it only on instances tagged ${tagKey}=${tagValue}, and this one is not (any more)`
        : message.slice(0, 300);
      fail(r, state, 'access-denied', `SSM refused the snapshot command for this instance (AccessDeniedException): ${why}.`);
    }
    const rest = batch.filter((r) => !denied.includes(r));
    if (rest.length > 0) await sendBatch(deps, state, rest, nextPart(options));
    return;
  }
  const half = Math.ceil(batch.length / 2);
  await sendBatch(deps, state, batch.slice(0, half), nextPart(options));
  await sendBatch(deps, state, batch.slice(half), nextPart(options));
}

/** One unknown or unregistered id rejects the whole call: isolate it and send the rest. */
async function isolateInvalid(deps: SendDeps, state: RunState, batch: InstanceRecord[], options: BatchOptions): Promise<void> {
  if (batch.length === 1) {
    const record = batch[0] as InstanceRecord;
    record.attempts = options.attempt;
    fail(record, state, 'send-rejected', `SSM answered InvalidInstanceId for attempt ${options.attempt}.`, deps.config.retryDelaySeconds);
    return;
  }
  const half = Math.ceil(batch.length / 2);
  await sendBatch(deps, state, batch.slice(0, half), nextPart(options));
  await sendBatch(deps, state, batch.slice(half), nextPart(options));
}

/** Writes the intent object (S3 PutObject; small: at most one slice's ids). */
export function s3IntentWriter(s3: S3Client, bucket: string, runId: string, shard?: number): (intent: SendIntent) => Promise<void> {
  return async (intent) => {
    await s3.send(new PutObjectCommand({ Bucket: bucket, Key: intentKey(runId, shard), Body: JSON.stringify(intent), ContentType: 'application/json' }));
  };
}
