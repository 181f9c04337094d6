/** Starts the daemon for the memory-pressure scenario on the native engine without PR_SET_IO_FLUSHER. */
import * as fs from 'fs';
import type { DaemonHandle, Lab } from '../../lib/lab/lab.js';
import type { PairStatus } from '../../lib/pair/ops.js';
import { hasCapability, requireCapability } from './capabilities.js';

const CAP_IPC_LOCK = 14;

/** What the engine's threads lock (native/engine/pin.c, ring.c), at least: stacks, buffers, ring arenas. */
function pinnedFloorBytes(n: NonNullable<PairStatus['negotiated']>): number {
  const MiB = 1024 * 1024;
  if (n.ringWorkers === 0) return n.maxThreads * 2 * MiB; // receive buffer + I/O buffer per thread
  const entries = Math.max(n.fuseUringEntries ?? 0, n.fuseUringEntriesMax ?? 0); // a 1 MiB payload each, all pinned; then the arena is 2 MiB
  if (entries > 0) return entries * MiB + n.ringWorkers * 3 * MiB + n.poolThreads * MiB;
  return n.ringWorkers * 9 * MiB + n.poolThreads * MiB; // arena 8 MiB + receive buffer; I/O buffer
}

/** Locked memory of a process in bytes (VmLck). */
function lockedBytes(pid: number): number {
  const m = /^VmLck:\s+(\d+) kB$/m.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export async function startNativeUnflagged(lab: Lab, mnt: string): Promise<DaemonHandle> {
  const env = { ...lab.env(), REMAPFS_ENGINE: 'native', REMAPFS_NO_IO_FLUSHER: '1' };
  const daemon = await lab.startDaemon(mnt, [], env);
  const st = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as PairStatus;
  if (st.engine !== 'native') throw new Error(`the native engine does not serve disk0 (engine ${String(st.engine)}):\n${daemon.output()}`);
  // The engine's threads lock their stacks and buffers before they serve.
  if (!st.negotiated) throw new Error(`status shows no engine details:\n${daemon.output()}`);
  // Without CAP_IPC_LOCK the engine may lock less (RLIMIT_MEMLOCK): checked only with it, and under CI=true it must be there.
  if (process.env.CI === 'true') requireCapability('CAP_IPC_LOCK', CAP_IPC_LOCK, 'the check that the engine locks its memory');
  if (hasCapability(CAP_IPC_LOCK)) expect(lockedBytes(daemon.child.pid!)).toBeGreaterThan(pinnedFloorBytes(st.negotiated));
  return daemon;
}
