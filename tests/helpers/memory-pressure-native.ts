/** Starts the daemon for the memory-pressure scenario on the native engine without PR_SET_IO_FLUSHER. */
import type { DaemonHandle, Lab } from '../../lib/lab/lab.js';

interface PairStatus {
  engine?: string;
}

export async function startNativeUnflagged(lab: Lab, mnt: string): Promise<DaemonHandle> {
  const env = { ...lab.env(), REMAPFS_ENGINE: 'native', REMAPFS_NO_IO_FLUSHER: '1' };
  const daemon = await lab.startDaemon(mnt, [], env);
  const st = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as PairStatus;
  if (st.engine !== 'native') throw new Error(`the native engine does not serve disk0 (engine ${String(st.engine)}):\n${daemon.output()}`);
  return daemon;
}
