/**
 * The parameters of this project's SSM Command documents, in one place: src/documents/build-documents.ts
 * writes them into the documents, and the Lambda checks every value against them again before
 * SendCommand (validateDocumentParameters). The scripts read each one only as `$env:SSM_<name>`
 * (interpolationType ENV_VAR) and check it against the same pattern a third time.
 *
 * Every `allowedPattern` is anchored and written in the subset of regular expressions that Java (checked
 * by the SSM API), Go (checked again by the SSM Agent) and JavaScript (here) read the same way: character
 * classes, groups, alternation and counted repetition; no lookarounds, backreferences, possessive
 * quantifiers or escapes such as `\d`, `\z`.
 *
 * This module is bundled into the Lambdas: no file system access here.
 */
import { InvalidInputError } from '../lib/errors.ts';

export interface DocumentParameter {
  type: 'String';
  description: string;
  default?: string;
  allowedPattern?: string;
  allowedValues?: readonly string[];
}

export interface DocumentDefinition {
  /** The .ps1 file in src/scripts that becomes the document's only step. */
  script: string;
  description: string;
  stepName: string;
  parameters: Record<string, DocumentParameter>;
}

/** `executionTimeout` in seconds, 60 to 172,800 (48 h): the range the Lambda configuration allows. */
export const EXECUTION_TIMEOUT_PATTERN = '^([6-9][0-9]|[1-9][0-9]{2,4}|1[0-6][0-9]{4}|17[01][0-9]{3}|172[0-7][0-9]{2}|172800)$';
/** The run id format of src/lib/run-id.ts, `20261128T000000Z-3f2a9c1e`. */
export const RUN_ID_PATTERN = '^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{8}$';
export const ATTEMPT_PATTERN = '^[1-5]$';
/** The stack id of src/lib/config.ts (STACK_ID), or empty (a document sent by something other than the workflow). */
export const STACK_ID_PATTERN = '^([A-Za-z0-9][A-Za-z0-9._-]{0,127})?$';
/** 1 to 40 EBS volume ids, comma-separated. */
export const VOLUME_IDS_PATTERN = '^vol-[0-9a-f]{8,17}(,vol-[0-9a-f]{8,17}){0,39}$';
/** A shadow copy set id as the snapshot script tags it: lower-case GUID without braces. */
export const SHADOW_SET_ID_PATTERN = '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
/** Self-test: the action the document takes. */
export const SELFTEST_ACTIONS = ['prepare', 'stop', 'verify', 'cleanup'] as const;
/** Self-test: the data volume's drive letter. */
export const DATA_DRIVE_PATTERN = '^[D-Z]$';
/** Self-test: 0 to 40 EBS volume ids, comma-separated. */
export const OPTIONAL_VOLUME_IDS_PATTERN = '^(vol-[0-9a-f]{8,17}(,vol-[0-9a-f]{8,17}){0,39})?$';
/** Self-test: an empty string, or "<from>/<to>" as UTC timestamps with milliseconds. */
export const WINDOW_PATTERN =
  '^([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z/[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z)?$';
/** Self-test: an empty string or a shadow set id. */
export const OPTIONAL_SHADOW_SET_ID_PATTERN = '^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})?$';

const executionTimeout: DocumentParameter = {
  type: 'String',
  description: 'Seconds the script may run before SSM stops it (60 to 172800).',
  default: '1800',
  allowedPattern: EXECUTION_TIMEOUT_PATTERN,
};

const runId: DocumentParameter = {
  type: 'String',
  description: 'vss-snapshots run id, for example 20261128T000000Z-3f2a9c1e.',
  allowedPattern: RUN_ID_PATTERN,
};

