/**
 * Privileged (npm run test:privileged; needs CAP_SYS_RESOURCE, which
 * PR_SET_IO_FLUSHER requires). Issue 13, item 7: the serving threads carry PR_SET_IO_FLUSHER's flags
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
import { requireCapability } from '../helpers/capabilities';

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

  beforeAll(() => {
    requireKernelFeatures();
    requireCapability('CAP_SYS_RESOURCE', 24, 'PR_SET_IO_FLUSHER');
  });
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

  it('started through remapfs-io-flusher: every thread of the daemon has it, and status says so', async () => {
    lab.launcher = IO_FLUSHER_LAUNCHER;
    const daemon = await servePair();
    expect({ unflagged: unflagged(daemon), log: daemon.output() }).toEqual({ unflagged: [], log: expect.not.stringContaining('PR_SET_IO_FLUSHER') });
    const s = ioFlusher();
    expect(s).toMatchObject({ set: true, inherited: true });
    expect(s.threadsFlagged).toBe(s.threads);
    expect(lab.ok(['status', 'disk0'])).toMatch(/^io flusher +set at start \(remapfs-io-flusher\) \((\d+) of \1 threads flagged\)$/m);
  });

  it('started through remapfs-io-flusher: every thread of the fault simulator has it', async () => {
    lab.launcher = IO_FLUSHER_LAUNCHER;
    const sim = await lab.startSimulator(lab.image('sim.img', 32 * MiB), lab.mkdir('sim'));
    lab.mkfsExt4(lab.attachLoop(path.join(sim.mountpoint, 'disk')));
    expect({ unflagged: unflagged(sim), log: sim.output() }).toEqual({ unflagged: [], log: expect.not.stringContaining('PR_SET_IO_FLUSHER') });
  });

  it('started directly: the main thread and every thread started after it have it; status counts the others', async () => {
    const daemon = await servePair();
    const s = ioFlusher();
    expect(s).toMatchObject({ set: true, inherited: false });
    expect(s.reason).toBeUndefined();
    const main = threadFlagsOf(daemon.child.pid!).find((t) => t.tid === daemon.child.pid);
    expect(main && hasIoFlusherFlags(main.flags)).toBe(true);
    // Only the threads Node started before the prctl (the main thread aside) lack it.
    expect(unflagged(daemon)).toHaveLength(s.threadsBefore - 1);
    expect(daemon.output()).toContain(`PR_SET_IO_FLUSHER is set, but not on the ${s.threadsBefore - 1} threads Node started before it`);
  });

});
