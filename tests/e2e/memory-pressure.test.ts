/**
 * Issue 13, case 7 on the native engine without PR_SET_IO_FLUSHER (no
 * CAP_SYS_RESOURCE needed): the daemon and a writer share one 192 MiB memory
 * cgroup, 3 GiB go into ext4 on a loop device over the pair, and every sum
 * must come back intact. The engine's workers serve without faulting
 * (native/engine/pin.c); with libfuse's own loop this hung (docs/architecture.md,
 * "Memory limits"). The scenario and its watchdog: tests/helpers/memory-pressure.ts.
 * The flagged variant, for either engine: tests/privileged/memory-pressure.test.ts.
 */
import { labPerTest } from '../helpers/lab-hooks.js';
import { memoryPressure } from '../helpers/memory-pressure.js';
import { startNativeUnflagged } from '../helpers/memory-pressure-native.js';

describe('memory pressure on the native engine (issue 13, case 7)', () => {
  const lab = labPerTest();

  it('daemon unflagged and writer in one 192 MiB memory cgroup: 3 GiB into ext4 over the pair, every sum intact', async () => {
    const r = await memoryPressure(lab, (mnt) => startNativeUnflagged(lab, mnt));
    console.log(`memory pressure (native, unflagged): limit hit ${r.limitHits} times, peak ${(r.peakBytes / 1048576).toFixed(0)} MiB`);
    expect(r.limitHits).toBeGreaterThan(0);
    expect(r.got).toEqual(r.want);
  }, 20 * 60 * 1000);
});
