/**
 * Recovery: what the slow path does when main or a spare block fails, the way
 * good disk firmware does. RemapDevice hands a run here after a disk error
 * (isDiskError) or when the run touches a pending block; nothing else
 * reaches this module, and an error that is not a disk error propagates
 * untouched (a bug must not move data).
 *
 *  - a write that main refuses is redone block by block; each block that still
 *    fails is placed on a spare block (reason write-error), and the write
 *    succeeds while spare blocks remain;
 *  - a read that main refuses is retried (`readRetries`), then redone block by
 *    block. A block that reads on a retry is weak: its data is copied to the
 *    spare at once (weak-read), but only whole: if a sector of it fails again
 *    (readRetries more reads), it becomes pending instead, never a copy with
 *    zeros in it. A block that keeps failing is read sector by
 *    sector; it becomes pending (persisted), and the request fails with EIO
 *    only when it covers an unreadable sector;
 *  - a write to a pending block remaps it (the readable rest is copied);
 *  - a spare block that fails a write is retired and another one is used;
 *  - a read that fails because main itself is not there (isDeviceGone:
 *    ENODEV, ENXIO, ENOMEDIUM) says nothing about its blocks: the request
 *    fails with that error and nothing is marked (a disk unplugged for a
 *    moment must not fill the table with pending blocks, nor a block's
 *    unread rest be placed as zeros). A whole-block write that fails so is
 *    still placed on the spare; a partial one fails (salvage.ts).
 *
 * Crash order of every remap (the crash-safety argument):
 *   1. the block's data is assembled in memory (unreadable sectors as zeros);
 *   2. it is written to a free spare block, and the spare is flushed;
 *   3. the journal commits the entry (durable when commitRemap returns);
 *   4. only then does the in-memory index switch the block to the spare;
 *   5. only then is the request that caused it answered, and the block's
 *      route published to a mirror (RemapDevice, in a finally).
 * Steps 2-4 are placement.ts. A crash before 3 leaves the old mapping and an
 * unused spare block; after 3 the spare block already holds the data. Requests
 * are synchronous and their blocks fenced, so no I/O runs between 1 and 4 and
 * no reader (JS or engine thread) sees a half-switched block.
 *
 * `blockBuf` is the one-block scratch buffer; each method is done with it
 * before it returns.
 */
import { SECTOR_BYTES } from '../format/layout.js';
import type { BlockDevice } from '../block/device.js';
import { isDeviceGone, isDiskError, isKnownFailure } from '../block/disk-error.js';
import { ioError } from '../block/fault-device.js';
import type { RemapfsError } from '../errors.js';
import type { RemapReason } from '../format/slot-codec.js';
import type { RemapIndex } from './index-table.js';
import type { Placement } from './placement.js';
import { eachBlock } from './split.js';
import { readSectors, salvage, spareView } from './salvage.js';
import type { IoCounters, RemapJournal, RemapResult } from './types.js';

export interface RecoveryParts {
  name: string;
  main: BlockDevice;
  spare: BlockDevice;
  blockSize: number;
  sizeBytes: number;
  index: RemapIndex;
  journal: RemapJournal;
  counters: IoCounters;
  onEvent: (line: string) => void;
}

export class Recovery {
  readRetries: number;
  private readonly p: RecoveryParts;
  private readonly placement: Placement;
  private readonly blockBuf: Buffer;
  private readonly sectorsPerBlock: number;

  constructor(parts: RecoveryParts, placement: Placement, readRetries: number) {
    this.p = parts;
    this.placement = placement;
    this.readRetries = readRetries;
    this.blockBuf = Buffer.alloc(parts.blockSize);
    this.sectorsPerBlock = parts.blockSize / SECTOR_BYTES;
  }

  // ---- entry points (RemapDevice has fenced the blocks) ------------------

  /** Moves `mainBlock` to a spare block with its current data (the caller checked the block number). */
  remapBlock(mainBlock: number, reason: RemapReason): RemapResult {
    const current = this.p.index.spareBlockOf(mainBlock);
    if (current >= 0) return { mainBlock, spareBlock: current, already: true, lostSectors: 0 };
    const lost = new Set<number>();
    salvage(this.p.main, mainBlock * this.p.blockSize, this.blockBuf, 0, this.p.blockSize, lost);
    const lostSectors = lost.size;
    if (lostSectors) this.noteSectors(mainBlock, lost, 'lost');
    const spareBlock = this.placement.place(mainBlock, this.blockBuf, reason, lostSectors);
    return { mainBlock, spareBlock, already: false, lostSectors };
  }

  /** The scanner found `block` unreadable: pending (true), or copied to the spare as weak if every sector reads. */
  scanFoundUnreadable(block: number): boolean {
    if (this.p.index.spareBlockOf(block) >= 0) return false;
    const bad = this.unreadableSectors(block);
    if (bad.size === 0) {
      this.p.counters.weakReads++;
      this.tryProactiveRemap(block, 'weak-read');
      return false;
    }
    this.markPending(block, bad);
    return true;
  }

