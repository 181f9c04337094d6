/**
 * RemapDevice: the virtual device of a pair, and the fast/slow boundary.
 *
 * Fast path (this file): split the request into runs with one lookup per
 * block (splitRange), and make one device call per run: main at the same
 * offset, or the spare blocks the index names. A run is fast only while its
 * lookup is clean (every block routes MAIN or to a spare block, none SLOW)
 * and its device call succeeds.
 * Slow path (recovery.ts, placement.ts): everything that decides. A run that
 * touches a pending (SLOW) block, or whose device call fails with a disk
 * error (isDiskError), is handed over whole. Any other error propagates: the
 * FUSE adapter answers EIO and the daemon logs it as a bug.
 *
 * Routes and the native engine: a RouteMirror (route-mirror.ts) holds the
 * routes an engine's threads serve by. Every entry point that touches data
 * (read, write, remapBlock, scanFoundUnreadable, importBadSectors) fences the
 * blocks it covers first and publishes their final routes (routeOf, from the
 * index) last, in a finally. With NO_MIRROR that costs one identity check per
 * request and no allocation. JS is single-threaded, so JS operations never
 * interleave; only engine threads race with JS, and the fence stops them.
 */
import { type BlockDevice, checkRange } from '../block/device.js';
import { isDeviceGone, isDiskError } from '../block/disk-error.js';
import { RemapfsError } from '../errors.js';
import type { RemapReason } from '../format/slot-codec.js';
import type { RemapIndex } from './index-table.js';
import { Placement } from './placement.js';
import { Recovery } from './recovery.js';
import { MirrorLink, NO_MIRROR, type RouteMirror } from './route-mirror.js';
import { RunList, splitRange, TARGET_MAIN } from './split.js';
import { type IoCounters, newCounters, type RemapDeviceOptions, type RemapJournal, type RemapResult } from './types.js';

export type { IoCounters, RemapDeviceOptions, RemapJournal, RemapResult } from './types.js';
export { newCounters } from './types.js';

export class RemapDevice implements BlockDevice {
  readonly name: string;
  readonly sizeBytes: number;
  readonly blockSize: number;
  readonly index: RemapIndex;
  readonly counters: IoCounters = newCounters();
  private readonly main: BlockDevice;
  private readonly spare: BlockDevice;
  private readonly runs = new RunList();
  private readonly recovery: Recovery;
  private readonly link = new MirrorLink();
  private writesSlow = false;

  constructor(name: string, main: BlockDevice, spare: BlockDevice, blockSize: number, index: RemapIndex, journal: RemapJournal, opts: RemapDeviceOptions = {}) {
    this.name = name;
    this.main = main;
    this.spare = spare;
    this.blockSize = blockSize;
    this.index = index;
    this.sizeBytes = index.virtualBlocks * blockSize;
    const onEvent = opts.onEvent ?? (() => undefined);
    const placement = new Placement(name, spare, blockSize, index, journal, this.counters, opts.now ?? Date.now, onEvent);
    const parts = { name, main, spare, blockSize, sizeBytes: this.sizeBytes, index, journal, counters: this.counters, onEvent };
    this.recovery = new Recovery(parts, placement, opts.readRetries ?? 2);
  }

  /** Extra attempts after a failed read (settings may change it while serving). */
  get readRetries(): number {
    return this.recovery.readRetries;
  }

  set readRetries(n: number) {
    this.recovery.readRetries = n;
  }

  get virtualBlocks(): number {
    return this.index.virtualBlocks;
  }

  get mirror(): RouteMirror {
    return this.link.mirror;
  }

  /** Publishes every remapped (spare) and pending (SLOW) block to `mirror`, then keeps it current. */
  attachMirror(mirror: RouteMirror): void {
    this.link.attach(mirror, this.index, this.writesSlow);
  }

  /** While on, every write goes through JS (an engine sends them up); the evacuation's tracking needs that. */
  setWritesSlow(on: boolean): void {
    this.writesSlow = on;
    this.link.mirror.setWritesSlow(on);
  }

  read(buf: Buffer, byteOffset: number): void {
    checkRange(this, 'read', buf.length, byteOffset);
    this.counters.readOps++;
    const mirrored = this.link.mirror !== NO_MIRROR;
    if (mirrored) this.link.fenceBytes(byteOffset, buf.length, this.blockSize);
    try {
      this.readRuns(buf, byteOffset);
    } catch (err) {
      this.counters.readErrors++;
      throw err;
    } finally {
      if (mirrored) this.link.publishBytes(this.index, byteOffset, buf.length, this.blockSize);
    }
    this.counters.readBytes += buf.length;
  }

