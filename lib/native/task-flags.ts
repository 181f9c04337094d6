/**
 * Per-thread kernel flags from /proc/<pid>/task/<tid>/stat (field 9, "flags").
 * PR_SET_IO_FLUSHER sets PF_MEMALLOC_NOIO and PF_LOCAL_THROTTLE on the thread
 * (kernel/sys.c); threads created later inherit them. The values are those of
 * include/linux/sched.h, unchanged from Linux 5.6 (where the prctl appeared)
 * to 6.18. Parsing is pure; the readers below only add the /proc I/O.
 */

import * as fs from 'fs';

export const PF_MEMALLOC_NOIO = 0x00080000;
export const PF_LOCAL_THROTTLE = 0x00100000;
/** Both flags that PR_SET_IO_FLUSHER sets. */
export const PF_IO_FLUSHER_MASK = PF_MEMALLOC_NOIO | PF_LOCAL_THROTTLE;

/** Field 9 of a stat line. The command name (field 2) may hold spaces and ')', so fields are counted after the last ')'. */
export function statFlags(statLine: string): number {
  const close = statLine.lastIndexOf(')');
  if (close < 0) throw new Error(`not a /proc stat line: ${statLine.slice(0, 60)}`);
  const rest = statLine.slice(close + 1).trim().split(/\s+/);
  // rest[0] is field 3 (state), so field 9 is rest[6].
  const field = rest[6];
  if (field === undefined || !/^\d+$/.test(field)) throw new Error(`no flags field in /proc stat line: ${statLine.slice(0, 60)}`);
  return Number(field);
}

export function hasIoFlusherFlags(flags: number): boolean {
  return (flags & PF_IO_FLUSHER_MASK) === PF_IO_FLUSHER_MASK;
}

export interface ThreadFlags {
  tid: number;
  /** The thread's name (field 2), e.g. "node" or "libuv-worker". */
  comm: string;
  flags: number;
}

/** Every thread of a process, with its flags. Threads that exit while this runs are left out. */
export function threadFlagsOf(pid: number): ThreadFlags[] {
  const out: ThreadFlags[] = [];
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    let line: string;
    try {
      line = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ESRCH') continue;
      throw err;
    }
    const comm = line.slice(line.indexOf('(') + 1, line.lastIndexOf(')'));
    out.push({ tid: Number(tid), comm, flags: statFlags(line) });
  }
  return out;
}
