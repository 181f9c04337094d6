/** The shapes the remap layer shares between its modules and with meta/ (RemapJournal) and the daemon (IoCounters). */
import type { RemapReason } from '../format/slot-codec.js';
import type { RemapRecord } from '../store/db.js';

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

export type { RemapReason };

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
