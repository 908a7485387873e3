/**
 * The CLI as an operator meets it (issue "The operator's tools"): each "Why" of that issue through the real
 * binary — conventions (--help per command, --version, suggestions), paths checked before anything runs,
 * "file not found", restore refusals, progress a person can follow, alerts that cannot be misread.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = new URL('../bin/vss-snapshots.mjs', import.meta.url).pathname;
const ROOT = new URL('..', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'vss-operator-'));

interface Result {
  status: number;
  stdout: string;
  stderr: string;
}
/** Runs the binary (not a TTY: stdout and stderr are pipes). */
const cli = (...args: string[]): Promise<Result> =>
  new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ status: error ? ((error as { code?: number }).code ?? -1) : 0, stdout, stderr });
    });
  });

describe.concurrent('conventions', () => {
  it.each([['run'], ['restore'], ['bench'], ['report'], ['start'], ['status'], ['retry-failed']])('%s --help prints that command\'s usage and the exit codes, exit 0', async (command) => {
    const out = await cli(command, '--help');

    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(new RegExp(`^Usage: vss-snapshots ${command} `));
    expect(out.stdout).toMatch(/Exit codes \(every command\):\n {2}0 {2}done/);
    expect(out.stderr).toBe('');
  });

  it('-h is --help, and `help run` prints the same', async () => {
    const [short, long, help] = await Promise.all([cli('run', '-h'), cli('run', '--help'), cli('help', 'run')]);

    expect(short.stdout).toBe(long.stdout);
    expect(help.stdout).toBe(long.stdout);
    expect(help.status).toBe(0);
  });

  it('--version prints the package version', async () => {
    const out = await cli('--version');

    expect(out.status).toBe(0);
    expect(out.stdout.trim()).toBe(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).version);
  });

  it('suggests the option or command that was meant, without the whole usage, exit 2', async () => {
    const [option, command] = await Promise.all([cli('run', '--fleat', 'examples/fleets/ok.json'), cli('retry-faild')]);

    expect(option.status).toBe(2);
    expect(option.stderr).toMatch(/unknown option '--fleat'\n\(Did you mean --fleet\?\)/);
    expect(option.stderr).not.toMatch(/Usage:/);
    expect(command.status).toBe(2);
    expect(command.stderr).toMatch(/\(Did you mean retry-failed\?\)/);
  });
});

describe.concurrent('paths are checked before anything runs', () => {
  it.each([
    ['--dump-world', '/nonexistent/w.json'],
    ['--report', '/nonexistent/r.json'],
  ])('%s into a missing folder: exit 2, nothing run, nothing published', async (flag, path) => {
    const out = await cli('run', '--fleet', 'examples/fleets/mixed.json', flag, path);

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(new RegExp(`${flag}: folder not found: /nonexistent`));
    expect(out.stderr).not.toMatch(/Prepare Run|Alert|at .*\.ts:/);
    expect(out.stdout).toBe('');
  });

  it('an --input path that does not exist says "file not found", not "not valid JSON"', async () => {
    const out = await cli('run', '--input', '/tmp/nope-vss-input.json');

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/--input: file not found: \/tmp\/nope-vss-input\.json/);
    expect(out.stderr).not.toMatch(/not valid JSON|Prepare Run/);
  });

  it('a --dump-world that is a folder is refused before the run', async () => {
    const out = await cli('run', '--dump-world', dir);

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(/--dump-world: .* is a folder; give a file name/);
  });
});

