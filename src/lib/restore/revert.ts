/**
 * "Send Revert Command", "Confirm Revert Send" and "Check Revert Command" (DiskShadow snapshots only): the
 * restore document runs on the target and only there, with exactly the volumes this restore attached and the
 * shadow copy set their snapshots hold. It brings only those disks online, fixes signature collisions and
 * reverts only that set's shadow copies; its result line (src/lib/result-line.ts) says what it did.
 *
 * The revert is sent at most once as far as anything can tell. SendCommand has no idempotency token and
 * ListCommands is eventually consistent, so a send whose answer was lost (or whose Lambda died) is not sent
 * again when SSM does not list it: it is "unconfirmed", and Confirm Revert Send looks for it by its Comment
 * every 30 s. Only once it has stayed unlisted for longer than the listing can lag (SEND_CONFIRM_WINDOW_MS)
 * is it taken as never sent and sent again, at most MAX_REVERT_SENDS times in all.
 */
import { GetCommandInvocationCommand } from '@aws-sdk/client-ssm';
import type { GetCommandInvocationCommandOutput, SSMClient } from '@aws-sdk/client-ssm';
import { validateDocumentParameters } from '../../documents/document-parameters.ts';
import { clock } from '../clock.ts';
import { ConfigurationError, RevertFailedError, TRANSIENT_AWS_ERRORS } from '../errors.ts';
import { DISKSHADOW_RESTORE_DOCUMENT } from '../methods/diskshadow.ts';
import { parseResultLine } from '../result-line.ts';
import { findCommandByComment, outcomeUnknown, SEND_CONFIRM_WINDOW_MS, sendCommandOnce, SendOutcomeUnknownError } from '../send-command-once.ts';
import type { RestoreConfig } from './config.ts';
import { createdVolumeIds, planOf } from './state.ts';
import type { RestoreState } from './state.ts';

export interface RevertDeps {
  ssm: SSMClient;
  config: RestoreConfig;
}

const FINAL = new Set(['Success', 'Failed', 'TimedOut', 'Cancelled', 'Cancelling']);
/** How long after its deadline an invocation may still report a final status before the restore gives up. */
const DEADLINE_GRACE_SECONDS = 300;
/** Sends of the revert in all, unconfirmed ones included: past that, the restore fails and cleans up. */
export const MAX_REVERT_SENDS = 3;

/** Unique to this restore: how a send whose answer was lost is found. */
export const revertComment = (restoreId: string) => `vss-snapshots restore ${restoreId}`;

/** The SendCommand parameters, checked against the document's own patterns before sending. */
export function revertParameters(state: RestoreState, config: RestoreConfig): Record<string, string[]> {
  const plan = planOf(state);
  return validateDocumentParameters(DISKSHADOW_RESTORE_DOCUMENT, {
    RunId: [state.restore.runId],
    VolumeIds: [createdVolumeIds(state).join(',')],
    ShadowSetId: [plan.shadowSetId ?? ''],
    executionTimeout: [String(config.commandTimeoutSeconds)],
  });
}

/**
 * An error after which the SendCommand may have reached SSM: its answer was lost, SSM failed on its side, or the
 * SDK gave up on a throttled look-up after a lost answer. A 4xx such as InvalidParameters proves nothing was sent.
 */
function mayHaveSent(error: unknown): boolean {
  const name = (error as Error | undefined)?.name ?? '';
  return error instanceof SendOutcomeUnknownError || outcomeUnknown(error) || (TRANSIENT_AWS_ERRORS as readonly string[]).includes(name);
}

const iso = (ms: number) => new Date(ms).toISOString();

/** The state sent onwards: the Catch's marker consumed. */
function withRevert(state: RestoreState, revert: NonNullable<RestoreState['revert']>): RestoreState {
  const { revertSendError: _consumed, ...rest } = state;
  return { ...rest, revert };
}

/** Whether this step is to look for an earlier send rather than send: a send is unconfirmed, or its Lambda failed. */
export function revertSendUnconfirmed(state: RestoreState): boolean {
  return state.revertSendError !== undefined || state.revert?.status === 'unconfirmed';
}

/**
 * Both "Send Revert Command" and "Confirm Revert Send" (one function: the state decides). Sends the revert
 * when nothing was sent yet or a send was found never to have arrived; otherwise only looks for the command.
 */
export async function sendRevertCommand(deps: RevertDeps, state: RestoreState): Promise<RestoreState> {
  const documentName = deps.config.restoreDocument.name;
  if (!documentName) throw new ConfigurationError('RESTORE_DOCUMENT_NAME is not set: the DiskShadow restore document of the stack is needed to revert DiskShadow snapshots.');
  if (revertSendUnconfirmed(state)) return confirmRevertSend(deps, state, documentName);
  if (state.revert?.commandId) return withRevert(state, state.revert);

  const parameters = revertParameters(state, deps.config);
  const sends = (state.revert?.sends ?? 0) + 1;
  if (sends > MAX_REVERT_SENDS) throw new RevertFailedError(`The restore document was sent ${MAX_REVERT_SENDS} times to ${state.restore.targetInstanceId} and SSM never listed it. The volumes are not reverted.`);
  const deadline = iso(clock.now() + (deps.config.deliveryTimeoutSeconds + deps.config.commandTimeoutSeconds + DEADLINE_GRACE_SECONDS) * 1000);
  const base = { documentName, sends, deadline, disks: [], warnings: [] };
  try {
    const command = await sendCommandOnce(
      deps.ssm,
      {
        DocumentName: documentName,
        DocumentVersion: deps.config.restoreDocument.version,
        InstanceIds: [state.restore.targetInstanceId],
        Parameters: parameters,
        Comment: revertComment(state.restore.restoreId),
        TimeoutSeconds: deps.config.deliveryTimeoutSeconds,
        MaxConcurrency: '1',
        MaxErrors: '0',
      },
      state.restore.startedAt,
    );
    return withRevert(state, { ...base, commandId: command.CommandId ?? null, status: 'pending' });
  } catch (error) {
    // Sending again now could revert twice: look for it until the listing cannot lag any more.
    if (!mayHaveSent(error)) throw error;
    return withRevert(state, { ...base, commandId: null, status: 'unconfirmed', unconfirmedSince: iso(clock.now()) });
  }
}

