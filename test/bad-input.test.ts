/**
 * Bad input catalogue (issue 5): hostile execution inputs and fleet values. Each bad input ends the
 * execution with InvalidInputError naming the field, before anything is asked of AWS; tag values with
 * shell metacharacters that EC2 allows select instances as data and never reach a command.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { FleetError, parseFleet } from '../src/local/fleet.ts';
import { runFleet } from './helpers.ts';
import { doubleCommands } from './reliability-helpers.ts';

const ID = 'i-0123456789abcdef0';
const FLEET = { instances: [{ instanceId: ID, name: 'srv-01' }, { instanceId: 'i-0123456789abcdef1', attempts: ['writer-failure'] }] };
const ids = (n: number) => Array.from({ length: n }, (_, i) => `i-${i.toString(16).padStart(8, '0')}`);
const deep = (levels: number): unknown => (levels === 0 ? 'x' : { a: deep(levels - 1) });
const ALLOWED = /allowed fields: tagKey, tagValue, instanceIds, dryRun, excludeBootVolume, maxAttempts, force, retention, Comment, comment/;

/** [what, execution input (already JSON-parsed, as Step Functions hands it over), what the cause must say]. */
const HOSTILE_INPUTS: [string, unknown, RegExp][] = [
  // Unknown and look-alike keys, prototype pollution.
  ['a misspelt key', { instanceID: [ID] }, /unknown field "instanceID".*allowed fields/],
  ['a key in the wrong case', { tagkey: 'Backup' }, /unknown field "tagkey"/],
  ['DryRun next to dryRun', { dryRun: true, DryRun: true }, /unknown field "DryRun"/],
  ['__proto__ (prototype pollution)', JSON.parse('{"__proto__": {"force": true}}'), /unknown field "__proto__"/],
  ['constructor.prototype (prototype pollution)', JSON.parse('{"constructor": {"prototype": {"force": true}}}'), /unknown field "constructor"/],
  ['a key named hasOwnProperty', { hasOwnProperty: 1 }, /unknown field "hasOwnProperty"/],
  ['an empty key', { '': 1 }, /unknown field ""/],
  ['a key with a NUL byte', { 'tag\u0000Key': 'x' }, /unknown field "tag\?Key"/],
  ['5,000 unknown keys', Object.fromEntries(ids(5000).map((k) => [k, 1])), /unknown field "i-00000000".* and 4990 more; allowed fields/],
  // Not an object at all.
  ['an array', [ID], /must be a JSON object/],
  ['a string holding JSON', '{"dryRun": true}', /must be a JSON object/],
  ['a number', 42, /must be a JSON object/],
  ['a boolean', true, /must be a JSON object/],
  // Tag key and value.
  ['an AWS-reserved tag key', { tagKey: 'aws:cloudformation:stack-name' }, /field "tagKey" must not start with "aws:"/],
  ['an empty tag key', { tagKey: '' }, /field "tagKey" must be 1-128 characters/],
  ['a 129-character tag key', { tagKey: 'k'.repeat(129) }, /field "tagKey" must be 1-128 characters/],
  ['a 257-character tag value', { tagValue: 'v'.repeat(257) }, /field "tagValue" must be 1-256 characters/],
  ['an empty tag value', { tagValue: '' }, /field "tagValue" must be 1-256 characters/],
  ['a tag value with a NUL byte', { tagValue: 'Windows\u0000VSS' }, /field "tagValue" must not contain control characters/],
  ['a tag value with a newline', { tagValue: 'WindowsVSS\nRemove-Item C:\\' }, /field "tagValue" must not contain control characters/],
  ['a tag key with CR LF', { tagKey: 'Backup\r\n' }, /field "tagKey" must not contain control characters/],
  ['a number as tag value', { tagValue: 42 }, /field "tagValue" must be a string/],
  ['null as tag value', { tagValue: null }, /field "tagValue" must be a string/],
  ['an array as tag value', { tagValue: ['WindowsVSS'] }, /field "tagValue" must be a string/],
  ['an operator object as tag value', { tagValue: { $ne: '' } }, /field "tagValue" must be a string/],
  ['a tag key nested 2,000 levels deep', { tagKey: deep(2000) }, /field "tagKey" must be a string/],
  // Retention mode.
  ['an unknown retention mode', { retention: 'delete' }, /field "retention" must be one of "apply", "preview", "skip" \(default "apply"\)/],
  ['retention as a boolean', { retention: false }, /field "retention" must be one of "apply", "preview", "skip"/],
  ['retention in upper case', { retention: 'Apply' }, /field "retention" must be one of/],
  // Instance ids.
  ['a single id instead of a list', { instanceIds: ID }, /field "instanceIds" must be an array/],
  ['an empty id list', { instanceIds: [] }, /field "instanceIds" must list 1-1000 instance ids/],
  ['1,001 ids', { instanceIds: ids(1001) }, /field "instanceIds" must list 1-1000 instance ids/],
  ['a duplicate id', { instanceIds: [ID, ID] }, new RegExp(`field "instanceIds" lists ${ID} more than once`)],
  ['an id in upper case', { instanceIds: ['i-0123456789ABCDEF0'] }, /field "instanceIds\[0\]" is not an EC2 instance id/],
  ['an id with a command after it', { instanceIds: [`${ID}; Remove-Item C:\\ -Recurse`] }, /field "instanceIds\[0\]" is not an EC2 instance id/],
  ['an id with a trailing newline', { instanceIds: [`${ID}\n`] }, /field "instanceIds\[0\]" is not an EC2 instance id/],
  ['a command substitution as id', { instanceIds: [ID, '$(whoami)'] }, /field "instanceIds\[1\]" is not an EC2 instance id/],
  ['a too short id', { instanceIds: ['i-1234567'] }, /field "instanceIds\[0\]" is not an EC2 instance id/],
  ['an 18-digit id', { instanceIds: [`${ID}1`] }, /field "instanceIds\[0\]" is not an EC2 instance id/],
  ['a managed (hybrid) node id', { instanceIds: ['mi-0123456789abcdef0'] }, /field "instanceIds\[0\]" is not an EC2 instance id/],
  ['null in the id list', { instanceIds: [null] }, /field "instanceIds\[0\]" must be a string/],
  ['a number in the id list', { instanceIds: [123] }, /field "instanceIds\[0\]" must be a string/],
  // Booleans and numbers.
  ['"true" as dryRun', { dryRun: 'true' }, /field "dryRun" must be true or false/],
  ['1 as dryRun', { dryRun: 1 }, /field "dryRun" must be true or false/],
  ['null as force', { force: null }, /field "force" must be true or false/],
  ['"false" as excludeBootVolume (a truthy string)', { excludeBootVolume: 'false' }, /field "excludeBootVolume" must be true or false/],
  ['0 attempts', { maxAttempts: 0 }, /field "maxAttempts" must be a whole number from 1 to 5/],
  ['6 attempts', { maxAttempts: 6 }, /field "maxAttempts" must be a whole number from 1 to 5/],
  ['2.5 attempts', { maxAttempts: 2.5 }, /field "maxAttempts" must be a whole number from 1 to 5/],
  ['"3" attempts', { maxAttempts: '3' }, /field "maxAttempts" must be a whole number from 1 to 5/],
  ['1e309 attempts (Infinity)', JSON.parse('{"maxAttempts": 1e309}'), /field "maxAttempts" must be a whole number from 1 to 5/],
  // Oversized and wrong-typed comments.
  ['a 300 KB comment', { Comment: 'x'.repeat(300_000) }, /field "Comment" must be at most 4096 characters/],
  ['a number as comment', { comment: 42 }, /field "comment" must be a string/],
];

