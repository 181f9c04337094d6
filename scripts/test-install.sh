#!/usr/bin/env bash
# npm run test:install: the install path of a user, checked for real. It
# clones the checkout's HEAD (a fresh clone: commit first), runs `npm pack`
# there, installs the tarball with `npm install -g` into a temporary prefix
# (building the native modules), and checks the installed remapfs: --version,
# --help, a usage error, a command that opens a database (the native
# better-sqlite3 loads), completion and the man page. Everything it makes is
# in one temporary directory, removed at the end. It takes a few minutes,
# most of them compiling better-sqlite3.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/remapfs-install-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
log() { echo "test:install: $*" >&2; }
fail() { log "FAILED: $*"; exit 1; }

log "cloning $repo (HEAD) into $tmp/clone"
git clone -q "$repo" "$tmp/clone"
log "npm pack"
(cd "$tmp/clone" && npm pack --pack-destination "$tmp" --loglevel=error >/dev/null)
tarball=$(ls "$tmp"/remapfs-*.tgz)
log "npm install -g --prefix $tmp/prefix $(basename "$tarball")"
npm install -g --prefix "$tmp/prefix" --no-audit --no-fund --loglevel=error "$tarball"

bin=$tmp/prefix/bin/remapfs
want=$(node -p "require('$tmp/clone/package.json').version")
got=$("$bin" --version) || fail "remapfs --version exited $?"
[ "$got" = "$want" ] || fail "remapfs --version printed '$got', expected '$want'"
"$bin" --help >"$tmp/help" || fail "remapfs --help exited $?"
grep -q 'remapfs attach <name>' "$tmp/help" || fail "remapfs --help does not list attach"
set +e
"$bin" --db a.db --db b.db list 2>"$tmp/err"
status=$?
set -e
[ "$status" -eq 2 ] && grep -q -- '--db was given more than once' "$tmp/err" || fail "a repeated --db gave exit $status: $(cat "$tmp/err")"
"$bin" --db "$tmp/remapfs.db" discover --no-block-devices --import --json >"$tmp/discover" || fail "remapfs discover exited $?"
grep -q '"version": 1' "$tmp/discover" || fail "remapfs discover printed no JSON"
"$bin" completion | grep -q '^complete .* remapfs$' || fail "remapfs completion printed no bash completion"
page=$tmp/prefix/share/man/man1/remapfs.1
[ -e "$page" ] || fail "the man page is not installed at $page"
MANWIDTH=80 man -l "$page" 2>/dev/null | grep -q 'remapfs attach' || fail "the man page does not render"
log "passed: remapfs $got installed from $(basename "$tarball") ($(du -k "$tarball" | cut -f1) KiB)"
