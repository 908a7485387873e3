/**
 * "Advance Instances": one step of the per-instance pipeline, run again and again (Wait in between) until every
 * instance is final. Each run does whatever is due now, for each instance on its own clock:
 *
 * 1. the sends an earlier try of this very step made before dying (its intent object) become unconfirmed sends;
 * 2. the next paced slice of instances due for a command — first attempts, and retries whose delay after their
 *    own failure has passed (send-commands.ts);
 * 3. commands: find unconfirmed sends, read the invocations of commands that gained final ones, judge each
 *    instance by its own invocation, cancel what passed its deadline (check-commands.ts);
 * 4. snapshot checks that are due (verify-snapshots.ts);
 * 5. once every instance is final, the leftover sweep (sweep-run.ts);
 * 6. deletions decided earlier and not finished (bounded per invocation).
 *
 * Work the account throttles past the SDK's retries backs off by kind (backoff.ts) instead of failing the step.
 *
 * It returns when anything is next due, so the state machine waits exactly that long: an instance that failed
 * at 00:02 is retried `retryDelay` later, whatever its batch-mates do, and a hung instance holds back no one.
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import type { S3Client } from '@aws-sdk/client-s3';
import type { EC2Client } from '@aws-sdk/client-ec2';
import type { SSMClient } from '@aws-sdk/client-ssm';
import { pollCommands } from './check-commands.ts';
import { afterBackoff, mayDo } from './backoff.ts';
import { s3SendClock } from './send-clock.ts';
import { clock } from './clock.ts';
import type { Config } from './config.ts';
import { isFinal, runIsDone } from './run-state.ts';
import type { RunState } from './run-state.ts';
import { commandDeadline, dueForSend, intentKey, s3IntentWriter, sendDue } from './send-commands.ts';
import type { SendIntent } from './send-commands.ts';
import { CONFIRM_POLL_MS } from './check-commands.ts';
import { sweepDueAt, sweepRun } from './sweep-run.ts';
import { DISCARD_BUDGET_MS, discardSnapshots, isWholeRun, verifyDue } from './verify-snapshots.ts';

export interface AdvanceDeps {
  ec2: EC2Client;
  ssm: SSMClient;
  s3: S3Client;
  config: Config;
  /** Saves the run state (before deletions, so a retried step never judges by its own deletions). */
  save: (state: RunState) => Promise<void>;
}

export interface AdvanceOutcome {
  /** Seconds until the next thing is due. */
  nextSeconds: number;
  /** When it is due (epoch ms): where the workflow's Wait ends. */
  resumeAtMs?: number;
  done: boolean;
}

/** The longest the workflow sleeps between two steps (nothing due sooner). */
const MAX_WAIT_SECONDS = 3_600;
/**
 * Polls and snapshot checks falling due this soon are done now, with whatever woke the step: instances run on
 * their own clocks, and without this every few seconds would wake the workflow for one of them (each wake-up is
 * three billed state transitions and a Lambda invocation). Sends are never early: a retry waits its full delay.
 */
export const COALESCE_MS = 15_000;

export async function advanceInstances(deps: AdvanceDeps, state: RunState): Promise<AdvanceOutcome> {
  const { config } = deps;
  const started = clock.now();
  if (dueForSend(state, started).length > 0) await adoptIntent(deps, state);
  // Sends first: they are paced on a 20-second grid, and every second spent before them would stretch it.
  await sendDue(
    {
      ssm: deps.ssm,
      config,
      writeIntent: s3IntentWriter(deps.s3, config.reportBucket, state.runId, state.shard),
      ...(isWholeRun(state) ? {} : { sendClock: s3SendClock(deps.s3, config, state.runId) }),
    },
    state,
  );
  // Each kind of work the account said "not now" to waits out its own back-off (backoff.ts).
  if (mayDo(state, 'poll')) await pollCommands({ ssm: deps.ssm, config }, state, started + COALESCE_MS);
  if (mayDo(state, 'check')) await verifyDue({ ec2: deps.ec2, config, save: deps.save }, state, clock.now() + COALESCE_MS);
  if (mayDo(state, 'check')) await sweepRun({ ec2: deps.ec2, config, save: deps.save }, state);
  // Deletions decided earlier and not finished (verify and sweep delete what they decide themselves).
  await discardSnapshots(deps.ec2, state, clock.now() + DISCARD_BUDGET_MS);
  state.tickSeq = (state.tickSeq ?? 0) + 1;
  const done = runIsDone(state);
  if (done) return { done, nextSeconds: 1 };
  const resumeAtMs = nextDueAt(state, config);
  return { done, nextSeconds: Math.ceil((resumeAtMs - clock.now()) / 1000), resumeAtMs };
}

