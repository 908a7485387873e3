/** The CLI as a user runs it: exit codes and outputs of contract §2. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const BIN = new URL('../bin/vss-snapshots.mjs', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'vss-cli-'));
const cli = (...args: string[]) => spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', timeout: 60_000 });

describe('vss-snapshots', () => {
  it('without a command prints the usage to stderr and exits 2; help prints it to stdout and exits 0', () => {
    const none = cli();
    const help = cli('help');

    expect(none.status).toBe(2);
    expect(none.stdout).toBe('');
    expect(none.stderr).toMatch(/^Usage: vss-snapshots/);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^Usage: vss-snapshots/);
  });
});

describe('vss-snapshots run', () => {
  it('runs the demo fleet, prints a readable summary and exits 0', () => {
    const out = cli('run');

    expect(out.status).toBe(0);
    expect(out.stdout).toMatch(/INSTANCE\s+NAME\s+OUTCOME/);
    expect(out.stdout).toMatch(/5 succeeded, 0 failed, 2 skipped of 7 matched/);
    expect(out.stdout).toMatch(/fileserver-01\s+succeeded\s+2/);
    expect(out.stdout).toMatch(/Retention \(apply, count=7 days=14\): deleted 0, kept 10, held 0, in use by AMIs 0, deferred 0 snapshot\(s\)/);
    expect(out.stderr).toMatch(/waiting to retry/);
    expect(out.stderr).toMatch(/fileserver-01\): attempt 1 of 3 failed, will retry/);
    expect(out.stderr).not.toMatch(/NodeVersionSupportWarning/);
  });

  it('copies into the DR Region with --dr-region, and refuses a Region it cannot use before anything runs', () => {
    const ok = cli('run', '--quiet', '--json', '--dr-region', 'us-west-2');
    expect(ok.status, ok.stderr).toBe(0);
    const report = JSON.parse(ok.stdout) as { summary: { succeeded: number }; copies?: { region: string; protected: number; inProgress: number; complete: boolean } };
    expect(report.copies).toMatchObject({ region: 'us-west-2', complete: true });
    // The demo fleet's largest volume takes longer than the pass: what is left is in progress, carried to the next night.
    expect((report.copies?.protected ?? 0) + (report.copies?.inProgress ?? 0)).toBe(report.summary.succeeded);
    for (const [value, message] of [
      ['us-east-1', /us-east-1 is the simulated stack's own Region/],
      ['west', /"west" is not a Region code/],
    ] as const) {
      const bad = cli('run', '--quiet', '--dr-region', value);
      expect(bad.status).toBe(2);
      expect(bad.stderr).toMatch(message);
    }
  });

  it('takes the retention defaults from --retain, and refuses one it cannot read before anything runs', () => {
    const ok = cli('run', '--quiet', '--json', '--retain', 'count=2,days=0');
    expect(ok.status).toBe(0);
    expect(JSON.parse(ok.stdout).retention).toMatchObject({ mode: 'apply', policy: { count: 2, days: 0 } });
    const bad = cli('run', '--quiet', '--retain', 'count=2;days=1');
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr).toMatch(/--retain.*"count=2;days=1": expected count=N, days=N or count=N,days=M/);
  });

  it('exits 3 for a failing fleet, with the alert in the JSON report and in the world dump', () => {
    const world = join(dir, 'w.json');
    const out = cli('run', '--fleet', 'examples/fleets/writer-failure.json', '--json', '--dump-world', world);

    expect(out.status).toBe(3);
    const report = JSON.parse(out.stdout);
    const dump = JSON.parse(readFileSync(world, 'utf8'));
    const id = report.instances[0].instanceId;
    expect(report.instances[0].outcome).toBe('failed');
    expect(report.alert.message).toContain(id);
    expect(dump.published).toHaveLength(1);
    expect(dump.published[0].message).toContain(id);
    expect(dump.apiCalls['ssm:SendCommand']).toBe(1);
  });

  it('counts only the snapshots of succeeded instances as verified in the summary', () => {
    const fleet = join(dir, 'cc.json');
    writeFileSync(fleet, JSON.stringify({ instances: [{ name: 'good' }, { name: 'cc', attempts: ['crash-consistent'] }] }));
    const out = cli('run', '--fleet', fleet, '--quiet');

    expect(out.status).toBe(3);
    expect(out.stdout).toMatch(/1 succeeded, 1 failed, 0 skipped of 2 matched; 1 usable snapshot \(verified, application-consistent\); (1 unusable snapshot of failed attempts \(not a backup\)|1 failed instance keeps a crash-consistent fallback set \(1 snapshot, NOT application-consistent\))/);
  });

  it('writes the report to --report and accepts a YAML fleet', () => {
    const fleet = join(dir, 'fleet.yaml');
    writeFileSync(fleet, 'instances:\n  - name: yaml-01\n    volumes:\n      - device: /dev/sda1\n');
    const report = join(dir, 'r.json');
    const out = cli('run', '--fleet', fleet, '--report', report, '--quiet');

    expect(out.status).toBe(0);
    expect(JSON.parse(readFileSync(report, 'utf8')).instances[0]).toMatchObject({ name: 'yaml-01', outcome: 'succeeded' });
  });

  it('exits 3 in a dry run that matches nothing, publishing nothing', () => {
    const fleet = join(dir, 'empty.json');
    writeFileSync(fleet, JSON.stringify({ instances: [] }));
    const out = cli('run', '--fleet', fleet, '--input', '{"dryRun": true}', '--json');

    expect(out.status).toBe(3);
    expect(JSON.parse(out.stdout)).toMatchObject({ dryRun: true, alert: null, summary: { targeted: 0 } });
  });

  it('reads --input from a file when the value is a path rather than JSON', () => {
    const input = join(dir, 'input.json');
    writeFileSync(input, '{"dryRun": true}');
    const out = cli('run', '--input', input, '--json');

    expect(out.status).toBe(0);
    expect(JSON.parse(out.stdout)).toMatchObject({ dryRun: true, alert: null });
  });

  it('says the input was rejected, not accepted or alerted, when Prepare Run refuses it', () => {
    const out = cli('run', '--input', '{"maxAttempts": 9}', '--json');

    expect(out.status).toBe(2);
    expect(out.stdout).toBe('');
    expect(out.stderr).toMatch(/Prepare Run: input rejected, nothing sent/);
    expect(out.stderr).not.toMatch(/input accepted|alerting/);
  });

  it.each([
    [['run', '--input', '{"instanceID": []}'], /unknown field "instanceID"/],
    [['run', '--input', join(dir, 'missing-input.json')], /--input: file not found: .*missing-input\.json/],
    [['run', '--input', '{"dryRun": tru}'], /--input is not valid JSON/],
    [['run', '--fleet', '/nonexistent.json'], /--fleet: file not found: \/nonexistent\.json/],
    [['run', '--fleet', 'package.json'], /not a valid fleet file/],
    [['run', '--method', 'vss'], /argument 'vss' is invalid\. Allowed choices are aws-vss, diskshadow/],
    [['run', '--bogus'], /unknown option '--bogus'/],
    [['frobnicate'], /unknown command 'frobnicate'/],
  ])('exits 2 with a clear message for %j', (args, message) => {
    const out = cli(...args);

    expect(out.status).toBe(2);
    expect(out.stderr).toMatch(message);
  });
});
