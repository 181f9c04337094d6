/**
 * Privileged (npm run test:privileged). Issue 13, case 7: no reclaim deadlock
 * (the scenario: tests/helpers/memory-pressure.ts).
 *
 * With CAP_SYS_RESOURCE the daemon starts as deployment advice says, through
 * remapfs-io-flusher, so every thread carries PR_SET_IO_FLUSHER; the test
 * checks that first, since without the flag it could pass by luck. This path
 * serves with whatever engine the project picks (fuse-native included).
 *
 * Without the capability, the flag cannot be set, and the scenario runs
 * against the native engine with REMAPFS_NO_IO_FLUSHER=1: its threads pin
 * their memory instead (native/engine/pin.c), which is what the e2e variant
 * (tests/e2e/memory-pressure.test.ts) checks in CI.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { hasCapability } from '../helpers/capabilities.js';
import { memoryPressure } from '../helpers/memory-pressure.js';
import { startNativeUnflagged } from '../helpers/memory-pressure-native.js';
import { IO_FLUSHER_LAUNCHER } from '../../lib/lab/lab.js';
import { hasIoFlusherFlags, threadFlagsOf } from '../../lib/native/task-flags.js';

const CAP_SYS_RESOURCE = 24;

describe('memory pressure (issue 13, case 7)', () => {
  const lab = labPerTest();
  const flagged = hasCapability(CAP_SYS_RESOURCE) && process.env.REMAPFS_NO_IO_FLUSHER !== '1';

  it(`daemon and writer in one 192 MiB memory cgroup (${flagged ? 'PR_SET_IO_FLUSHER' : 'native engine, no PR_SET_IO_FLUSHER'}): 3 GiB into ext4 over the pair, every sum intact`, async () => {
    const r = await memoryPressure(lab, async (mnt) => {
      if (!flagged) return startNativeUnflagged(lab, mnt);
      lab.launcher = IO_FLUSHER_LAUNCHER;
      const daemon = await lab.startDaemon(mnt);
      const unprotected = threadFlagsOf(daemon.child.pid!).filter((t) => !hasIoFlusherFlags(t.flags));
      if (unprotected.length > 0) {
        throw new Error(`${unprotected.length} daemon threads lack PR_SET_IO_FLUSHER, so this test would deadlock or pass by luck:\n${daemon.output()}`);
      }
      return daemon;
    });
    console.log(`memory pressure: limit hit ${r.limitHits} times, peak ${(r.peakBytes / 1048576).toFixed(0)} MiB, ${r.servedBytes} bytes served by the daemon`);
    expect(r.limitHits).toBeGreaterThan(0);
    expect(r.got).toEqual(r.want);
  }, 60 * 60 * 1000);
});
