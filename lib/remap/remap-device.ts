/**
 * RemapDevice: the virtual device of a pair. It wraps `main` and `spare` and
 * sends each block of a request to main, or to the spare block the index names,
 * and it behaves like good disk firmware when main fails:
 *
 *  - a write that main refuses is redone block by block; each block that still
 *    fails is placed on a spare block (reason write-error), and the write
 *    succeeds while spare blocks remain;
 *  - a read that main refuses is retried (`readRetries`), then redone block by
 *    block. A block that reads on a retry is weak: its data is copied to the
 *    spare at once (weak-read). A block that keeps failing is read sector by
 *    sector; it becomes pending (persisted), and the request fails with EIO
 *    only when it covers an unreadable sector;
 *  - a write to a pending block remaps it (the readable rest is copied);
 *  - a spare block that fails a write is retired and another one is used.
 *
 * Ordering of every remap (the crash-safety argument):
 *   1. the block's data is assembled in memory (unreadable sectors as zeros);
 *   2. it is written to a free spare block, and the spare is flushed;
 *   3. the journal commits the entry (durable when commitRemap returns);
 *   4. only then does the in-memory index switch the block to the spare;
 *   5. only then is the request that caused it answered.
 * A crash before 3 leaves the old mapping and an unused spare block; after 3
 * the spare block already holds the data. Requests are synchronous, so no I/O
 * runs between 1 and 4 and no reader sees a half-switched block.
 */
import { SECTOR_BYTES } from '../format/layout';
import { BlockDevice, checkRange } from '../block/device';
import { ioError } from '../block/fault-device';
import { RemapfsError } from '../errors';
import { RemapIndex } from './index-table';
import { RunList, splitRange, TARGET_MAIN } from './split';
import type { RemapReason } from '../format/slot-codec';
import type { RemapRecord } from '../store/db';

export interface RemapJournal {
  /** Durably records an entry (remapped or pending) before it takes effect. */
  commitRemap(entry: RemapRecord): void;
  /** Durably records that a spare block must never be used again. */
  commitRetired(spareBlock: number): void;
  /** Records which 512-byte sectors of main were found unreadable (optional). */
  noteBadSectors?(sectors: readonly number[], source: string): void;
}

export interface IoCounters {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
  /** Requests answered with an error. */
  readErrors: number;
  writeErrors: number;
  flushes: number;
  /** Remaps done by this process (SMART: reallocation event count). */
  remapEvents: number;
  /** Reads answered with EIO because data was unreadable (SMART: reported uncorrectable). */
  uncorrectableReads: number;
  /** Main I/O errors seen, before any recovery. */
  mainReadErrors: number;
  mainWriteErrors: number;
  spareErrors: number;
  /** Reads that succeeded only on a retry. */
  weakReads: number;
}

export interface RemapResult {
  mainBlock: number;
  spareBlock: number;
  /** True when the block was already remapped and nothing changed. */
  already: boolean;
  /** Sectors of the block that could not be read and were zero-filled. */
  lostSectors: number;
}

export interface RemapDeviceOptions {
  /** Extra attempts after a failed main read (default 2). */
  readRetries?: number;
  now?: () => number;
  /** Told about every remap, pending block and retirement (not on the hot path). */
  onEvent?: (line: string) => void;
}

export function newCounters(): IoCounters {
  return {
    readOps: 0,
    writeOps: 0,
    readBytes: 0,
    writeBytes: 0,
    readErrors: 0,
    writeErrors: 0,
    flushes: 0,
    remapEvents: 0,
    uncorrectableReads: 0,
    mainReadErrors: 0,
    mainWriteErrors: 0,
    spareErrors: 0,
    weakReads: 0,
  };
}

export class RemapDevice implements BlockDevice {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize: number;
  readonly index: RemapIndex;
  readonly counters: IoCounters = newCounters();
  readRetries: number;
  private readonly main: BlockDevice;
  private readonly spare: BlockDevice;
  private readonly journal: RemapJournal;
  private readonly runs = new RunList();
  private readonly blockBuf: Buffer;
  private readonly sectorsPerBlock: number;
  private readonly now: () => number;
  private readonly onEvent: (line: string) => void;

