/**
 * Where the flag cannot be set, the daemon says so once and serves anyway.
 * The checks that need it set are in tests/privileged/io-flusher.test.ts
 * (npm run test:privileged). Issue 13, item 7: the serving threads carry PR_SET_IO_FLUSHER's flags
 * (PF_MEMALLOC_NOIO and PF_LOCAL_THROTTLE, field 9 of
 * /proc/<pid>/task/<tid>/stat). Started through remapfs-io-flusher, every
 * thread of the daemon and of the simulator has them; started directly, the
 * daemon sets them on its main thread before mounting, so every thread
 * started after that (fuse-native's, libfuse's) has them, and status counts
 * the threads Node had started before. Status and the log say whether it is set.
 */
import * as path from 'path';
import { DaemonHandle, IO_FLUSHER_LAUNCHER, Lab, requireKernelFeatures } from '../../lib/lab/lab';
import { hasIoFlusherFlags, threadFlagsOf } from '../../lib/native/task-flags';

const MiB = 1024 * 1024;

/** Threads without both flags, as "tid name flags"; the list is what a failure shows. */
function unflagged(h: DaemonHandle): string[] {
  const threads = threadFlagsOf(h.child.pid!);
  expect(threads.length).toBeGreaterThan(1);
  return threads.filter((t) => !hasIoFlusherFlags(t.flags)).map((t) => `${t.tid} ${t.comm} flags=0x${t.flags.toString(16)}`);
}

interface IoFlusherJson {
  set: boolean;
  inherited: boolean;
  threadsBefore: number;
  reason?: string;
  threads: number;
  threadsFlagged: number;
}

describe('PR_SET_IO_FLUSHER on the serving threads', () => {
  let lab: Lab;

  beforeAll(() => requireKernelFeatures());
  beforeEach(() => {
    lab = new Lab();
  });
  afterEach(async () => {
    await lab.cleanup();
  });

  async function servePair(env?: NodeJS.ProcessEnv): Promise<DaemonHandle> {
    lab.ok(['init', 'disk0', '--main', lab.image('main.img', 64 * MiB), '--spare', lab.image('spare.img', 16 * MiB)]);
    const mnt = lab.mkdir('mnt');
    const daemon = await lab.startDaemon(mnt, [], env);
    // Serve some I/O first, so the pools have started their threads.
    lab.mkfsExt4(lab.attachLoop(path.join(mnt, 'disk0')));
    return daemon;
  }

  function ioFlusher(): IoFlusherJson {
    const st = JSON.parse(lab.ok(['status', 'disk0', '--json'])) as { ioFlusher?: IoFlusherJson };
    if (!st.ioFlusher) throw new Error('status --json has no ioFlusher');
    return st.ioFlusher;
  }

  it('when it is not set, one line at start-up says why, and status says so', async () => {
    const daemon = await servePair({ ...lab.env(), REMAPFS_NO_IO_FLUSHER: '1' });
    expect(daemon.output().match(/PR_SET_IO_FLUSHER is not set: REMAPFS_NO_IO_FLUSHER=1/g)).toHaveLength(1);
    expect(ioFlusher()).toMatchObject({ set: false, inherited: false, reason: expect.stringContaining('REMAPFS_NO_IO_FLUSHER') });
    expect(lab.ok(['status', 'disk0'])).toMatch(/^io flusher +not set: REMAPFS_NO_IO_FLUSHER=1/m);
    expect(threadFlagsOf(daemon.child.pid!).filter((t) => hasIoFlusherFlags(t.flags))).toEqual([]);
  });
});
