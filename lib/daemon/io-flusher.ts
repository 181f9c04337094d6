/**
 * PR_SET_IO_FLUSHER for a process that serves FUSE (issue 13, item 7).
 *
 * A loop device over a remapfs file makes the kernel's writeback depend on
 * this process. If one of its threads, allocating memory, is made to wait in
 * reclaim for that writeback (cgroup v1 memory limits do this), it waits for
 * itself. PR_SET_IO_FLUSHER gives a thread PF_MEMALLOC_NOIO and
 * PF_LOCAL_THROTTLE, so reclaim skips such waits. It acts on the calling
 * thread; threads created afterwards inherit it, so it is set on the Node main
 * thread before the FUSE session starts (fuse-native's and libfuse's threads,
 * and libuv's pool if not started yet, come later). Threads that Node starts
 * before any JavaScript runs (V8's platform workers, the inspector's signal
 * thread) do not get it; ioFlusherStatus() counts them.
 *
 * State: the outcome of the one attempt per process, kept in `attempt`.
 * REMAPFS_NO_IO_FLUSHER=1 skips the call: only for showing the deadlock
 * (docs/architecture.md), never in service.
 */
import { nativeHelpers, nativeLoadError } from '../native';
import { hasIoFlusherFlags, threadFlagsOf } from '../native/task-flags';

export interface IoFlusherStatus {
  /** PR_GET_IO_FLUSHER on the main thread says 1. */
  set: boolean;
  /** Why it is not set, in one line; undefined when set. */
  reason: string | undefined;
  /** Threads of this process now, and how many carry both flags. */
  threads: number;
  threadsFlagged: number;
}

export const SKIP_ENV = 'REMAPFS_NO_IO_FLUSHER';

let attempt: { set: boolean; reason: string | undefined } | undefined;

/**
 * Sets PR_SET_IO_FLUSHER on the calling thread (call it on the main thread,
 * before mounting), once per process. When it cannot, `notice` gets one line
 * saying why; remapfs goes on without it.
 */
export function enableIoFlusher(notice: (line: string) => void): IoFlusherStatus {
  if (!attempt) {
    attempt = tryEnable();
    if (!attempt.set) notice(`remapfs: PR_SET_IO_FLUSHER is not set: ${attempt.reason} (memory pressure can deadlock the daemon; see docs/architecture.md, "Memory limits")`);
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
  return { set: attempt?.set ?? false, reason: attempt ? attempt.reason : 'not attempted', threads, threadsFlagged };
}

function tryEnable(): { set: boolean; reason: string | undefined } {
  if (process.env[SKIP_ENV] === '1') return { set: false, reason: `${SKIP_ENV}=1 skips it (for demonstrations only)` };
  const native = nativeHelpers();
  if (!native) return { set: false, reason: `the native helper does not load: ${nativeLoadError() ?? 'unknown reason'}` };
  const r = native.setIoFlusher();
  if (r !== 0) return { set: false, reason: explain(r) };
  const check = native.getIoFlusher();
  if (check !== 1) return { set: false, reason: `PR_GET_IO_FLUSHER says ${check} after setting it` };
  return { set: true, reason: undefined };
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
  return `set (${s.threadsFlagged} of ${s.threads} threads flagged)`;
}
