/**
 * PR_SET_IO_FLUSHER for a process that serves FUSE (issue 13, item 7).
 *
 * A loop device over a remapfs file makes the kernel's writeback depend on
 * this process. If one of its threads, allocating memory, is made to wait in
 * reclaim for that writeback (cgroup v1 memory limits do this), it waits for
 * itself. PR_SET_IO_FLUSHER gives a thread PF_MEMALLOC_NOIO and
 * PF_LOCAL_THROTTLE, so reclaim skips such waits. It acts on the calling
 * thread; threads created afterwards inherit it, and so does a program
 * executed afterwards. So it is set on the Node main thread before the FUSE
 * session starts (fuse-native's and libfuse's threads, and libuv's pool if
 * not started yet, come later). Threads that Node starts before any
 * JavaScript runs (V8's platform workers, the inspector's signal thread) only
 * get it when remapfs is started through build/Release/remapfs-io-flusher
 * (native/io-flusher-exec.c), which sets it and then executes node; the
 * daemon sees it already set ("inherited") and says so in status.
 *
 * State: the outcome of the one attempt per process, kept in `attempt`.
 * REMAPFS_NO_IO_FLUSHER=1 skips the call: only for showing the deadlock
 * (docs/architecture.md), never in service.
 */
import * as fs from 'fs';
import { nativeHelpers, nativeLoadError } from './index.js';
import { hasIoFlusherFlags, threadFlagsOf } from './task-flags.js';

export interface IoFlusherStatus {
  /** PR_GET_IO_FLUSHER on the main thread says 1. */
  set: boolean;
  /** It was already set when the process started (remapfs-io-flusher), so every thread has it. */
  inherited: boolean;
  /** Threads that existed when the daemon set it itself (they lack it); 0 when inherited or not set. */
  threadsBefore: number;
  /** Why it is not set, in one line; undefined when set. */
  reason: string | undefined;
  /** Threads of this process now, and how many carry both flags. */
  threads: number;
  threadsFlagged: number;
}

export const SKIP_ENV = 'REMAPFS_NO_IO_FLUSHER';

interface Attempt {
  set: boolean;
  inherited: boolean;
  threadsBefore: number;
  reason: string | undefined;
}

let attempt: Attempt | undefined;

/**
 * Sets PR_SET_IO_FLUSHER on the calling thread (call it on the main thread,
 * before mounting), once per process. When it cannot, `notice` gets one line
 * saying why; remapfs goes on without it.
 */
export function enableIoFlusher(notice: (line: string) => void): IoFlusherStatus {
  if (!attempt) {
    attempt = tryEnable();
    if (!attempt.set) notice(`remapfs: PR_SET_IO_FLUSHER is not set: ${attempt.reason} (memory pressure can deadlock the daemon; see docs/architecture.md, "Memory limits")`);
    else if (!attempt.inherited && attempt.threadsBefore > 1) {
      notice(`remapfs: PR_SET_IO_FLUSHER is set, but not on the ${attempt.threadsBefore - 1} threads Node started before it (start remapfs through build/Release/remapfs-io-flusher to cover them)`);
    }
  }
  return ioFlusherStatus();
}

/** What enableIoFlusher achieved, with the threads as they are now. */
export function ioFlusherStatus(): IoFlusherStatus {
  let threads = 0;
  let threadsFlagged = 0;
  try {
    for (const t of threadFlagsOf(process.pid)) {
      threads++;
      if (hasIoFlusherFlags(t.flags)) threadsFlagged++;
    }
  } catch {
    // no /proc: the counts stay 0
  }
  const a = attempt ?? { set: false, inherited: false, threadsBefore: 0, reason: 'not attempted' };
  return { set: a.set, inherited: a.inherited, threadsBefore: a.threadsBefore, reason: a.reason, threads, threadsFlagged };
}

function tryEnable(): Attempt {
  const no = (reason: string): Attempt => ({ set: false, inherited: false, threadsBefore: 0, reason });
  if (process.env[SKIP_ENV] === '1') return no(`${SKIP_ENV}=1 skips it (for demonstrations only)`);
  const native = nativeHelpers();
  if (!native) return no(`the native helper does not load: ${nativeLoadError() ?? 'unknown reason'}`);
  if (native.getIoFlusher() === 1) return { set: true, inherited: true, threadsBefore: 0, reason: undefined };
  let threadsBefore = 0;
  try {
    threadsBefore = fs.readdirSync('/proc/self/task').length;
  } catch {
    // no /proc: unknown
  }
  const r = native.setIoFlusher();
  if (r !== 0) return no(explain(r));
  const check = native.getIoFlusher();
  if (check !== 1) return no(`PR_GET_IO_FLUSHER says ${check} after setting it`);
  return { set: true, inherited: false, threadsBefore, reason: undefined };
}

function explain(errnoName: string): string {
  switch (errnoName) {
    case 'EPERM':
      return 'EPERM (it needs CAP_SYS_RESOURCE)';
    case 'EINVAL':
      return 'EINVAL (the kernel is older than Linux 5.6)';
    default:
      return errnoName;
  }
}

/** One line for `remapfs status`. */
export function formatIoFlusher(s: IoFlusherStatus): string {
  if (!s.set) return `not set: ${s.reason ?? 'unknown'}`;
  return `set${s.inherited ? ' at start (remapfs-io-flusher)' : ''} (${s.threadsFlagged} of ${s.threads} threads flagged)`;
}
