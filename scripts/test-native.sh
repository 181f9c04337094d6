#!/usr/bin/env bash
# Builds the native helper's plain C logic (native/*.c without the N-API glue)
# with native/test/test_native.c under AddressSanitizer and UBSan, and runs it.
# Exits non-zero on a compile warning, a failed check or any sanitizer report.
# Then the same for the launcher, native/io-flusher-exec.c.
set -euo pipefail
cd "$(dirname "$0")/.."

cc=${CC:-gcc}
command -v "$cc" >/dev/null || { echo "test-native: $cc is not installed (apt-get install gcc)" >&2; exit 1; }
out=$(mktemp -d)
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
