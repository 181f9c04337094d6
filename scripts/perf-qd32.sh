#!/usr/bin/env bash
# scripts/perf-qd32.sh [dir] [runtimeSec]: random 4 KiB at queue depth 32 (FIO_RW,
# FIO_BS and FIO_QD change the cells: e.g. FIO_RW=write FIO_BS=1m FIO_QD=4) through
# a loop device, on the kernel loop device directly (a) and on the native
# engine (c), pinned like `npm run bench` (fio on CPU 0; daemon and the unbound
# workqueues, loop workers among them, on CPU 1). Prints IOPS and, for c, the
# daemon's CPU time and context switches (all its threads) per request, and for both
# the busy share of CPU 0 and CPU 1 over the fio run.
# PERF=1 also records `perf record -g` of the daemon to <dir>/perf-<rw>.data;
# PERF=cpu records all of CPU 1 instead, for a and c, to <dir>/perf-cpu1-<a|c>-<rw>.data.
#
# Images (1 GiB of random data, a copy for the pair, a 256 MiB spare) and the
# database live in dir (default /var/tmp/remapfs-perf); they are kept between
# runs. DAEMON_CPUS (default 1) is the daemon's CPU list, DAEMON_SCHED its chrt policy
# (e.g. batch), MOUNT_ARGS adds to its mount. WQ_MASK (default 2: CPU 1) is the
# workqueue mask during both cells, so the CPUs of the loop devices' workers. Needs root, /dev/fuse, loop devices, fio. Cleans up its own loop
# device, mount and workqueue mask on exit; run one at a time.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-/var/tmp/remapfs-perf}
runtime_sec=${2:-10}
mask_file=/sys/devices/virtual/workqueue/cpumask
mkdir -p "$dir/mnt"
export REMAPFS_DB=$dir/remapfs.db
cli() { node "$repo/bin/remapfs" "$@"; }

if [ ! -f "$dir/ref.img" ]; then
  dd if=/dev/urandom of="$dir/ref.img.tmp" bs=1M count=1024 status=none
  mv "$dir/ref.img.tmp" "$dir/ref.img"
fi
if [ ! -f "$dir/main.img" ]; then
  cp "$dir/ref.img" "$dir/main.img"
  truncate -s 256M "$dir/spare.img"
  cli init p1 --main "$dir/main.img" --spare "$dir/spare.img" >/dev/null 2>&1
fi

old_mask=$(cat "$mask_file")
[ "$old_mask" != 2 ] || echo "perf-qd32: the workqueue mask is already 2 (another run in progress?); it is left at 2 on exit" >&2
dev="" daemon_pid=""
cleanup() {
  [ -z "$dev" ] || losetup -d "$dev" || true
  if [ -n "$daemon_pid" ]; then
    cli unmount "$dir/mnt" >/dev/null 2>&1 || true
    for _ in $(seq 50); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.2; done
    ! kill -0 "$daemon_pid" 2>/dev/null || kill "$daemon_pid"
  fi
  echo "$old_mask" >"$mask_file"
}
trap cleanup EXIT

