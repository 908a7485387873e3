#!/usr/bin/env node
// Entry point of the `vss-snapshots` CLI. The sources are TypeScript; tsx compiles them on the fly.
import { register } from 'tsx/esm/api';

// The AWS SDK warns on Node 20 about its future Node 22 requirement. package.json asks for Node 22 already
// (engines); on Node 20 the warning would only clutter every command's output.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const text = typeof warning === 'string' ? warning : warning?.message ?? '';
  const name = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type ?? warning?.name;
  if (name === 'NodeVersionSupportWarning' || /require node >=22/.test(text)) return;
  emitWarning(warning, ...rest);
};

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
