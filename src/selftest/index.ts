/**
 * `vss-snapshots selftest`: proves the Windows side on a real instance of a deployed stack
 * (docs/windows-acceptance.md). The CLI wires `selftestCommand` in; this module owns everything else.
 */
import { EC2Client } from '@aws-sdk/client-ec2';
import { SFNClient } from '@aws-sdk/client-sfn';
import { SSMClient } from '@aws-sdk/client-ssm';
import { InvalidInputError } from '../lib/errors.ts';
import { parseSelfTestArgs, SELFTEST_USAGE } from './args.ts';
import type { SelfTestOptions } from './args.ts';
import { runSelfTest } from './run.ts';
import type { SelfTestDeps } from './run.ts';

export { SELFTEST_USAGE } from './args.ts';

/** The AWS clients for the caller's credentials (AWS_PROFILE/--profile, the default chain otherwise). */
export function selfTestClients(options: SelfTestOptions): Pick<SelfTestDeps, 'ec2' | 'ssm' | 'sfn'> {
  if (options.profile) process.env.AWS_PROFILE = options.profile;
  const config = { region: options.region, maxAttempts: 5, retryMode: 'adaptive' as const };
  return { ec2: new EC2Client(config), ssm: new SSMClient(config), sfn: new SFNClient(config) };
}

/**
 * Runs the self-test. Exit code 0 when every check passed, 1 when one failed (or AWS refused a call),
 * 2 for bad arguments (nothing sent). `deps` replaces the AWS clients, the clock and the output in tests.
 */
export async function selftestCommand(args: string[], deps: Partial<SelfTestDeps> = {}): Promise<number> {
  const print = deps.print ?? ((line: string) => process.stdout.write(`${line}\n`));
  const printError = deps.printError ?? ((line: string) => process.stderr.write(`${line}\n`));
  if (args.includes('--help') || args.includes('-h')) {
    print(SELFTEST_USAGE);
    return 0;
  }
  let options: SelfTestOptions;
  try {
    options = parseSelfTestArgs(args);
  } catch (error) {
    if (error instanceof InvalidInputError) {
      printError(`vss-snapshots selftest: ${error.message}`);
      printError(SELFTEST_USAGE);
      return 2;
    }
    throw error;
  }
  const clients = deps.ec2 && deps.ssm && deps.sfn ? { ec2: deps.ec2, ssm: deps.ssm, sfn: deps.sfn } : selfTestClients(options);
  try {
    const checks = await runSelfTest(
      { ...clients, sleep: deps.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms))), print, now: deps.now },
      options,
    );
    const failed = checks.filter((c) => !c.ok);
    print(`${failed.length === 0 && checks.length > 0 ? 'PASS' : 'FAIL'}  self-test: ${checks.length - failed.length} of ${checks.length} checks passed.`);
    return failed.length === 0 && checks.length > 0 ? 0 : 1;
  } catch (error) {
    const e = error as Error;
    print(`FAIL  self-test stopped: ${e.name}: ${e.message}`);
    print('      What the test created so far is tagged with its run ids (vss-snapshots:run-id, vss-snapshots:restore-id); see docs/windows-acceptance.md, "Cleaning up by hand".');
    return 1;
  }
}