describe('hostile execution inputs', () => {
  it('are at least 30', () => {
    expect(HOSTILE_INPUTS.length).toBeGreaterThanOrEqual(30);
  });

  it.each(HOSTILE_INPUTS)('%s: InvalidInputError naming the field, nothing sent, created or even asked', async (_what, input, cause) => {
    const { result, dump } = await runFleet(FLEET, { input });

    expect(result.status).toBe('FAILED');
    expect(result.error).toBe('InvalidInputError');
    expect(result.cause).toMatch(cause);
    if (/unknown field|JSON object/.test(cause.source)) expect(result.cause).toMatch(ALLOWED);
    expect(result.cause?.length).toBeLessThan(2_000);
    expect(dump.commands).toEqual([]);
    expect(dump.snapshots).toEqual([]);
    expect(dump.published).toEqual([]);
    expect(dump.objects).toEqual([]);
    expect(dump.apiCalls).toEqual({});
    expect(({} as Record<string, unknown>).force).toBeUndefined();
  });

  it('accepts the console\'s pre-filled Comment and a null input as the default run', async () => {
    for (const input of [{ Comment: 'Insert your JSON here' }, null]) {
      const { result, report } = await runFleet(FLEET, { input });
      expect(result.status).toBe('SUCCEEDED');
      expect(report?.selector).toEqual({ tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS' });
    }
  });
});

/** The stack's selector tag: its IAM lets the workflow send the snapshot document only to instances carrying it. */
const DEPLOYED = { ConsistentSnapshot: 'WindowsVSS' };

/** Tag values EC2 accepts (any character) that would be code if they ever reached a script. */
const SHELL_VALUES = [
  "'; Remove-Item C:\\ -Recurse #",
  '$(whoami)',
  '`whoami`',
  '{{x}}',
  '{{ssm:/prod/db-password}}',
  '%USERPROFILE%',
  '& calc.exe',
  '| Out-File C:\\pwned.txt',
  '"; exit 1; "',
  '${env:PATH}',
  '@(1,2); Stop-Computer',
  '<script>alert(1)</script>',
  'Ä 日本 ✓ \u202eevil',
  'db*',
  '?',
  'C:\\Windows\\',
];

describe('tag values with shell metacharacters', () => {
  it.each(SHELL_VALUES)('%s selects exactly its instances, which are snapshotted, and never reaches a command', async (value) => {
    // They also carry the deployed selector tag: the stack's IAM sends the snapshot document only to those.
    const fleet = {
      instances: [
        { instanceId: 'i-00000000000000001', name: value, tags: { ...DEPLOYED, Backup: value } },
        { instanceId: 'i-00000000000000002', tags: { ...DEPLOYED, Backup: value, Owner: value }, volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }] },
        { instanceId: 'i-00000000000000003', tags: { ...DEPLOYED, Backup: `${value} ` } },
        { instanceId: 'i-00000000000000004', tags: { ...DEPLOYED, Backup: value.replace(/[*?]/g, 'x') || 'x' } },
      ],
    };

    const { result, report, dump } = await runFleet(fleet, { input: { tagKey: 'Backup', tagValue: value } });

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.selector).toEqual({ tagKey: 'Backup', tagValue: value });
    const selected = value.replace(/[*?]/g, 'x') === value ? ['i-00000000000000001', 'i-00000000000000002', 'i-00000000000000004'] : ['i-00000000000000001', 'i-00000000000000002'];
    expect(report?.instances.map((i) => [i.instanceId, i.outcome])).toEqual(selected.map((id) => [id, 'succeeded']));
    expect(dump.snapshots.filter((s) => s.tags['vss-snapshots:run-id'] === report?.runId)).toHaveLength(selected.length + 1);
    expect(dump.commands.length).toBeGreaterThan(0);
    for (const command of dump.commands) {
      const sent = JSON.stringify(command.parameters) + (command.comment ?? '');
      expect(sent).not.toContain(value);
      expect(sent).not.toContain(JSON.stringify(value).slice(1, -1));
    }
    expect(doubleCommands(dump)).toEqual([]);
  });

  it('works as the selector key too, and as an instance name that the alert quotes as data', async () => {
    const value = "$(Remove-Item C:\\ -Recurse)'; #";
    const fleet = { instances: [{ instanceId: 'i-00000000000000001', name: value, tags: { [value]: value }, attempts: ['writer-failure'] }] };

    const { result, report, dump } = await runFleet(fleet, { input: { tagKey: value, tagValue: value } });

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.instances).toEqual([expect.objectContaining({ instanceId: 'i-00000000000000001', outcome: 'failed', name: value })]);
    expect(dump.published[0]?.message).toContain(`i-00000000000000001 (${value})`);
    for (const command of dump.commands) expect(JSON.stringify(command.parameters)).not.toContain('Remove-Item');
  });

  it.each(["'; Remove-Item C:\\ -Recurse #", '{{x}}'])('%s stays data with the DiskShadow method as well', async (value) => {
    const fleet = { instances: [{ instanceId: 'i-00000000000000001', tags: { ...DEPLOYED, Backup: value } }] };

    const { result, report, dump } = await runFleet(fleet, { input: { tagKey: 'Backup', tagValue: value }, env: { SNAPSHOT_METHOD: 'diskshadow' } });

    expect(result.status).toBe('SUCCEEDED');
    expect(report?.instances[0]?.outcome).toBe('succeeded');
    expect(dump.commands[0]?.documentName).not.toBe('AWSEC2-CreateVssSnapshot');
    for (const command of dump.commands) expect(JSON.stringify(command.parameters)).not.toContain(value);
  });
});

