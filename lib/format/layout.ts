/**
 * Geometry of a pair (pure). The virtual device is the whole blocks of main.
 * The spare holds SLOT_COUNT metadata slots spread evenly from its first block
 * to its last (so one bad region cannot take them all); every other block is
 * the spare pool. docs/format.md is the normative description.
 */

/** The unit of device I/O and of lost-sector counts. */
export const SECTOR_BYTES = 512;
export const MIN_BLOCK_BYTES = 512;
export const MAX_BLOCK_BYTES = 65536;
export const SLOT_COUNT = 5;
export const SLOT_ENTRY_BYTES = 32;
export const SLOT_PAGE_BYTES = 4096;
export const SLOT_ENTRIES_PER_PAGE = SLOT_PAGE_BYTES / SLOT_ENTRY_BYTES;
/** Fixed header before the page CRC table. */
export const SLOT_HEADER_BYTES = 512;

export interface BlockRange {
  /** First block, inclusive. */
  startBlock: number;
  /** Last block, exclusive. */
  endBlock: number;
}

export interface SpareLayout {
  blockSize: number;
  spareBlocks: number;
  slotBlocks: number;
  /** Capacity of one slot in remap entries: one per spare block. */
  slotEntryCapacity: number;
  slots: BlockRange[];
  /** Spare blocks that may hold remapped data, ascending, disjoint from slots. */
  pool: BlockRange[];
  poolBlocks: number;
}

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

export function validateBlockSize(blockSize: number): string | undefined {
  if (!isPowerOfTwo(blockSize) || blockSize < MIN_BLOCK_BYTES || blockSize > MAX_BLOCK_BYTES) {
    return `block size must be a power of two from ${MIN_BLOCK_BYTES} to ${MAX_BLOCK_BYTES} bytes, got ${blockSize}`;
  }
  return undefined;
}

function roundUp(n: number, unit: number): number {
  return Math.ceil(n / unit) * unit;
}

/** Bytes before the first entry page of a slot: the fixed header and the page CRC table. */
export function slotHeaderRegionBytes(entryCapacity: number): number {
  const pages = Math.ceil(entryCapacity / SLOT_ENTRIES_PER_PAGE);
  return roundUp(SLOT_HEADER_BYTES + 4 * pages, SLOT_PAGE_BYTES);
}

export function slotBytesFor(entryCapacity: number, blockSize: number): number {
  const pages = Math.ceil(entryCapacity / SLOT_ENTRIES_PER_PAGE);
  return roundUp(slotHeaderRegionBytes(entryCapacity) + pages * SLOT_PAGE_BYTES, blockSize);
}

/** Layout of a spare of `spareBytes`; poolBlocks is 0 when it is too small to be useful. */
export function spareLayout(spareBytes: number, blockSize: number): SpareLayout {
  const spareBlocks = Math.floor(spareBytes / blockSize);
  const slotBlocks = slotBytesFor(spareBlocks, blockSize) / blockSize;
  const slots: BlockRange[] = [];
  const pool: BlockRange[] = [];
  if (spareBlocks < SLOT_COUNT * slotBlocks) {
    return { blockSize, spareBlocks, slotBlocks, slotEntryCapacity: spareBlocks, slots, pool, poolBlocks: 0 };
  }
  const lastStart = spareBlocks - slotBlocks;
  let cursor = 0;
  for (let i = 0; i < SLOT_COUNT; i++) {
    const startBlock = Math.floor((i * lastStart) / (SLOT_COUNT - 1));
    slots.push({ startBlock, endBlock: startBlock + slotBlocks });
    if (startBlock > cursor) pool.push({ startBlock: cursor, endBlock: startBlock });
    cursor = startBlock + slotBlocks;
  }
  const poolBlocks = pool.reduce((sum, r) => sum + r.endBlock - r.startBlock, 0);
  return { blockSize, spareBlocks, slotBlocks, slotEntryCapacity: spareBlocks, slots, pool, poolBlocks };
}

export function inRanges(block: number, ranges: readonly BlockRange[]): boolean {
  for (const r of ranges) if (block >= r.startBlock && block < r.endBlock) return true;
  return false;
}
