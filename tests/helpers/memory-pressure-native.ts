/** Starts the daemon for the memory-pressure scenario on the native engine without PR_SET_IO_FLUSHER. */
import * as fs from 'fs';
import type { DaemonHandle, Lab } from '../../lib/lab/lab.js';
import { hasCapability } from './capabilities.js';

const CAP_IPC_LOCK = 14;

interface PairStatus {
  engine?: string;
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
  // The engine's workers lock their stacks and buffers (native/engine/pin.c): 16 workers, over 2 MiB each.
  if (hasCapability(CAP_IPC_LOCK)) expect(lockedBytes(daemon.child.pid!)).toBeGreaterThan(16 * 2 * 1024 * 1024);
  return daemon;
}
