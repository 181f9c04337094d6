/**
 * In-memory remap index and spare allocator. The I/O path asks it one question
 * per block ("which spare block holds this main block?"): a bitmap rejects the
 * common unremapped case without touching the Map.
 *
 * Invariants: a spare block is in at most one of {in use by a remap, retired};
 * only pool blocks (never metadata slots) are handed out; the index mirrors
 * what the store has committed (callers persist first, then call set/retire).
 */
import type { SpareLookup } from './split.js';
import type { SpareLayout } from '../format/layout.js';
import { TypedHash } from './typed-hash.js';

/* Bitmaps by block number; blocks may be 2^32 or more, so no 32-bit shifts on the index. */
function testBit(bits: Uint8Array, block: number): number {
  return (bits[Math.floor(block / 8)] as number) & (1 << block % 8);
}
function setBit(bits: Uint8Array, block: number): void {
  const i = Math.floor(block / 8);
  bits[i] = (bits[i] as number) | (1 << block % 8);
}
function clearBit(bits: Uint8Array, block: number): void {
  const i = Math.floor(block / 8);
  bits[i] = (bits[i] as number) & ~(1 << block % 8);
}

export class RemapIndex implements SpareLookup {
  readonly virtualBlocks: number;
  readonly layout: SpareLayout;
  private readonly remappedBits: Uint8Array;
  private readonly spareOf: TypedHash;
  /** Bit set for every spare block that is used or retired. */
  private readonly spareTaken: Uint8Array;
  private retiredCount = 0;
  /** Main blocks known to hold unreadable sectors and not yet remapped. */
  private readonly pending = new Set<number>();
  /** Pool range index and block where the next allocation search starts. */
  private cursorRange = 0;
  private cursorBlock: number;

  /** `expectedEntries` sizes the hash table once, instead of growing it entry by entry. */
  constructor(virtualBlocks: number, layout: SpareLayout, expectedEntries = 0) {
    this.virtualBlocks = virtualBlocks;
    this.spareOf = new TypedHash(expectedEntries);
    this.layout = layout;
    this.remappedBits = new Uint8Array(Math.ceil(virtualBlocks / 8));
    this.spareTaken = new Uint8Array(Math.ceil(layout.spareBlocks / 8));
    this.cursorBlock = layout.pool[0]?.startBlock ?? 0;
  }

  get remappedCount(): number {
    return this.spareOf.size;
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  isPending(mainBlock: number): boolean {
    return this.pending.size > 0 && this.pending.has(mainBlock);
  }

  markPending(mainBlock: number): void {
    if (this.spareBlockOf(mainBlock) >= 0) throw new Error(`block ${mainBlock} is remapped and cannot be pending`);
    this.pending.add(mainBlock);
  }

  pendingBlocks(): number[] {
    return [...this.pending].sort((a, b) => a - b);
  }

  get retiredBlocks(): number {
    return this.retiredCount;
  }

  /** Pool blocks neither used nor retired. */
  get freeSpareBlocks(): number {
    return this.layout.poolBlocks - this.spareOf.size - this.retiredCount;
  }

  spareBlockOf(mainBlock: number): number {
    if (testBit(this.remappedBits, mainBlock) === 0) return -1;
    return this.spareOf.get(mainBlock);
  }

  isSpareTaken(spareBlock: number): boolean {
    return testBit(this.spareTaken, spareBlock) !== 0;
  }

  set(mainBlock: number, spareBlock: number): void {
    if (mainBlock < 0 || mainBlock >= this.virtualBlocks) throw new RangeError(`main block ${mainBlock} outside the device`);
    if (this.isSpareTaken(spareBlock)) throw new Error(`spare block ${spareBlock} is already taken`);
    const old = this.spareOf.get(mainBlock);
    if (old >= 0) clearBit(this.spareTaken, old);
    this.pending.delete(mainBlock);
    this.take(mainBlock, spareBlock);
  }

  /** set() for loading a table into a new index, with only the checks a table can fail: repeated blocks. */
  load(mainBlock: number, spareBlock: number): void {
    if (this.isSpareTaken(spareBlock) || this.spareBlockOf(mainBlock) >= 0) throw new Error(`the table repeats main block ${mainBlock} or spare block ${spareBlock}`);
    this.take(mainBlock, spareBlock);
  }

  private take(mainBlock: number, spareBlock: number): void {
    this.spareOf.set(mainBlock, spareBlock);
    setBit(this.remappedBits, mainBlock);
    setBit(this.spareTaken, spareBlock);
  }

  retire(spareBlock: number): void {
    if (this.isSpareTaken(spareBlock)) throw new Error(`spare block ${spareBlock} is in use and cannot be retired`);
    setBit(this.spareTaken, spareBlock);
    this.retiredCount++;
  }

  /** A free pool block, or -1 when the pool is exhausted. Does not take it: set() does. */
  allocate(): number {
    const pool = this.layout.pool;
    if (this.freeSpareBlocks <= 0) return -1;
    for (let scanned = 0; scanned <= 2 * pool.length + 1; scanned++) {
      const range = pool[this.cursorRange];
      if (!range) {
        this.cursorRange = 0;
        this.cursorBlock = pool[0]?.startBlock ?? 0;
        continue;
      }
      if (this.cursorBlock < range.startBlock) this.cursorBlock = range.startBlock;
      for (; this.cursorBlock < range.endBlock; this.cursorBlock++) {
        if (!this.isSpareTaken(this.cursorBlock)) return this.cursorBlock;
      }
      this.cursorRange++;
    }
    return -1;
  }

  /** Calls `fn` with the main block of every remap, in no particular order (allocates nothing). */
  forEachRemapped(fn: (mainBlock: number, spareBlock: number) => void): void {
    this.spareOf.forEach((spareBlock, mainBlock) => fn(mainBlock, spareBlock));
  }

  /** Every remap, ascending by main block. */
  entries(): Array<{ mainBlock: number; spareBlock: number }> {
    const out: Array<{ mainBlock: number; spareBlock: number }> = [];
    this.spareOf.forEach((spareBlock, mainBlock) => out.push({ mainBlock, spareBlock }));
    return out.sort((a, b) => a.mainBlock - b.mainBlock);
  }
}
