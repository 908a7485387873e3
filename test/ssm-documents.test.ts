/**
 * The SSM Command documents built from src/scripts, the parameter checks the Lambda repeats before
 * SendCommand, the DiskShadow method driver, and the reserved-tag refusal of the aws-vss mapping.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { buildDocument, buildDocuments, MAX_DOCUMENT_BYTES, stripComments, writeDocuments } from '../src/documents/build-documents.ts';
import {
  assertPortablePattern,
  DOCUMENT_NAMES,
  DOCUMENTS,
  EXECUTION_TIMEOUT_PATTERN,
  NON_SCRIPT_PARAMETERS,
  RUN_ID_PATTERN,
  validateDocumentParameters,
} from '../src/documents/document-parameters.ts';
import { InvalidInputError } from '../src/lib/errors.ts';
import { awsVss, formatVssTags, RESERVED_VSS_TAGS } from '../src/lib/methods/aws-vss.ts';
import { CONSISTENCY_TAG, diskShadow, SHADOW_SET_TAG } from '../src/lib/methods/diskshadow.ts';
import type { CommandContext, InvocationResult } from '../src/lib/methods/types.ts';
import { formatResultLine } from '../src/lib/result-line.ts';
import type { SnapshotResultLine } from '../src/lib/result-line.ts';
import { runIdFor } from '../src/lib/run-id.ts';
import { documentScript, parsePowerShell, walk } from './powershell.ts';

const RUN_ID = '20261128T000000Z-3f2a9c1e';
const SET_ID = '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f';
const snapshotParams = (overrides: Record<string, string[]> = {}): Record<string, string[]> => ({
  RunId: [RUN_ID],
  Attempt: ['1'],
  ExcludeBootVolume: ['False'],
  executionTimeout: ['1800'],
  ...overrides,
});

function invalidInput(fn: () => unknown): InvalidInputError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(InvalidInputError);
    return error as InvalidInputError;
  }
  throw new Error('expected an InvalidInputError');
}

describe('built documents', () => {
  const documents = buildDocuments();
  const tmp = mkdtempSync(join(tmpdir(), 'vss-documents-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it.each(DOCUMENT_NAMES)('%s is a schema 2.2 PowerShell document in the documented shape', (name) => {
    const doc = documents[name];
    expect(doc.schemaVersion).toBe('2.2');
    expect(Object.keys(doc).sort()).toEqual(['description', 'mainSteps', 'parameters', 'schemaVersion']);
    expect(doc.mainSteps).toHaveLength(1);
    const [step] = doc.mainSteps;
    expect(Object.keys(step).sort()).toEqual(['action', 'inputs', 'name', 'precondition']);
    expect(step.action).toBe('aws:runPowerShellScript');
    expect(step.precondition).toEqual({ StringEquals: ['platformType', 'Windows'] });
    // aws:runPowerShellScript takes runCommand, timeoutSeconds and workingDirectory (Systems Manager user
    // guide, "Command document plugin reference"); interpolationType is not one of them.
    for (const key of Object.keys(step.inputs)) expect(RUN_POWERSHELL_INPUTS, `inputs.${key}`).toContain(key);
    expect(step.inputs.timeoutSeconds).toBe('{{ executionTimeout }}');
    expect(step.inputs.runCommand.join('\n')).toBe(stripComments(documentScript(name)));
    expect(step.inputs.runCommand.some((l) => l.includes('{{'))).toBe(false);
    expect(Buffer.byteLength(JSON.stringify(doc))).toBeLessThan(MAX_DOCUMENT_BYTES);
  });

  it.each(DOCUMENT_NAMES)('%s: every parameter the script reads is passed as an environment variable (interpolationType on the parameter)', (name) => {
    // Systems Manager user guide, "Data elements and parameters": interpolationType is a property of each
    // entry under "parameters" ({"Message": {"type": "String", "interpolationType": "ENV_VAR", "allowedPattern": ...}}).
    for (const [param, spec] of Object.entries(documents[name].parameters)) {
      for (const key of Object.keys(spec)) expect(PARAMETER_KEYS, `${param}.${key}`).toContain(key);
      if (NON_SCRIPT_PARAMETERS.includes(param)) {
        // Used by the document itself ({{ executionTimeout }} in timeoutSeconds), never by the script.
        expect(spec.interpolationType, param).toBeUndefined();
      } else {
        expect(spec.interpolationType, param).toBe('ENV_VAR');
      }
    }
  });

  it('refuses to build a document whose parameter declares its own interpolation', () => {
    const original = DOCUMENTS['diskshadow-snapshot'].parameters.RunId as unknown as Record<string, unknown>;
    original.interpolationType = 'NONE';
    try {
      expect(() => buildDocument('diskshadow-snapshot', 'Write-Output 1')).toThrow(/interpolationType/);
    } finally {
      delete original.interpolationType;
    }
  });

  it.each(DOCUMENT_NAMES)('%s: every parameter is a String with an anchored portable pattern or allowed values', (name) => {
    const params = Object.entries(documents[name].parameters);
    expect(params.map(([p]) => p)).toContain('executionTimeout');
    for (const [param, spec] of params) {
      expect(spec.type, param).toBe('String');
      expect(spec.description.length, param).toBeGreaterThan(10);
      if (spec.allowedPattern) {
        expect(spec.allowedPattern, param).toMatch(/^\^.*\$$/);
        expect(() => assertPortablePattern(param, spec.allowedPattern as string)).not.toThrow();
      } else {
        expect(spec.allowedValues?.length, param).toBeGreaterThan(0);
      }
      if (spec.default !== undefined) expect(() => validateDocumentParameters(name, { ...requiredOf(name), [param]: [spec.default as string] })).not.toThrow();
    }
  });

  it.each(DOCUMENT_NAMES)('%s runs exactly the code of its scripts, without their comments', async (name) => {
    const tokens = async (text: string): Promise<string[]> => {
      const out: string[] = [];
      walk((await parsePowerShell(text)).rootNode, (n) => {
        if (n.childCount === 0 && n.type !== 'comment') out.push(n.text);
      });
      return out;
    };
    const full = documentScript(name);
    const deployed = documents[name].mainSteps[0].inputs.runCommand.join('\n');
    expect(await tokens(deployed)).toEqual(await tokens(full));
    expect(deployed).not.toMatch(/^\s*#/m);
    expect(deployed.length).toBeLessThan(full.length);
  });

  it('refuses to strip comments from a script with a here-string', () => {
    expect(() => stripComments("$x = @'\n# not a comment\n'@\n")).toThrow(/here-string/);
  });

  it('refuses to build from a script with {{ }} interpolation', () => {
    expect(() => buildDocument('diskshadow-snapshot', "Write-Output '{{ RunId }}'")).toThrow(/\{\{/);
  });

  it('writes build/documents/<name>.json, also from the command line', () => {
    const written = writeDocuments(join(tmp, 'api'));
    expect(written.map((p) => p.split('/').at(-1)).sort()).toEqual(DOCUMENT_NAMES.map((n) => `${n}.json`).sort());
    const cli = spawnSync(process.execPath, ['--import', 'tsx', 'src/documents/build-documents.ts', join(tmp, 'cli')], { encoding: 'utf8' });
    expect(cli.stderr).toBe('');
    expect(cli.status).toBe(0);
    for (const name of DOCUMENT_NAMES) {
      expect(JSON.parse(readFileSync(join(tmp, 'cli', `${name}.json`), 'utf8'))).toEqual(documents[name]);
    }
  });
});

/** The keys the SSM document schema documents for a parameter definition (user guide, "Data elements and parameters"). */
const PARAMETER_KEYS = ['type', 'description', 'default', 'allowedValues', 'allowedPattern', 'displayType', 'minItems', 'maxItems', 'minChars', 'maxChars', 'interpolationType'];
/** The inputs of aws:runPowerShellScript (user guide, "Command document plugin reference"). */
const RUN_POWERSHELL_INPUTS = ['runCommand', 'timeoutSeconds', 'workingDirectory'];