  /** Known-bad sectors from a list: copied to the spare if the block still reads (imported), else pending. */
  importBadSectors(block: number, sectorsInBlock: ReadonlySet<number>): 'remapped' | 'pending' | 'already' {
    if (this.p.index.spareBlockOf(block) >= 0) {
      this.noteSectors(block, sectorsInBlock, 'imported');
      return 'already';
    }
    try {
      this.p.main.read(this.blockBuf, block * this.p.blockSize);
    } catch (err) {
      if (!isDiskError(err) || isDeviceGone(err)) throw err;
      this.markPending(block, sectorsInBlock, 'imported');
      return 'pending';
    }
    this.noteSectors(block, sectorsInBlock, 'imported');
    this.placement.place(block, this.blockBuf, 'imported', 0);
    return 'remapped';
  }

  // ---- reads -------------------------------------------------------------

  /** A main run touching a pending block: read it as is (it may avoid the bad sectors), else recover. */
  readPendingRun(part: Buffer, byteOffset: number): void {
    try {
      this.p.main.read(part, byteOffset);
    } catch (err) {
      if (!isDiskError(err) || isDeviceGone(err)) throw err;
      this.mainReadFailed(part, byteOffset);
    }
  }

  /**
   * A main run failed: go block by block. For a one-block run, the failed read
   * was the block's first attempt, so a success now means the block is weak.
   * In a longer run a block that failed only once cannot be told from its
   * neighbours; it is caught the next time it fails.
   */
  mainReadFailed(part: Buffer, byteOffset: number): void {
    this.p.counters.mainReadErrors++;
    const bs = this.p.blockSize;
    const firstBlock = Math.floor(byteOffset / bs);
    const oneBlock = firstBlock === Math.floor((byteOffset + part.length - 1) / bs);
    let unreadable: RemapfsError | undefined;
    eachBlock(part, byteOffset, bs, (block, seg, pos, segEnd) => {
      const outcome = this.readWithRetries(seg, pos, oneBlock ? 1 : 0);
      if (outcome === 'weak') {
        this.p.counters.weakReads++;
        this.tryProactiveRemap(block, 'weak-read');
      } else if (outcome === 'failed') {
        const bad = this.unreadableSectors(block);
        if (bad.size === 0) {
          // Fails as a block but every sector reads: weak, not lost.
          this.p.counters.weakReads++;
          readSectors(this.p.main, seg, pos);
          this.tryProactiveRemap(block, 'weak-read');
        } else {
          this.markPending(block, bad);
          const blockFirstSector = block * this.sectorsPerBlock;
          let covered = false;
          for (let s = Math.floor(pos / SECTOR_BYTES); s * SECTOR_BYTES < segEnd; s++) if (bad.has(s - blockFirstSector)) covered = true;
          if (covered) unreadable ??= ioError('read', `${this.p.name} block ${block} (unreadable sectors, now pending)`);
          else readSectors(this.p.main, seg, pos); // the request avoids the bad sectors
        }
      }
    });
    if (unreadable) {
      this.p.counters.uncorrectableReads++;
      throw unreadable;
    }
  }

  /** A spare run failed its first read (`first`): retry up to readRetries times. */
  spareReadFailed(part: Buffer, spareOffset: number, first: unknown): void {
    this.p.counters.spareErrors++;
    let last = first;
    for (let attempt = 1; attempt <= this.readRetries; attempt++) {
      try {
        this.p.spare.read(part, spareOffset);
        return;
      } catch (err) {
        if (!isDiskError(err)) throw err;
        this.p.counters.spareErrors++;
        last = err;
      }
    }
    this.p.counters.uncorrectableReads++;
    throw last;
  }

  /** Reads with retries; `failedAlready` attempts count as made and failed. */
  private readWithRetries(seg: Buffer, byteOffset: number, failedAlready: number): 'ok' | 'weak' | 'failed' {
    for (let attempt = failedAlready; attempt <= this.readRetries; attempt++) {
      try {
        this.p.main.read(seg, byteOffset);
        return attempt === 0 ? 'ok' : 'weak';
      } catch (err) {
        if (!isDiskError(err) || isDeviceGone(err)) throw err;
        this.p.counters.mainReadErrors++;
      }
    }
    return 'failed';
  }

  /** The unreadable sectors of a main block, as indexes inside the block. */
  private unreadableSectors(block: number): Set<number> {
    const bad = new Set<number>();
    const probe = this.blockBuf.subarray(0, SECTOR_BYTES);
    for (let i = 0; i < this.sectorsPerBlock; i++) {
      try {
        this.p.main.read(probe, block * this.p.blockSize + i * SECTOR_BYTES);
      } catch (err) {
        if (!isDiskError(err) || isDeviceGone(err)) throw err;
        bad.add(i);
      }
    }
    return bad;
  }

