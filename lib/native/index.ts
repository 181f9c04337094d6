/**
 * The native helper (binding.gyp, native/): a few syscalls that Node does not
 * offer. Loading it never throws: without it, what needs it (device locks,
 * so every command that writes to a device) refuses, and nativeLoadError()
 * says why in one line.
 *
 * Layout: the add-on is build/Release/remapfs_native.node (load-addon.ts
 * finds it). It is loaded once, on first use, and the result (helpers or the
 * error) is kept for the life of the process.
 */

import { loadAddon, type Loaded } from './load-addon.js';

/** The add-on's functions; each acts on the calling thread or on one fd. */
export interface NativeHelpers {
  /** prctl(PR_SET_IO_FLUSHER, 1) on the calling thread; returns 0 or the errno name ('EINVAL', 'EPERM'). */
  setIoFlusher(): 0 | string;
  /** prctl(PR_GET_IO_FLUSHER) on the calling thread: 1, 0, or an errno name. */
  getIoFlusher(): number | string;
  /** flock(fd, LOCK_EX|LOCK_SH [|LOCK_NB]); true when taken, false on EWOULDBLOCK; other errors throw an Error with .code (errno name). EINTR is retried. */
  flock(fd: number, mode: 'exclusive' | 'shared', wait: boolean): boolean;
  /** flock(fd, LOCK_UN). */
  unlock(fd: number): void;
}

const FUNCTIONS = ['setIoFlusher', 'getIoFlusher', 'flock', 'unlock'] as const;

let loaded: Loaded<NativeHelpers> | undefined;

/** undefined when the add-on cannot load; nativeLoadError() says why in one line. */
export function nativeHelpers(): NativeHelpers | undefined {
  loaded ??= loadAddon<NativeHelpers>('remapfs_native.node', FUNCTIONS, 'run scripts/setup.sh to build it');
  return loaded.mod;
}

export function nativeLoadError(): string | undefined {
  nativeHelpers();
  return loaded?.error;
}
