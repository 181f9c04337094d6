/** The bench's profile summary: frames fall into the right categories and time adds up. */
import { categorise, summarise } from '../../scripts/profile-summary.js';

describe('profile summary', () => {
  it.each([
    ['(idle)', '', 'idle (waiting for the kernel)'],
    ['(garbage collector)', '', 'garbage collection'],
    ['read', '', 'data system calls (pread, pwrite, fdatasync)'],
    ['writeBuffer', '', 'data system calls (pread, pwrite, fdatasync)'],
    ['fdatasync', '', 'data system calls (pread, pwrite, fdatasync)'],
    ['processTicksAndRejections', 'node:internal/process/task_queues', 'fuse-native bridge and Node callbacks'],
    ['_op_read', 'file:///srv/node_modules/fuse-native/index.js', 'fuse-native bridge and Node callbacks'],
    ['', 'file:///srv/dist/lib/fs/lean-dispatch.js', 'fuse-native bridge and Node callbacks'],
    ['splitRange', 'file:///srv/dist/lib/remap/split.js', 'remapfs code'],
    ['(program)', '', 'other'],
    ['readFileSync', 'node:fs', 'other'],
  ])('%s in %s is %s', (fn, url, want) => {
    expect(categorise(fn, url)).toBe(want);
  });

  it('adds the time deltas of each sample to its frame category', () => {
    const profile = {
      nodes: [
        { id: 1, callFrame: { functionName: '(idle)', url: '' } },
        { id: 2, callFrame: { functionName: 'read', url: '' } },
        { id: 3, callFrame: { functionName: 'splitRange', url: '/x/dist/lib/remap/split.js' } },
      ],
      samples: [1, 2, 2, 3, 1],
      timeDeltas: [1000, 2000, 3000, 500, 4000],
    };
    const ms = summarise(profile);
    expect(ms['idle (waiting for the kernel)']).toBe(5);
    expect(ms['data system calls (pread, pwrite, fdatasync)']).toBe(5);
    expect(ms['remapfs code']).toBe(0.5);
    expect(ms['garbage collection']).toBe(0);
  });
});
