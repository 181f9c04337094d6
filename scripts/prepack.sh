#!/usr/bin/env bash
# Run by `npm pack` (package.json "prepack"): a clean dist/ built by tsc, and
# the man page dist/man/remapfs.1 generated from docs/cli.md. On a fresh clone
# it first installs the node modules without their install scripts: tsc needs
# none of the native ones, and the tarball's installer builds its own.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f node_modules/typescript/bin/tsc ] || npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
rm -rf dist
node node_modules/typescript/bin/tsc -p tsconfig.json
node dist/scripts/man.js dist/man/remapfs.1
