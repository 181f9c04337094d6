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
import { labPerTest } from '../helpers/lab-hooks.js';
import * as path from 'path';
import { IO_FLUSHER_LAUNCHER } from '../../lib/lab/lab.js';
import { hasIoFlusherFlags, threadFlagsOf } from '../../lib/native/task-flags.js';
import { ioFlusherStatus, servePair, unflagged } from '../helpers/io-flusher.js';
import { requireCapability } from '../helpers/capabilities.js';
import { match } from '../helpers/match.js';

const MiB = 1024 * 1024;

describe('PR_SET_IO_FLUSHER on the serving threads', () => {
  const lab = labPerTest(() => requireCapability('CAP_SYS_RESOURCE', 24, 'PR_SET_IO_FLUSHER'));

  it('started through remapfs-io-flusher: every thread of the daemon has it, and status says so', async () => {
    lab.launcher = IO_FLUSHER_LAUNCHER;
    const daemon = await servePair(lab);
    expect({ unflagged: unflagged(daemon), log: daemon.output() }).toEqual({ unflagged: [], log: match.notContaining('PR_SET_IO_FLUSHER') });
    const s = ioFlusherStatus(lab);
    expect(s).toMatchObject({ set: true, inherited: true });
    expect(s.threadsFlagged).toBe(s.threads);
    expect(lab.ok(['status', 'disk0'])).toMatch(/^io flusher +set at start \(remapfs-io-flusher\) \((\d+) of \1 threads flagged\)$/m);
  });

  it('started through remapfs-io-flusher: every thread of the fault simulator has it', async () => {
    lab.launcher = IO_FLUSHER_LAUNCHER;
    const sim = await lab.startSimulator(lab.image('sim.img', 32 * MiB), lab.mkdir('sim'));
    lab.mkfsExt4(lab.attachLoop(path.join(sim.mountpoint, 'disk')));
    expect({ unflagged: unflagged(sim), log: sim.output() }).toEqual({ unflagged: [], log: match.notContaining('PR_SET_IO_FLUSHER') });
  });

  it('started directly: the main thread and every thread started after it have it; status counts the others', async () => {
    const daemon = await servePair(lab);
    const s = ioFlusherStatus(lab);
    expect(s).toMatchObject({ set: true, inherited: false });
    expect(s.reason).toBeUndefined();
    const main = threadFlagsOf(daemon.child.pid!).find((t) => t.tid === daemon.child.pid);
    expect(main && hasIoFlusherFlags(main.flags)).toBe(true);
    // Only the threads Node started before the prctl (the main thread aside) lack it.
    expect(unflagged(daemon)).toHaveLength(s.threadsBefore - 1);
    expect(daemon.output()).toContain(`PR_SET_IO_FLUSHER is set, but not on the ${s.threadsBefore - 1} threads Node started before it`);
  });

});
