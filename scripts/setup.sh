#!/usr/bin/env bash
# Installs what remapfs needs on a Debian machine, only what is missing:
# apt packages (fuse3, libfuse3-dev and liburing-dev for the native engine, libfuse2 for the
# fuse-native fallback, g++, gcc, make and python3 for the native modules, pkg-config,
# e2fsprogs, fio, util-linux, gddrescue,
# systemd and groff-base for the tests of contrib/ and the man page), node_modules
# (npm ci, with the native better-sqlite3 binary really built), remapfs's own
# native helper (device locks, PR_SET_IO_FLUSHER), and the TypeScript build.
# Safe to run again; quiet when nothing is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "setup: $*" >&2; }

missing=()
[ -e /usr/lib/x86_64-linux-gnu/libfuse.so.2 ] || ldconfig -p 2>/dev/null | grep -q 'libfuse.so.2 ' || missing+=(libfuse2)
# Debian's fuse3 replaces fuse (libfuse 2's fusermount); remapfs and its tests need only fuse3 + libfuse2.
command -v fusermount3 >/dev/null || missing+=(fuse3)
[ -e /usr/include/fuse3/fuse_lowlevel.h ] || missing+=(libfuse3-dev)
[ -e /usr/include/liburing.h ] || missing+=(liburing-dev)   # the engine's io_uring workers
command -v pkg-config >/dev/null || missing+=(pkg-config)
command -v mkfs.ext4 >/dev/null || missing+=(e2fsprogs)
command -v fio >/dev/null || missing+=(fio)
command -v losetup >/dev/null || missing+=(mount)
command -v filefrag >/dev/null || missing+=(e2fsprogs)
command -v ddrescuelog >/dev/null || missing+=(gddrescue)
command -v systemd-analyze >/dev/null || missing+=(systemd)   # the tests verify contrib/systemd
command -v groff >/dev/null || missing+=(groff-base)         # the tests render the man page
command -v python3 >/dev/null || missing+=(python3)            # node-gyp; the readiness test listens with it
# Before npm ci: better-sqlite3 builds from source wherever its prebuilt binary cannot be
# downloaded (only the npm registry reachable), and the native helper and engine need them too.
command -v g++ >/dev/null || missing+=(g++)
command -v gcc >/dev/null || missing+=(gcc)                     # scripts/test-native.sh
command -v make >/dev/null || missing+=(make)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    log "missing packages ${missing[*]}; run as root or install them with apt-get"
    exit 1
  fi
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
[ -e /dev/fuse ] || modprobe fuse 2>/dev/null || log "warning: /dev/fuse is missing"

stamp=node_modules/.remapfs-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  log "installing node modules (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
# npm may skip install scripts; make sure the native modules really load.
if ! node -e "new (require('better-sqlite3'))(':memory:').close()" 2>/dev/null; then
  log "building better-sqlite3 from source"
  npm rebuild better-sqlite3 --foreground-scripts --loglevel=error
  node -e "new (require('better-sqlite3'))(':memory:').close()"
fi
node -e "require('fuse-native')" 2>/dev/null || { log "fuse-native does not load (is libfuse2 installed?)"; exit 1; }

# The native helper (binding.gyp, native/): required, since device locks
# (flock) come from it. Built when missing, stale or not loading.
addon=build/Release/remapfs_native.node
if [ ! -f "$addon" ] || [ ! -x build/Release/remapfs-io-flusher ] || [ ! -f build/Release/remapfs_engine.node ] || [ -n "$(find native binding.gyp -newer "$addon" -print -quit)" ] ||
   ! node -e "require('./$addon')" 2>/dev/null; then
  log "building the native helper"
  out=$(mktemp)
  if npm run --silent build:native >"$out" 2>&1 && node -e "require('./$addon'); require('./build/Release/remapfs_engine.node')" 2>>"$out"; then
    :
  else
    why=$(grep -m1 -E 'error|Error|ERR' "$out" || tail -n1 "$out")
    log "the native helper did not build: ${why:-unknown failure}"
    rm -f "$out"
    exit 1
  fi
  rm -f "$out"
fi

npx --no-install tsc -p tsconfig.json
