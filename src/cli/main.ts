/**
 * `vss-snapshots`: the command line. Local commands run the real workflow against a simulated AWS account
 * (`run`, `simulate`, `restore`, `bench`); the others work on a deployed stack with the user's AWS credentials (`start`,
 * `status`, `retry-failed`) or on any run report (`report`). Arguments are parsed by commander, which gives
 * every command `--help`/`-h`, the program `--version`, and a suggestion for a mistyped option or command.
 * Each command's code is imported only when it runs, so `--help` stays fast.
 */
import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { EXIT, EXIT_CODE_TABLE, CommandFailedError, UsageError } from './exit-codes.ts';
import type { ExitCode } from './exit-codes.ts';
import { decimal, wholeNumber } from './options.ts';
import { parseDrRegionOption } from './dr-option.ts';
import { parseArchiveAfterOption, parseRetainOption } from './retain-option.ts';

/** The longest simulation (src/local/fleet.ts MAX_NIGHTS; not imported, so --help does not load the simulator). */
const MAX_NIGHTS = 400;

const METHODS = ['aws-vss', 'diskshadow'];

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** `--profile`, `--region`, `--stage`: which deployed stack, with which credentials. */
function withStackOptions(command: Command): Command {
  return command
    .option('--profile <name>', 'AWS profile of the shared config/credentials files (default: the SDK default chain: environment, AWS_PROFILE, SSO, instance role)')
    .option('--region <region>', 'Region of the stack (default: AWS_REGION, the profile\'s region, else us-east-1 as osls)')
    .option('--stage <stage>', 'stage the stack was deployed with (osls --stage); the stack is vss-snapshots-<stage>', 'dev');
}

function withFollowOptions(command: Command): Command {
  return command
    .option('--follow', 'watch the execution to its end with the same progress lines as a local run; exit code of the run')
    .addOption(new Option('--interval <seconds>', 'seconds between two looks at the execution while following').default(10).argParser(decimal(0.05, 3600, 'a number of seconds')));
}