export const DOCUMENTS = {
  'diskshadow-snapshot': {
    script: 'diskshadow-snapshot.ps1',
    description:
      'vss-snapshots, method diskshadow: persistent DiskShadow shadow copy of every EBS volume, then one CreateSnapshots call tagged with the run; restore reverts the shadow copy. Prints one VSS-SNAPSHOTS-RESULT line.',
    stepName: 'createDiskShadowSnapshots',
    parameters: {
      RunId: runId,
      Attempt: {
        type: 'String',
        description: 'Attempt number of this instance within the run (1 to 5).',
        allowedPattern: ATTEMPT_PATTERN,
      },
      // Written as the vss-snapshots:stack tag: retention deletes only snapshots of its own stack.
      StackId: {
        type: 'String',
        description: 'The vss-snapshots stack (<service>-<stage>) the snapshots belong to, tagged vss-snapshots:stack; empty: no such tag (retention never deletes them).',
        default: '',
        allowedPattern: STACK_ID_PATTERN,
      },
      ExcludeBootVolume: {
        type: 'String',
        description: 'True to leave the boot volume out of the shadow copy set and the snapshots.',
        default: 'False',
        allowedValues: ['True', 'False'],
      },
      // As AWSEC2-CreateVssSnapshot's CopyOnly, and with its default: False, a full backup.
      CopyOnly: {
        type: 'String',
        description: 'True for a VSS copy backup (no begin/end backup: writers such as SQL Server keep their backup history and differential base); False for a full backup.',
        default: 'False',
        allowedValues: ['True', 'False'],
      },
      executionTimeout,
    },
  },
  'diskshadow-restore': {
    script: 'diskshadow-restore.ps1',
    description:
      'vss-snapshots, method diskshadow: brings only the given restored EBS volumes online, fixes disk signature collisions and reverts only their shadow copies of the given set. Prints one VSS-SNAPSHOTS-RESULT line.',
    stepName: 'revertDiskShadowVolumes',
    parameters: {
      RunId: runId,
      VolumeIds: {
        type: 'String',
        description: 'Comma-separated ids of the restored EBS volumes attached to this instance (1 to 40).',
        allowedPattern: VOLUME_IDS_PATTERN,
      },
      ShadowSetId: {
        type: 'String',
        description: 'Shadow copy set id of the snapshots (their tag vss-snapshots:shadow-set-id).',
        allowedPattern: SHADOW_SET_ID_PATTERN,
      },
      executionTimeout,
    },
  },
  selftest: {
    script: 'selftest.ps1',
    description:
      'vss-snapshots self-test, run by `vss-snapshots selftest` on a throwaway instance: prepares known files and a journal workload on a data volume, stops it, verifies restored volumes, cleans up. Prints one VSS-SNAPSHOTS-RESULT line.',
    stepName: 'selfTest',
    parameters: {
      Action: {
        type: 'String',
        description: 'prepare, stop, verify or cleanup.',
        allowedValues: SELFTEST_ACTIONS,
      },
      RunId: runId,
      DataDrive: {
        type: 'String',
        description: 'Drive letter of the data volume the test writes to (D to Z).',
        default: 'D',
        allowedPattern: DATA_DRIVE_PATTERN,
      },
      VolumeIds: {
        type: 'String',
        description: 'verify: comma-separated ids of the restored EBS volumes attached to this instance.',
        default: '',
        allowedPattern: OPTIONAL_VOLUME_IDS_PATTERN,
      },
      Window: {
        type: 'String',
        description: 'stop: <from>/<to> (UTC, milliseconds) to count the journal entries written in between.',
        default: '',
        allowedPattern: WINDOW_PATTERN,
      },
      ShadowSetId: {
        type: 'String',
        description: 'cleanup: the shadow set of the DiskShadow snapshot, which must be gone from the instance.',
        default: '',
        allowedPattern: OPTIONAL_SHADOW_SET_ID_PATTERN,
      },
      executionTimeout,
    },
  },
} as const satisfies Record<string, DocumentDefinition>;

export type DocumentName = keyof typeof DOCUMENTS;
export const DOCUMENT_NAMES = Object.keys(DOCUMENTS) as DocumentName[];

/** Parameters the document uses itself rather than passing to the script. */
export const NON_SCRIPT_PARAMETERS: readonly string[] = ['executionTimeout'];

// Tokens of the regex subset Java, Go and JavaScript agree on (see the module comment).
const PORTABLE_PATTERN = /^\^([A-Za-z0-9_,:/ \-|()[\]{}+*?.]|\\[.\-{}()[\]|*+?/\\])*\$$/;

/** Throws unless `pattern` is anchored, within the portable subset and compiles. */
export function assertPortablePattern(name: string, pattern: string): void {
  const problems: string[] = [];
  if (!PORTABLE_PATTERN.test(pattern)) problems.push('must be anchored ^...$ and use only character classes, groups, | and counted repetition');
  if (/\(\?/.test(pattern)) problems.push('no (?...) groups (lookarounds, flags)');
  if (/[+*?}]\+/.test(pattern.replace(/\\./g, ''))) problems.push('no possessive quantifiers');
  try {
    new RegExp(pattern);
  } catch (error) {
    problems.push(`does not compile: ${(error as Error).message}`);
  }
  if (problems.length > 0) throw new InvalidInputError(`allowedPattern of ${name} ${problems.join('; ')}: ${pattern}`);
}

function describeValue(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * Checks SendCommand parameters against the document's definitions, as SSM will: every parameter known,
 * every parameter without a default present, exactly one string value each, matching its allowedPattern
 * or one of its allowedValues. Throws InvalidInputError naming the parameter; returns the parameters.
 */
export function validateDocumentParameters(docName: DocumentName, params: Record<string, string[]>): Record<string, string[]> {
  const definition: DocumentDefinition | undefined = (DOCUMENTS as Record<string, DocumentDefinition>)[docName];
  if (!definition) throw new InvalidInputError(`Unknown SSM document "${docName}"; known: ${DOCUMENT_NAMES.join(', ')}.`);
  const known = Object.keys(definition.parameters);
  for (const name of Object.keys(params)) {
    if (!known.includes(name)) throw new InvalidInputError(`Parameter ${name} is not a parameter of document ${docName} (allowed: ${known.join(', ')}).`);
  }
  for (const [name, spec] of Object.entries(definition.parameters)) {
    const values = params[name];
    if (values === undefined) {
      if (spec.default === undefined) throw new InvalidInputError(`Parameter ${name} of document ${docName} is required.`);
      continue;
    }
    if (!Array.isArray(values) || values.length !== 1 || typeof values[0] !== 'string') {
      throw new InvalidInputError(`Parameter ${name} of document ${docName} must be exactly one string value, got ${describeValue(values)}.`);
    }
    const value = values[0];
    if (spec.allowedValues && !spec.allowedValues.includes(value)) {
      throw new InvalidInputError(`Parameter ${name} of document ${docName} must be one of ${spec.allowedValues.join(', ')}, got ${describeValue(value)}.`);
    }
    if (spec.allowedPattern && !new RegExp(spec.allowedPattern).test(value)) {
      throw new InvalidInputError(`Parameter ${name} of document ${docName} does not match ${spec.allowedPattern}, got ${describeValue(value)}.`);
    }
  }
  return params;
}