  /** Persists a block as pending (once), and which of its sectors are unreadable. */
  private markPending(block: number, bad: ReadonlySet<number>, source = 'read-error'): void {
    this.noteSectors(block, bad, source);
    if (this.p.index.isPending(block)) return;
    this.p.journal.commitRemap({ mainBlock: block, spareBlock: -1, reason: source === 'imported' ? 'imported' : 'read-error', state: 'pending', lostSectors: bad.size, createdAt: this.placement.now() });
    this.p.index.markPending(block);
    this.p.onEvent(`block ${block} is pending: ${bad.size} unreadable sector(s); the next write to it remaps it`);
  }

  /**
   * A weak block is moved while it reads; failing to (no spare left, metadata refused, a disk error) is only logged.
   * Only whole: a sector that still fails after readRetries more reads makes the block pending instead, so its
   * readers keep getting the data or EIO, never the zeros an automatic move would put in its place.
   */
  private tryProactiveRemap(block: number, reason: RemapReason): void {
    try {
      if (this.p.index.spareBlockOf(block) >= 0) return;
      const base = block * this.p.blockSize;
      const lost = new Set<number>();
      salvage(this.p.main, base, this.blockBuf, 0, this.p.blockSize, lost);
      for (const s of [...lost]) {
        const piece = this.blockBuf.subarray(s * SECTOR_BYTES, (s + 1) * SECTOR_BYTES);
        for (let attempt = 1; attempt <= this.readRetries && lost.has(s); attempt++) {
          try {
            this.p.main.read(piece, base + s * SECTOR_BYTES);
            lost.delete(s);
          } catch (err) {
            if (!isDiskError(err) || isDeviceGone(err)) throw err;
          }
        }
      }
      if (lost.size) this.markPending(block, lost);
      else this.placement.place(block, this.blockBuf, reason, 0);
    } catch (err) {
      if (!isKnownFailure(err)) throw err;
      this.p.onEvent(`could not remap weak block ${block}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // ---- writes ------------------------------------------------------------

  /** Writes a main range block by block; blocks main refuses (or pending ones) go to the spare. */
  blockByBlockWrite(part: Buffer, byteOffset: number): void {
    const bs = this.p.blockSize;
    eachBlock(part, byteOffset, bs, (block, seg, pos) => {
      if (this.p.index.isPending(block)) {
        this.remapWithData(block, seg, pos - block * bs, 'read-error', this.p.main);
      } else {
        try {
          this.p.main.write(seg, pos);
        } catch (err) {
          if (!isDiskError(err)) throw err;
          this.p.counters.mainWriteErrors++;
          this.remapWithData(block, seg, pos - block * bs, 'write-error', this.p.main);
        }
      }
    });
  }

  /** A write to remapped blocks failed on the spare: each block whose spare block still fails moves, and the old one is retired. */
  relocateSpareWrite(part: Buffer, byteOffset: number): void {
    const bs = this.p.blockSize;
    eachBlock(part, byteOffset, bs, (block, seg, pos) => {
      const oldSpare = this.p.index.spareBlockOf(block);
      try {
        this.p.spare.write(seg, oldSpare * bs + (pos - block * bs));
      } catch (err) {
        if (!isDiskError(err)) throw err;
        this.p.counters.spareErrors++;
        this.remapWithData(block, seg, pos - block * bs, 'write-error', spareView(this.p.spare, oldSpare, block, this.p.blockSize, this.p.sizeBytes));
        this.placement.retire(oldSpare, `spare block ${oldSpare} failed a write and is retired; block ${block} moved`);
      }
    });
  }

  /** Places `mainBlock` on a new spare block holding `seg` at `offsetInBlock` and, around it, what `source` still holds. */
  private remapWithData(mainBlock: number, seg: Buffer, offsetInBlock: number, reason: RemapReason, source: BlockDevice): void {
    const block = this.blockBuf;
    const lost = new Set<number>();
    if (seg.length < this.p.blockSize) {
      const base = mainBlock * this.p.blockSize;
      salvage(source, base, block, 0, offsetInBlock, lost);
      salvage(source, base, block, offsetInBlock + seg.length, this.p.blockSize, lost);
    }
    seg.copy(block, offsetInBlock);
    if (lost.size && source === this.p.main) this.noteSectors(mainBlock, lost, 'lost');
    this.placement.place(mainBlock, block, reason, lost.size);
  }

  // ---- shared ------------------------------------------------------------

  private noteSectors(block: number, sectorsInBlock: ReadonlySet<number>, source: string): void {
    this.p.journal.noteBadSectors?.([...sectorsInBlock].map((i) => block * this.sectorsPerBlock + i), source);
  }
}