describe.concurrent('restore', () => {
  const fleet = join(dir, 'cc-fleet.json');
  writeFileSync(
    fleet,
    JSON.stringify({ instances: [{ instanceId: 'i-0c0000000000000c1', name: 'cc-01', attempts: ['crash-consistent'] }, { instanceId: 'i-0c0000000000000c2', name: 'target-01' }] }),
  );

  it('a refused restore says "refused, nothing created" (no cleanup, no "done") and exits 2 like any other refusal', async () => {
    const [refused, badDevice] = await Promise.all([
      cli('restore', '--fleet', fleet, '--source', 'i-0c0000000000000c1', '--target', 'i-0c0000000000000c2'),
      cli('restore', '--source', 'i-0a1b2c3d4e5f60001', '--target', 'i-0a1b2c3d4e5f60005', '--devices', 'xvdz'),
    ]);

    for (const out of [refused, badDevice]) {
      expect(out.status, out.stderr).toBe(2);
      expect(out.stderr).toMatch(/Plan Restore: refused, nothing created/);
      expect(out.stderr).not.toMatch(/cleaning up|Plan Restore: done/);
      expect(out.stderr).toMatch(/vss-snapshots: restore refused, nothing created: /);
    }
  });

  it.each([
    [['--source', 'i-0a1b2c3d4e5f6000x'], /--source is not an EC2 instance id/],
    [['--source', 'i-0a1b2c3d4e5f60009'], /--source: instance i-0a1b2c3d4e5f60009 is not in the built-in demo fleet/],
    [['--source', 'i-0a1b2c3d4e5f60001', '--run', 'yesterday'], /--run is not a vss-snapshots run id/],
  ])('a bad %j is noticed before the simulated night', async (args, message) => {
    const out = await cli('restore', '--target', 'i-0a1b2c3d4e5f60005', ...args);

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(message);
    expect(out.stderr).not.toMatch(/nightly run/);
  });
});

describe('progress and alerts', () => {
  it('name the instance that failed and why as it happens, count attempts as "attempt N of M", and never say "wave" or "1 commands"', async () => {
    const fleet = join(dir, 'one.json');
    writeFileSync(fleet, JSON.stringify({ instances: [{ instanceId: 'i-0d00000000000000a', name: 'sql-01', attempts: ['vss-timeout'] }] }));
    const out = await cli('run', '--fleet', fleet);

    expect(out.status).toBe(3);
    // State names are the definition's (they change with it); what is said about them is pinned here.
    expect(out.stderr).toMatch(/\] [A-Z][A-Za-z ]+ \(attempt 1 of 3\): 1 waiting to retry\n {2}i-0d00000000000000a \(sql-01\): attempt 1 of 3 failed, will retry: The VSS freeze timed out\./);
    expect(out.stderr).toMatch(/\] [A-Z][A-Za-z ]+ \(attempt 1 of 3\): 1 command running\n/);
    expect(out.stderr).toMatch(/ {2}i-0d00000000000000a \(sql-01\): FAILED after attempt 3 of 3: The VSS freeze timed out\./);
    expect(out.stderr).toMatch(/\] Wait [A-Za-z ]+: 10 min\n/);
    expect(out.stderr).not.toMatch(/wave|1 commands|\(s\)/);
    expect(out.stderr).not.toMatch(/\r|\x1b\[/); // no terminal counter when stderr is not a TTY
  });

  it('a crash-consistent failure never reads like a backup exists, and the alert carries the paste-ready retry input', async () => {
    const fleet = join(dir, 'cc.json');
    writeFileSync(fleet, JSON.stringify({ instances: [{ instanceId: 'i-0e00000000000000c', name: 'cc-01', volumes: [{ device: '/dev/sda1' }, { device: 'xvdf' }], attempts: ['crash-consistent'] }] }));
    const out = await cli('run', '--fleet', fleet, '--json', '--quiet');

    expect(out.status).toBe(3);
    const report = JSON.parse(out.stdout) as { alert: { subject: string; message: string } };
    const { subject, message } = report.alert;
    expect(subject).toMatch(/^vss-snapshots: 1 of 1 instances without a usable snapshot/);
    expect(message).not.toMatch(/; [0-9]+ snapshots\./);
    // What the failed attempts left is named as a crash-consistent fallback (when the workflow keeps it) or as unusable.
    expect(message).toMatch(/^Snapshots: 0 usable snapshots \(verified, application-consistent\); (2 unusable snapshots of failed attempts \(not a backup\)|1 failed instance keeps a crash-consistent fallback set \(2 snapshots, NOT application-consistent\))\.$/m);
    expect(message).not.toMatch(/listing them/);
    const input = /^(\{"tagKey".*\})$/m.exec(message)?.[1] ?? '';
    expect(JSON.parse(input)).toEqual({ tagKey: 'ConsistentSnapshot', tagValue: 'WindowsVSS', instanceIds: ['i-0e00000000000000c'] });
    expect(message).toMatch(/vss-snapshots retry-failed [0-9T]+Z-[0-9a-f]{8} --follow/);
  });
});