function requiredOf(name: (typeof DOCUMENT_NAMES)[number]): Record<string, string[]> {
  if (name === 'diskshadow-snapshot') return { RunId: [RUN_ID], Attempt: ['1'] };
  if (name === 'selftest') return { Action: ['prepare'], RunId: [RUN_ID] };
  return { RunId: [RUN_ID], VolumeIds: ['vol-0123456789abcdef0'], ShadowSetId: [SET_ID] };
}

describe('validateDocumentParameters', () => {
  it('accepts what the drivers send', () => {
    expect(validateDocumentParameters('diskshadow-snapshot', snapshotParams())).toEqual(snapshotParams());
    expect(() => validateDocumentParameters('diskshadow-snapshot', requiredOf('diskshadow-snapshot'))).not.toThrow();
    expect(() =>
      validateDocumentParameters('diskshadow-restore', { ...requiredOf('diskshadow-restore'), VolumeIds: ['vol-0123456789abcdef0,vol-0aaaaaaa'] }),
    ).not.toThrow();
  });

  it.each([
    ['RunId', snapshotParams({ RunId: ["x'; Remove-Item C:\\ -Recurse; '"] })],
    ['RunId', snapshotParams({ RunId: [`${RUN_ID}\n`] })],
    ['RunId', snapshotParams({ RunId: [`${RUN_ID}; whoami`] })],
    ['Attempt', snapshotParams({ Attempt: ['6'] })],
    ['Attempt', snapshotParams({ Attempt: ['0'] })],
    ['Attempt', snapshotParams({ Attempt: ['1', '2'] })],
    ['ExcludeBootVolume', snapshotParams({ ExcludeBootVolume: ['true'] })],
    ['executionTimeout', snapshotParams({ executionTimeout: ['59'] })],
    ['executionTimeout', snapshotParams({ executionTimeout: ['172801'] })],
    ['executionTimeout', snapshotParams({ executionTimeout: ['1e3'] })],
    ['CopyOnly', snapshotParams({ CopyOnly: ['true'] })],
    ['CopyOnly', snapshotParams({ CopyOnly: ['Yes'] })],
  ])('names %s when it is wrong', (param, params) => {
    expect(invalidInput(() => validateDocumentParameters('diskshadow-snapshot', params)).message).toContain(param);
  });

  it('names a missing required parameter and an unknown document', () => {
    expect(invalidInput(() => validateDocumentParameters('diskshadow-snapshot', { Attempt: ['1'] })).message).toMatch(/RunId .*required/);
    expect(invalidInput(() => validateDocumentParameters('nope' as 'diskshadow-snapshot', {})).message).toContain('nope');
  });

  it('limits the restore to 1-40 volume ids and a lower-case shadow set id', () => {
    const ids = (n: number): string => Array.from({ length: n }, (_, i) => `vol-0${i.toString(16).padStart(16, '0')}`).join(',');
    const restore = (over: Record<string, string[]>) => () => validateDocumentParameters('diskshadow-restore', { ...requiredOf('diskshadow-restore'), ...over });
    expect(restore({ VolumeIds: [ids(40)] })).not.toThrow();
    expect(invalidInput(restore({ VolumeIds: [ids(41)] })).message).toContain('VolumeIds');
    expect(invalidInput(restore({ VolumeIds: ['vol-0123456789abcdef0, vol-0aaaaaaaa'] })).message).toContain('VolumeIds');
    expect(invalidInput(restore({ ShadowSetId: [`{${SET_ID}}`] })).message).toContain('ShadowSetId');
    expect(invalidInput(restore({ ShadowSetId: [SET_ID.toUpperCase()] })).message).toContain('ShadowSetId');
  });

  it('accepts exactly 60 to 172800 as executionTimeout', () => {
    const pattern = new RegExp(EXECUTION_TIMEOUT_PATTERN);
    for (let n = 0; n <= 200_000; n += 1) {
      if (pattern.test(String(n)) !== (n >= 60 && n <= 172_800)) throw new Error(`executionTimeout pattern is wrong for ${n}`);
    }
    expect(pattern.test('0060')).toBe(false);
  });

  it('accepts every run id runIdFor produces', () => {
    const pattern = new RegExp(RUN_ID_PATTERN);
    fc.assert(
      fc.property(fc.string(), fc.date({ min: new Date('1970-01-01T00:00:00Z'), max: new Date('9999-12-31T23:59:59Z'), noInvalidDate: true }), (arn, start) =>
        pattern.test(runIdFor(arn, start.toISOString())),
      ),
    );
  });

  it('refuses patterns Java, Go and JavaScript would read differently', () => {
    for (const bad of ['[0-9]+', '^[0-9]+', '^(?=a)[a-z]$', '^(a)\\1$', '^\\d+$', '^a++$', '^a\\z$']) {
      expect(() => assertPortablePattern('p', bad), bad).toThrow(InvalidInputError);
    }
  });
});

