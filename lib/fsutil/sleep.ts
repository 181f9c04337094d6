/**
 * sleepSyncMs: blocks the calling thread for `ms` milliseconds (Atomics.wait
 * on a private cell nobody notifies). Only for code that may block: CLI
 * commands and worker threads, never the daemon's event loop.
 */
export function sleepSyncMs(ms: number): void {
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