/** Fleet files are test fixtures, but the same care applies: a hostile value is an error naming its path. */
const HOSTILE_FLEETS: [string, unknown, RegExp][] = [
  ['an empty tag key', { instances: [{ tags: { '': 'x' } }] }, /instances\[0\]\.tags/],
  ['a 257-character tag value', { instances: [{ tags: { Backup: 'v'.repeat(257) } }] }, /instances\[0\]\.tags\.Backup/],
  ['a malformed instance id', { instances: [{ instanceId: 'i-XYZ; rm -rf /' }] }, /instances\[0\]\.instanceId/],
  ['a duplicate instance id', { instances: [{ instanceId: ID }, { instanceId: ID }] }, /instances\[1\]\.instanceId .* appears twice/],
  ['an unknown behaviour', { instances: [{ attempts: ['ok', 'rm -rf'] }] }, /instances\[0\]\.attempts\[1\]/],
  ['a device twice on an instance without an id', { instances: [{ volumes: [{ device: '/dev/sda1' }, { device: '/dev/sda1' }] }] }, /instances\[0\] has device \/dev\/sda1 twice/],
  ['a device name with a command', { instances: [{ volumes: [{ device: 'xvdf; format C:' }] }] }, /instances\[0\]\.volumes\[0\]\.device/],
  ['a fault rate above 0.5', { instances: [], faults: { rate: 0.9 } }, /faults\.rate/],
  ['an unknown fault kind', { instances: [], faults: { rate: 0.1, kinds: ['meteor'] } }, /faults\.kinds\[0\]/],
  ['__proto__ in an instance', { instances: [JSON.parse('{"__proto__": {"agent": "none"}}')] }, /instances\[0\].*__proto__|Unrecognized key/],
  ['instances as a string', { instances: 'all of them' }, /instances/],
];

