/**
 * Dirty page-cache pages of a file, from the kernel's cachestat(2) (Linux 6.5+; called through python3's ctypes,
 * which scripts/setup.sh installs): what a flush must have written back. Throws when the call fails.
 */
import { spawnSync } from 'child_process';

const SCRIPT = `
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
class Range(ctypes.Structure): _fields_ = [("off", ctypes.c_uint64), ("len", ctypes.c_uint64)]
class Stat(ctypes.Structure): _fields_ = [(n, ctypes.c_uint64) for n in ("cache", "dirty", "writeback", "evicted", "recently_evicted")]
fd = os.open(sys.argv[1], os.O_RDONLY)
st = Stat()
if libc.syscall(451, fd, ctypes.byref(Range(0, 0)), ctypes.byref(st), 0) != 0:
    sys.exit("cachestat: " + os.strerror(ctypes.get_errno()))
print(st.dirty + st.writeback)
`;

/** Pages of `file` that are dirty or under writeback. */
export function dirtyPages(file: string): number {
  const r = spawnSync('python3', ['-c', SCRIPT, file], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`cachestat of ${file} failed: ${(r.stderr || r.error?.message || '').trim()}`);
  return Number(r.stdout.trim());
}
