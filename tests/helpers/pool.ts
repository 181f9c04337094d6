/** Test helper: the n-th block of a spare's pool (ascending), so test tables use only legal spare blocks. */
import type { SpareLayout } from '../../lib/format/layout.js';

export function poolBlockAt(layout: SpareLayout, n: number): number {
  let left = n;
  for (const r of layout.pool) {
    const len = r.endBlock - r.startBlock;
    if (left < len) return r.startBlock + left;
    left -= len;
  }
  throw new RangeError(`the pool has only ${layout.poolBlocks} blocks`);
}