async function confirmRevertSend(deps: RevertDeps, state: RestoreState, documentName: string): Promise<RestoreState> {
  const previous = state.revert;
  const now = clock.now();
  // A Lambda that failed while sending may have sent: that send counts, and its listing lag is waited out from now.
  const failedWhileSending = state.revertSendError !== undefined && previous?.status !== 'unconfirmed';
  const sends = (previous?.sends ?? 0) + (failedWhileSending ? 1 : 0);
  const since = failedWhileSending ? now : Date.parse(previous?.unconfirmedSince ?? iso(now));
  const deadline = iso(now + (deps.config.deliveryTimeoutSeconds + deps.config.commandTimeoutSeconds + DEADLINE_GRACE_SECONDS) * 1000);
  const base = { documentName, sends, deadline, disks: [], warnings: [] };

  const found = await findCommandByComment(deps.ssm, revertComment(state.restore.restoreId), state.restore.startedAt, state.restore.targetInstanceId);
  if (found?.CommandId) return withRevert(state, { ...base, commandId: found.CommandId, status: 'pending' });
  if (now - since <= SEND_CONFIRM_WINDOW_MS) return withRevert(state, { ...base, commandId: null, status: 'unconfirmed', unconfirmedSince: iso(since) });
  if (sends >= MAX_REVERT_SENDS) {
    throw new RevertFailedError(`The restore document was sent ${sends} times to ${state.restore.targetInstanceId} (answers lost) and SSM never listed it within ${SEND_CONFIRM_WINDOW_MS / 60_000} minutes. The volumes are not reverted.`);
  }
  return withRevert(state, { ...base, commandId: null, status: 'not-sent' });
}

/**
 * Reads the invocation with GetCommandInvocation, not ListCommandInvocations: the latter cuts a plugin's
 * output at 2,500 characters, and the restore result line carries one record per disk (about 230
 * characters each), so a restore of ten or more disks would lose its line after a successful revert.
 * GetCommandInvocation returns the first 24,000 characters of stdout.
 */
export async function checkRevertCommand(deps: RevertDeps, state: RestoreState): Promise<RestoreState> {
  const revert = state.revert;
  if (!revert?.commandId) throw new RevertFailedError('Check Revert Command ran before a command was sent and confirmed.');
  const target = state.restore.targetInstanceId;
  let invocation: GetCommandInvocationCommandOutput | undefined;
  try {
    invocation = await deps.ssm.send(new GetCommandInvocationCommand({ CommandId: revert.commandId, InstanceId: target }));
  } catch (error) {
    // Right after SendCommand the invocation may not be visible yet (eventual consistency): still pending.
    if ((error as Error).name !== 'InvocationDoesNotExist') throw error;
  }
  const status = invocation?.Status ?? 'Pending';
  if (!invocation || !FINAL.has(status)) {
    if (clock.now() > Date.parse(revert.deadline)) {
      throw new RevertFailedError(`The restore document (command ${revert.commandId}) did not finish on ${target} by ${revert.deadline} (status ${status}). The volumes are not reverted.`);
    }
    return { ...state, revert: { ...revert, status: 'pending' } };
  }
  const output = invocation.StandardOutputContent ?? '';
  const responseCode = invocation.ResponseCode;
  const line = parseResultLine(output);
  const restoreLine = line?.operation === 'restore' ? line : undefined;
  if (status !== 'Success') {
    const details = invocation.StatusDetails ?? status;
    const what = restoreLine
      ? `${restoreLine.errorCode ?? 'failed'}: ${restoreLine.message} (exit code ${responseCode ?? restoreLine.exitCode}${restoreLine.retryable ? ', retryable: restore again' : ''})`
      : `${details}${responseCode !== undefined && responseCode >= 0 ? ` (exit code ${responseCode})` : ''}, no result line`;
    throw new RevertFailedError(`The restore document failed on ${target} (command ${revert.commandId}): ${what}. The volumes are not reverted.`);
  }
  if (!restoreLine || restoreLine.outcome !== 'success') {
    throw new RevertFailedError(`The restore document exited 0 on ${target} (command ${revert.commandId}) but printed no successful restore result line.`);
  }
  const expected = createdVolumeIds(state).sort();
  const reported = restoreLine.disks.map((d) => d.volumeId).sort();
  if (JSON.stringify(expected) !== JSON.stringify(reported) || restoreLine.disks.some((d) => !d.online || (d.reverted.length === 0 && d.outcome !== 'not-shadowed'))) {
    throw new RevertFailedError(`The restore document on ${target} reported disks ${reported.join(', ') || '(none)'} instead of reverting ${expected.join(', ')}.`);
  }
  return {
    ...state,
    revert: {
      ...revert,
      status: 'success',
      disks: restoreLine.disks.map((d) => ({ volumeId: d.volumeId, diskNumber: d.diskNumber, signatureChanged: d.signatureChanged, online: d.online, reverted: d.reverted.length })),
      warnings: restoreLine.warnings.slice(0, 20),
    },
  };
}
