/**
 * The result line: one TypeScript definition (src/lib/result-line.ts), and the scripts in src/scripts
 * write exactly the keys and defaults it accepts. The scripts' lines are rebuilt from their own source
 * (keys and literal defaults read with tree-sitter), serialised as ConvertTo-Json -Compress would, and
 * parsed back.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Tree } from 'web-tree-sitter';
import { z } from 'zod';
import {
  compactResultLine,
  formatResultLine,
  parseResultLine,
  RESULT_LINE_LIMITS,
  RESULT_LINE_PREFIX,
  RESULT_LINE_VERSION,
  RestoreResultLine,
  RestoredDisk,
  RevertedVolume,
  ShadowedVolume,
  SnapshotEntry,
  SnapshotResultLine,
} from '../src/lib/result-line.ts';
import type { ResultLine, SnapshotResultLine as SnapshotLine } from '../src/lib/result-line.ts';
import { documentScript, evaluateLiteral, functionNamed, hashEntries, parsePowerShell, topLevelLiterals } from './powershell.ts';

const success: SnapshotLine = {
  version: 1,
  operation: 'snapshot',
  method: 'diskshadow',
  runId: '20261128T000000Z-3f2a9c1e',
  attempt: 1,
  instanceId: 'i-0123456789abcdef0',
  outcome: 'success',
  errorCode: null,
  retryable: false,
  exitCode: 0,
  message: 'Requested 2 EBS snapshot(s) containing shadow copy set 4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f.',
  vss: 'created',
  shadowSetId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f',
  appConsistent: true,
  cleanup: 'done',
  warnings: [],
  snapshots: [
    { snapshotId: 'snap-0aaaaaaaaaaaaaaa1', volumeId: 'vol-0aaaaaaaaaaaaaaa1', device: '/dev/sda1' },
    { snapshotId: 'snap-0aaaaaaaaaaaaaaa2', volumeId: 'vol-0aaaaaaaaaaaaaaa2', device: null },
  ],
  volumes: [
    { path: 'C:\\', shadowCopyId: 'a1b2c3d4-0000-4000-8000-000000000001' },
    { path: 'D:\\Data\\', shadowCopyId: null },
  ],
};

/** What PowerShell 5.1 `ConvertTo-Json -Compress` plus the scripts' \uXXXX escaping produce. */
function asPowerShellWouldPrint(value: unknown): string {
  const json = JSON.stringify(value).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  return `${RESULT_LINE_PREFIX} ${json}`;
}