describe('hostile fleet files', () => {
  it.each(HOSTILE_FLEETS)('%s is a FleetError naming the path', (_what, fleet, message) => {
    expect(() => parseFleet(fleet, 'fleet.json')).toThrow(FleetError);
    expect(() => parseFleet(fleet, 'fleet.json')).toThrow(message);
  });
});

describe('the CLI with bad input', () => {
  const cli = (args: string[]) =>
    promisify(execFile)(process.execPath, ['bin/vss-snapshots.mjs', 'run', '--quiet', ...args], { cwd: new URL('..', import.meta.url).pathname }).then(
      (out) => ({ code: 0, stderr: out.stderr, stdout: out.stdout }),
      (error: { code?: number; stderr?: string; stdout?: string }) => ({ code: error.code ?? -1, stderr: error.stderr ?? '', stdout: error.stdout ?? '' }),
    );

  it('exits 2 with a message naming the field, and runs nothing', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'vss-bad-'));
    const badFleet = join(dir, 'fleet.json');
    writeFileSync(badFleet, JSON.stringify({ instances: [{ tags: { Backup: 'v'.repeat(257) } }] }));
    const cases: [string[], RegExp][] = [
      [['--input', '{"__proto__": {"force": true}}'], /unknown field "__proto__"/],
      [['--input', '{"tagValue": "a\\u0000b", "maxAttempts": 9}'], /field "tagValue" must not contain control characters; field "maxAttempts"/],
      [['--input', '["i-0123456789abcdef0"]'], /must be a JSON object/],
      [['--fleet', badFleet], /instances\[0\]\.tags\.Backup/],
    ];

    const results = await Promise.all(cases.map(([args]) => cli(args)));

    results.forEach((r, i) => {
      expect(r.code, cases[i]?.[0].join(' ')).toBe(2);
      expect(r.stderr).toMatch(cases[i]?.[1] as RegExp);
      expect(r.stdout).not.toMatch(/succeeded|Snapshot run/);
    });
  }, 60_000);
});