  constructor(name: string, main: BlockDevice, spare: BlockDevice, blockSize: number, index: RemapIndex, journal: RemapJournal, opts: RemapDeviceOptions = {}) {
    this.name = name;
    this.main = main;
    this.spare = spare;
    this.blockSize = blockSize;
    this.index = index;
    this.journal = journal;
    this.sizeBytes = index.virtualBlocks * blockSize;
    this.blockBuf = Buffer.alloc(blockSize);
    this.sectorsPerBlock = blockSize / SECTOR_BYTES;
    this.readRetries = opts.readRetries ?? 2;
    this.now = opts.now ?? Date.now;
    this.onEvent = opts.onEvent ?? (() => undefined);
  }

  read(buf: Buffer, byteOffset: number): void {
    checkRange(this, 'read', buf.length, byteOffset);
    this.counters.readOps++;
    try {
      const runs = this.runs;
      const n = splitRange(byteOffset, buf.length, this.blockSize, this.index, runs);
      for (let i = 0; i < n; i++) {
        const bufOffset = runs.bufOffset[i] as number;
        const len = runs.byteLength[i] as number;
        const part = n === 1 ? buf : buf.subarray(bufOffset, bufOffset + len);
        if (runs.target[i] === TARGET_MAIN) {
          try {
            this.main.read(part, byteOffset + bufOffset);
          } catch {
            this.counters.mainReadErrors++;
            this.recoverMainRead(part, byteOffset + bufOffset);
          }
        } else {
          this.spareRead(part, runs.deviceOffset[i] as number);
        }
      }
    } catch (err) {
      this.counters.readErrors++;
      throw err;
    }
    this.counters.readBytes += buf.length;
  }

