/**
 * "Send Revert Command" and "Check Revert Command" (DiskShadow snapshots only): the restore document runs
 * on the target and only there, with exactly the volumes this restore attached and the shadow copy set
 * their snapshots hold. It brings only those disks online, fixes signature collisions and reverts only
 * that set's shadow copies; its result line (src/lib/result-line.ts) says what it did.
 */
import { GetCommandInvocationCommand, ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import type { GetCommandInvocationCommandOutput, SSMClient } from '@aws-sdk/client-ssm';
import { validateDocumentParameters } from '../../documents/document-parameters.ts';
import { clock } from '../clock.ts';
import { ConfigurationError, RevertFailedError } from '../errors.ts';
import { DISKSHADOW_RESTORE_DOCUMENT } from '../methods/diskshadow.ts';
import { parseResultLine } from '../result-line.ts';
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

/** Finds the command an earlier try of this step sent (its response may have been lost). */
async function findSentCommand(ssm: SSMClient, state: RestoreState, documentName: string): Promise<string | undefined> {
  const comment = revertComment(state.restore.restoreId);
  let token: string | undefined;
  do {
    const page = await ssm.send(
      new ListCommandsCommand({
        InstanceId: state.restore.targetInstanceId,
        Filters: [
          { key: 'DocumentName', value: documentName },
          { key: 'InvokedAfter', value: state.restore.startedAt },
        ],
        MaxResults: 50,
        NextToken: token,
      }),
    );
    const match = page.Commands?.find((c) => c.Comment === comment);
    if (match?.CommandId) return match.CommandId;
    token = page.NextToken;
  } while (token);
  return undefined;
}

export async function sendRevertCommand(deps: RevertDeps, state: RestoreState): Promise<RestoreState> {
  const documentName = deps.config.restoreDocument.name;
  if (!documentName) throw new ConfigurationError('RESTORE_DOCUMENT_NAME is not set: the DiskShadow restore document of the stack is needed to revert DiskShadow snapshots.');
  const parameters = revertParameters(state, deps.config);
  const deadline = new Date(clock.now() + (deps.config.deliveryTimeoutSeconds + deps.config.commandTimeoutSeconds + DEADLINE_GRACE_SECONDS) * 1000).toISOString();
  let commandId = await findSentCommand(deps.ssm, state, documentName);
  if (!commandId) {
    const out = await deps.ssm.send(
      new SendCommandCommand({
        DocumentName: documentName,
        DocumentVersion: deps.config.restoreDocument.version,
        InstanceIds: [state.restore.targetInstanceId],
        Parameters: parameters,
        Comment: revertComment(state.restore.restoreId),
        TimeoutSeconds: deps.config.deliveryTimeoutSeconds,
        MaxConcurrency: '1',
        MaxErrors: '0',
      }),
    );
    commandId = out.Command?.CommandId;
    if (!commandId) throw new RevertFailedError('SendCommand returned no command id.');
  }
  return { ...state, revert: { commandId, documentName, status: 'pending', deadline, disks: [], warnings: [] } };
}

/**
 * Reads the invocation with GetCommandInvocation, not ListCommandInvocations: the latter cuts a plugin's
 * output at 2,500 characters, and the restore result line carries one record per disk (about 230
 * characters each), so a restore of ten or more disks would lose its line after a successful revert.
 * GetCommandInvocation returns the first 24,000 characters of stdout.
 */
export async function checkRevertCommand(deps: RevertDeps, state: RestoreState): Promise<RestoreState> {
  const revert = state.revert;
  if (!revert) throw new RevertFailedError('Check Revert Command ran before a command was sent.');
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