describe('formatResultLine / parseResultLine', () => {
  it('round-trips a snapshot line', () => {
    const line = formatResultLine(success);
    expect(line.startsWith(`${RESULT_LINE_PREFIX} {`)).toBe(true);
    expect(line).not.toMatch(/\n/);
    expect(parseResultLine(line)).toEqual(success);
  });

  it('round-trips a restore line', () => {
    const restore: ResultLine = {
      version: 1,
      operation: 'restore',
      runId: '20261128T000000Z-3f2a9c1e',
      instanceId: 'i-0fedcba9876543210',
      outcome: 'failed',
      errorCode: 'shadow-copy-not-found',
      retryable: false,
      exitCode: 23,
      message: 'Disk 2 holds no shadow copy of the set.',
      shadowSetId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f',
      warnings: ['Volume \\\\?\\Volume{x}\\ has no shadow copy'],
      disks: [{ volumeId: 'vol-0aaaaaaaaaaaaaaa1', diskNumber: 2, signatureChanged: true, online: true, reverted: [] }],
    };
    expect(parseResultLine(formatResultLine(restore))).toEqual(restore);
  });

  it('finds the line among log lines, with CRLF, a BOM and the log after it', () => {
    const output = `\uFEFF${formatResultLine(success)}\r\n2026-11-28T00:00:01Z Instance i-0123 in eu-west-1\r\n2026-11-28T00:00:09Z DiskShadow end backup completed.\r\n`;
    expect(parseResultLine(output)).toEqual(success);
  });

  it('takes the last result line when there are several', () => {
    const first = { ...success, message: 'first' };
    const second = { ...success, message: 'second' };
    expect(parseResultLine(`${formatResultLine(first)}\n${formatResultLine(second)}\nlog`)?.message).toBe('second');
  });

  it('returns undefined for no line, a truncated line, another version or a wrong shape', () => {
    expect(parseResultLine('')).toBeUndefined();
    expect(parseResultLine('Snapshots requested.\nall good')).toBeUndefined();
    expect(parseResultLine(formatResultLine(success).slice(0, 200))).toBeUndefined();
    expect(parseResultLine(asPowerShellWouldPrint({ ...success, version: 2 }))).toBeUndefined();
    expect(parseResultLine(asPowerShellWouldPrint({ ...success, outcome: 'maybe' }))).toBeUndefined();
    expect(parseResultLine(`log mentions ${RESULT_LINE_PREFIX} in passing`)).toBeUndefined();
  });

  it('keeps non-ASCII text intact through the \\uXXXX escaping', () => {
    const localized = { ...success, outcome: 'failed' as const, errorCode: 'vss-timeout', retryable: true, exitCode: 10, message: 'Schattenkopie fehlgeschlagen: Zeitüberschreitung 😕' };
    const line = formatResultLine(localized);
    expect(line).toMatch(/^[\x20-\x7e]+$/);
    expect(parseResultLine(line)?.message).toBe(localized.message);
  });

  it('refuses to format an object outside the schema', () => {
    expect(() => formatResultLine({ ...success, vss: 'maybe' } as unknown as ResultLine)).toThrow();
  });

  it('round-trips any message and warnings (property)', () => {
    fc.assert(
      fc.property(fc.string(), fc.array(fc.string(), { maxLength: 3 }), (message, warnings) => {
        const line = formatResultLine({ ...success, message, warnings });
        return !line.includes('\n') && parseResultLine(`log\r\n${line}\r\nlog`)?.message === message;
      }),
    );
  });
});