  write(buf: Buffer, byteOffset: number): void {
    checkRange(this, 'write', buf.length, byteOffset);
    this.counters.writeOps++;
    if (this.dirtyBlocks) {
      const last = Math.floor((byteOffset + buf.length - 1) / this.blockSize);
      for (let b = Math.floor(byteOffset / this.blockSize); b <= last; b++) this.dirtyBlocks.add(b);
    }
    try {
      this.writeRange(buf, byteOffset);
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

  /** Manual remap: moves `mainBlock` to a spare block with its current data. */
  remapBlock(mainBlock: number, reason: RemapReason): RemapResult {
    this.checkBlock(mainBlock);
    const current = this.index.spareBlockOf(mainBlock);
    if (current >= 0) return { mainBlock, spareBlock: current, already: true, lostSectors: 0 };
    const lost = new Set<number>();
    this.salvage(this.main, mainBlock * this.blockSize, this.blockBuf, 0, this.blockSize, lost);
    const lostSectors = lost.size;
    if (lostSectors) this.journal.noteBadSectors?.([...lost].map((i) => mainBlock * this.sectorsPerBlock + i), 'lost');
    const spareBlock = this.place(mainBlock, this.blockBuf, reason, lostSectors);
    return { mainBlock, spareBlock, already: false, lostSectors };
  }

  // ---- scanning ----------------------------------------------------------

  /** Reads main past any cache (for the scanner); returns the time taken in ms. Throws on an I/O error. */
  timedMainRead(buf: Buffer, byteOffset: number): number {
    const t0 = performance.now();
    if (this.main.readUncached) this.main.readUncached(buf, byteOffset);
    else this.main.read(buf, byteOffset);
    return performance.now() - t0;
  }

  /**
   * The scanner found `block` unreadable: persist it as pending (or, if every
   * sector reads, copy it to the spare as weak). Returns true when pending.
   */
  scanFoundUnreadable(block: number): boolean {
    if (this.index.spareBlockOf(block) >= 0) return false;
    const bad = this.unreadableSectors(block);
    if (bad.size === 0) {
      this.counters.weakReads++;
      this.tryProactiveRemap(block, 'weak-read');
      return false;
    }
    this.markPending(block, bad);
    return true;
  }

  // ---- reads -------------------------------------------------------------

  private spareRead(part: Buffer, spareOffset: number): void {
    for (let attempt = 0; ; attempt++) {
      try {
        this.spare.read(part, spareOffset);
        return;
      } catch (err) {
        this.counters.spareErrors++;
        if (attempt >= this.readRetries) {
          this.counters.uncorrectableReads++;
          throw err;
        }
      }
    }
  }

  /**
   * A main run failed: go block by block. For a one-block run, the failed read
   * was the block's first attempt, so a success now means the block is weak.
   * In a longer run a block that failed only once cannot be told from its
   * neighbours; it is caught the next time it fails.
   */
  private recoverMainRead(part: Buffer, byteOffset: number): void {
    const firstBlock = Math.floor(byteOffset / this.blockSize);
    const oneBlock = firstBlock === Math.floor((byteOffset + part.length - 1) / this.blockSize);
    let unreadable: RemapfsError | undefined;
    const end = byteOffset + part.length;
    for (let pos = byteOffset; pos < end; ) {
      const block = Math.floor(pos / this.blockSize);
      const segEnd = Math.min(end, (block + 1) * this.blockSize);
      const seg = part.subarray(pos - byteOffset, segEnd - byteOffset);
      const outcome = this.readWithRetries(seg, pos, oneBlock ? 1 : 0);
      if (outcome === 'weak') {
        this.counters.weakReads++;
        this.tryProactiveRemap(block, 'weak-read');
      } else if (outcome === 'failed') {
        const bad = this.unreadableSectors(block);
        if (bad.size === 0) {
          // Fails as a block but every sector reads: weak, not lost.
          this.counters.weakReads++;
          this.readSectors(this.main, seg, pos);
          this.tryProactiveRemap(block, 'weak-read');
        } else {
          this.markPending(block, bad);
          const blockFirstSector = block * this.sectorsPerBlock;
          let covered = false;
          for (let s = Math.floor(pos / SECTOR_BYTES); s * SECTOR_BYTES < segEnd; s++) if (bad.has(s - blockFirstSector)) covered = true;
          if (covered) unreadable ??= ioError('read', `${this.name} block ${block} (unreadable sectors, now pending)`);
          else this.readSectors(this.main, seg, pos); // the request avoids the bad sectors
        }
      }
      pos = segEnd;
    }
    if (unreadable) {
      this.counters.uncorrectableReads++;
      throw unreadable;
    }
  }

  /** Reads with retries; `failedAlready` attempts count as made and failed. */
  private readWithRetries(seg: Buffer, byteOffset: number, failedAlready: number): 'ok' | 'weak' | 'failed' {
    for (let attempt = failedAlready; attempt <= this.readRetries; attempt++) {
      try {
        this.main.read(seg, byteOffset);
        return attempt === 0 ? 'ok' : 'weak';
      } catch {
        this.counters.mainReadErrors++;
      }
    }
    return 'failed';
  }

  private readSectors(dev: BlockDevice, seg: Buffer, byteOffset: number): void {
    for (let off = 0; off < seg.length; ) {
      const abs = byteOffset + off;
      const sectorEnd = (Math.floor(abs / SECTOR_BYTES) + 1) * SECTOR_BYTES;
      const len = Math.min(seg.length - off, sectorEnd - abs);
      dev.read(seg.subarray(off, off + len), abs);
      off += len;
    }
  }

  /** The unreadable sectors of a main block, as indexes inside the block. */
  private unreadableSectors(block: number): Set<number> {
    const bad = new Set<number>();
    const probe = this.blockBuf.subarray(0, SECTOR_BYTES);
    for (let i = 0; i < this.sectorsPerBlock; i++) {
      try {
        this.main.read(probe, block * this.blockSize + i * SECTOR_BYTES);
      } catch {
        bad.add(i);
      }
    }
    return bad;
  }

  /** Persists a block as pending (once), and which of its sectors are unreadable. */
  private markPending(block: number, bad: ReadonlySet<number>, source = 'read-error'): void {
    this.journal.noteBadSectors?.([...bad].map((i) => block * this.sectorsPerBlock + i), source);
    if (this.index.isPending(block)) return;
    this.journal.commitRemap({ mainBlock: block, spareBlock: -1, reason: source === 'imported' ? 'imported' : 'read-error', state: 'pending', lostSectors: bad.size, createdAt: this.now() });
    this.index.markPending(block);
    this.onEvent(`block ${block} is pending: ${bad.size} unreadable sector(s); the next write to it remaps it`);
  }

  /**
   * Known-bad sectors from a list (badblocks, a ddrescue mapfile): the block is
   * copied to the spare now if it still reads (reason imported), else it
   * becomes pending. The listed sectors are recorded either way.
   */
  importBadSectors(block: number, sectorsInBlock: ReadonlySet<number>): 'remapped' | 'pending' | 'already' {
    this.checkBlock(block);
    if (this.index.spareBlockOf(block) >= 0) {
      this.journal.noteBadSectors?.([...sectorsInBlock].map((i) => block * this.sectorsPerBlock + i), 'imported');
      return 'already';
    }
    try {
      this.main.read(this.blockBuf, block * this.blockSize);
    } catch {
      this.markPending(block, sectorsInBlock, 'imported');
      return 'pending';
    }
    this.journal.noteBadSectors?.([...sectorsInBlock].map((i) => block * this.sectorsPerBlock + i), 'imported');
    this.place(block, this.blockBuf, 'imported', 0);
    return 'remapped';
  }

  /** Blocks written since tracking started (for copies that must catch up with writers), or undefined. */
  dirtyBlocks: Set<number> | undefined;

  private tryProactiveRemap(block: number, reason: RemapReason): void {
    try {
      this.remapBlock(block, reason);
    } catch (err) {
      this.onEvent(`could not remap weak block ${block}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  // ---- writes ------------------------------------------------------------

  private writeRange(buf: Buffer, byteOffset: number): void {
    const runs = this.runs;
    const n = splitRange(byteOffset, buf.length, this.blockSize, this.index, runs);
    for (let i = 0; i < n; i++) {
      const bufOffset = runs.bufOffset[i] as number;
      const len = runs.byteLength[i] as number;
      const part = n === 1 ? buf : buf.subarray(bufOffset, bufOffset + len);
      const deviceOffset = runs.deviceOffset[i] as number;
      if (runs.target[i] === TARGET_MAIN) {
        if (this.index.pendingCount > 0 && this.touchesPending(byteOffset + bufOffset, len)) {
          this.blockByBlockWrite(part, byteOffset + bufOffset);
        } else {
          try {
            this.main.write(part, deviceOffset);
          } catch {
            this.counters.mainWriteErrors++;
            this.blockByBlockWrite(part, byteOffset + bufOffset);
          }
        }
      } else {
        try {
          this.spare.write(part, deviceOffset);
        } catch {
          this.counters.spareErrors++;
          this.relocateSpareWrite(part, byteOffset + bufOffset);
        }
      }
    }
  }

  private touchesPending(byteOffset: number, byteLength: number): boolean {
    const last = Math.floor((byteOffset + byteLength - 1) / this.blockSize);
    for (let b = Math.floor(byteOffset / this.blockSize); b <= last; b++) if (this.index.isPending(b)) return true;
    return false;
  }

  /** Writes a main range block by block; blocks main refuses (or pending ones) go to the spare. */
  private blockByBlockWrite(part: Buffer, byteOffset: number): void {
    const end = byteOffset + part.length;
    for (let pos = byteOffset; pos < end; ) {
      const block = Math.floor(pos / this.blockSize);
      const segEnd = Math.min(end, (block + 1) * this.blockSize);
      const seg = part.subarray(pos - byteOffset, segEnd - byteOffset);
      if (this.index.isPending(block)) {
        this.remapWithData(block, seg, pos - block * this.blockSize, 'read-error', this.main);
      } else {
        try {
          this.main.write(seg, pos);
        } catch {
          this.counters.mainWriteErrors++;
          this.remapWithData(block, seg, pos - block * this.blockSize, 'write-error', this.main);
        }
      }
      pos = segEnd;
    }
  }

  /** A write to a remapped block failed on the spare: retire that spare block and move the block. */
  private relocateSpareWrite(part: Buffer, byteOffset: number): void {
    const end = byteOffset + part.length;
    for (let pos = byteOffset; pos < end; ) {
      const block = Math.floor(pos / this.blockSize);
      const segEnd = Math.min(end, (block + 1) * this.blockSize);
      const seg = part.subarray(pos - byteOffset, segEnd - byteOffset);
      const oldSpare = this.index.spareBlockOf(block);
      try {
        this.spare.write(seg, oldSpare * this.blockSize + (pos - block * this.blockSize));
      } catch {
        this.counters.spareErrors++;
        const spareView: BlockDevice = this.spareViewOf(oldSpare, block);
        this.remapWithData(block, seg, pos - block * this.blockSize, 'write-error', spareView);
        this.journal.commitRetired(oldSpare);
        this.index.retire(oldSpare);
        this.onEvent(`spare block ${oldSpare} failed a write and is retired; block ${block} moved`);
      }
      pos = segEnd;
    }
  }

  /** The spare block holding `mainBlock`, addressed like main (so salvage can read it). */
  private spareViewOf(spareBlock: number, mainBlock: number): BlockDevice {
    const shift = (spareBlock - mainBlock) * this.blockSize;
    const spare = this.spare;
    return {
      name: spare.name,
      sizeBytes: this.sizeBytes,
      read: (b, off) => spare.read(b, off + shift),
      write: (b, off) => spare.write(b, off + shift),
      flush: () => spare.flush(),
      close: () => undefined,
    };
  }

  /**
   * Places `mainBlock` on a new spare block holding `seg` at `offsetInBlock`
   * and, around it, what `source` still holds (unreadable sectors as zeros).
   */
  private remapWithData(mainBlock: number, seg: Buffer, offsetInBlock: number, reason: RemapReason, source: BlockDevice): void {
    const block = this.blockBuf;
    const lost = new Set<number>();
    if (seg.length < this.blockSize) {
      const base = mainBlock * this.blockSize;
      this.salvage(source, base, block, 0, offsetInBlock, lost);
      this.salvage(source, base, block, offsetInBlock + seg.length, this.blockSize, lost);
    }
    seg.copy(block, offsetInBlock);
    if (lost.size && source === this.main) this.journal.noteBadSectors?.([...lost].map((i) => mainBlock * this.sectorsPerBlock + i), 'lost');
    this.place(mainBlock, block, reason, lost.size);
  }

  // ---- shared ------------------------------------------------------------

  /**
   * Copies bytes [from, to) of the block at `base` on `dev` into `target`,
   * reading sector by sector after a failure; unreadable pieces become zeros
   * and their sector indexes (inside the block) go into `lost`.
   */
  private salvage(dev: BlockDevice, base: number, target: Buffer, from: number, to: number, lost: Set<number>): void {
    if (to <= from) return;
    try {
      dev.read(target.subarray(from, to), base + from);
    } catch {
      for (let off = from; off < to; ) {
        const sectorEnd = Math.min(to, (Math.floor(off / SECTOR_BYTES) + 1) * SECTOR_BYTES);
        const piece = target.subarray(off, sectorEnd);
        try {
          dev.read(piece, base + off);
        } catch {
          piece.fill(0);
          lost.add(Math.floor(off / SECTOR_BYTES));
        }
        off = sectorEnd;
      }
    }
  }

  /** Steps 2-4 of the ordering above; returns the spare block. Throws EIO when the pool is exhausted. */
  private place(mainBlock: number, data: Buffer, reason: RemapReason, lostSectors: number): number {
    for (;;) {
      const spareBlock = this.index.allocate();
      if (spareBlock < 0) {
        const cause = Object.assign(new Error('spare pool exhausted'), { code: 'ENOSPC' });
        throw new RemapfsError('remap', `block ${mainBlock} of ${this.name}`, cause, 'no spare block left: evacuate the data to a new disk');
      }
      try {
        this.spare.write(data, spareBlock * this.blockSize);
        this.spare.flush();
      } catch {
        this.counters.spareErrors++;
        this.journal.commitRetired(spareBlock);
        this.index.retire(spareBlock);
        this.onEvent(`spare block ${spareBlock} failed a write and is retired`);
        continue;
      }
      this.journal.commitRemap({ mainBlock, spareBlock, reason, state: 'remapped', lostSectors, createdAt: this.now() });
      this.index.set(mainBlock, spareBlock);
      this.counters.remapEvents++;
      this.onEvent(`block ${mainBlock} remapped to spare block ${spareBlock}, reason ${reason}${lostSectors ? `, ${lostSectors} unreadable sector(s) zero-filled` : ''}`);
      return spareBlock;
    }
  }

  private checkBlock(mainBlock: number): void {
    if (!Number.isInteger(mainBlock) || mainBlock < 0 || mainBlock >= this.index.virtualBlocks) {
      throw new RemapfsError('remap', `block ${mainBlock} of ${this.name}`, `outside the device (${this.index.virtualBlocks} blocks)`);
    }
  }
}