/**
 * An earlier try of this step (same run state, so same `tickSeq`) wrote an intent and may have sent it before
 * the Lambda died: those instances get unconfirmed sends, looked for by Comment, never sent again blindly.
 */
async function adoptIntent(deps: AdvanceDeps, state: RunState): Promise<void> {
  let intent: SendIntent;
  try {
    const out = await deps.s3.send(new GetObjectCommand({ Bucket: deps.config.reportBucket, Key: intentKey(state.runId, state.shard) }));
    intent = JSON.parse((await out.Body?.transformToString()) ?? '{}') as SendIntent;
  } catch (error) {
    if ((error as Error).name === 'NoSuchKey' || (error as Error).name === 'NotFound') return;
    throw error;
  }
  if (intent.tickSeq !== (state.tickSeq ?? 0)) return;
  const byId = new Map(state.instances.map((i) => [i.instanceId, i]));
  for (const send of intent.sends ?? []) {
    if (state.commands.some((c) => c.comment === send.comment || c.comment.startsWith(`${send.comment}.`))) continue;
    const ids = send.instanceIds.filter((id) => {
      const r = byId.get(id);
      return r !== undefined && (r.phase === 'send' || r.phase === 'retry') && r.attempts + 1 === send.attempt;
    });
    if (ids.length === 0) continue;
    state.commands.push({ comment: send.comment, attempt: send.attempt, instanceIds: ids, sentAt: send.at, status: 'unconfirmed', deadline: commandDeadline(deps.config, send.at), nextPollAt: clock.now(), completedSeen: 0 });
    for (const id of ids) {
      const r = byId.get(id);
      if (!r) continue;
      r.phase = 'command';
      r.attempts = send.attempt;
      r.sendComment = send.comment;
      delete r.commandId;
      delete r.dueAt;
    }
    // The sends are numbered from the run state; this one's number is taken.
    const n = Number(/ send ([0-9]+)$/.exec(send.comment)?.[1] ?? 0);
    state.sendCounter = Math.max(state.sendCounter ?? 0, n);
  }
}

/** When the next thing is due (epoch ms): at least a second, at most MAX_WAIT_SECONDS from now. */
export function nextDueAt(state: RunState, config: Config): number {
  const now = clock.now();
  const times: number[] = [];
  if ((state.discard ?? []).length > 0) times.push(afterBackoff(state, 'delete', now));
  const waiting = state.instances.filter((i) => i.phase === 'send' || i.phase === 'retry');
  const sendAt = waiting.length > 0 ? Math.max(state.nextSendAt ?? 0, Math.min(...waiting.map((i) => i.dueAt ?? now))) : undefined;
  for (const c of state.commands) if (c.status === 'open' || c.status === 'unconfirmed') times.push(afterBackoff(state, 'poll', c.nextPollAt));
  for (const i of state.instances) if (i.phase === 'verify') times.push(afterBackoff(state, 'check', i.nextCheckAt ?? now));
  const sweep = sweepDueAt(state, config);
  if (sweep !== undefined) times.push(afterBackoff(state, 'check', sweep));
  if (times.length === 0 && sendAt === undefined) times.push(now + (state.instances.every((i) => isFinal(i.phase)) ? 1_000 : CONFIRM_POLL_MS));
  const others = Math.min(...times);
  // A send never goes early (its pace and retry delays hold), but a poll or check due up to COALESCE_MS before it
  // waits for it: one wake-up does both (the step does polls and checks due within COALESCE_MS).
  const next = sendAt === undefined ? others : sendAt - others <= COALESCE_MS && (state.discard ?? []).length === 0 ? sendAt : Math.min(others, sendAt);
  return Math.min(now + MAX_WAIT_SECONDS * 1000, Math.max(now + 1_000, next));
}
