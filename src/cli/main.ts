/**
 * `vss-snapshots`: the command line. `run` executes one nightly cycle of the real workflow against a
 * simulated AWS account; `restore` restores a run's snapshots with the restore workflow there; `bench`
 * measures a run at scale. Exit codes follow contract §2.
 */
import { benchCommand } from './bench-command.ts';
import { restoreCommand } from './restore-command.ts';
import { runCommand } from './run-command.ts';

export const EXIT = { ok: 0, failed: 1, usage: 2, alert: 3 } as const;

const USAGE = `Usage: vss-snapshots <command> [options]

Commands:
  run     run one nightly snapshot cycle against a simulated AWS account
          [--fleet FILE] [--input JSON|FILE] [--method aws-vss|diskshadow] [--json]
          [--report FILE] [--dump-world FILE] [--quiet]
  restore restore one run's snapshots of an instance to another: a nightly cycle in the simulated
          account first, then the restore state machine (create volumes in the target's AZ, attach
          them at free devices, revert DiskShadow snapshots); exit 0 restored, 1 failed, 2 bad input
          --source ID --target ID [--run ID|latest] [--devices xvdf,xvdg] [--keep-on-failure]
          [--fleet FILE] [--method aws-vss|diskshadow] [--json] [--dump-world FILE] [--quiet]
  bench   measure one run at scale: API calls against their floor, state transitions,
          payload sizes, Lambda GB-s, simulated/wall time and cost (docs/performance.md)
          --instances N[,N...] [--volumes V] [--fail-rate R] [--json] [--markdown]
          [--command-seconds S] [--snapshot-minutes M] [--ssm-rate R] [--no-pressure] [--quiet]
  help    show this text

Exit codes: 0 no alert needed · 3 alert (an instance failed or nothing matched) · 2 bad input · 1 run failed`;

export class UsageError extends Error {
  override name = 'UsageError';
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest);
      case 'bench':
        return await benchCommand(rest);
      case 'restore':
        return await restoreCommand(rest);
      case undefined:
        // No command is a usage error: the usage goes where errors go.
        process.stderr.write(`${USAGE}\n`);
        return EXIT.usage;
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return EXIT.ok;
      default:
        throw new UsageError(`Unknown command "${command}".`);
    }
  } catch (error) {
    if (error instanceof UsageError || (error instanceof Error && (error.name === 'FleetError' || error.name === 'InvalidInputError'))) {
      process.stderr.write(`vss-snapshots: ${error.message}\n`);
      if (error instanceof UsageError) process.stderr.write(`\n${USAGE}\n`);
      return EXIT.usage;
    }
    process.stderr.write(`vss-snapshots: the run failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return EXIT.failed;
  }
}
