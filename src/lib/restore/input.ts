/**
 * The execution input of the restore workflow (console, CLI `vss-snapshots restore`), checked strictly
 * before anything is looked up or created: an unknown key or a malformed value is an InvalidInputError
 * that names the field and what is allowed.
 */
import * as z from 'zod';
import { InvalidInputError } from '../errors.ts';
import { REGION_NAME } from '../aws-region.ts';
import { INSTANCE_ID_PATTERN } from '../execution-input.ts';
import { DEVICE_NAME_PATTERN, MAX_RESTORE_VOLUMES, normalizeDevice } from './devices.ts';

export const RUN_ID_PATTERN = /^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$/;

const instanceId = z
  .string({ error: 'must be a string' })
  .regex(INSTANCE_ID_PATTERN, 'is not an EC2 instance id (i- followed by 8 or 17 lowercase hex digits)');

const devices = z
  .array(z.string({ error: 'must be a string' }).regex(DEVICE_NAME_PATTERN, 'is not a device name like xvdf, /dev/xvdf or /dev/sda1'), {
    error: 'must be an array of device names such as ["xvdf", "xvdg"]',
  })
  .min(1, `must list 1-${MAX_RESTORE_VOLUMES} device names (leave it out to restore every volume)`)
  .max(MAX_RESTORE_VOLUMES, `must list 1-${MAX_RESTORE_VOLUMES} device names`)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    for (const device of list) {
      const key = normalizeDevice(device);
      if (seen.has(key)) ctx.addIssue({ code: 'custom', message: `lists ${device} more than once` });
      seen.add(key);
    }
  });

export const RestoreInputSchema = z.strictObject({
  runId: z.string({ error: 'must be a string' }).regex(RUN_ID_PATTERN, 'is not a vss-snapshots run id such as 20261128T000000Z-3f2a9c1e'),
  sourceInstanceId: instanceId,
  targetInstanceId: instanceId,
  devices: devices.optional(),
  keepOnFailure: z.boolean({ error: 'must be true or false (a JSON boolean, not a string)' }).optional(),
  /**
   * The Region of the target instance and of the snapshots to restore (absent: the stack's own Region). The
   * stack's DR Region restores from the DR copies there, found by their tags alone (README "Restore from the DR Region").
   */
  region: z.string({ error: 'must be a string' }).regex(REGION_NAME, 'is not an AWS Region code such as us-west-2').optional(),
  Comment: z.string({ error: 'must be a string' }).max(4096, 'must be at most 4096 characters').optional(),
  comment: z.string({ error: 'must be a string' }).max(4096, 'must be at most 4096 characters').optional(),
});

export type RestoreInput = z.infer<typeof RestoreInputSchema>;
export const ALLOWED_RESTORE_FIELDS = Object.keys(RestoreInputSchema.shape);
const REQUIRED = ['runId', 'sourceInstanceId', 'targetInstanceId'];
const EXAMPLE = '{"runId": "20261128T000000Z-3f2a9c1e", "sourceInstanceId": "i-0123456789abcdef0", "targetInstanceId": "i-0fedcba9876543210"}';
const MAX_NAMED_KEYS = 10;

/** Validates the raw execution input; throws InvalidInputError naming the offending field(s). */
export function parseRestoreInput(raw: unknown): RestoreInput {
  if (raw === null || raw === undefined || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidInputError(`The restore input must be a JSON object such as ${EXAMPLE}; allowed fields: ${ALLOWED_RESTORE_FIELDS.join(', ')}.`);
  }
  const result = RestoreInputSchema.safeParse(raw);
  if (result.success) return result.data;
  const messages = result.error.issues.slice(0, 5).map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      const shown = issue.keys.slice(0, MAX_NAMED_KEYS).map((k) => `"${printable(k)}"`).join(', ');
      const more = issue.keys.length > MAX_NAMED_KEYS ? ` and ${issue.keys.length - MAX_NAMED_KEYS} more` : '';
      return `unknown field ${shown}${more}; allowed fields: ${ALLOWED_RESTORE_FIELDS.join(', ')}`;
    }
    const [field, ...rest] = issue.path;
    const where = rest.length > 0 ? `${String(field)}[${rest.join('][')}]` : String(field);
    if (issue.code === 'invalid_type' && REQUIRED.includes(where) && (raw as Record<string, unknown>)[where] === undefined) {
      return `field "${where}" is required (${REQUIRED.join(', ')} are required; example ${EXAMPLE})`;
    }
    return `field "${where}" ${issue.message}`;
  });
  throw new InvalidInputError(`Invalid restore input: ${messages.join('; ')}.`);
}

function printable(value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}