ctx_switches() { cat /proc/"$daemon_pid"/task/*/status 2>/dev/null | awk '/ctxt_switches/ { s += $2 } END { print s }'; }
# Requests the ring workers parked because a device call would have waited (RWF_NOWAIT: EAGAIN).
retries() { cli status p1 --json | python3 -c "import json,sys; print(json.load(sys.stdin).get('engineCounters', {}).get('waitRetries', 0))"; }
cpu_ticks() { awk '{ print $14 + $15 }' /proc/"$daemon_pid"/stat; }

# busy <before> <after>: each CPU's busy share between two snapshots of its /proc/stat lines (fio's start and end included)
busy() {
  python3 - "$1" "$2" <<'PY'
import sys
out = []
for x, y in zip(sys.argv[1].splitlines(), sys.argv[2].splitlines()):
    d = [b - a for a, b in zip(map(int, x.split()[1:]), map(int, y.split()[1:]))]
    total = sum(d) or 1
    out.append(f"{x.split()[0]} busy {100 * (total - d[3] - d[4]) / total:.0f}% (irq and softirq {100 * (d[5] + d[6]) / total:.0f}%)")
print('  ' + ', '.join(out))
PY
}

# measure <label>: both cells on $dev
measure() {
  for rw in ${FIO_RW:-randread randwrite}; do
    echo 3 >/proc/sys/vm/drop_caches
    local t0=0 c0=0 perf_pid=""
    if [ -n "$daemon_pid" ]; then
      r0=$(retries)
      t0=$(cpu_ticks)
      c0=$(ctx_switches)
      if [ -n "${PERF:-}" ] && [ "$PERF" != cpu ]; then
        perf record -F 2000 -g -p "$daemon_pid" -o "$dir/perf-$rw.data" -- sleep $((runtime_sec - 2)) >/dev/null 2>&1 &
        perf_pid=$!
      fi
    fi
    if [ "${PERF:-}" = cpu ]; then
      # all of CPU 1 (the daemon, the loop workers, interrupts), for a and c alike
      perf record -F 2000 -g -C 1 -o "$dir/perf-cpu1-${1%% *}-$rw.data" -- sleep $((runtime_sec - 2)) >/dev/null 2>&1 &
      perf_pid=$!
    fi
    local json s0
    s0=$(grep -E '^cpu[01] ' /proc/stat)
    json=$(taskset -c 0 fio --name=qd32 --filename="$dev" --rw="$rw" --bs="${FIO_BS:-4k}" --iodepth="${FIO_QD:-32}" --ioengine=libaio \
      --direct=1 --runtime="$runtime_sec" --time_based --output-format=json)
    busy "$s0" "$(grep -E '^cpu[01] ' /proc/stat)"
    [ -z "$perf_pid" ] || wait "$perf_pid"
    local key=read
    case "$rw" in *write) key=write ;; esac
    read -r iops ios < <(python3 -c "import json,sys; j=json.load(sys.stdin)['jobs'][0]['$key']; print(int(j['iops']), j['total_ios'])" <<<"$json")
    if [ -n "$daemon_pid" ]; then
      local t1 c1
      t1=$(cpu_ticks)
      c1=$(ctx_switches)
      python3 -c "print(f'$1 $rw: {$iops} IOPS, daemon {($t1-$t0)/$(getconf CLK_TCK)*1e6/$ios:.1f} us CPU and {($c1-$c0)/$ios:.2f} context switches per request, {($(retries)-$r0)/$ios:.3f} would-wait retries per request')"
    else
      echo "$1 $rw: $iops IOPS"
    fi
  done
}

echo "${WQ_MASK:-2}" >"$mask_file"
dev=$(losetup --direct-io=on --sector-size 4096 -f --show "$dir/ref.img")
measure "a (loop)"
losetup -d "$dev"
dev=""

# Pinned from the start (as systemd's CPUAffinity= would), so the engine sizes its ring workers for one CPU.
taskset -c "${DAEMON_CPUS:-1}" node "$repo/bin/remapfs" mount "$dir/mnt" --engine native ${MOUNT_ARGS:-} >"$dir/daemon.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do grep -q 'remapfs: serving' "$dir/daemon.log" && break; sleep 0.2; done
grep -q 'remapfs: serving' "$dir/daemon.log" || { cat "$dir/daemon.log" >&2; exit 1; }
taskset -p -a -c "${DAEMON_CPUS:-1}" "$daemon_pid" >/dev/null
# DAEMON_SCHED=batch|other: the daemon's scheduling policy (chrt), all threads
[ -z "${DAEMON_SCHED:-}" ] || chrt --"$DAEMON_SCHED" -a -p 0 "$daemon_pid"
dev=$(losetup --direct-io=on --sector-size 4096 -f --show "$dir/mnt/p1")
cli status p1 | grep '^ *engine' || true
measure "c (native)"
cli status p1 --json | python3 -c "import json,sys; n=json.load(sys.stdin).get('negotiated', {}); print('FUSE over io_uring: %s entries, %s requests, errno %s' % (n.get('fuseUringEntries'), n.get('fuseUringRequests'), n.get('fuseUringErrno')))"
