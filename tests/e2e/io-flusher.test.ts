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
import { labPerTest } from '../helpers/lab-hooks.js';
import { hasIoFlusherFlags, threadFlagsOf } from '../../lib/native/task-flags.js';
import { ioFlusherStatus, servePair } from '../helpers/io-flusher.js';
import { match } from '../helpers/match.js';

describe('PR_SET_IO_FLUSHER on the serving threads', () => {
  const lab = labPerTest();

  it('when it is not set, one line at start-up says why, and status says so', async () => {
    const daemon = await servePair(lab, { ...lab.env(), REMAPFS_NO_IO_FLUSHER: '1' });
    expect(daemon.output().match(/PR_SET_IO_FLUSHER is not set: REMAPFS_NO_IO_FLUSHER=1/g)).toHaveLength(1);
    expect(ioFlusherStatus(lab)).toMatchObject({ set: false, inherited: false, reason: match.containing('REMAPFS_NO_IO_FLUSHER') });
    expect(lab.ok(['status', 'disk0'])).toMatch(/^io flusher +not set: REMAPFS_NO_IO_FLUSHER=1/m);
    expect(threadFlagsOf(daemon.child.pid!).filter((t) => hasIoFlusherFlags(t.flags))).toEqual([]);
  });
});
