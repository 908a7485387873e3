/**
 * "Send Revert Command" and "Check Revert Command" (DiskShadow snapshots only): the restore document runs
 * on the target and only there, with exactly the volumes this restore attached and the shadow copy set
 * their snapshots hold. It brings only those disks online, fixes signature collisions and reverts only
 * that set's shadow copies; its result line (src/lib/result-line.ts) says what it did.
 */
import { ListCommandInvocationsCommand, ListCommandsCommand, SendCommandCommand } from '@aws-sdk/client-ssm';
import type { SSMClient } from '@aws-sdk/client-ssm';
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

export async function checkRevertCommand(deps: RevertDeps, state: RestoreState): Promise<RestoreState> {
  const revert = state.revert;
  if (!revert) throw new RevertFailedError('Check Revert Command ran before a command was sent.');
  const target = state.restore.targetInstanceId;
  const out = await deps.ssm.send(new ListCommandInvocationsCommand({ CommandId: revert.commandId, InstanceId: target, Details: true }));
  const invocation = out.CommandInvocations?.find((i) => i.InstanceId === target);
  const status = invocation?.Status ?? 'Pending';
  if (!invocation || !FINAL.has(status)) {
    if (clock.now() > Date.parse(revert.deadline)) {
      throw new RevertFailedError(`The restore document (command ${revert.commandId}) did not finish on ${target} by ${revert.deadline} (status ${status}). The volumes are not reverted.`);
    }
    return { ...state, revert: { ...revert, status: 'pending' } };
  }
  const plugin = invocation.CommandPlugins?.[0];
  const output = plugin?.Output ?? '';
  const line = parseResultLine(output);
  const restoreLine = line?.operation === 'restore' ? line : undefined;
  if (status !== 'Success') {
    const details = invocation.StatusDetails ?? status;
    const what = restoreLine
      ? `${restoreLine.errorCode ?? 'failed'}: ${restoreLine.message} (exit code ${plugin?.ResponseCode ?? restoreLine.exitCode}${restoreLine.retryable ? ', retryable: restore again' : ''})`
      : `${details}${plugin?.ResponseCode !== undefined && plugin.ResponseCode >= 0 ? ` (exit code ${plugin.ResponseCode})` : ''}, no result line`;
    throw new RevertFailedError(`The restore document failed on ${target} (command ${revert.commandId}): ${what}. The volumes are not reverted.`);
  }
  if (!restoreLine || restoreLine.outcome !== 'success') {
    throw new RevertFailedError(`The restore document exited 0 on ${target} (command ${revert.commandId}) but printed no successful restore result line.`);
  }
  const expected = createdVolumeIds(state).sort();
  const reported = restoreLine.disks.map((d) => d.volumeId).sort();
  if (JSON.stringify(expected) !== JSON.stringify(reported) || restoreLine.disks.some((d) => !d.online || d.reverted.length === 0)) {
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
