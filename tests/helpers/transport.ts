/**
 * How the native engine should serve in this jest project (jest.config.cjs): with io_uring workers unless
 * REMAPFS_ENGINE_IO=blocking, and through FUSE over io_uring when those workers take requests with transport auto
 * and the kernel's opt-in is on (jest's global setup turns fuse.enable_uring on where the kernel has it). Under
 * CI=true a kernel without the parameter fails the run: the default transport would go untested. Tests compare
 * servedBy(status.negotiated) with expectedServedBy(), so a daemon that quietly served another way fails.
 */
import * as fs from 'fs';
import { fuseUringOf, ringWorkersOf } from '../../lib/fs/adapter.js';

export interface ServedBy {
  ringWorkers: boolean;
  fuseUring: boolean;
}

/** Whether the engine should take requests through FUSE over io_uring here. */
export function fuseUringExpected(): boolean {
  let param: string;
  try {
    param = fs.readFileSync('/sys/module/fuse/parameters/enable_uring', 'utf8').trim();
  } catch {
    if (process.env.CI === 'true') throw new Error('this kernel has no fuse.enable_uring: FUSE over io_uring (Linux 6.14+) cannot be tested');
    return false;
  }
  return param === 'Y' && ringWorkersOf() !== 0 && fuseUringOf() === 1;
}

export function expectedServedBy(): ServedBy {
  return { ringWorkers: ringWorkersOf() !== 0, fuseUring: fuseUringExpected() };
}

/** What a running native engine says it serves with (its entries register after INIT: ask after the first I/O). */
export function servedBy(n: { ringWorkers: number; fuseUringEntries?: number } | undefined): ServedBy | undefined {
  return n && { ringWorkers: n.ringWorkers > 0, fuseUring: (n.fuseUringEntries ?? 0) > 0 };
}
