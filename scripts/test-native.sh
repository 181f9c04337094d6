#!/usr/bin/env bash
# Builds the native helper's plain C logic (native/*.c without the N-API glue)
# with native/test/test_native.c under AddressSanitizer and UBSan, and runs it.
# Exits non-zero on a compile warning, a failed check or any sanitizer report.
# Then the same for the launcher, native/io-flusher-exec.c, and for the native
# engine (native/engine/): its route table, splitter and fence protocol
# (test/test_routes.c, also under ThreadSanitizer), and the add-on itself built
# with ASan+UBSan and driven through a real mount by test/smoke.cjs: io_uring
# workers with FUSE over io_uring (fuse.enable_uring is turned on for that run
# and put back; a kernel without it is said so), then with /dev/fuse
# (REMAPFS_ENGINE_TRANSPORT=dev), then REMAPFS_ENGINE_IO=blocking (needs root,
# /dev/fuse and libfuse3-dev; skipped with a message when they are missing).
set -euo pipefail
cd "$(dirname "$0")/.."

cc=${CC:-gcc}
command -v "$cc" >/dev/null || { echo "test-native: $cc is not installed (apt-get install gcc)" >&2; exit 1; }
# On disk by default: on tmpfs the engine copies inline and the smoke's transport check sees no queueing.
out=$(mktemp -d "${TMPDIR:-/var/tmp}/test-native-XXXXXX")
trap 'rm -rf "$out"' EXIT

"$cc" -std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=all -pthread \
  native/flusher.c native/lock.c native/test/test_native.c -o "$out/test_native"

UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:abort_on_error=0:exitcode=86 \
  "$out/test_native"

# The launcher (native/io-flusher-exec.c): runs its command in place, 2 without one, 127 when it cannot.
"$cc" -std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=all native/flusher.c native/io-flusher-exec.c -o "$out/io-flusher-exec"
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:exitcode=86
[ "$("$out/io-flusher-exec" sh -c 'echo ran' 2>/dev/null)" = ran ] || { echo "test-native: io-flusher-exec did not run its command" >&2; exit 1; }
set +e
"$out/io-flusher-exec" 2>/dev/null; usage=$?
"$out/io-flusher-exec" "$out/no-such-program" 2>/dev/null; missing=$?
set -e
[ "$usage" = 2 ] && [ "$missing" = 127 ] || { echo "test-native: io-flusher-exec exit statuses $usage and $missing, not 2 and 127" >&2; exit 1; }
echo "test-native: io-flusher-exec passed"

# The native engine: route table, splitter, fence protocol (multi-threaded stress).
"$cc" -std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=all -pthread native/engine/routes.c native/engine/test/test_routes.c -o "$out/test_routes"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=halt_on_error=1:detect_leaks=1:exitcode=86 "$out/test_routes"
"$cc" -std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=thread -pthread \
  native/engine/routes.c native/engine/test/test_routes.c -o "$out/test_routes_tsan"
TSAN_OPTIONS=halt_on_error=1:exitcode=86 "$out/test_routes_tsan"

# The engine add-on under ASan+UBSan, through a real FUSE mount.
if ! pkg-config --exists fuse3 2>/dev/null; then
  echo "test-native: libfuse3-dev is missing: the engine add-on was not tested (apt-get install libfuse3-dev pkg-config)" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ] || [ ! -e /dev/fuse ]; then
  echo "test-native: the engine add-on test needs root and /dev/fuse: skipped" >&2
  exit 0
fi
node_inc=$(node -p "require('path').join(process.execPath, '../../include/node')")
[ -f "$node_inc/node_api.h" ] || node_inc=$(ls -d "$HOME"/.cache/node-gyp/*/include/node 2>/dev/null | tail -n1)
"$cc" -std=c11 -Wall -Wextra -Werror -g -O1 -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=all -shared -fPIC -pthread -I"$node_inc" $(pkg-config --cflags fuse3) \
  -DNODE_GYP_MODULE_NAME=remapfs_engine native/engine/napi.c native/engine/fs.c native/engine/io.c native/engine/routes.c native/engine/pin.c native/engine/ring.c native/engine/fring.c \
  $(pkg-config --libs fuse3) -luring -o "$out/remapfs_engine.node"
smoke() {
  local rc=0
  UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 ASAN_OPTIONS=halt_on_error=1:detect_leaks=0:exitcode=86 \
    LD_PRELOAD="$("$cc" -print-file-name=libasan.so):$("$cc" -print-file-name=libubsan.so)" \
    node native/engine/test/smoke.cjs "$out/remapfs_engine.node" "$out" || rc=$?
  # A run stopped by a sanitizer report cannot unmount; its mount is taken down here.
  local mnt
  for mnt in $(awk -v d="$out/engine-smoke-" 'index($2, d) == 1 { print $2 }' /proc/mounts); do umount -l "$mnt"; done
  return "$rc"
}
opt_in=/sys/module/fuse/parameters/enable_uring
if [ -w "$opt_in" ]; then
  was=$(cat "$opt_in")
  trap 'echo "$was" >"$opt_in"; rm -rf "$out"' EXIT
  echo Y >"$opt_in"
  smoke
  echo "$was" >"$opt_in"
else
  echo "test-native: this kernel has no fuse.enable_uring: FUSE over io_uring was not tested" >&2
  # Under CI a transport left untested fails the run.
  if [ "${CI:-}" = true ]; then exit 1; fi
fi
REMAPFS_ENGINE_TRANSPORT=dev smoke
REMAPFS_ENGINE_IO=blocking smoke
echo "test-native: engine passed"