  write(buf: Buffer, byteOffset: number): void {
    checkRange(this, 'write', buf.length, byteOffset);
    this.counters.writeOps++;
    const mirrored = this.link.mirror !== NO_MIRROR;
    if (mirrored) this.link.fenceBytes(byteOffset, buf.length, this.blockSize);
    try {
      this.writeRuns(buf, byteOffset);
    } catch (err) {
      this.counters.writeErrors++;
      throw err;
    } finally {
      if (mirrored) this.link.publishBytes(this.index, byteOffset, buf.length, this.blockSize);
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
    this.link.mirror.fence(mainBlock, 1);
    try {
      return this.recovery.remapBlock(mainBlock, reason);
    } finally {
      this.link.publishBlocks(this.index, mainBlock, 1);
    }
  }

  /** Known-bad sectors of `block` from a list (badblocks, a ddrescue mapfile): copied to the spare if it still reads, else pending. */
  importBadSectors(block: number, sectorsInBlock: ReadonlySet<number>): 'remapped' | 'pending' | 'already' {
    this.checkBlock(block);
    this.link.mirror.fence(block, 1);
    try {
      return this.recovery.importBadSectors(block, sectorsInBlock);
    } finally {
      this.link.publishBlocks(this.index, block, 1);
    }
  }

  // ---- the scanner's side (lib/health/scan-target.ts) --------------------

  isRemapped(block: number): boolean {
    return this.index.spareBlockOf(block) >= 0;
  }

  /** Reads main past any cache (for the scanner); returns the time taken in ms. Throws on an I/O error. */
  timedMainRead(buf: Buffer, byteOffset: number): number {
    const t0 = performance.now();
    if (this.main.readUncached) this.main.readUncached(buf, byteOffset);
    else this.main.read(buf, byteOffset);
    return performance.now() - t0;
  }

  /** The scanner found `block` unreadable: pending (true), or copied to the spare as weak if every sector reads. */
  scanFoundUnreadable(block: number): boolean {
    this.checkBlock(block);
    this.link.mirror.fence(block, 1);
    try {
      return this.recovery.scanFoundUnreadable(block);
    } finally {
      this.link.publishBlocks(this.index, block, 1);
    }
  }

  // ---- the fast path -----------------------------------------------------

  private readRuns(buf: Buffer, byteOffset: number): void {
    const runs = this.runs;
    const n = splitRange(byteOffset, buf.length, this.blockSize, this.index, runs);
    for (let i = 0; i < n; i++) {
      const bufOffset = runs.bufOffset[i] as number;
      const len = runs.byteLength[i] as number;
      const part = n === 1 ? buf : buf.subarray(bufOffset, bufOffset + len);
      const deviceOffset = runs.deviceOffset[i] as number;
      if (runs.target[i] === TARGET_MAIN) {
        if (this.index.pendingCount > 0 && this.touchesPending(deviceOffset, len)) {
          this.recovery.readPendingRun(part, deviceOffset);
          continue;
        }
        try {
          this.main.read(part, deviceOffset);
        } catch (err) {
          if (!isDiskError(err) || isDeviceGone(err)) throw err; // main not there: nothing to learn about the blocks
          this.recovery.mainReadFailed(part, deviceOffset);
        }
      } else {
        try {
          this.spare.read(part, deviceOffset);
        } catch (err) {
          if (!isDiskError(err)) throw err;
          this.recovery.spareReadFailed(part, deviceOffset, err);
        }
      }
    }
  }

  private writeRuns(buf: Buffer, byteOffset: number): void {
    const runs = this.runs;
    const n = splitRange(byteOffset, buf.length, this.blockSize, this.index, runs);
    for (let i = 0; i < n; i++) {
      const bufOffset = runs.bufOffset[i] as number;
      const len = runs.byteLength[i] as number;
      const part = n === 1 ? buf : buf.subarray(bufOffset, bufOffset + len);
      const deviceOffset = runs.deviceOffset[i] as number;
      if (runs.target[i] === TARGET_MAIN) {
        if (this.index.pendingCount > 0 && this.touchesPending(deviceOffset, len)) {
          this.recovery.blockByBlockWrite(part, deviceOffset);
          continue;
        }
        try {
          this.main.write(part, deviceOffset);
        } catch (err) {
          if (!isDiskError(err)) throw err;
          this.counters.mainWriteErrors++;
          this.recovery.blockByBlockWrite(part, deviceOffset);
        }
      } else {
        try {
          this.spare.write(part, deviceOffset);
        } catch (err) {
          if (!isDiskError(err)) throw err;
          this.counters.spareErrors++;
          this.recovery.relocateSpareWrite(part, byteOffset + bufOffset);
        }
      }
    }
  }

  /** True when a main byte range (main offsets are virtual offsets) covers a pending block. */
  private touchesPending(byteOffset: number, byteLength: number): boolean {
    const last = Math.floor((byteOffset + byteLength - 1) / this.blockSize);
    for (let b = Math.floor(byteOffset / this.blockSize); b <= last; b++) if (this.index.isPending(b)) return true;
    return false;
  }

  private checkBlock(mainBlock: number): void {
    if (!Number.isInteger(mainBlock) || mainBlock < 0 || mainBlock >= this.index.virtualBlocks) {
      throw new RemapfsError('remap', `block ${mainBlock} of ${this.name}`, `outside the device (${this.index.virtualBlocks} blocks)`);
    }
  }
}
