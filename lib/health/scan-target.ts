/**
 * ScanTarget: all the scanner may ask of a pair's device (RemapDevice
 * implements it). Reads of main go past any cache and throw on an I/O error;
 * the three calls that decide (scanFoundUnreadable, remapBlock) are the remap
 * layer's slow path, so they persist and fence like any other.
 */
import type { RemapReason } from '../format/slot-codec.js';

export interface ScanTarget {
  readonly blockSize: number;
  readonly virtualBlocks: number;
  /** True when the block's data is on the spare (the scan skips it). */
  isRemapped(block: number): boolean;
  /** Reads main at `byteOffset` past any cache; returns the time taken in ms. */
  timedMainRead(buf: Buffer, byteOffset: number): number;
  /** `block` did not read: persists it as pending (true), or copies it to the spare if every sector reads (false). */
  scanFoundUnreadable(block: number): boolean;
  /** Copies a slow block to the spare while it still reads. */
  remapBlock(block: number, reason: RemapReason): { already: boolean };
}