describe('the diskshadow driver', () => {
  const ctx: CommandContext = { runId: RUN_ID, attempt: 2, excludeBootVolume: true, copyOnly: false, commandTimeoutSeconds: 1800 };

  it('sends parameters the document accepts', () => {
    expect(diskShadow.parameters(ctx)).toEqual({ RunId: [RUN_ID], Attempt: ['2'], ExcludeBootVolume: ['True'], CopyOnly: ['False'], executionTimeout: ['1800'] });
  });

  it('offers a copy-only backup as AWS does, off by default like AWS CopyOnly', () => {
    expect(diskShadow.parameters({ ...ctx, copyOnly: true }).CopyOnly).toEqual(['True']);
    expect(DOCUMENTS['diskshadow-snapshot'].parameters.CopyOnly).toMatchObject({ default: 'False', allowedValues: ['True', 'False'] });
  });

  it('refuses what the document would refuse, before sending', () => {
    expect(invalidInput(() => diskShadow.parameters({ ...ctx, attempt: 6 })).message).toContain('Attempt');
    expect(invalidInput(() => diskShadow.parameters({ ...ctx, runId: 'bad run' })).message).toContain('RunId');
    expect(invalidInput(() => diskShadow.parameters({ ...ctx, commandTimeoutSeconds: 30 })).message).toContain('executionTimeout');
  });

  const failed = (line: Partial<SnapshotResultLine>, exitCode: number): InvocationResult => {
    const base: SnapshotResultLine = {
      version: 1,
      operation: 'snapshot',
      method: 'diskshadow',
      runId: RUN_ID,
      attempt: 2,
      instanceId: 'i-0123456789abcdef0',
      outcome: 'failed',
      errorCode: 'script-failed',
      retryable: true,
      exitCode,
      message: 'failed',
      vss: 'failed',
      shadowSetId: null,
      appConsistent: false,
      cleanup: 'not-needed',
      warnings: [],
      snapshots: [],
      volumes: [],
    };
    const output = `${formatResultLine({ ...base, ...line, exitCode })}\r\n2026-11-28T00:00:01Z FAILED: log line VSS_E_WRITERERROR_TIMEOUT\r\n`;
    return { status: 'Failed', statusDetails: 'Failed', responseCode: exitCode, output };
  };

  it('calls a snapshot consistent only with the shadow set and the after-revert tag, never by AppConsistent', () => {
    const set = { [SHADOW_SET_TAG]: SET_ID };
    expect(diskShadow.isConsistent({ ...set, [CONSISTENCY_TAG]: 'after-revert' })).toBe(true);
    expect(diskShadow.isConsistent({ ...set, AppConsistent: 'true' })).toBe(false);
    expect(diskShadow.isConsistent({ [CONSISTENCY_TAG]: 'after-revert' })).toBe(false);
    expect(diskShadow.isConsistent({ ...set, [CONSISTENCY_TAG]: 'crash' })).toBe(false);
    // A disk that held no shadowable volume: nothing to revert, restored as it stands.
    expect(diskShadow.isConsistent({ ...set, [CONSISTENCY_TAG]: 'not-shadowed' })).toBe(true);
    expect(diskShadow.consistencyTag).toBe('vss-snapshots:consistency=after-revert');
    expect(awsVss.isConsistent({ AppConsistent: 'true' })).toBe(true);
    expect(awsVss.isConsistent({ AppConsistent: 'false' })).toBe(false);
    expect(awsVss.isConsistent({ ...set, [CONSISTENCY_TAG]: 'after-revert' })).toBe(false);
  });

  it('diagnoses from the result line first', () => {
    const d = diskShadow.diagnose(failed({ errorCode: 'vss-writer-nonretryable', retryable: false, message: 'Writer SqlServerWriter: VSS_E_WRITERERROR_NONRETRYABLE', shadowSetId: SET_ID }, 11));
    expect(d.code).toBe('vss-writer-nonretryable');
    expect(d.detail).toContain('SqlServerWriter');
    expect(d.detail).toContain('exit code 11');
    expect(d.detail).toContain(SET_ID);
    expect(diskShadow.diagnose(failed({ errorCode: 'concurrent-snapshot-limit', retryable: false }, 13)).code).toBe('concurrent-snapshot-limit');
    expect(diskShadow.diagnose(failed({ errorCode: 'language-mode', retryable: false }, 15)).code).toBe('language-mode');
  });

  it('turns an unknown or non-failure code into script-failed and says so', () => {
    const d = diskShadow.diagnose(failed({ errorCode: 'vss-quantum-flux', retryable: false }, 11));
    expect(d.code).toBe('script-failed');
    expect(d.detail).toContain('vss-quantum-flux');
    expect(diskShadow.diagnose(failed({ errorCode: 'stopped', retryable: false }, 15)).code).toBe('script-failed');
  });

  it('falls back to the text diagnosis without a valid line', () => {
    const text = (output: string): InvocationResult => ({ status: 'Failed', statusDetails: 'Failed', responseCode: 1, output });
    expect(diskShadow.diagnose(text('COM call failed: VSS_E_WRITERERROR_TIMEOUT')).code).toBe('vss-writer-retryable');
    expect(diskShadow.diagnose(text('Cannot invoke method. Method invocation is supported only on core types in this language mode.')).code).toBe('language-mode');
    const truncated = failed({ errorCode: 'vss-in-progress' }, 10).output.slice(0, 120);
    expect(diskShadow.diagnose(text(truncated)).code).toBe('script-failed');
  });
});

describe('reserved tags', () => {
  it.each(RESERVED_VSS_TAGS)('refuses %s as a run tag of AWSEC2-CreateVssSnapshot', (key) => {
    expect(invalidInput(() => formatVssTags({ 'vss-snapshots:run-id': RUN_ID, [key]: 'x' })).message).toContain(key);
  });

  it('never sends a reserved tag to the AWS document', () => {
    const tags = awsVss.parameters({ runId: RUN_ID, attempt: 1, excludeBootVolume: false, copyOnly: true, commandTimeoutSeconds: 1800 }).tags?.[0] ?? '';
    for (const key of RESERVED_VSS_TAGS) expect(tags).not.toContain(`Key=${key},`);
  });

  it('lets only the diskshadow script itself write Device and AppConsistent, which the document has no parameter for', () => {
    for (const name of DOCUMENT_NAMES) {
      expect(Object.keys(DOCUMENTS[name].parameters).join(' ')).not.toMatch(/tag/i);
    }
  });
});
