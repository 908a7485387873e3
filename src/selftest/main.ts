/**
 * `npx tsx src/selftest/main.ts --instance ...`: the self-test without the CLI around it (the same
 * `selftestCommand` the CLI's `vss-snapshots selftest` runs).
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { selftestCommand } from './index.ts';

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  process.exitCode = await selftestCommand(process.argv.slice(2));
}
