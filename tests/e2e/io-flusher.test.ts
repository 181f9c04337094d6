/**
 * Issue 13, item 7: every thread of a running daemon and of the fault
 * simulator carries PR_SET_IO_FLUSHER's flags (PF_MEMALLOC_NOIO and
 * PF_LOCAL_THROTTLE, field 9 of /proc/<pid>/task/<tid>/stat), including the
 * threads fuse-native, libfuse and libuv start after the prctl; and status
 * and the log say whether it is set.
 */
import * as path from 'path';
import { DaemonHandle } from '../../lib/lab/lab';
import { hasIoFlusherFlags, threadFlagsOf } from '../../lib/native/task-flags';
import { labPerTest } from '../helpers/lab-hooks';

const MiB = 1024 * 1024;

/** Threads without both flags, as "tid name"; the list is what a failure shows. */
function unflagged(h: DaemonHandle): string[] {
  const threads = threadFlagsOf(h.child.pid!);
  expect(threads.length).toBeGreaterThan(1);
  return threads.filter((t) => !hasIoFlusherFlags(t.flags)).map((t) => `${t.tid} ${t.comm} flags=0x${t.flags.toString(16)}`);
}

interface StatusJson {
  ioFlusher?: { set: boolean; reason: string | null; threads: number; threadsFlagged: number };
}

describe('PR_SET_IO_FLUSHER on the serving threads', () => {
  const lab = labPerTest();

  async function servePair(env?: NodeJS.ProcessEnv): Promise<DaemonHandle> {
    lab.ok(['init', 'disk0', '--main', lab.image('main.img', 64 * MiB), '--spare', lab.image('spare.img', 16 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt, [], env);
    // Serve some I/O first, so every pool has started its threads.
    lab.attachLoop(path.join(mnt, 'disk0'));
    return daemon;
  }

  it('is set on every thread of a running daemon, and status says so', async () => {
    const daemon = await servePair();
    expect({ unflagged: unflagged(daemon), log: daemon.output() }).toEqual({ unflagged: [], log: expect.not.stringContaining('PR_SET_IO_FLUSHER') });
    const st = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as StatusJson;
    expect(st.ioFlusher).toMatchObject({ set: true });
    expect(st.ioFlusher?.threadsFlagged).toBe(st.ioFlusher?.threads);
    expect(lab.ok(['status', 'disk0'])).toMatch(/^io flusher +set \(/m);
  });

  it('is set on every thread of the fault simulator', async () => {
    const sim = await lab.startSimulator(lab.image('sim.img', 32 * MiB), lab.mkdir('sim'));
    lab.attachLoop(path.join(sim.mountpoint, 'disk'));
    expect(unflagged(sim)).toEqual([]);
  });

  it('when it is not set, one line at start-up says why, and status says so', async () => {
    const daemon = await servePair({ ...lab.env(), REMAPFS_NO_IO_FLUSHER: '1' });
    expect(daemon.output().match(/PR_SET_IO_FLUSHER is not set: REMAPFS_NO_IO_FLUSHER=1/g)).toHaveLength(1);
    const st = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as StatusJson;
    expect(st.ioFlusher).toMatchObject({ set: false, reason: expect.stringContaining('REMAPFS_NO_IO_FLUSHER') });
    expect(lab.ok(['status', 'disk0'])).toMatch(/^io flusher +not set: REMAPFS_NO_IO_FLUSHER=1/m);
    expect(threadFlagsOf(daemon.child.pid!).filter((t) => hasIoFlusherFlags(t.flags))).toEqual([]);
  });
});
