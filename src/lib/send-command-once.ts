/**
 * SSM SendCommand has no idempotency token, and the SDK retries a call whose answer was lost (a socket timeout,
 * a 5xx after the fact): such a retry would start the same command twice — on Windows, a second VSS snapshot
 * set or a second revert. So every SDK retry of a send whose earlier try may have reached SSM first looks the
 * command up by its Comment (unique per send) and answers with that command when SSM has it. When SSM does
 * not list it, that proves nothing — ListCommands is eventually consistent and a just-sent command may be
 * missing for a while (aws-facts.md) — so instead of sending again this throws SendOutcomeUnknownError: the
 * caller records the send as unconfirmed and looks again later, sending anew only once the command has stayed
 * unlisted for longer than the listing can lag (`SEND_CONFIRM_WINDOW_MS`).
 *
 * A try that SSM refused outright (throttling, a 4xx) did not start anything: retrying it is safe, and done.
 */
import { ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import type { Command, SendCommandCommandInput, SendCommandCommandOutput, SSMClient } from '@aws-sdk/client-ssm';
import type { FinalizeRequestMiddleware } from '@smithy/types';

/** How long a sent command may stay missing from ListCommands before it is taken as never sent. */
export const SEND_CONFIRM_WINDOW_MS = 5 * 60_000;

/** A send whose answer was lost and whose command SSM does not list (yet): it may or may not exist. */
export class SendOutcomeUnknownError extends Error {
  override name = 'SendOutcomeUnknownError';
}

/** Errors after which the request may have been applied: no answer, or a server error. */
export function outcomeUnknown(error: unknown): boolean {
  const e = error as { name?: string; $metadata?: { httpStatusCode?: number }; $fault?: string; code?: string } | undefined;
  if (!e) return false;
  if (e.name === 'TimeoutError' || e.code === 'ETIMEDOUT' || e.code === 'ECONNRESET' || e.code === 'EPIPE') return true;
  const status = e.$metadata?.httpStatusCode;
  return status === undefined ? e.$fault !== 'client' : status >= 500;
}

/** Finds a command by its Comment among those sent since `since` (optionally to one instance). */
export async function findCommandByComment(ssm: SSMClient, comment: string, since: string, instanceId?: string): Promise<Command | undefined> {
  let nextToken: string | undefined;
  do {
    const page = await ssm.send(
      new ListCommandsCommand({ ...(instanceId ? { InstanceId: instanceId } : {}), Filters: [{ key: 'InvokedAfter', value: since }], MaxResults: 50, NextToken: nextToken }),
    );
    const match = (page.Commands ?? []).find((c) => c.Comment === comment && c.CommandId);
    if (match) return match;
    nextToken = page.NextToken;
  } while (nextToken);
  return undefined;
}

/**
 * Sends `input` (whose Comment must be unique to this send) at most once as far as this call can tell.
 * Returns the command; throws SendOutcomeUnknownError when an answer was lost and the command is not listed.
 */
export async function sendCommandOnce(ssm: SSMClient, input: SendCommandCommandInput, since: string): Promise<Command> {
  const comment = input.Comment ?? '';
  if (!comment) throw new Error('sendCommandOnce needs a unique Comment to find a send whose answer was lost.');
  const command = new SendCommandCommand(input);
  let mayHaveSent = false;
  const lookUpBeforeRetry: FinalizeRequestMiddleware<SendCommandCommandInput, SendCommandCommandOutput> = (next) => async (args) => {
    if (mayHaveSent) {
      let existing: Command | undefined;
      try {
        existing = await findCommandByComment(ssm, comment, since, input.InstanceIds?.[0]);
      } catch (error) {
        // The look-up itself failed (throttled, say): whether the command exists is as unknown as before.
        throw new SendOutcomeUnknownError(`SendCommand "${comment}" may have reached SSM (its answer was lost); looking it up failed: ${(error as Error).name}.`);
      }
      if (existing) return { output: { Command: existing, $metadata: {} }, response: { statusCode: 200, headers: {} } };
      throw new SendOutcomeUnknownError(`SendCommand "${comment}" may have reached SSM (its answer was lost) but SSM does not list it yet.`);
    }
    try {
      return await next(args);
    } catch (error) {
      if (outcomeUnknown(error)) mayHaveSent = true;
      throw error;
    }
  };
  command.middlewareStack.addRelativeTo(lookUpBeforeRetry, { relation: 'after', toMiddleware: 'retryMiddleware', name: 'vssSnapshotsSendOnce', override: true });
  let out: SendCommandCommandOutput;
  try {
    out = await ssm.send(command);
  } catch (error) {
    // The SDK gave up with the outcome of its last try unknown: as unknown as a lost answer.
    if (mayHaveSent && outcomeUnknown(error)) throw new SendOutcomeUnknownError(`SendCommand "${comment}" may have reached SSM: ${(error as Error).name}.`);
    throw error;
  }
  if (!out.Command?.CommandId) throw new Error('SendCommand returned no CommandId.');
  return out.Command;
}
