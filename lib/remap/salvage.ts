/**
 * Salvage: reading what a failing device still holds, for recovery.ts. A
 * range that fails as a whole is read sector by sector; unreadable sectors
 * become zeros and are reported. Only disk errors count as unreadable, and
 * not those that say the device is not there (isDeviceGone: its data is away,
 * not lost); any other error propagates.
 */
import { SECTOR_BYTES } from '../format/layout.js';
import type { BlockDevice } from '../block/device.js';
import { isDeviceGone, isDiskError } from '../block/disk-error.js';

/**
 * Copies bytes [from, to) of the block at `base` on `dev` into `target`,
 * reading sector by sector after a failure; unreadable pieces become zeros
 * and their sector indexes (inside the block) go into `lost`.
 */
export function salvage(dev: BlockDevice, base: number, target: Buffer, from: number, to: number, lost: Set<number>): void {
  if (to <= from) return;
  try {
    dev.read(target.subarray(from, to), base + from);
  } catch (err) {
    if (!isDiskError(err) || isDeviceGone(err)) throw err; // the device is not there: its data is not lost, only away
    for (let off = from; off < to; ) {
      const sectorEnd = Math.min(to, (Math.floor(off / SECTOR_BYTES) + 1) * SECTOR_BYTES);
      const piece = target.subarray(off, sectorEnd);
      try {
        dev.read(piece, base + off);
      } catch (pieceErr) {
        if (!isDiskError(pieceErr) || isDeviceGone(pieceErr)) throw pieceErr;
        piece.fill(0);
        lost.add(Math.floor(off / SECTOR_BYTES));
      }
      off = sectorEnd;
    }
  }
}

/** Reads `seg` at `byteOffset` one sector (or part of one) at a time; throws on the first failure. */
export function readSectors(dev: BlockDevice, seg: Buffer, byteOffset: number): void {
  for (let off = 0; off < seg.length; ) {
    const abs = byteOffset + off;
    const sectorEnd = (Math.floor(abs / SECTOR_BYTES) + 1) * SECTOR_BYTES;
    const len = Math.min(seg.length - off, sectorEnd - abs);
    dev.read(seg.subarray(off, off + len), abs);
    off += len;
  }
}

/** The spare block holding `mainBlock`, addressed like main (so salvage can read it). */
export function spareView(spare: BlockDevice, spareBlock: number, mainBlock: number, blockSize: number, sizeBytes: number): BlockDevice {
  const shift = (spareBlock - mainBlock) * blockSize;
  return {
    name: spare.name,
    sizeBytes,
    read: (b, off) => spare.read(b, off + shift),
    write: (b, off) => spare.write(b, off + shift),
    flush: () => spare.flush(),
    close: () => undefined,
  };
}