export function buildProgram(setExit: (code: ExitCode) => void): Command {
  const program = new Command('vss-snapshots');
  program
    .description('Application-consistent nightly EBS snapshots of tagged Windows servers on EC2: run the workflow locally against a simulated AWS account, or operate the deployed stack.')
    .version(version(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'print this usage')
    .helpCommand('help [command]', 'print the usage of a command')
    .showSuggestionAfterError(true)
    .showHelpAfterError('(add --help for usage)')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => process.stdout.write(text),
      writeErr: (text) => process.stderr.write(text),
      outputError: (text, write) => write(`vss-snapshots: ${text.replace(/^error: /, '')}`),
    })
    .addHelpText('after', `\n${EXIT_CODE_TABLE}\n`);

  const sub = (name: string, summary: string, description: string) =>
    program.command(name).summary(summary).description(description).addHelpText('after', `\n${EXIT_CODE_TABLE}\n`);

  sub('run', 'one nightly cycle of the real workflow against a simulated AWS account', 'Runs the real state machine definition with the real Lambda handlers once, against a simulated AWS account that holds the fleet of --fleet (JSON or YAML, docs/fleet-file.md; default: the built-in demo fleet). Progress goes to stderr, the summary (or with --json the run report, docs/report.md) to stdout.')
    .option('--fleet <file>', 'fleet file (JSON or YAML) describing the simulated instances')
    .option('--input <json|file>', 'execution input as JSON text or the path of a JSON file, e.g. \'{"dryRun": true}\'')
    .addOption(new Option('--method <method>', 'snapshot method').choices(METHODS))
    .option('--json', 'print only the run report JSON on stdout')
    .option('--report <file>', 'also write the run report to this file')
    .option('--dump-world <file>', 'write the simulated account\'s final state to this file')
    .option('--quiet', 'no progress lines')
    .addOption(new Option('--retain <rules>', 'retention defaults of this run, as the vss-snapshots:retain tag: count=N, days=N or count=N,days=M; a rule left out is off (default count=7,days=14)').argParser(parseRetainOption))
    .addOption(new Option('--dr-region <region>', 'copy every verified set into this Region of the simulated account (DR copies, README "DR copies"), e.g. us-west-2').argParser(parseDrRegionOption))
    .addOption(new Option('--archive-after <days>', 'archive tier of this run: sets at least DAYS old that the days rule keeps 90 more days go to the EBS archive tier (default 0: never)').argParser(parseArchiveAfterOption))
    .action(async (opts) => {
      const { runCommand } = await import('./run-command.ts');
      setExit(await runCommand(opts));
    });

  sub('simulate', 'many nightly cycles, 24 h apart, in one simulated AWS account', 'Runs the real workflow once per night for --nights nights, 24 hours apart on the virtual clock, in one simulated AWS account holding the fleet of --fleet (default: the built-in demo fleet), with the fleet file\'s history, per-night behaviours (nights) and terminations (terminatedOnNight). Prints one line per night (outcome, this stack\'s snapshots, snapshots deleted that night, everyone else\'s snapshots) and a chart of this stack\'s snapshots over the nights; with --json one object with a "nights" array (README "Multi-night simulation"). Exit 0 every night clean, 3 a night needed attention, 1 a night\'s workflow failed.')
    .requiredOption('--nights <n>', `how many nights (1-${MAX_NIGHTS})`, wholeNumber(1, MAX_NIGHTS))
    .option('--fleet <file>', 'fleet file (JSON or YAML) describing the simulated instances, their history and nights')
    .option('--input <json|file>', 'execution input of every night as JSON text or the path of a JSON file')
    .addOption(new Option('--retain <policy>', 'retention defaults of the simulated stack, as the vss-snapshots:retain tag: count=N, days=N or count=N,days=M; a rule left out is off (default count=7,days=14)').argParser(parseRetainOption))
    .addOption(new Option('--dr-region <region>', 'copy every verified set into this Region of the simulated account each night and keep copies there by the DR rule, e.g. us-west-2').argParser(parseDrRegionOption))
    .addOption(new Option('--archive-after <days>', 'archive tier of the simulated stack: sets at least DAYS old that the days rule keeps 90 more days go to the EBS archive tier; adds the columns archived and in-archive (default 0: never)').argParser(parseArchiveAfterOption))
    .option('--json', 'print one JSON object with every night on stdout (night lines go to stderr)')
    .option('--dump-world <file>', 'write the simulated account\'s final state to this file')
    .option('--quiet', 'no progress or notes on stderr')
    .action(async (opts) => {
      const { simulateCommand } = await import('./simulate-command.ts');
      setExit(await simulateCommand(opts));
    });

  sub('restore', 'restore one run\'s snapshots of an instance, in a simulated account', 'A nightly cycle in the simulated account first (quietly), then the restore state machine: create volumes in the target\'s AZ, attach them at free devices, revert DiskShadow snapshots. Exit 0 restored, 1 failed (after cleaning up), 2 bad input or refused (nothing created).')
    .requiredOption('--source <id>', 'instance whose snapshots are restored')
    .requiredOption('--target <id>', 'instance the restored volumes are attached to')
    .option('--run <id|latest>', 'run whose snapshots are restored', 'latest')
    .option('--devices <list>', 'only these source devices, e.g. xvdf,xvdg')
    .option('--keep-on-failure', 'keep the created volumes when the restore fails (to investigate)')
    .option('--fleet <file>', 'fleet file (JSON or YAML)')
    .addOption(new Option('--method <method>', 'snapshot method of the nightly cycle').choices(METHODS))
    .option('--json', 'print the restore report JSON on stdout')
    .option('--dump-world <file>', 'write the simulated account\'s final state to this file')
    .option('--quiet', 'no progress lines')
    .addOption(new Option('--dr-region <region>', 'restore in this Region from the DR copies there: the nightly cycle copies every verified set into it, and --target must live there (fleet file "region"), e.g. us-west-2').argParser(parseDrRegionOption))
    .action(async (opts) => {
      const { restoreCommand } = await import('./restore-command.ts');
      setExit(await restoreCommand(opts));
    });

  sub('bench', 'measure one run at scale (API calls, transitions, cost)', 'Runs the real workflow on N simulated instances with AWS\'s EC2 rate limits on and measures API calls against their floor, state transitions, payload sizes, Lambda GB-s, simulated and wall time, and cost (docs/performance.md).')
    .requiredOption('--instances <n[,n...]>', 'fleet size(s), e.g. 10,100,1000,10000')
    .addOption(new Option('--volumes <n>', 'volumes per instance').argParser(wholeNumber(1, 22)))
    .addOption(new Option('--fail-rate <r>', 'share of instances that fail every attempt').argParser(decimal(0, 1)))
    .addOption(new Option('--hang-rate <r>', 'share of instances whose command hangs on every attempt (until its deadline)').argParser(decimal(0, 1)))
    .addOption(new Option('--command-seconds <s>', 'seconds a snapshot command runs').argParser(wholeNumber(0, 172_800)))
    .addOption(new Option('--snapshot-minutes <m>', 'minutes a snapshot stays pending').argParser(wholeNumber(0, 10_000)))
    .addOption(new Option('--ssm-rate <r>', 'SSM API calls per second the account allows').argParser(decimal(Number.MIN_VALUE, 1e6, 'a positive number')))
    .addOption(new Option('--dr-region <region>', 'with DR copies into this Region of the simulated account: measures the DR pass too (copies, time until every set is protected)').argParser(parseDrRegionOption))
    .addOption(new Option('--dr-concurrency <n>', 'DR copies in flight at most (DR_COPY_CONCURRENCY; AWS\'s quota is 20 per destination Region; above 20 the simulated account is given that quota, as after a quota increase)').argParser(wholeNumber(1, 1000)))
    .option('--dr-steady', 'every volume already has an earlier copy in the DR Region: the night\'s copies are incremental (the steady state)')
    .option('--no-pressure', 'without the EC2 rate limits')
    .option('--json', 'print the results as JSON')
    .option('--markdown', 'print a markdown table')
    .option('--chart <file>', 'write the scaling curve as SVG (per-instance figures against fleet size; two sizes or more)')
    .option('--quiet', 'no progress lines')
    .action(async (opts) => {
      const { benchCommand } = await import('./bench-command.ts');
      setExit(await benchCommand(opts));
    });

  withStackOptions(
    sub('report', 'the human summary of a run report', 'Prints the summary of a run report: a FILE, an s3://bucket/key, or from the deployed stack\'s report bucket the latest run or the run RUNID. Exit 3 when the run needs an alert (an instance failed or nothing matched), else 0.')
      .argument('[source]', 'FILE | s3://bucket/key | latest | RUNID', 'latest')
      .option('--failed', 'only the failed instances, with the input that retries them')
      .option('--json', 'print the report JSON (with --failed: only the failed instances)'),
  ).action(async (source: string, opts) => {
    const { reportCommand } = await import('./report-command.ts');
    setExit(await reportCommand(source, opts));
  });

  withFollowOptions(
    withStackOptions(
      sub('start', 'start a run of the deployed stack', 'Starts an execution of the deployed nightly state machine (found through the stack\'s outputs) with the execution input of --input, checked here first.')
        .option('--input <json|file>', 'execution input as JSON text or the path of a JSON file (default {})'),
    ),
  ).action(async (opts) => {
    const { startCommand } = await import('./stack-commands.ts');
    setExit(await startCommand(opts));
  });

  withStackOptions(
    sub('status', 'running and recent runs of the deployed stack', 'Lists the running and the most recent executions of the deployed nightly state machine with their outcome.')
      .addOption(new Option('--limit <n>', 'how many recent executions').default(10).argParser(wholeNumber(1, 1000)))
      .option('--json', 'print the list as JSON'),
  ).action(async (opts) => {
    const { statusCommand } = await import('./stack-commands.ts');
    setExit(await statusCommand(opts));
  });

  withFollowOptions(
    withStackOptions(
      sub('retry-failed', 'start a run for the failed instances of a report', 'Reads a run report (latest, RUNID, FILE or s3://bucket/key) and starts a run of the deployed stack for its failed instances only (at most 1,000 ids per run; more run one after another and need --follow).')
        .argument('[source]', 'latest | RUNID | FILE | s3://bucket/key', 'latest')
        .option('--force', 'start even though another run is in progress'),
    ),
  ).action(async (source: string, opts) => {
    const { retryFailedCommand } = await import('./stack-commands.ts');
    setExit(await retryFailedCommand(source, opts));
  });

  // The self-test parses its own arguments (src/selftest/args.ts) and prints its own usage.
  program
    .command('selftest')
    .summary('prove the Windows side on one real instance of a deployed stack (docs/windows-acceptance.md)')
    .description('Snapshots a throwaway instance with each method, restores through the stack, reverts, compares, cleans up; one PASS/FAIL line per check. `vss-snapshots selftest --help` for its options.')
    .helpOption(false)
    .allowUnknownOption(true)
    .allowExcessArguments(true)
    .argument('[options...]')
    .action(async (_options: string[], _opts: unknown, command: Command) => {
      const { selftestCommand } = await import('../selftest/index.ts');
      setExit((await selftestCommand(command.args)) as ExitCode);
    });

  return program;
}

/** Runs the command line `argv` (without node and the script) and returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  let code: ExitCode = EXIT.ok;
  const program = buildProgram((c) => {
    code = c;
  });
  try {
    if (argv.length === 0) {
      // No command is a usage error: the usage goes where errors go.
      program.outputHelp({ error: true });
      return EXIT.usage;
    }
    await program.parseAsync(argv, { from: 'user' });
    return code;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (error instanceof UsageError || (error instanceof Error && (error.name === 'FleetError' || error.name === 'InvalidInputError'))) {
      process.stderr.write(`vss-snapshots: ${error.message}\n`);
      return EXIT.usage;
    }
    if (error instanceof CommandFailedError) {
      process.stderr.write(`vss-snapshots: ${error.message}\n`);
      return EXIT.failed;
    }
    process.stderr.write(`vss-snapshots: failed unexpectedly: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT.failed;
  }
}
