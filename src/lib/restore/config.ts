/**
 * Settings of the restore Lambdas, from their environment, checked in one place (ConfigurationError
 * names a bad variable). Separate from ../config.ts: the restore functions need neither the selector tag
 * nor the alert topic; the report bucket only to read run reports.
 */
import * as z from 'zod';
import { parseEnvironment, wholeNumber } from '../environment.ts';

const int = wholeNumber;

const EnvSchema = z.object({
  RESTORE_DOCUMENT_NAME: z.string().min(3).max(128).optional(),
  RESTORE_DOCUMENT_VERSION: z.string().regex(/^([0-9]+|\$DEFAULT|\$LATEST)$/).default('1'),
  RESTORE_VOLUME_TYPE: z.enum(['gp3', 'gp2', 'io1', 'io2', 'st1', 'sc1', 'standard']).default('gp3'),
  RESTORE_COMMAND_TIMEOUT_SECONDS: int(60, 172_800).default(1_800),
  DELIVERY_TIMEOUT_SECONDS: int(30, 2_592_000).default(600),
  /** How long created volumes may take to become available, and attachments to be attached. */
  RESTORE_VOLUME_DEADLINE_SECONDS: int(60, 86_400).default(1_800),
  RESTORE_CLEANUP_DEADLINE_SECONDS: int(60, 86_400).default(900),
  // The nightly runs' report bucket: its reports say which volume and device each snapshot was of, which
  // finds the snapshots of a source instance that no longer exists.
  REPORT_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/)
    .optional(),
});

export interface RestoreConfig {
  restoreDocument: { name: string | undefined; version: string };
  volumeType: string;
  commandTimeoutSeconds: number;
  deliveryTimeoutSeconds: number;
  volumeDeadlineSeconds: number;
  cleanupDeadlineSeconds: number;
  reportBucket: string | undefined;
}

export function loadRestoreConfig(env: NodeJS.ProcessEnv = process.env): RestoreConfig {
  const e = parseEnvironment(EnvSchema, env);
  return {
    restoreDocument: { name: e.RESTORE_DOCUMENT_NAME, version: e.RESTORE_DOCUMENT_VERSION },
    volumeType: e.RESTORE_VOLUME_TYPE,
    commandTimeoutSeconds: e.RESTORE_COMMAND_TIMEOUT_SECONDS,
    deliveryTimeoutSeconds: e.DELIVERY_TIMEOUT_SECONDS,
    volumeDeadlineSeconds: e.RESTORE_VOLUME_DEADLINE_SECONDS,
    cleanupDeadlineSeconds: e.RESTORE_CLEANUP_DEADLINE_SECONDS,
    reportBucket: e.REPORT_BUCKET,
  };
}
