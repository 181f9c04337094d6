/**
 * RemapIndex with block numbers of 2^32 and more (a 2 TiB device at 512-byte
 * blocks): its bitmaps must not alias block b with b - 2^32 (a 32-bit shift
 * did, so a spare block looked taken, or freed, because of another).
 */
import { RemapIndex } from '../../lib/remap/index-table.js';
import { spareLayout } from '../../lib/format/layout.js';

const WIDE = 2 ** 32;
const B = 512;

describe('RemapIndex beyond 2^32 blocks', () => {
  it('keeps spare blocks b and b + 2^32 apart: taking, moving and retiring one leaves the other', () => {
    const index = new RemapIndex(64, spareLayout((WIDE + 4096) * B, B));
    const high = WIDE + 100;
    index.set(1, high);
    expect(index.isSpareTaken(100)).toBe(false);
    index.set(2, 100); // refused with the aliasing: "spare block 100 is already taken"
    expect([index.spareBlockOf(1), index.spareBlockOf(2)]).toEqual([high, 100]);
    index.set(1, WIDE + 200); // moving block 1 frees `high`, and must not free spare block 100
    expect([index.isSpareTaken(high), index.isSpareTaken(100)]).toEqual([false, true]);
    index.retire(WIDE + 300);
    expect(index.isSpareTaken(300)).toBe(false);
  });

  it('answers main blocks b and b + 2^32 separately', () => {
    const index = new RemapIndex(WIDE + 64, spareLayout(1 << 30, B));
    const spare = index.allocate();
    index.set(WIDE + 7, spare);
    expect([index.spareBlockOf(WIDE + 7), index.spareBlockOf(7)]).toEqual([spare, -1]);
  });
});