describe('a result line the orchestrator can always read back', () => {
  const failed: SnapshotLine = { ...success, outcome: 'failed', errorCode: 'vss-insufficient-storage', retryable: false, exitCode: 11, appConsistent: false };

  it('shortens a snapshot line to what ListCommandInvocations returns (2,500 characters with the log)', () => {
    // 26 volumes, 26 snapshots and a warning per volume: a failure after the EBS request on a big server.
    const many = Array.from({ length: 26 }, (_, i) => i);
    const line = formatResultLine({
      ...failed,
      message: 'm'.repeat(400),
      warnings: many.map((i) => `Shadow storage of ${String.fromCharCode(67 + (i % 20))}:\\ is on another volume ${'w'.repeat(300)}`),
      volumes: many.map((i) => ({ path: `\\\\?\\Volume{0000000${i}-0000-4000-8000-000000000000}\\`, shadowCopyId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f' })),
      snapshots: many.map((i) => ({ snapshotId: `snap-0aaaaaaaaaaaaaa${i}`, volumeId: `vol-0aaaaaaaaaaaaaa${i}`, device: `xvd${String.fromCharCode(97 + i)}` })),
    });
    expect(line.length).toBeLessThanOrEqual(RESULT_LINE_LIMITS.snapshot);
    expect(RESULT_LINE_LIMITS.snapshot + 2).toBeLessThanOrEqual(2500);
    const parsed = parseResultLine(`${line}\r\n${'log line\r\n'.repeat(50)}`.slice(0, 2500));
    expect(parsed).toMatchObject({ operation: 'snapshot', errorCode: 'vss-insufficient-storage', exitCode: 11, shadowSetId: success.shadowSetId });
    expect(parsed?.warnings.at(-1)).toMatch(/^Result line shortened/);
  });

  it('leaves a line that fits untouched', () => {
    expect(compactResultLine(success, RESULT_LINE_LIMITS.snapshot)).toEqual(success);
  });

  it('always fits, whatever the warnings, volumes and message (property)', () => {
    fc.assert(
      fc.property(
        fc.string({ maxLength: 400 }),
        fc.array(fc.string({ maxLength: 400 }), { maxLength: 40 }),
        fc.integer({ min: 0, max: 40 }),
        (message, warnings, n) => {
          const volumes = Array.from({ length: n }, (_, i) => ({ path: `D:\\mount${i}\\`, shadowCopyId: null }));
          const line = formatResultLine({ ...failed, message, warnings, volumes });
          return line.length <= RESULT_LINE_LIMITS.snapshot && parseResultLine(line)?.errorCode === failed.errorCode;
        },
      ),
    );
  });

  it('keeps every disk of a restore line (the restore reads it through GetCommandInvocation, 24,000 characters)', () => {
    const disks = Array.from({ length: 40 }, (_, i) => ({
      volumeId: `vol-0aaaaaaaaaaaaa${String(i).padStart(3, '0')}`,
      diskNumber: i + 1,
      signatureChanged: true,
      online: true,
      reverted: [{ volume: `\\\\?\\Volume{0000000${i}-0000-4000-8000-000000000000}\\`, shadowCopyId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f' }],
    }));
    const restore = { version: 1 as const, operation: 'restore' as const, runId: success.runId, instanceId: success.instanceId, outcome: 'success' as const, errorCode: null, retryable: false, exitCode: 0, message: 'ok', shadowSetId: success.shadowSetId, warnings: [], disks };
    const line = formatResultLine(restore);
    expect(line.length).toBeLessThanOrEqual(RESULT_LINE_LIMITS.restore);
    expect(RESULT_LINE_LIMITS.restore).toBeLessThan(24_000);
    expect(parseResultLine(line)).toMatchObject({ disks: expect.arrayContaining([expect.objectContaining({ volumeId: disks[39]?.volumeId })]) });
  });
});

describe('the scripts write the result line this module parses', () => {
  let snapshot: Tree;
  let restore: Tree;
  beforeAll(async () => {
    snapshot = await parsePowerShell(documentScript('diskshadow-snapshot'));
    restore = await parsePowerShell(documentScript('diskshadow-restore'));
  });

  const keysOf = (tree: Tree, fn: string): string[] => hashEntries(functionNamed(tree.rootNode, fn)).map((e) => e.key);
  const schemaKeys = (schema: z.ZodObject): string[] => Object.keys(schema.shape).sort();

  /** The object a script's New-ResultObject returns, its literal defaults evaluated. */
  const defaults = (tree: Tree): Record<string, unknown> => {
    const variables = topLevelLiterals(tree.rootNode);
    return Object.fromEntries(
      hashEntries(functionNamed(tree.rootNode, 'New-ResultObject')).map(({ key, value }) => {
        const literal = evaluateLiteral(value.text, variables);
        if (!literal.ok) throw new Error(`default of ${key} is not a literal: ${value.text}`);
        return [key, literal.value];
      }),
    );
  };

  it('uses the prefix and version of result-line.ts', () => {
    for (const tree of [snapshot, restore]) {
      const literals = topLevelLiterals(tree.rootNode);
      expect(literals.get('ResultPrefix')).toBe(RESULT_LINE_PREFIX);
      expect(literals.get('ResultVersion')).toBe(RESULT_LINE_VERSION);
    }
  });

  it('writes exactly the schema keys, at every level', () => {
    expect(keysOf(snapshot, 'New-ResultObject').sort()).toEqual(schemaKeys(SnapshotResultLine));
    expect(keysOf(snapshot, 'New-SnapshotRecord').sort()).toEqual(schemaKeys(SnapshotEntry));
    expect(keysOf(snapshot, 'New-VolumeRecord').sort()).toEqual(schemaKeys(ShadowedVolume));
    expect(keysOf(restore, 'New-ResultObject').sort()).toEqual(schemaKeys(RestoreResultLine));
    expect(keysOf(restore, 'New-DiskRecord').sort()).toEqual(schemaKeys(RestoredDisk));
    expect(keysOf(restore, 'New-RevertRecord').sort()).toEqual(schemaKeys(RevertedVolume));
  });

  it('prints a line the parser accepts even when it fails before doing anything', () => {
    for (const tree of [snapshot, restore]) {
      const line = asPowerShellWouldPrint(defaults(tree));
      const parsed = parseResultLine(`${line}\r\n2026-11-28T00:00:00Z FAILED: something\r\n`);
      expect(parsed, line).toBeDefined();
      expect(parsed?.outcome).toBe('failed');
    }
  });

  it('prints lines the parser accepts once the script has filled them in', () => {
    const filled = {
      ...defaults(snapshot),
      runId: '20261128T000000Z-3f2a9c1e',
      attempt: 2,
      instanceId: 'i-0123456789abcdef0',
      errorCode: 'vss-writer-retryable',
      retryable: true,
      exitCode: 10,
      message: 'DiskShadow could not create the shadow copies (exit code 1): VSS_E_WRITERERROR_RETRYABLE',
      vss: 'failed',
      shadowSetId: '4d7e3c1a-0b2f-4c55-9a1e-2f3b4c5d6e7f',
      cleanup: 'done',
      warnings: ['Shadow storage of D:\\ is on another volume'],
      volumes: [{ path: 'C:\\', shadowCopyId: null }],
    };
    expect(parseResultLine(asPowerShellWouldPrint(filled))).toMatchObject({ operation: 'snapshot', errorCode: 'vss-writer-retryable', attempt: 2 });
  });

  it('fits the 2,500 characters ListCommandInvocations returns for a typical instance', () => {
    const volumes = Array.from({ length: 8 }, (_, i) => ({ path: `${String.fromCharCode(67 + i)}:\\`, shadowCopyId: 'a1b2c3d4-0000-4000-8000-000000000001' }));
    const snapshots = Array.from({ length: 8 }, (_, i) => ({ snapshotId: `snap-0aaaaaaaaaaaaaa${i}f`, volumeId: `vol-0aaaaaaaaaaaaaa${i}f`, device: `xvd${String.fromCharCode(102 + i)}` }));
    const line = formatResultLine({ ...success, volumes, snapshots, message: 'x'.repeat(400), warnings: ['y'.repeat(400)] });
    expect(line.length).toBeLessThan(2500);
  });
});

describe('the scripts shorten their line as compactResultLine does', () => {
  it('with the same limits and message length', async () => {
    const { COMPACT_MESSAGE_LENGTH } = await import('../src/lib/result-line.ts');
    const prelude = topLevelLiterals((await parsePowerShell(documentScript('diskshadow-snapshot'))).rootNode);
    const restore = topLevelLiterals((await parsePowerShell(documentScript('diskshadow-restore'))).rootNode);
    expect(prelude.get('MaxResultLineLength')).toBe(RESULT_LINE_LIMITS.snapshot);
    expect(restore.get('MaxResultLineLength')).toBe(RESULT_LINE_LIMITS.restore);
    expect(prelude.get('CompactMessageLength')).toBe(COMPACT_MESSAGE_LENGTH);
  });

  it('in the same order of steps, with the same notes', async () => {
    const fn = functionNamed((await parsePowerShell(documentScript('diskshadow-snapshot'))).rootNode, 'Format-ResultLine').text;
    const order = ['more warnings in the log', "$Result.volumes = @()", "$Result.snapshots = @()", 'Substring(0, $CompactMessageLength - 3)', "$omitted += 'warnings'", 'Result line shortened to $MaxResultLineLength characters'];
    const at = order.map((s) => fn.indexOf(s));
    expect(at.every((i) => i > 0), JSON.stringify(at)).toBe(true);
    expect([...at].sort((a, b) => a - b)).toEqual(at);
    // The TypeScript note reads the same once the PowerShell variables are filled in.
    const ts = compactResultLine({ ...success, message: 'x'.repeat(3000), warnings: [] }, 300).warnings.at(-1) ?? '';
    expect(ts).toBe('Result line shortened to 300 characters (volumes, snapshot ids, the end of the message, warnings left out); the log has everything.');
  });
});
