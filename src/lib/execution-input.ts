/**
 * The execution input an operator types into the console or the schedule sends (contract §3), checked
 * strictly before anything is sent: an unknown key (`instanceID` for `instanceIds`) or a wrong type is an
 * InvalidInputError that names the field and what is allowed.
 */
import * as z from 'zod';
import { InvalidInputError } from './errors.ts';

/** What the run's retention pass does: delete what the policy expires, only list it, or nothing at all. */
export const RETENTION_MODES = ['apply', 'preview', 'skip'] as const;
export type RetentionMode = (typeof RETENTION_MODES)[number];

export const INSTANCE_ID_PATTERN = /^i-[0-9a-f]{8}([0-9a-f]{9})?$/;
export const MAX_INSTANCE_IDS = 1000;
// Control characters never belong in a tag; everything else EC2 accepts is treated as data only.
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

const tagKey = z
  .string({ error: 'must be a string' })
  .min(1, 'must be 1-128 characters')
  .max(128, 'must be 1-128 characters')
  .refine((v) => !CONTROL_CHARS.test(v), 'must not contain control characters')
  .refine((v) => !v.toLowerCase().startsWith('aws:'), 'must not start with "aws:" (reserved by AWS)');

const tagValue = z
  .string({ error: 'must be a string' })
  .min(1, 'must be 1-256 characters')
  .max(256, 'must be 1-256 characters')
  .refine((v) => !CONTROL_CHARS.test(v), 'must not contain control characters');

const instanceIds = z
  .array(
    z
      .string({ error: 'must be a string' })
      .regex(INSTANCE_ID_PATTERN, 'is not an EC2 instance id (i- followed by 8 or 17 lowercase hex digits)'),
    { error: 'must be an array of instance id strings' },
  )
  .min(1, `must list 1-${MAX_INSTANCE_IDS} instance ids`)
  .max(MAX_INSTANCE_IDS, `must list 1-${MAX_INSTANCE_IDS} instance ids`)
  .superRefine((ids, ctx) => {
    const seen = new Set<string>();
    for (const id of ids) {
      if (seen.has(id)) ctx.addIssue({ code: 'custom', message: `lists ${id} more than once` });
      seen.add(id);
    }
  });

const bool = z.boolean({ error: 'must be true or false (a JSON boolean, not a string)' });

export const ExecutionInputSchema = z.strictObject({
  tagKey: tagKey.optional(),
  tagValue: tagValue.optional(),
  instanceIds: instanceIds.optional(),
  dryRun: bool.optional(),
  excludeBootVolume: bool.optional(),
  maxAttempts: z
    .number({ error: 'must be a whole number from 1 to 5' })
    .int('must be a whole number from 1 to 5')
    .min(1, 'must be a whole number from 1 to 5')
    .max(5, 'must be a whole number from 1 to 5')
    .optional(),
  force: bool.optional(),
  retention: z
    .enum(RETENTION_MODES, { error: `must be one of ${RETENTION_MODES.map((m) => `"${m}"`).join(', ')} (default "apply")` })
    .optional(),
  Comment: z.string({ error: 'must be a string' }).max(4096, 'must be at most 4096 characters').optional(),
  comment: z.string({ error: 'must be a string' }).max(4096, 'must be at most 4096 characters').optional(),
});

export type ExecutionInput = z.infer<typeof ExecutionInputSchema>;
export const ALLOWED_INPUT_FIELDS = Object.keys(ExecutionInputSchema.shape);

/** Validates raw execution input; throws InvalidInputError naming the first offending field(s). */
export function parseExecutionInput(raw: unknown): ExecutionInput {
  if (raw === null || raw === undefined) return {};
  if (typeof raw !== 'object' || Array.isArray(raw)) {
    throw new InvalidInputError(
      `The execution input must be a JSON object such as {} or {"dryRun": true}; allowed fields: ${ALLOWED_INPUT_FIELDS.join(', ')}.`,
    );
  }
  const result = ExecutionInputSchema.safeParse(raw);
  if (result.success) return result.data;
  const messages = result.error.issues.slice(0, 5).map((issue) => {
    if (issue.code === 'unrecognized_keys') {
      // A hostile input can carry thousands of keys: name a few, so the cause stays readable and far below
      // Step Functions' 32,768-character limit for an error cause.
      const shown = issue.keys.slice(0, MAX_NAMED_KEYS).map((k) => `"${printable(k)}"`).join(', ');
      const more = issue.keys.length > MAX_NAMED_KEYS ? ` and ${issue.keys.length - MAX_NAMED_KEYS} more` : '';
      return `unknown field ${shown}${more}; allowed fields: ${ALLOWED_INPUT_FIELDS.join(', ')}`;
    }
    const [field, ...rest] = issue.path;
    const where = rest.length > 0 ? `${String(field)}[${rest.join('][')}]` : String(field);
    return `field "${where}" ${issue.message}`;
  });
  throw new InvalidInputError(`Invalid execution input: ${messages.join('; ')}.`);
}

const MAX_NAMED_KEYS = 10;

/** Keeps hostile keys from turning an error message into something unreadable. */
function printable(value: string): string {
  const clean = value.replace(/[\u0000-\u001f\u007f]/g, '?');
  return clean.length > 64 ? `${clean.slice(0, 61)}...` : clean;
}
