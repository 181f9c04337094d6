/**
 * RemapDevice: the virtual device of a pair. It wraps `main` and `spare` and
 * sends each block of a request to main, or to the spare block the index names.
 *
 * Ordering of a remap (the crash-safety argument):
 *   1. the block's current data is read (sector by sector if the block read fails);
 *   2. it is written to a free spare block, and the spare is flushed;
 *   3. the journal commits the entry (durable when commitRemap returns);
 *   4. only then does the in-memory index switch the block to the spare.
 * A crash before 3 leaves the old mapping and an unused spare block; after 3
 * the spare block already holds the data. Requests are synchronous, so no I/O
 * runs between 1 and 4 and no reader sees a half-switched block.
 */
import { BlockDevice, SECTOR_BYTES } from '../block/device';
import { RemapfsError } from '../errors';
import { RemapIndex } from './index-table';
import { RunList, splitRange, TARGET_MAIN } from './split';
import type { RemapReason, RemapRecord } from '../store/db';

export interface RemapJournal {
  /** Durably records an entry before it takes effect. */
  commitRemap(entry: RemapRecord): void;
  /** Durably records that a spare block must never be used again. */
  commitRetired(spareBlock: number): void;
}

export interface IoCounters {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
  readErrors: number;
  writeErrors: number;
  flushes: number;
  /** Remaps done by this process (SMART: reallocation events). */
  remapEvents: number;
}

export interface RemapResult {
  mainBlock: number;
  spareBlock: number;
  /** True when the block was already remapped and nothing changed. */
  already: boolean;
  /** Sectors of the block that could not be read and were zero-filled. */
  lostSectors: number;
}

export class RemapDevice implements BlockDevice {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize: number;
  readonly index: RemapIndex;
  readonly counters: IoCounters = {
    readOps: 0,
    writeOps: 0,
    readBytes: 0,
    writeBytes: 0,
    readErrors: 0,
    writeErrors: 0,
    flushes: 0,
    remapEvents: 0,
  };
  private readonly main: BlockDevice;
  private readonly spare: BlockDevice;
  private readonly journal: RemapJournal;
  private readonly runs = new RunList();
  private readonly blockBuf: Buffer;
  private readonly now: () => number;

  constructor(name: string, main: BlockDevice, spare: BlockDevice, blockSize: number, index: RemapIndex, journal: RemapJournal, now: () => number = Date.now) {
    this.name = name;
    this.main = main;
    this.spare = spare;
    this.blockSize = blockSize;
    this.index = index;
    this.journal = journal;
    this.sizeBytes = index.virtualBlocks * blockSize;
    this.blockBuf = Buffer.alloc(blockSize);
    this.now = now;
  }

  read(buf: Buffer, byteOffset: number): void {
    this.checkRange('read', buf.length, byteOffset);
    this.counters.readOps++;
    try {
      this.transfer(false, buf, byteOffset);
    } catch (err) {
      this.counters.readErrors++;
      throw err;
    }
    this.counters.readBytes += buf.length;
  }

  write(buf: Buffer, byteOffset: number): void {
    this.checkRange('write', buf.length, byteOffset);
    this.counters.writeOps++;
    try {
      this.transfer(true, buf, byteOffset);
    } catch (err) {
      this.counters.writeErrors++;
      throw err;
    }
    this.counters.writeBytes += buf.length;
  }

  flush(): void {
    this.counters.flushes++;
    this.main.flush();
    this.spare.flush();
  }

  close(): void {
    try {
      this.main.close();
    } finally {
      this.spare.close();
    }
  }

  /**
   * Moves `mainBlock` to a spare block with its current data (see the ordering
   * above). Unreadable sectors become zeros and are counted as lost.
   */
  remapBlock(mainBlock: number, reason: RemapReason): RemapResult {
    if (!Number.isInteger(mainBlock) || mainBlock < 0 || mainBlock >= this.index.virtualBlocks) {
      throw new RemapfsError('remap', `block ${mainBlock} of ${this.name}`, `outside the device (${this.index.virtualBlocks} blocks)`);
    }
    const current = this.index.spareBlockOf(mainBlock);
    if (current >= 0) return { mainBlock, spareBlock: current, already: true, lostSectors: 0 };
    const lostSectors = this.salvageBlock(mainBlock, this.blockBuf);
    for (;;) {
      const spareBlock = this.index.allocate();
      if (spareBlock < 0) {
        throw new RemapfsError('remap', `block ${mainBlock} of ${this.name}`, 'spare pool exhausted', 'evacuate the data to a new disk');
      }
      try {
        this.spare.write(this.blockBuf, spareBlock * this.blockSize);
        this.spare.flush();
      } catch {
        // The spare block itself is bad: never use it again, try the next one.
        this.journal.commitRetired(spareBlock);
        this.index.retire(spareBlock);
        continue;
      }
      this.journal.commitRemap({ mainBlock, spareBlock, reason, state: 'remapped', lostSectors, createdAt: this.now() });
      this.index.set(mainBlock, spareBlock);
      this.counters.remapEvents++;
      return { mainBlock, spareBlock, already: false, lostSectors };
    }
  }

  /** Reads a main block into `target`; on failure retries sector by sector, zero-filling what stays unreadable. */
  private salvageBlock(mainBlock: number, target: Buffer): number {
    const base = mainBlock * this.blockSize;
    try {
      this.main.read(target, base);
      return 0;
    } catch {
      let lost = 0;
      for (let off = 0; off < this.blockSize; off += SECTOR_BYTES) {
        const sector = target.subarray(off, off + SECTOR_BYTES);
        try {
          this.main.read(sector, base + off);
        } catch {
          sector.fill(0);
          lost++;
        }
      }
      return lost;
    }
  }

  private transfer(isWrite: boolean, buf: Buffer, byteOffset: number): void {
    const runs = this.runs;
    const n = splitRange(byteOffset, buf.length, this.blockSize, this.index, runs);
    for (let i = 0; i < n; i++) {
      const dev = runs.target[i] === TARGET_MAIN ? this.main : this.spare;
      const bufOffset = runs.bufOffset[i] as number;
      const len = runs.byteLength[i] as number;
      const part = n === 1 ? buf : buf.subarray(bufOffset, bufOffset + len);
      if (isWrite) dev.write(part, runs.deviceOffset[i] as number);
      else dev.read(part, runs.deviceOffset[i] as number);
    }
  }

  private checkRange(op: string, byteLength: number, byteOffset: number): void {
    if (byteOffset < 0 || byteOffset + byteLength > this.sizeBytes) {
      throw new RemapfsError(op, `${this.name} bytes ${byteOffset}+${byteLength}`, `beyond the end of the device (${this.sizeBytes} bytes)`);
    }
  }
}
